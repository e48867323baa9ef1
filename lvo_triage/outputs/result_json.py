"""``OUTBOX/<StudyInstanceUID>/result.json``."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

from lvo_triage.outputs.files import write_atomic
from lvo_triage.result import TriageResult

SAFE_UID = re.compile(r"^[0-9.]{1,64}$")


def study_folder(out: Path, result: TriageResult, source: str) -> Path:
    """The study's folder under ``out``: its UID when it is a valid UID, else a stable digest."""
    uid = result.study_instance_uid
    if uid and SAFE_UID.match(uid):
        return out / uid
    digest = hashlib.sha1((uid or source).encode("utf-8")).hexdigest()[:16]
    return out / f"unknown-{digest}"


def write_result(out: Path, result: TriageResult, source: str) -> Path:
    path = study_folder(out, result, source) / "result.json"
    write_atomic(path, json.dumps(result.to_dict(), indent=2) + "\n")
    return path
