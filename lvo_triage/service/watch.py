"""``lvo-triage watch INBOX --out OUTBOX``: triage studies as their files arrive.

Each poll reads the files that have settled (``arrivals.py``); a ready study is claimed by moving
its files into ``INBOX/.processing/<study>/`` (``inbox.py``), triaged by the same pipeline as
``run``, its result written to ``OUTBOX/<study>/``, and its files archived or deleted. After a
crash, claimed studies are triaged again on start. SIGTERM (or Ctrl-C) finishes the study in hand
and stops. Images of a study that arrive after its triage start a new round whose result
supersedes the first.

Several watchers (processes, or machines sharing the folder) may serve one INBOX: a study is
claimed by one of them only, and each looks every few seconds for claims whose worker died, to
take them over (``inbox.py`` says how).
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType

from lvo_triage.pipeline import Engine, triage_path
from lvo_triage.result import TriageResult
from lvo_triage.service.arrivals import Arrivals, PendingStudy
from lvo_triage.service.events import Wakeup
from lvo_triage.service.inbox import BEATS_PER_LEASE, Inbox

log = logging.getLogger(__name__)
RETRY_S = 10.0  # a study whose results could not be written is tried again after this
BUSY_RETRY_S = 1.0  # a study another worker holds is tried again after this
RESUME_EVERY_S = 2.0  # how often claims are checked for a dead worker to take over from


class Watcher:
    def __init__(
        self,
        inbox: Path,
        outbox: Path,
        engine: Engine,
        *,
        clock: Callable[[], float] = time.monotonic,
        on_results: Callable[[Path, list[TriageResult]], None] | None = None,
    ) -> None:
        """``on_results(folder, results)`` runs after each triage while the study's files are
        still in ``folder`` (``serve`` sends the SR and key image, calls the webhook)."""
        self.on_results = on_results
        self.settings = engine.settings.watch
        self.inbox = Inbox(inbox, lease_s=self.settings.claim_lease_s, clock=clock)
        self.inbox.create()
        self.outbox = outbox
        self.outbox.mkdir(parents=True, exist_ok=True)
        self.engine = engine
        self.arrivals = Arrivals(self.inbox, self.settings, engine.settings.selection, clock=clock)
        self.clock = clock
        self.retry: dict[Path, tuple[float, float | None]] = {}  # folder: (when, arrival)
        self.last_resume = clock()
        self.last_renewal = time.monotonic()
        # when the last file of the study in hand arrived (time.time(); None after a restart):
        # on_results reads it to time a result from the study's arrival
        self.arrival_epoch: float | None = None
        self.stopping = False
        self.stop_event = threading.Event()

    def resume(self) -> list[TriageResult]:
        """Triage the studies claimed but not finished by a worker that is gone: a previous run
        of this one, or another that died."""
        self.last_resume = self.clock()
        results = []
        for folder in self.inbox.claimed():
            log.info("resuming a study whose claim was left unfinished by a crash")
            self.arrivals.known_sops.update(f.stem for f in folder.glob("*.dcm"))
            results += self._triage(folder, arrival_epoch=None)
        return results

    def step(self) -> list[TriageResult]:
        """One poll, and the triage of every study that became ready; every few seconds, the
        studies of dead workers too."""
        if time.monotonic() - self.last_renewal >= self.settings.claim_lease_s / BEATS_PER_LEASE:
            self.last_renewal = time.monotonic()
            self.inbox.renew()  # the studies kept for a retry
        self.arrivals.poll()
        results = []
        if self.clock() - self.last_resume >= RESUME_EVERY_S:
            results += self.resume()
        for folder, (when, arrival) in list(self.retry.items()):
            if self.clock() >= when:
                del self.retry[folder]
                results += self._triage(folder, arrival_epoch=arrival)
        for study in self.arrivals.ready():
            results += self._claim_and_triage(study)
            if self.stopping:
                break
        return results

    def _claim_and_triage(self, study: PendingStudy) -> list[TriageResult]:
        folder = self.inbox.claim(study.uid, self.arrivals.files(study))
        if folder is None:  # another worker holds the study, or took these files
            if self.arrivals.forget_missing(study):
                study.not_before = self.clock() + BUSY_RETRY_S  # images for its next round
            return []
        self.arrivals.take(study)
        if self.settings.keep_input == "delete":
            self.arrivals.closed.add(study.uid)  # its files are gone: late images cannot join
        return self._triage(folder, arrival_epoch=study.last_arrival_wall)

    def _triage(self, folder: Path, *, arrival_epoch: float | None) -> list[TriageResult]:
        self.arrival_epoch = arrival_epoch
        try:
            with self.inbox.renewing():
                results = self._triage_and_deliver(folder, arrival_epoch)
        except OSError as exc:  # the outbox is full, gone or not writable: keep the input
            log.error(
                "cannot write results to %s (%s); the study stays in %s and is tried again "
                "in %.0f s: free space or fix the permissions",
                self.outbox,
                exc,
                folder,
                RETRY_S,
            )
            self.retry[folder] = (self.clock() + RETRY_S, arrival_epoch)
            return []
        self.inbox.finish(folder, keep=self.settings.keep_input)
        return results

    def _triage_and_deliver(self, folder: Path, arrival_epoch: float | None) -> list[TriageResult]:
        results = triage_path(self.engine, folder, out=self.outbox, arrival_epoch=arrival_epoch)
        for result in results:
            log.info("%s", result.headline())
        if self.on_results is not None:
            try:
                self.on_results(folder, results)
            except Exception:  # a failing destination must not lose the study or stop the watch
                log.exception("delivering the results of a study failed")
        return results

    def stop(self, signum: int | None = None, frame: FrameType | None = None) -> None:
        """Finish the study in hand, then return from :meth:`run_forever`."""
        if not self.stopping:
            log.info("stopping after the study in hand")
        self.stopping = True
        self.stop_event.set()

    def wakeup(self, stop_event: threading.Event | None = None) -> Wakeup:
        """What the polling loop waits on: filesystem events in the inbox (``watch.events``),
        the poll interval, or ``stop_event`` (default: this watcher's)."""
        return Wakeup(
            self.inbox.root,
            events=self.settings.events,
            stop_event=stop_event if stop_event is not None else self.stop_event,
        )

    def run_forever(self) -> None:
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)
        log.info(
            "watching %s (results in %s) as %s; a study is triaged when complete, at the latest "
            "after %.1f s without new files",
            self.inbox.root,
            self.outbox,
            self.inbox.owner,
            self.settings.quiet_period_s,
        )
        wakeup = self.wakeup()
        try:
            self.resume()
            while not self.stopping:
                started = time.monotonic()
                self.step()
                wakeup.wait(self.settings.poll_interval_s - (time.monotonic() - started))
        finally:
            wakeup.close()
            self.inbox.release_all()  # studies kept for a retry: another worker takes them
        log.info("stopped")
