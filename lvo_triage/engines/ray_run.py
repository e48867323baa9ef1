"""``run --engine ray``: the driver discovers the studies under PATH (headers only), the Ray
workers triage one study each at a time and write its outputs (``result.json``,
``key_image.png``, the ``timing.jsonl`` line) as the local engine does; results come back as
they finish, with a progress bar on stderr.

PATH and ``--out`` must be readable and writable at the same path on every node of the cluster.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tqdm import tqdm

from lvo_triage.config import Settings
from lvo_triage.dicom.discover import discover
from lvo_triage.engines.options import EngineOptions
from lvo_triage.engines.ray_cluster import ray_session, start_pool
from lvo_triage.engines.study_jobs import StudyJob, failed_job
from lvo_triage.pipeline import Engine, skip_warnings, triage_path
from lvo_triage.result import Status, TriageResult, utc_now
from lvo_triage.timing import StageTimer

log = logging.getLogger(__name__)

OnResult = Callable[[TriageResult], None]


def _submit(actor: Any, job: StudyJob) -> Any:
    return actor.triage_study.remote(job)


def triage_path_ray(
    path: Path,
    settings: Settings,
    options: EngineOptions,
    *,
    out: Path | None = None,
    progress: bool = True,
    on_result: OnResult | None = None,
) -> list[TriageResult]:
    """Triage every study under ``path`` on the Ray workers; the results in the order the
    studies were found (``on_result`` sees each one as it finishes). A study whose worker fails
    gets an ``error`` result; the others go on. A folder without a study gets its one
    ``not_analyzable`` result from the local engine (there is nothing to spread)."""
    started_at = utc_now()
    timer = StageTimer()
    with timer.stage("discover"):
        discovery = discover(path.resolve(), limits=settings.limits)
    discover_ms = timer.finish()["discover"]
    log.info(
        "found %d studies in %d files (%d skipped)",
        len(discovery.studies),
        discovery.files_seen,
        len(discovery.skipped),
    )
    if not discovery.studies:
        nothing = triage_path(Engine.create(settings), path, out=out)
        if on_result is not None:
            for each in nothing:
                on_result(each)
        return nothing
    warnings = tuple(skip_warnings(discovery))
    jobs = [
        StudyJob(
            study=study,
            first=index == 0,
            started_at=started_at,
            discover_ms=discover_ms,
            warnings=warnings,
            out=out.resolve() if out is not None else None,
            source=str(path),
        )
        for index, study in enumerate(discovery.studies)
    ]
    results: list[TriageResult | None] = [None] * len(jobs)
    with ray_session(options.address):
        pool = start_pool(settings, requested=options.workers, items=len(jobs))
        try:
            worker = pool.wait_ready()
            bar = tqdm(total=len(jobs), desc="run", unit="study", disable=not progress)
            for done in pool.stream(jobs, _submit):
                result: TriageResult
                if done.lost is None:
                    result = done.value
                else:
                    job = jobs[done.index]
                    result = failed_job(
                        job, model=worker.model, threshold=worker.threshold, reason=done.lost
                    )
                results[done.index] = result
                bar.update()
                if on_result is not None:
                    on_result(result)
            bar.close()
        finally:
            pool.close()
    finished = [r for r in results if r is not None]
    errors = sum(r.status is Status.ERROR for r in finished)
    if errors:
        log.warning("%d of %d studies got an error result", errors, len(finished))
    return finished
