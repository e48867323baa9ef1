"""Wake the watched folder's loop as soon as a file lands (watchdog), polling as the fallback.

Filesystem events (inotify on Linux) tell us at once that something arrived, so the loop need not
wait for its next poll. Events are a hint only: the loop still scans the folder every
``watch.poll_interval_s``, because network shares (NFS, SMB) do not report files written by other
machines, and an event can be lost when its queue overflows. Without watchdog, or when the
observer cannot start (too many inotify watches, say), the loop simply polls.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

from lvo_triage.service.inbox import WORK_DIRS

log = logging.getLogger(__name__)
MIN_GAP_S = 0.05  # scans at most this often while files stream in (each scan lists the folder)


def _not_shutdown_noise(record: logging.LogRecord) -> bool:
    """watchdog logs an ERROR when its inotify thread is stopped while reading (a harmless race
    of its own shutdown, watchdog issue #963); keep every other record."""
    return "called when the thread is inactive" not in record.getMessage()


logging.getLogger("watchdog.observers.inotify").addFilter(_not_shutdown_noise)


class Wakeup:
    """``wait(timeout)`` returns early when a file under ``root`` (outside its work areas) was
    created, written, closed or moved in; otherwise after ``timeout`` seconds, or when
    ``stop_event`` is set."""

    def __init__(self, root: Path, *, events: bool, stop_event: threading.Event) -> None:
        self.root = root
        self.stop_event = stop_event
        self._arrived = threading.Event()
        self._returned = time.monotonic()
        self._observer: Any = None
        if events:
            self._observer = self._start_observer()

    @property
    def events(self) -> bool:
        """Whether filesystem events are being received (else: polling only)."""
        return self._observer is not None

    def _start_observer(self) -> Any:
        try:
            from watchdog.events import FileSystemEvent, FileSystemEventHandler
            from watchdog.observers import Observer
        except ImportError:
            log.info("watchdog is not installed: polling %s only", self.root)
            return None
        work = tuple(os.path.join(self.root, name) for name in WORK_DIRS)
        arrived = self._arrived

        class Handler(FileSystemEventHandler):
            def on_any_event(self, event: FileSystemEvent) -> None:
                path = str(getattr(event, "dest_path", "") or event.src_path)
                if event.event_type in ("opened", "closed_no_write", "deleted"):
                    return
                if not any(path == w or path.startswith(w + os.sep) for w in work):
                    arrived.set()

        observer = Observer()
        try:
            observer.schedule(Handler(), str(self.root), recursive=True)
            observer.start()
        except OSError as exc:
            log.warning(
                "cannot receive filesystem events for %s (%s): polling every scan interval "
                "instead (raise fs.inotify.max_user_watches to get events back)",
                self.root,
                exc,
            )
            return None
        log.debug("receiving filesystem events for %s", self.root)
        return observer

    def wait(self, timeout: float) -> str:
        """Until a file arrives, ``timeout`` passes or the stop event is set; which of them
        ended the wait: ``"file"``, ``"timeout"`` or ``"stop"``."""
        try:
            return self._wait(timeout)
        finally:
            self._returned = time.monotonic()

    def _wait(self, timeout: float) -> str:
        if self.stop_event.is_set():
            return "stop"
        if timeout <= 0:
            return "timeout"
        if self._observer is None:
            return "stop" if self.stop_event.wait(timeout) else "timeout"
        deadline = time.monotonic() + timeout
        # Two events cannot be waited on together: look at the stop event every MIN_GAP_S.
        while not self.stop_event.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return "timeout"
            if self._arrived.wait(min(remaining, MIN_GAP_S)):
                self._arrived.clear()
                rest = self._returned + MIN_GAP_S - time.monotonic()
                if rest > 0:
                    self.stop_event.wait(min(rest, max(0.0, deadline - time.monotonic())))
                return "file"
        return "stop"

    def close(self) -> None:
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=5)
            self._observer = None
