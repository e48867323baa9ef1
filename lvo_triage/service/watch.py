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

No input stops the watcher. A file that cannot be read is quarantined with its reason; a study
whose triage fails (``status: error``) is set aside in ``INBOX/.quarantine/<study>/`` instead of
archived; and a study whose triage has stopped the process ``MAX_CRASHES`` times (a crash, the
OOM killer: the begun attempts are counted on disk before each triage) is not triaged again but
set aside with an ``error`` result, so that a service manager's restarts cannot loop on it. An
exception that escapes one poll is logged and the loop goes on.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from types import FrameType

from lvo_triage.pipeline import Runtime, emit_result, error_result, triage_path
from lvo_triage.result import Status, TriageResult
from lvo_triage.service.arrivals import Arrivals, PendingStudy
from lvo_triage.service.events import Wakeup
from lvo_triage.service.inbox import BEATS_PER_LEASE, SAFE_NAME, Inbox
from lvo_triage.timing import StageTimer

log = logging.getLogger(__name__)

OnResults = Callable[[Path, list[TriageResult], float | None], None]
RETRY_S = 10.0  # a study whose results could not be written is tried again after this
BUSY_RETRY_S = 1.0  # a study another worker holds is tried again after this
RESUME_EVERY_S = 2.0  # how often claims are checked for a dead worker to take over from
MAX_CRASHES = 2  # a study whose triage the process died in this often is set aside
LOG_EVERY_S = 60.0  # a failing loop logs its traceback at most this often


class Watcher:
    def __init__(
        self,
        inbox: Path,
        outbox: Path,
        engine: Runtime,
        *,
        clock: Callable[[], float] = time.monotonic,
        on_results: OnResults | None = None,
    ) -> None:
        """``on_results(folder, results, arrival_epoch)`` runs after each triage (``serve``
        sends the SR and key image, calls the webhook); ``arrival_epoch``: when the study's last
        file arrived (``time.time()``), None for a study found at start-up."""
        self.on_results = on_results
        self.settings = engine.settings.watch
        self.inbox = Inbox(inbox, lease_s=self.settings.claim_lease_s, clock=clock)
        self.inbox.create()
        self.outbox = outbox
        self.outbox.mkdir(parents=True, exist_ok=True)
        self.engine = engine
        self.arrivals = Arrivals(
            self.inbox,
            self.settings,
            engine.settings.selection,
            limits=engine.settings.limits,
            clock=clock,
        )
        self.clock = clock
        self.retry: dict[Path, tuple[float, float | None]] = {}  # folder: (when, arrival)
        self.last_resume = clock()
        self.last_renewal = time.monotonic()
        # when the last file of the study in hand arrived (time.time(); None after a restart):
        self.stopping = False
        self.stop_event = threading.Event()
        self._last_failure_log = -LOG_EVERY_S

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
        crashes = self.inbox.begin_attempt(folder)
        if crashes >= MAX_CRASHES:
            return self._set_aside(
                folder,
                arrival_epoch,
                f"lvo-triage stopped {crashes} times while triaging this study (a crash, or killed "
                "for memory), so it is not tried again",
            )
        try:
            with self.inbox.renewing():
                results = self._triage_and_deliver(folder, arrival_epoch)
        except OSError as exc:  # the outbox is full, gone or not writable: keep the input
            self.inbox.end_attempt(folder)
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
        except Exception as exc:  # a failure the pipeline did not turn into a result
            log.exception("triaging a study failed; its files are set aside")
            why = f"internal error ({type(exc).__name__}): {exc}"
            return self._set_aside(folder, arrival_epoch, why)
        self.inbox.end_attempt(folder)
        failed = [r for r in results if r.status is Status.ERROR]
        if failed:
            target = self.inbox.set_aside(folder, str(failed[0].reason))
            log.error("a study failed internally; its files are set aside in %s", target)
        else:
            self.inbox.finish(folder, keep=self.settings.keep_input)
        return results

    def _set_aside(self, folder: Path, arrival_epoch: float | None, why: str) -> list[TriageResult]:
        """Quarantine a claimed study's files and write its ``error`` result (``why``, and where
        the files are), without triaging it."""
        target = self.inbox.set_aside(folder, why)
        log.error("a study was set aside in %s: %s", target, why)
        named = SAFE_NAME.match(folder.name) and folder.name[0].isdigit()  # the study UID itself
        result = error_result(
            self.engine,
            f"{why}; its images are in {target}: look at them yourself",
            study_uid=folder.name if named else None,
        )
        try:
            emit_result(result, StageTimer(), self.outbox, str(folder))
        except OSError as exc:
            log.error("cannot write the result of a study set aside to %s (%s)", self.outbox, exc)
        if self.on_results is not None:
            try:
                self.on_results(target, [result], arrival_epoch)
            except Exception:
                log.exception("delivering the result of a study set aside failed")
        return [result]

    def _triage_and_deliver(self, folder: Path, arrival_epoch: float | None) -> list[TriageResult]:
        results = triage_path(self.engine, folder, out=self.outbox, arrival_epoch=arrival_epoch)
        for result in results:
            log.info("%s", result.headline())
        if self.on_results is not None:
            try:
                self.on_results(folder, results, arrival_epoch)
            except Exception:  # a failing destination must not lose the study or stop the watch
                log.exception("delivering the results of a study failed")
        return results

    def guarded(self, step: Callable[[], object]) -> None:
        """Run one ``step`` of the loop (a poll, a resume); an exception that escapes it is logged,
        with its traceback at most once a minute, and the loop goes on."""
        try:
            step()
        except Exception as exc:
            now = time.monotonic()
            if now - self._last_failure_log >= LOG_EVERY_S:
                self._last_failure_log = now
                log.exception("one poll of the watched folder failed; carrying on")
            else:
                log.error("one poll of the watched folder failed again (%s)", type(exc).__name__)

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

    def loop(
        self,
        *,
        stop_event: threading.Event | None = None,
        around: Callable[[Callable[[], object]], None] | None = None,
    ) -> None:
        """Resume what an earlier run left, then poll until :meth:`stop` (or ``stop_event``).
        ``around(step)`` runs each guarded poll (``serve`` times them for its health check)."""
        run: Callable[[Callable[[], object]], object] = around or (lambda step: step())
        wakeup = self.wakeup(stop_event)
        try:
            run(partial(self.guarded, self.resume))
            while not self.stopping and not (stop_event is not None and stop_event.is_set()):
                started = time.monotonic()
                run(partial(self.guarded, self.step))
                wakeup.wait(self.settings.poll_interval_s - (time.monotonic() - started))
        finally:
            wakeup.close()
            self.inbox.release_all()  # studies kept for a retry: another worker takes them

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
        self.loop()
        log.info("stopped")
