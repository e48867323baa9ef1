"""StageTimer: one wall-clock figure per pipeline stage; :func:`peak_rss_mb` beside it."""

from __future__ import annotations

import resource
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class StageTimer:
    """Times named stages; ``total`` runs from construction (or ``offset_ms``) to :meth:`finish`."""

    def __init__(self, *, offset_ms: float = 0.0) -> None:
        self._t0 = time.perf_counter() - offset_ms / 1000.0
        self._stages: dict[str, float] = {}
        self._total: float | None = None

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        t = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, (time.perf_counter() - t) * 1000.0)

    def add(self, name: str, ms: float) -> None:
        """Record ``ms`` for ``name`` (added to what the stage already has)."""
        self._stages[name] = self._stages.get(name, 0.0) + ms

    def elapsed_ms(self) -> float:
        return (time.perf_counter() - self._t0) * 1000.0

    def finish(self) -> dict[str, float]:
        """Freeze ``total`` and return every stage plus ``total`` in milliseconds."""
        if self._total is None:
            self._total = self.elapsed_ms()
        return {**self._stages, "total": self._total}

    def snapshot(self) -> dict[str, float]:
        """The stages so far and the running total, without freezing it."""
        return {**self._stages, "total": self.elapsed_ms()}


def peak_rss_mb() -> float:
    """This process's peak resident memory so far, in MiB. On Linux VmHWM, not ``ru_maxrss``:
    Linux carries ru_maxrss over from the parent through fork and exec, so a child of a big
    process would report the parent's size."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB, bytes on macOS
    return peak / (1024.0 * 1024.0) if sys.platform == "darwin" else peak / 1024.0
