"""Who holds a claim in the watched folder: a worker, and whether its process is gone.

A worker is named by its host, a machine key (host name, boot id and PID namespace, so that a pid
is only compared where it means the same process), its pid and that process's start time (a
later process with the same pid is not it), and a random id. ``inbox.py`` writes it into each
claim's owner file.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import secrets
import socket
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Owner:
    """A worker. ``machine`` (host name, boot and PID namespace) says where ``pid`` means this
    process; ``started`` (its start time after boot, Linux) tells it from a later one with the
    same pid; ``worker`` is random, one per :class:`Inbox`."""

    host: str
    machine: str
    pid: int
    started: int | None
    worker: str

    @classmethod
    def this_process(cls) -> Owner:
        pid = os.getpid()
        stat = _proc_stat(pid)
        started = stat[1] if stat is not None else None
        return cls(socket.gethostname(), _machine(), pid, started, secrets.token_hex(6))

    @classmethod
    def parse(cls, content: bytes) -> Owner | None:
        """The owner in an owner file, None while it is being written (or when damaged)."""
        try:
            return cls(**json.loads(content))
        except (ValueError, TypeError):
            return None

    def process_gone(self) -> bool:
        """True when this owner ran on this machine and its process has ended."""
        if self.machine != _machine() or self.pid <= 0:
            return False  # another machine: only its lease can tell
        try:
            stat = _proc_stat(self.pid)
        except ProcessLookupError:
            return True
        if stat is None:  # no /proc: ask the kernel
            try:
                os.kill(self.pid, 0)
            except ProcessLookupError:
                return True
            except PermissionError:
                return False
            return False
        state, started = stat
        return state in ("Z", "X") or (self.started is not None and started != self.started)

    def __str__(self) -> str:
        return f"worker {self.worker} (pid {self.pid} on {self.host})"


@functools.cache
def _machine() -> str:
    parts = [socket.gethostname()]
    with contextlib.suppress(OSError):
        parts.append(Path("/proc/sys/kernel/random/boot_id").read_text().strip())
    with contextlib.suppress(OSError):
        parts.append(os.readlink("/proc/self/ns/pid"))
    return hashlib.sha1("|".join(parts).encode()).hexdigest()[:16]


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state, start time) of process ``pid`` from /proc; None without a usable /proc;
    ProcessLookupError when there is no such process."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        if Path("/proc/self/stat").exists():
            raise ProcessLookupError(pid) from None
        return None
    except OSError:
        return None
    fields = text.rsplit(")", 1)[-1].split()
    try:
        return fields[0], int(fields[19])  # fields 3 (state) and 22 (starttime) of proc(5)
    except (IndexError, ValueError):
        return None
