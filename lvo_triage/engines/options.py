"""Which engine runs the studies: ``local`` (this process, one after the other) or ``ray``
(worker actors on this machine or a Ray cluster), and how to reach Ray."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from enum import StrEnum
from types import ModuleType

from lvo_triage.errors import LvoTriageError

RAY_EXTRA_HINT = "install the ray extra: pip install 'lvo-triage[ray]'"


class EngineKind(StrEnum):
    LOCAL = "local"
    RAY = "ray"


class EngineUnavailable(LvoTriageError):
    """The engine asked for cannot run here (Ray not installed, no cluster at the address, no
    worker could start); the message says what to do."""


@dataclass(frozen=True, kw_only=True)
class EngineOptions:
    """``--engine``, ``--address`` and ``--workers``.

    ``address``: a Ray cluster to join (``ray start --head`` prints it); ``None`` starts Ray on
    this machine. ``workers``: how many worker actors (one warm model each); ``None`` gives one
    per CPU that Ray sees.
    """

    kind: EngineKind = EngineKind.LOCAL
    address: str | None = None
    workers: int | None = None

    def __post_init__(self) -> None:
        if self.workers is not None and self.workers < 1:
            msg = f"workers={self.workers} must be at least 1 (or left out: one per CPU)"
            raise ValueError(msg)
        if self.kind is EngineKind.LOCAL and (self.address is not None or self.workers is not None):
            given = "address" if self.address is not None else "workers"
            msg = f"{given} is for the ray engine only: add --engine ray, or leave --{given} out"
            raise ValueError(msg)
        if self.address is not None and not self.address.strip():
            msg = "address is empty: give the cluster's HOST:PORT (or 'auto'), or leave it out"
            raise ValueError(msg)

    @property
    def is_ray(self) -> bool:
        return self.kind is EngineKind.RAY


def require_ray() -> ModuleType:
    """The ``ray`` module, or ``EngineUnavailable`` saying how to install it."""
    try:
        return importlib.import_module("ray")
    except ImportError as exc:
        msg = f"the ray engine needs Ray, which is not installed: {RAY_EXTRA_HINT}"
        raise EngineUnavailable(msg) from exc
