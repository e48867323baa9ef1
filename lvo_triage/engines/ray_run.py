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
from lvo_triage.engines.options import EngineOptions
from lvo_triage.engines.ray_cluster import ray_session, start_pool
from lvo_triage.engines.ray_worker import study_on_worker
from lvo_triage.pipeline import Runtime, StudyJob, failed_job, plan, triage_job
from lvo_triage.result import Status, TriageResult

log = logging.getLogger(__name__)

OnResult = Callable[[TriageResult], None]


def _submit(actor: Any, job: StudyJob) -> Any:
    return actor.call.remote(study_on_worker, job)


def triage_path_ray(
    path: Path,
    settings: Settings,
    options: EngineOptions,
    *,
    out: Path | None = None,
    progress: bool = True,
    on_result: OnResult | None = None,
    should_stop: Callable[[], bool] | None = None,
    on_planned: Callable[[int], None] | None = None,
) -> list[TriageResult]:
    """Triage every study under ``path`` on the Ray workers; the results in the order the
    studies were found (``on_result`` sees each one as it finishes). A study whose worker fails
    gets an ``error`` result; the others go on. A folder without a study gets its one
    ``not_analyzable`` result here (there is nothing to spread). ``should_stop`` is asked after
    each finished study: once it says True, no further study starts, and the results of the
    studies already finished are returned. ``on_planned`` hears how many studies were found."""
    jobs = plan(
        path.resolve(),
        settings,
        out=out.resolve() if out is not None else None,
        source=str(path),
    )
    if on_planned is not None:
        on_planned(len(jobs))
    if jobs[0].study is None:
        nothing = triage_job(Runtime.create(settings), jobs[0])
        if on_result is not None:
            on_result(nothing)
        return [nothing]
    results: list[TriageResult | None] = [None] * len(jobs)
    with ray_session(options.address):
        pool = start_pool(settings, requested=options.workers, items=len(jobs))
        try:
            worker = pool.wait_ready()
            bar = tqdm(total=len(jobs), desc="run", unit="study", disable=not progress)
            for done in pool.stream(jobs, _submit, should_stop=should_stop):
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
