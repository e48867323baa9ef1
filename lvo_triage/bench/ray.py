"""``bench --engine ray``: :func:`lvo_triage.bench.cases.run_case` on the Ray workers, the
outcomes back as they finish (progress bar on stderr) and put in the order of labels.csv, as
:func:`lvo_triage.bench.cases.run_local` gives them."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tqdm import tqdm

from lvo_triage.bench.cases import CaseOutcome, LoopRun, failed_outcome, run_case
from lvo_triage.config import Settings
from lvo_triage.engines.options import EngineOptions
from lvo_triage.engines.ray_cluster import ray_session, start_pool
from lvo_triage.engines.ray_worker import WorkerInfo, not_visible
from lvo_triage.labels import LabelledCase
from lvo_triage.pipeline import Runtime
from lvo_triage.result import Status


@dataclass(frozen=True)
class RayBenchRun:
    """The loop's outcomes and wall time, and what the run on Ray adds to ``metrics.json``."""

    loop: LoopRun
    worker: WorkerInfo
    workers: int
    startup_s: float
    peak_rss_mb: float | None


def case_on_worker(runtime: Runtime, case: LabelledCase) -> CaseOutcome:
    """:func:`~lvo_triage.bench.cases.run_case` on a worker: a case whose folder this node
    cannot see is an ``error`` outcome that says so."""
    problem = not_visible(case.path)
    if problem is not None:
        return failed_outcome(case, Status.ERROR, problem)
    return run_case(runtime, case)


def _submit(actor: Any, case: LabelledCase) -> Any:
    return actor.call.remote(case_on_worker, case)


def run_ray(
    cases: Sequence[LabelledCase],
    settings: Settings,
    options: EngineOptions,
    *,
    progress: bool = True,
) -> RayBenchRun:
    """Every case on the Ray workers; a case whose call fails or whose worker dies is an
    ``error`` outcome with the reason, and the others go on. ``startup_s`` covers reaching Ray
    and starting the workers (model load and warm-up); the loop's wall time starts after."""
    located = [dataclasses.replace(case, path=case.path.resolve()) for case in cases]
    start = time.perf_counter()
    with ray_session(options.address):
        pool = start_pool(settings, requested=options.workers, items=len(located))
        try:
            worker = pool.wait_ready()
            workers = pool.live_workers
            startup_s = time.perf_counter() - start
            outcomes: list[CaseOutcome | None] = [None] * len(located)
            failed = 0
            loop_start = time.perf_counter()
            bar = tqdm(total=len(located), desc="bench", unit="study", disable=not progress)
            for done in pool.stream(located, _submit):
                outcome: CaseOutcome = (
                    done.value
                    if done.lost is None
                    else failed_outcome(located[done.index], Status.ERROR, done.lost)
                )
                outcomes[done.index] = outcome
                failed += not outcome.analysable
                bar.set_postfix(not_analysable=failed, refresh=False)
                bar.update()
            bar.close()
            wall_s = time.perf_counter() - loop_start
            peak = pool.peak_rss_mb()
        finally:
            pool.close()
    finished = [o for o in outcomes if o is not None]
    if len(finished) != len(located):  # stream() yields every item once
        msg = f"{len(located) - len(finished)} cases got no outcome"
        raise RuntimeError(msg)
    return RayBenchRun(
        loop=LoopRun(outcomes=finished, wall_s=wall_s),
        worker=worker,
        workers=workers,
        startup_s=startup_s,
        peak_rss_mb=peak,
    )
