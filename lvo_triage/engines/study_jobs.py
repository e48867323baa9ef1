"""One study of ``run`` as a job a worker can take: the driver discovers the studies under PATH
(headers only) and hands out each :class:`StudyJob`; :func:`triage_job` triages it exactly as
:func:`lvo_triage.pipeline.triage_path` triages each study it found (the same result document,
``result.json``, ``key_image.png`` and ``timing.jsonl`` line), and :func:`failed_job` writes the
``error`` result of a study whose worker was lost.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from lvo_triage.dicom.discover import Study
from lvo_triage.pipeline import (
    Engine,
    emit_result,
    new_result,
    triage_study,
    write_key_image,
)
from lvo_triage.result import ModelInfo, Status, TriageResult, utc_now
from lvo_triage.timing import StageTimer

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class StudyJob:
    """A study found by the driver's discovery, and what its result shares with the others.

    ``first``: the first study found (its ``started_at`` is the discovery's, as in the local
    engine); ``warnings``: the discovery's skipped files; ``source``: PATH as the user gave it
    (it names the output folder of a study without a usable UID); ``out``: an absolute path.
    """

    study: Study
    first: bool
    started_at: str
    discover_ms: float
    warnings: tuple[str, ...]
    out: Path | None
    source: str


def _timer(job: StudyJob) -> StageTimer:
    timer = StageTimer(offset_ms=job.discover_ms)
    timer.add("discover", job.discover_ms)
    return timer


def triage_job(engine: Engine, job: StudyJob) -> TriageResult:
    """Triage the study of ``job`` and write its outputs under ``job.out`` (when given)."""
    timer = _timer(job)
    result = new_result(engine, job.started_at if job.first else utc_now())
    result.warnings = list(job.warnings)
    batch: np.ndarray | None = None
    try:
        batch = triage_study(engine, job.study, timer, result)
    except Exception as exc:  # an internal failure: reported as status error, never silent
        log.exception("internal failure while triaging a study")
        result.status = Status.ERROR
        result.reason = f"internal error ({type(exc).__name__}): {exc}"
    key_image = None
    if batch is not None and job.out is not None:
        key_image = partial(write_key_image, engine, result, batch, job.out, job.source)
    emit_result(result, timer, job.out, job.source, key_image)
    return result


def failed_job(job: StudyJob, *, model: ModelInfo, threshold: float, reason: str) -> TriageResult:
    """The ``error`` result of a study that got no answer (``reason`` says why), written under
    ``job.out`` like any other result."""
    timer = _timer(job)
    result = TriageResult(
        status=Status.ERROR,
        reason=reason,
        model=model,
        threshold=threshold,
        started_at=job.started_at if job.first else utc_now(),
        study_instance_uid=job.study.uid,
        accession_number=job.study.accession_number,
        warnings=list(job.warnings),
    )
    emit_result(result, timer, job.out, job.source)
    return result
