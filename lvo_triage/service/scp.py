"""``lvo-triage listen``: a DICOM storage node that files what a PACS or modality sends into INBOX.

It answers C-ECHO and C-STORE (CT images, secondary captures and the structured reports a study
route brings along, in the common transfer syntaxes) and writes each instance, exactly as
received, to ``INBOX/<StudyInstanceUID>/<SOPInstanceUID>.dcm``, where ``watch`` picks it up. A
write is atomic and durable before the sender hears "success": a temporary ``.lvo-*`` file in the
same folder (which the watched folder skips), fsync, rename, fsync of the folder. Names never come
from received data unsanitised (``safe_name``).

Peers are checked before their association is accepted: calling AE title and address against the
allow-lists of ``listen`` settings, the called AE title against ours, and the number of
simultaneous associations. Logs name AE titles and addresses, never patient data.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import signal
import socket
import threading
import time
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path
from types import FrameType

import pydicom
from pydicom.uid import (
    JPEG2000,
    Comprehensive3DSRStorage,
    ComprehensiveSRStorage,
    CTImageStorage,
    DeflatedExplicitVRLittleEndian,
    EnhancedCTImageStorage,
    EnhancedSRStorage,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    RLELossless,
    SecondaryCaptureImageStorage,
    XRayRadiationDoseSRStorage,
)
from pynetdicom import AE, evt
from pynetdicom.association import Association
from pynetdicom.events import Event, EventHandlerType
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]  # generated
from pynetdicom.transport import ThreadedAssociationServer

from lvo_triage.config import LimitsSettings, ListenSettings
from lvo_triage.dicom.instance import read_header
from lvo_triage.errors import UnreadableFile
from lvo_triage.outputs.files import write_atomic
from lvo_triage.service.inbox import safe_name

log = logging.getLogger(__name__)

UNCOMPRESSED = [ImplicitVRLittleEndian, ExplicitVRLittleEndian, DeflatedExplicitVRLittleEndian]
# The encodings PACS and modalities commonly send, all decoded by the pipeline (pydicom with
# pylibjpeg and pyjpegls): an image is stored as received and decoded once, by the triage.
IMAGE_SYNTAXES = [
    *UNCOMPRESSED,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    JPEG2000Lossless,
    JPEG2000,
    RLELossless,
]
IMAGE_CLASSES = [CTImageStorage, EnhancedCTImageStorage, SecondaryCaptureImageStorage]
# Accepted so that a route that sends whole studies does not fail (and retry forever) on them;
# the watched folder sets aside what it cannot triage.
REPORT_CLASSES = [
    ComprehensiveSRStorage,
    Comprehensive3DSRStorage,
    EnhancedSRStorage,
    XRayRadiationDoseSRStorage,
]

# C-STORE response statuses (PS3.4 B.2.3): A7xx "out of resources", Cxxx "cannot understand"
# (0xC211 is pynetdicom's own answer when a handler raises).
SUCCESS = 0x0000
OUT_OF_RESOURCES = 0xA700
DOES_NOT_MATCH = 0xA900  # data set does not match SOP class: what its header claims is impossible
CANNOT_DECODE = 0xC210
MISSING_UID = 0xC212

# A-ASSOCIATE-RJ (result, source, reason): PS3.8 9.3.4
REJECT_CALLING_AE = (0x01, 0x01, 0x03)  # permanent, service user, calling AE title not recognised
REJECT_CALLED_AE = (0x01, 0x01, 0x07)  # permanent, service user, called AE title not recognised
REJECT_ADDRESS = (0x01, 0x01, 0x01)  # permanent, service user, no reason given
REJECT_BUSY = (0x02, 0x03, 0x02)  # transient, service provider, local limit exceeded

QUICKACK: int | None = getattr(socket, "TCP_QUICKACK", None)  # Linux
FILE_MODE = 0o640  # the watched folder's service reads it; nobody else


def entry_name(uid: str) -> str:
    """The file or folder name for ``uid`` in INBOX (:func:`safe_name`: a plain UID, else a
    digest; never a path, never a name starting with a dot like INBOX's work areas)."""
    return safe_name(uid)


def write_durable(path: Path, data: bytes) -> None:
    """``data`` at ``path``, whole or not at all, and on disk (name included) when this returns."""
    write_atomic(path, data, mode=FILE_MODE, sync_dir=True)


@dataclass
class _Tally:
    """What one association stored (for its log line)."""

    instances: int = 0
    size: int = 0
    started: float = field(default_factory=time.monotonic)


def _networks(addresses: tuple[str, ...]) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    return [ipaddress.ip_network(a) for a in addresses]


def _peer(assoc: Association) -> str:
    """``AE_TITLE@address:port`` of the peer that requests ``assoc`` (no patient data)."""
    request = assoc.requestor.primitive
    title = str(request.calling_ae_title if request else assoc.requestor.ae_title).strip()
    info = assoc.requestor.address_info
    return f"{title}@{info.address}:{info.port}" if info else f"{title}@(unknown address)"


def _ack_promptly(event: Event) -> None:
    """Acknowledge the peer's next data at once rather than after the delayed-ACK timer (40 ms on
    Linux). A sender with Nagle's algorithm on (dcmtk's storescu, many PACS) holds back the rest
    of each C-STORE until its first bytes are acknowledged, and Linux delays that ACK, hoping to
    send it with our next response, once it has seen us answer: 40 ms lost per instance, five
    times the rest. Re-armed after each PDU we send, as the kernel turns it off again."""
    sock = getattr(event.assoc.dul.socket, "socket", None)
    if sock is None or QUICKACK is None:
        return
    with contextlib.suppress(OSError):  # the connection is closing
        sock.setsockopt(socket.IPPROTO_TCP, QUICKACK, 1)


class StorageNode:
    """A C-ECHO / C-STORE SCP writing into ``inbox``; :meth:`start` serves in a background thread.

    ``host`` is the address to listen on ("" = every IPv4 interface). With ``settings.port`` 0
    the system picks a free port; :attr:`port` says which once started. An instance whose header
    cannot be read or claims the impossible (``limits``, ``dicom/claims.py``) is refused with a
    failure status and never stored.
    """

    def __init__(
        self,
        inbox: Path,
        settings: ListenSettings,
        *,
        host: str = "",
        limits: LimitsSettings | None = None,
    ) -> None:
        self.inbox = inbox
        self.settings = settings
        self.limits = limits if limits is not None else LimitsSettings()
        self.host = host
        self._networks = _networks(settings.allowed_addresses)
        self._server: ThreadedAssociationServer | None = None
        self._lock = threading.Lock()
        self._tallies: dict[int, _Tally] = {}  # by id(association)
        self.stopping = threading.Event()
        self.ae = self._make_ae()

    def _make_ae(self) -> AE:
        s = self.settings
        ae = AE(ae_title=s.ae_title)
        ae.add_supported_context(Verification, UNCOMPRESSED)
        for sop_class in IMAGE_CLASSES:
            ae.add_supported_context(sop_class, IMAGE_SYNTAXES)
        for sop_class in REPORT_CLASSES:
            ae.add_supported_context(sop_class, UNCOMPRESSED)
        ae.maximum_associations = s.max_associations
        ae.acse_timeout = s.acse_timeout_s
        ae.dimse_timeout = s.dimse_timeout_s
        ae.network_timeout = s.network_timeout_s
        return ae

    @property
    def port(self) -> int:
        """The TCP port listened on (the one the system chose when ``settings.port`` is 0)."""
        if self._server is None:
            msg = "the storage node is not started: call start() first"
            raise RuntimeError(msg)
        return int(self._server.server_address[1])

    def start(self) -> None:
        """Listen in a background thread; returns at once (raises OSError when the port is
        taken)."""
        if self._server is not None:
            return
        self.inbox.mkdir(parents=True, exist_ok=True)
        handlers: list[EventHandlerType] = [
            (evt.EVT_REQUESTED, self._on_requested),
            (evt.EVT_ACCEPTED, self._on_accepted),
            (evt.EVT_REJECTED, self._on_rejected),
            (evt.EVT_RELEASED, self._on_ended),
            (evt.EVT_ABORTED, self._on_ended),
            (evt.EVT_C_STORE, self._on_store),
        ]
        if QUICKACK is not None:
            handlers.append((evt.EVT_DATA_SENT, _ack_promptly))
        self._server = self.ae.start_server(
            (self.host, self.settings.port), block=False, evt_handlers=handlers
        )
        log.info(
            "DICOM node %s listening on port %d; storing into %s (peers allowed: %s; "
            "calling AE titles allowed: %s)",
            self.settings.ae_title,
            self.port,
            self.inbox,
            ", ".join(self.settings.allowed_addresses) or "any",
            ", ".join(self.settings.allowed_ae_titles) or "any",
        )

    def stop(self) -> None:
        """Stop listening and end the associations in progress (a sender whose association is
        aborted retries; an instance is either stored whole or not at all)."""
        if self._server is None:
            return
        self._server.shutdown()
        self.ae.shutdown()  # aborts the associations in progress
        self._server = None
        log.info("DICOM node %s stopped", self.settings.ae_title)

    def __enter__(self) -> StorageNode:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def request_stop(self, signum: int | None = None, frame: FrameType | None = None) -> None:
        """Make :meth:`run_forever` return (a signal handler)."""
        self.stopping.set()

    def run_forever(self) -> None:
        """Serve until SIGTERM or SIGINT, then stop cleanly."""
        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, self.request_stop)
        self.start()
        try:
            while not self.stopping.wait(0.5):
                pass
        finally:
            self.stop()

    # Association checks and logs

    def _refusal(self, assoc: Association) -> tuple[tuple[int, int, int], str] | None:
        request = assoc.requestor.primitive
        if request is None:  # not possible once EVT_REQUESTED fires
            return REJECT_ADDRESS, "no association request"
        calling = str(request.calling_ae_title).strip()
        called = str(request.called_ae_title).strip()
        s = self.settings
        if self._networks:
            try:
                address = ipaddress.ip_address(assoc.requestor.address)
            except ValueError:
                return REJECT_ADDRESS, "its address is not an IP address"
            if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
                address = address.ipv4_mapped
            if not any(address in network for network in self._networks):
                return REJECT_ADDRESS, "its address is not in listen.allowed_addresses"
        if s.allowed_ae_titles and calling not in s.allowed_ae_titles:
            return REJECT_CALLING_AE, "its calling AE title is not in listen.allowed_ae_titles"
        if s.require_called_ae_title and called != s.ae_title:
            return REJECT_CALLED_AE, f"it called AE title {called!r}, we are {s.ae_title!r}"
        busy = sum(1 for a in self.ae.active_associations if a.is_acceptor)
        if busy > s.max_associations:
            return REJECT_BUSY, f"{s.max_associations} associations already in progress"
        return None

    def _on_requested(self, event: Event) -> None:
        assoc = event.assoc
        refusal = self._refusal(assoc)
        if refusal is None:
            return
        (result, source, reason), why = refusal
        log.warning("refused an association from %s: %s", _peer(assoc), why)
        assoc.acse.send_reject(result, source, reason)
        assoc.kill()  # waits until the rejection is sent and the peer has closed the connection

    def _on_accepted(self, event: Event) -> None:
        assoc = event.assoc
        with self._lock:
            self._tallies[id(assoc)] = _Tally()
        log.info("association from %s accepted", _peer(assoc))

    def _on_rejected(self, event: Event) -> None:  # rejections made by pynetdicom itself
        assoc = event.assoc
        primitive = assoc.acceptor.primitive
        why = primitive.reason_str if primitive is not None else "no reason given"
        log.warning("refused an association from %s: %s", _peer(assoc), why)

    def _on_ended(self, event: Event) -> None:
        assoc = event.assoc
        with self._lock:
            tally = self._tallies.pop(id(assoc), None)
        if tally is None:  # a refused association
            return
        how = "released" if event.event is evt.EVT_RELEASED else "aborted"
        log.info(
            "association from %s %s: %d instance(s), %.1f MB stored in %.1f s",
            _peer(assoc),
            how,
            tally.instances,
            tally.size / 1e6,
            time.monotonic() - tally.started,
        )

    # C-STORE

    def _on_store(self, event: Event) -> int:
        try:
            data = event.encoded_dataset()  # preamble, file meta and the data set as sent
            header = pydicom.dcmread(
                BytesIO(data),
                stop_before_pixels=True,
                specific_tags=["StudyInstanceUID", "SOPInstanceUID"],
            )
            study = str(header.get("StudyInstanceUID", "")).strip()
            sop = str(header.get("SOPInstanceUID", "")).strip()
        except Exception as exc:  # pydicom raises many kinds on a malformed data set
            log.warning("refused an instance whose data set cannot be read (%s)", exc)
            return CANNOT_DECODE
        if not study or not sop:
            log.warning(
                "refused an instance without StudyInstanceUID or SOPInstanceUID (status 0x%04X)",
                MISSING_UID,
            )
            return MISSING_UID
        try:
            read_header(Path(f"{entry_name(sop)}.dcm"), data=data, limits=self.limits)
        except UnreadableFile as exc:  # a header that lies, pixel data that does not fit it
            log.warning(
                "refused an instance from %s (status 0x%04X): %s",
                _peer(event.assoc),
                DOES_NOT_MATCH,
                exc.reason,
            )
            return DOES_NOT_MATCH
        folder = self.inbox / entry_name(study)
        try:
            write_durable(folder / f"{entry_name(sop)}.dcm", data)
        except OSError as exc:
            log.error(
                "cannot store a received instance in %s (%s); the sender is told 'out of "
                "resources' (0x%04X) and may send it again: free disk space or fix permissions",
                folder,
                exc,
                OUT_OF_RESOURCES,
            )
            return OUT_OF_RESOURCES
        with self._lock:
            tally = self._tallies.get(id(event.assoc))
            if tally is not None:
                tally.instances += 1
                tally.size += len(data)
        return SUCCESS
