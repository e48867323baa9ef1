"""Deliveries of ``serve``: the files the pipeline wrote, moved. The SR and key image
(``sr.dcm``, ``key_image.dcm``) to DICOM nodes (C-STORE), the result to a webhook.

Each destination has its own :class:`DeliveryQueue`, a background thread that tries each
delivery again after each of ``serve.retry_delays_s`` until it succeeds, so that a slow or absent
destination neither holds up the triage nor the other destinations. A delivery given up is
logged as an error with what to do; nothing is lost, as the SR and key image stay in
``OUTBOX/<study>/`` and the result in ``result.json``.

The webhook body is the result document (``result.json``'s content, compact); with a shared
secret, the header ``X-LVO-Signature: sha256=<hex>`` holds the HMAC-SHA256 of the body, which the
receiver recomputes to know that the call came from us unchanged.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import logging
import queue
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pydicom
from pydicom.errors import InvalidDicomError
from pydicom.uid import (
    Comprehensive3DSRStorage,
    ExplicitVRLittleEndian,
    SecondaryCaptureImageStorage,
)
from pynetdicom import AE, evt
from pynetdicom.events import Event

from lvo_triage import __version__
from lvo_triage.config import Destination
from lvo_triage.result import TriageResult

log = logging.getLogger(__name__)

STORED = {0x0000, 0xB000, 0xB006, 0xB007}  # success, and the warnings that mean "stored"
SIGNATURE_HEADER = "X-LVO-Signature"


class _ConnectFailures(logging.Filter):
    """Drops pynetdicom's two ERROR lines for a connection that fails on our side as a caller
    (only the requestor connects): the delivery's own warning says it, with the retry."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = str(record.msg)
        return not message.startswith(
            ("Association request failed: unable to connect", "TCP Initialisation Error")
        )


logging.getLogger("pynetdicom.transport").addFilter(_ConnectFailures())


class DeliveryError(Exception):
    """One attempt failed; ``permanent``: trying again cannot help (e.g. HTTP 400)."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


# One attempt at each kind of destination


def c_store(
    destination: Destination,
    files: Sequence[Path],
    *,
    calling_ae_title: str,
    timeout_s: float,
) -> None:
    """Store the DICOM ``files`` (SRs and Secondary Captures, as the pipeline wrote them) to
    ``destination`` in one association; raises DeliveryError saying what went wrong."""
    try:
        datasets = [pydicom.dcmread(path) for path in files]
    except (OSError, InvalidDicomError) as exc:
        raise DeliveryError(f"cannot read {exc}", permanent=True) from exc
    ae = AE(ae_title=calling_ae_title)
    ae.add_requested_context(Comprehensive3DSRStorage, ExplicitVRLittleEndian)
    ae.add_requested_context(SecondaryCaptureImageStorage, ExplicitVRLittleEndian)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = timeout_s
    ae.connection_timeout = timeout_s
    connected = threading.Event()

    def opened(event: Event) -> None:
        connected.set()

    assoc = ae.associate(
        destination.host,
        destination.port,
        ae_title=destination.ae_title,
        evt_handlers=[(evt.EVT_CONN_OPEN, opened)],
    )
    if not assoc.is_established:
        if not connected.is_set():
            why = (
                f"cannot connect to {destination.host}:{destination.port} (refused or no answer "
                f"in {timeout_s:g} s): is it running, and are the host and port right?"
            )
        elif assoc.is_rejected:
            why = f"it rejected the association: does it accept the AE title {calling_ae_title}?"
        else:
            why = "it aborted the association or did not answer"
        raise DeliveryError(why)
    try:
        for ds in datasets:
            answer = assoc.send_c_store(ds)
            status = answer.get("Status") if answer else None
            if status is None:
                raise DeliveryError("no answer to C-STORE (connection lost or timed out)")
            if int(status) not in STORED:
                msg = f"C-STORE of a {ds.get('Modality', '?')} answered status 0x{int(status):04X}"
                raise DeliveryError(msg)
    finally:
        if assoc.is_established:
            assoc.release()


def signature(secret: bytes, body: bytes) -> str:
    """The ``X-LVO-Signature`` value of ``body``: ``sha256=`` and the hex HMAC-SHA256."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def post_json(url: str, body: bytes, *, secret: bytes | None, timeout_s: float) -> None:
    """POST ``body`` (JSON) to ``url``, signed when there is a ``secret``; raises DeliveryError
    unless the answer is 2xx (permanent for client errors other than 408 and 429)."""
    headers = {"Content-Type": "application/json", "User-Agent": f"lvo-triage/{__version__}"}
    if secret is not None:
        headers[SIGNATURE_HEADER] = signature(secret, body)
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            response.read()
            code = int(response.status)
    except urllib.error.HTTPError as exc:
        permanent = 400 <= exc.code < 500 and exc.code not in (408, 429)
        raise DeliveryError(f"HTTP {exc.code} {exc.reason}", permanent=permanent) from exc
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise DeliveryError(f"no answer ({reason})") from exc
    if not 200 <= code < 300:
        raise DeliveryError(f"HTTP {code}")


def result_body(result: TriageResult) -> bytes:
    return json.dumps(result.to_dict(), separators=(",", ":")).encode("utf-8")


# The queue of one destination


@dataclass(frozen=True)
class Delivery:
    """One thing to deliver: ``attempt`` raises DeliveryError when it fails; ``what`` and
    ``fallback`` (what to do when given up) are for the logs."""

    what: str
    attempt: Callable[[], None]
    fallback: str


_CLOSE = object()


class DeliveryQueue:
    """Deliveries to one destination, in order, in a background thread: each is tried, and
    tried again after each of ``delays`` seconds, until it succeeds or is given up."""

    def __init__(
        self,
        *,
        name: str,
        kind: str,
        delays: Sequence[float],
        on_done: Callable[[str, bool], None] | None = None,
    ) -> None:
        self.name, self.kind, self.delays = name, kind, tuple(delays)
        self.on_done = on_done
        self._queue: queue.Queue[Delivery | object] = queue.Queue()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"lvo-deliver {name}", daemon=True)

    @property
    def pending(self) -> int:
        return self._queue.qsize()

    def start(self) -> None:
        self._thread.start()

    def put(self, delivery: Delivery) -> None:
        self._queue.put(delivery)

    def close(self, timeout_s: float) -> None:
        """Stop retrying; deliver what is queued, one attempt each, for at most ``timeout_s``."""
        self._stopping.set()
        self._queue.put(_CLOSE)
        if not self._thread.is_alive():
            return
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            log.error(
                "stopped while delivering to %s (%d more queued); the files stay in OUTBOX: "
                "send them again by hand",
                self.name,
                max(0, self._queue.qsize() - 1),
            )

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _CLOSE or not isinstance(item, Delivery):
                return
            ok = self._deliver(item)
            if self.on_done is not None:
                self.on_done(self.kind, ok)

    def _deliver(self, delivery: Delivery) -> bool:
        attempts = 1 + len(self.delays)
        for attempt in range(attempts):
            try:
                delivery.attempt()
            except Exception as exc:  # DeliveryError, or what the attempt did not expect
                expected = isinstance(exc, DeliveryError)
                last = str(exc) if expected else f"{type(exc).__name__}: {exc}"
                permanent = isinstance(exc, DeliveryError) and exc.permanent
                if permanent or attempt + 1 == attempts or self._stopping.is_set():
                    break
                log.warning(
                    "%s to %s failed (%s); trying again in %g s",
                    delivery.what,
                    self.name,
                    last,
                    self.delays[attempt],
                )
                if self._stopping.wait(self.delays[attempt]):
                    continue  # one more attempt at once, then give up (we are stopping)
            else:
                log.info("%s delivered to %s", delivery.what, self.name)
                return True
        log.error(
            "%s could not be delivered to %s after %d attempt(s): %s. %s",
            delivery.what,
            self.name,
            attempt + 1,
            last,
            delivery.fallback,
        )
        return False
