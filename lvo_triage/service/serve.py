"""``lvo-triage serve``: ``listen`` and ``watch`` in one process, with deliveries and telemetry.

    DICOM node (thread) ──▶ INBOX ──▶ watcher loop (main thread) ──▶ OUTBOX/<study>/
                                                                       │ sr.dcm, key_image.dcm
                                       on_results ─────────────────────┤
                                        ├─▶ C-STORE to each serve.send_to (a thread each)
                                        └─▶ webhook POST (a thread)

The storage node (``scp.py``) files what a PACS sends into INBOX; the watcher (``watch.py``)
triages each study once complete and writes its result, with the DICOM SR and the key image
as a Secondary Capture beside ``result.json`` (``outputs.dicom``, always on here). Then
:meth:`Service.on_results` queues their C-STORE and the webhook call (``delivery.py``, which
only moves those files): a destination that is down never holds up the triage. ``/metrics``
and ``/health`` (``telemetry.py``) show what happened and whether both halves still work.
SIGTERM or SIGINT: the study in hand is finished, the node stops, the
queued deliveries get a last attempt, and the process exits 0.
"""

from __future__ import annotations

import dataclasses
import logging
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

from lvo_triage.errors import ConfigError
from lvo_triage.outputs.result_json import study_folder
from lvo_triage.pipeline import Runtime
from lvo_triage.result import Status, TriageResult
from lvo_triage.service.delivery import DeliveryQueue
from lvo_triage.service.scp import StorageNode
from lvo_triage.service.targets import DicomTarget, Target, WebhookTarget
from lvo_triage.service.telemetry import Metrics, TelemetryServer
from lvo_triage.service.watch import Watcher

log = logging.getLogger(__name__)

POLL_STALE_S = 5.0  # /health fails when the watcher has not polled for this long (or 3 polls) ...
STEP_STALE_S = 300.0  # ... or has been busy with one poll's studies for this long
SECRET_VARIABLE = "LVO_WEBHOOK_SECRET"


class Service:
    """The DICOM node, the watched folder and the deliveries of ``serve``.

    ``engine``'s settings give every part its settings (``listen``, ``watch``, ``serve``);
    ``webhook_secret`` signs the webhook calls (None: unsigned). ``host`` is the address the
    DICOM node listens on ("" = every IPv4 interface).
    """

    def __init__(
        self,
        *,
        inbox: Path,
        outbox: Path,
        engine: Runtime,
        webhook_secret: bytes | None = None,
        host: str = "",
    ) -> None:
        # serve sends the SR and key image the pipeline writes beside each result.json
        engine = dataclasses.replace(
            engine,
            settings=dataclasses.replace(
                engine.settings, outputs=dataclasses.replace(engine.settings.outputs, dicom=True)
            ),
        )
        self.settings = engine.settings.serve
        self.listen_settings = engine.settings.listen
        self.outbox = outbox
        self.webhook_secret = webhook_secret
        self.metrics = Metrics()
        self.watcher = Watcher(inbox, outbox, engine, on_results=self.on_results)
        self.node = StorageNode(
            inbox, self.listen_settings, host=host, limits=engine.settings.limits
        )
        targets: list[Target] = [
            DicomTarget(
                destination=destination,
                calling_ae_title=self.listen_settings.ae_title,
                timeout_s=self.settings.timeout_s,
            )
            for destination in self.settings.destinations
        ]
        if self.settings.webhook_url is not None:
            targets.append(
                WebhookTarget(
                    url=self.settings.webhook_url,
                    secret=webhook_secret,
                    timeout_s=self.settings.timeout_s,
                )
            )
        self.targets = [
            (
                target,
                DeliveryQueue(
                    name=target.name,
                    kind=target.kind,
                    delays=self.settings.retry_delays_s,
                    on_done=self._delivered,
                ),
            )
            for target in targets
        ]
        self.telemetry: TelemetryServer | None = None
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._last_poll: float | None = None  # monotonic, when the watcher loop last began a poll
        self._busy_since: float | None = None  # monotonic, while a poll triages studies
        self._node_thread: threading.Thread | None = None
        self._started = time.monotonic()

    @property
    def queues(self) -> list[DeliveryQueue]:
        return [q for _, q in self.targets]

    # Life cycle

    def start(self) -> None:
        """Start the node, the telemetry endpoint and the delivery threads (not the watcher
        loop: :meth:`run_forever`). ConfigError when a port is taken."""
        before = set(threading.enumerate())
        try:
            self.node.start()
        except OSError as exc:
            msg = (
                f"cannot listen for DICOM on port {self.listen_settings.port} ({exc}): choose "
                "another --port, or stop the program that uses it"
            )
            raise ConfigError(msg) from exc
        self._node_thread = _acceptor_thread(before)
        if self.settings.metrics_port:
            try:
                self.telemetry = TelemetryServer(
                    port=self.settings.metrics_port, metrics=self.metrics, health=self.health
                )
            except OSError as exc:
                self.node.stop()
                msg = (
                    f"cannot serve metrics on 127.0.0.1:{self.settings.metrics_port} ({exc}): "
                    "choose another --metrics-port (0: none)"
                )
                raise ConfigError(msg) from exc
            self.telemetry.start()
        for q in self.queues:
            q.start()
        for destination in self.settings.destinations:
            log.info("the SR and key image of each study go to %s", destination)
        if self.settings.webhook_url is not None:
            signed = "signed" if self.webhook_secret is not None else "UNSIGNED"
            log.info("each result is posted to %s (%s)", self.settings.webhook_url, signed)
            if self.webhook_secret is None:
                log.warning(
                    "webhook calls are not signed: set the environment variable %s to a shared "
                    "secret so that the receiver can check X-LVO-Signature",
                    SECRET_VARIABLE,
                )

    def stop(self) -> None:
        """Stop the node, give queued deliveries a last attempt, stop the telemetry."""
        self.stopping.set()
        self.node.stop()
        for q in self.queues:
            q.close(timeout_s=self.settings.timeout_s)
        if self.telemetry is not None:
            self.telemetry.stop()

    def request_stop(self, signum: int | None = None, frame: FrameType | None = None) -> None:
        """Finish the study in hand, then stop (a signal handler)."""
        self.stopping.set()
        self.watcher.stop()

    def run_forever(self) -> None:
        """Serve until SIGTERM or SIGINT (from the main thread)."""
        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, self.request_stop)
        self.start()
        try:
            log.info(
                "serving: DICOM node %s on port %d, watching %s, results in %s",
                self.listen_settings.ae_title,
                self.node.port,
                self.watcher.inbox.root,
                self.outbox,
            )
            self.watcher.loop(stop_event=self.stopping, around=self._poll)
        finally:
            self.stop()
        log.info("stopped")

    def _poll(self, step: Callable[[], object]) -> None:
        now = time.monotonic()
        with self._lock:
            self._last_poll, self._busy_since = now, now
        try:
            step()
        finally:
            with self._lock:
                self._busy_since = None

    # Health

    def health(self) -> tuple[bool, dict[str, Any]]:
        """``(healthy, document)``: healthy while the node's thread runs and the watcher loop
        polls (or triages, for at most STEP_STALE_S)."""
        now = time.monotonic()
        with self._lock:
            last, busy = self._last_poll, self._busy_since
        node = self._node_thread is not None and self._node_thread.is_alive()
        if self.stopping.is_set() or last is None:
            watcher = False
        elif busy is not None:
            watcher = now - busy < STEP_STALE_S
        else:
            watcher = now - last < max(POLL_STALE_S, 3 * self.watcher.settings.poll_interval_s)
        healthy = node and watcher
        document: dict[str, Any] = {
            "status": "ok" if healthy else "unavailable",
            "dicom_node": node,
            "watcher": watcher,
            "stopping": self.stopping.is_set(),
            "last_poll_s_ago": None if last is None else round(now - last, 3),
            "busy_s": None if busy is None else round(now - busy, 3),
            "pending_deliveries": sum(q.pending for q in self.queues),
            "uptime_s": round(now - self._started, 1),
            **self.metrics.snapshot(),
        }
        return healthy, document

    # Results

    def on_results(
        self, folder: Path, results: list[TriageResult], arrival_epoch: float | None = None
    ) -> None:
        """Count each result, then deliver it: the SR and key image from OUTBOX to the DICOM
        destinations, the result to the webhook (not for internal errors)."""
        elapsed = time.time() - arrival_epoch if arrival_epoch is not None else None
        for result in results:
            self.metrics.result(result, arrival_to_result_s=elapsed)
            if result.status is Status.ERROR or not result.study_instance_uid:
                continue
            try:
                self._deliver(folder, result)
            except (FileNotFoundError, ValueError) as exc:  # no header of the series, or a bad one
                log.error("no SR or key image for a study in %s: %s", folder, exc)
            except Exception:  # one result's failure must not stop the others
                log.exception("delivering a result of the study in %s failed", folder)

    def _deliver(self, folder: Path, result: TriageResult) -> None:
        study_out = study_folder(self.outbox, result, str(folder))
        problem: FileNotFoundError | None = None
        for target, q in self.targets:
            try:
                q.put(target.delivery(study_out, result))
            except FileNotFoundError as exc:  # this kind's files are missing; the others go
                problem = exc
        if problem is not None:
            raise problem

    def _delivered(self, kind: str, ok: bool) -> None:
        self.metrics.delivery(kind, ok=ok)


def _acceptor_thread(before: set[threading.Thread]) -> threading.Thread | None:
    """The thread that pynetdicom started to accept associations (``AcceptorServer@...``)."""
    new = [t for t in threading.enumerate() if t not in before]
    named = [t for t in new if t.name.startswith("AcceptorServer")]
    candidates = named or new
    return candidates[0] if candidates else None
