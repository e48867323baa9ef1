"""The result document of docs/contract.md (schema ``lvo-triage/result/v1``)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

SCHEMA = "lvo-triage/result/v1"


class Status(StrEnum):
    OK = "ok"
    NOT_ANALYZABLE = "not_analyzable"
    ERROR = "error"


class Priority(StrEnum):
    HIGH = "high"
    ROUTINE = "routine"
    UNKNOWN = "unknown"


class Side(StrEnum):
    LEFT = "left"
    RIGHT = "right"


def utc_now() -> str:
    """The current time as ISO 8601 UTC with milliseconds."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class SeriesConsidered:
    """One series seen in a study, and why it was taken or left."""

    series_instance_uid: str
    description: str
    instances: int
    selected: bool
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "series_instance_uid": self.series_instance_uid,
            "description": self.description,
            "instances": self.instances,
            "selected": self.selected,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class ModelInfo:
    """The ``model`` block: which model judged, on which execution provider."""

    name: str
    version: str
    sha256: str
    provider: str
    intended_use: str = "NOT FOR CLINICAL USE: research model trained on synthetic phantoms"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "sha256": self.sha256,
            "provider": self.provider,
            "intended_use": self.intended_use,
        }


@dataclass(frozen=True)
class VesselAsymmetry:
    """The ``vessel_asymmetry`` block: the non-learned second opinion (``asymmetry.py``).
    ``score`` in [0, 1] (0: both MCA territories hold as many opacified vessel voxels);
    ``hemisphere``: the patient's side with fewer; the vessel volume counted on each side."""

    score: float
    hemisphere: Side
    left_ml: float
    right_ml: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "score": round(self.score, 4),
            "hemisphere": self.hemisphere.value,
            "left_ml": self.left_ml,
            "right_ml": self.right_ml,
            "method": "opacified vessel voxels per MCA territory, not learned",
        }


@dataclass
class TriageResult:
    """One study's answer. Build it with :func:`TriageResult.ok` or :func:`TriageResult.failed`."""

    status: Status
    reason: str | None
    model: ModelInfo
    threshold: float
    started_at: str
    study_instance_uid: str | None = None
    series_instance_uid: str | None = None
    accession_number: str | None = None
    lvo_suspected: bool | None = None
    probability: float | None = None
    side: Side | None = None
    site: str | None = None
    key_image: str | None = None
    supersedes: str | None = None
    vessel_asymmetry: VesselAsymmetry | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)
    series_considered: list[SeriesConsidered] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    finished_at: str | None = None
    # what the study measured outside the model's training ranges (short names, for the key
    # image; the warnings say it in full): not a field of the document
    cautions: list[str] = field(default_factory=list)

    @property
    def priority(self) -> Priority:
        if self.status is not Status.OK:
            return Priority.UNKNOWN
        return Priority.HIGH if self.lvo_suspected else Priority.ROUTINE

    def to_dict(self) -> dict[str, Any]:
        ok = self.status is Status.OK
        return {
            "schema": SCHEMA,
            "status": self.status.value,
            "reason": None if ok else self.reason,
            "study_instance_uid": self.study_instance_uid,
            "series_instance_uid": self.series_instance_uid,
            "accession_number": self.accession_number,
            "lvo_suspected": self.lvo_suspected if ok else None,
            "priority": self.priority.value,
            "probability": self.probability if ok else None,
            "threshold": self.threshold,
            "side": self.side.value if (ok and self.lvo_suspected and self.side) else None,
            "site": self.site if (ok and self.lvo_suspected) else None,
            "key_image": self.key_image,
            "supersedes": self.supersedes,
            "vessel_asymmetry": (
                self.vessel_asymmetry.to_dict() if ok and self.vessel_asymmetry else None
            ),
            "model": self.model.to_dict(),
            "timings_ms": {k: round(v, 3) for k, v in self.timings_ms.items()},
            "series_considered": [s.to_dict() for s in self.series_considered],
            "warnings": list(self.warnings),
            "started_at": self.started_at,
            "finished_at": self.finished_at or utc_now(),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"))

    def headline(self) -> str:
        """One line for a person: the flag, and the reminder that this is not for clinical use."""
        who = self.accession_number or self.study_instance_uid or "(no study)"
        if self.status is Status.OK and self.lvo_suspected:
            side = f", {self.side.value} side" if self.side else ""
            side += f", {self.site}?" if self.site else ""
            flag = f"priority HIGH - LVO suspected{side} (p={self.probability:.2f})"
        elif self.status is Status.OK:
            flag = f"priority routine - no LVO suspected (p={self.probability:.2f})"
        else:
            flag = f"priority UNKNOWN - cannot judge, look yourself: {self.reason}"
        return f"{who}: {flag} [NOT FOR CLINICAL USE]"
