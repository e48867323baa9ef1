"""Where ``serve`` sends each result: one small class per destination kind, each turning a
finished study (its folder in OUTBOX and its result) into a :class:`Delivery` for its queue.
They only move what the pipeline wrote; a new kind (another protocol, a message queue) is one
more class with ``name``, ``kind`` and :meth:`Target.delivery`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Protocol

from lvo_triage.config import Destination
from lvo_triage.outputs.dicom_results import KEY_IMAGE_FILE, SR_FILE
from lvo_triage.result import TriageResult
from lvo_triage.service.delivery import Delivery, c_store, post_json, result_body


class Target(Protocol):
    """A destination: ``name`` (for the logs), ``kind`` (the metrics label)."""

    @property
    def name(self) -> str: ...

    @property
    def kind(self) -> str: ...

    def delivery(self, study_out: Path, result: TriageResult) -> Delivery:
        """What to send for the study whose outputs are in ``study_out``; FileNotFoundError
        when a file it needs was not written."""
        ...


@dataclass(frozen=True, kw_only=True)
class DicomTarget:
    """A DICOM node (PACS): the SR and key image (``sr.dcm``, ``key_image.dcm``) by C-STORE."""

    destination: Destination
    calling_ae_title: str
    timeout_s: float

    @property
    def name(self) -> str:
        return str(self.destination)

    @property
    def kind(self) -> str:
        return "dicom"

    def delivery(self, study_out: Path, result: TriageResult) -> Delivery:
        files = [study_out / name for name in (SR_FILE, KEY_IMAGE_FILE)]
        files = [path for path in files if path.is_file()]
        if not any(path.name == SR_FILE for path in files):
            msg = f"{study_out / SR_FILE} was not written (see the log above)"
            raise FileNotFoundError(msg)
        node = self.destination
        attempt = partial(
            c_store, node, files, calling_ae_title=self.calling_ae_title, timeout_s=self.timeout_s
        )
        fallback = (
            f"They stay in {study_out}: send them when {node.ae_title} is back, e.g. "
            f"storescu -aec {node.ae_title} {node.host} {node.port} "
            f"{' '.join(str(path) for path in files)}"
        )
        names = " and ".join(path.name for path in files)
        return Delivery(f"{names} of study {study_out.name}", attempt, fallback)


@dataclass(frozen=True, kw_only=True)
class WebhookTarget:
    """An HTTP endpoint: the result document, POSTed as JSON (signed with a shared secret)."""

    url: str
    secret: bytes | None
    timeout_s: float

    @property
    def name(self) -> str:
        return "the webhook"

    @property
    def kind(self) -> str:
        return "webhook"

    def delivery(self, study_out: Path, result: TriageResult) -> Delivery:
        attempt = partial(
            post_json, self.url, result_body(result), secret=self.secret, timeout_s=self.timeout_s
        )
        fallback = f"It is in {study_out / 'result.json'}."
        return Delivery(f"the result of study {study_out.name}", attempt, fallback)
