"""``timing.jsonl``: one line per triage, UIDs and milliseconds only (no patient data)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lvo_triage.outputs.files import append_line
from lvo_triage.result import TriageResult

TIMING_LOG = "timing.jsonl"


def timing_record(result: TriageResult, **extra: Any) -> dict[str, Any]:
    timings = {k: round(v, 3) for k, v in result.timings_ms.items()}
    return {
        "study_instance_uid": result.study_instance_uid,
        "series_instance_uid": result.series_instance_uid,
        "status": result.status.value,
        "timings_ms": timings,
        "total_ms": timings.get("total"),
        "finished_at": result.finished_at,
        **extra,
    }


def append_timing(out: Path, result: TriageResult, **extra: Any) -> None:
    append_line(out / TIMING_LOG, json.dumps(timing_record(result, **extra)))
