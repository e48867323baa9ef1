"""The Ray worker: one actor per worker, holding a warm :class:`Engine` (one ONNX Runtime
session) for every study it is given.

:class:`TriageWorker` is a plain class; :mod:`lvo_triage.engines.ray_cluster` makes it an actor
with ``ray.remote``. It is created on the worker's node, so the bundled model is found there (the
driver's install path may not exist on another machine), and it runs with as many threads as the
CPUs Ray gave it: several workers sharing a machine then do not fight over its cores.
"""

from __future__ import annotations

import dataclasses
import os
import socket
from dataclasses import dataclass
from pathlib import Path

import torch

from lvo_triage.bench.cases import CaseOutcome, failed_outcome, run_case
from lvo_triage.bench.suite import peak_rss_mb
from lvo_triage.config import DEFAULT_MODEL, Settings
from lvo_triage.engines.study_jobs import StudyJob, failed_job, triage_job
from lvo_triage.pipeline import Engine, triage_path
from lvo_triage.result import ModelInfo, Status, TriageResult
from lvo_triage.train.labelled import LabelledCase


@dataclass(frozen=True)
class WorkerInfo:
    """What a started worker reports: where it runs and which model it loaded."""

    host: str
    pid: int
    threads: int
    model: ModelInfo
    threshold: float


def worker_settings(settings: Settings, *, threads: int, bundled_model: bool) -> Settings:
    """``settings`` as a worker runs them: ONNX Runtime's intra-op threads set to ``threads``
    unless the configuration chose a number, and the bundled model of this node's install when
    the driver used the bundled one."""
    model = settings.model
    if model.intra_op_threads == 0:
        model = dataclasses.replace(model, intra_op_threads=threads)
    if bundled_model:
        model = dataclasses.replace(model, path=DEFAULT_MODEL)
    return dataclasses.replace(settings, model=model)


def not_visible(path: Path) -> str | None:
    """Why ``path`` cannot be read on this node, or None when it can."""
    if path.exists():
        return None
    return (
        f"{path} is not visible on worker host {socket.gethostname()}: every node of the Ray "
        "cluster needs the data at the same path (a shared filesystem)"
    )


class TriageWorker:
    """A warm engine in a worker process; each method handles one case or study."""

    def __init__(self, settings: Settings, *, threads: int, bundled_model: bool) -> None:
        if threads < 1:
            msg = f"threads={threads} must be at least 1"
            raise ValueError(msg)
        torch.set_num_threads(threads)  # preprocessing (MONAI on torch) shares the CPUs too
        self.threads = threads
        self.engine = Engine.create(
            worker_settings(settings, threads=threads, bundled_model=bundled_model)
        )

    def ready(self) -> WorkerInfo:
        return WorkerInfo(
            host=socket.gethostname(),
            pid=os.getpid(),
            threads=self.threads,
            model=self.engine.detector.info,
            threshold=self.engine.detector.threshold,
        )

    def bench_case(self, case: LabelledCase) -> CaseOutcome:
        """:func:`run_case` on this worker's engine."""
        problem = not_visible(case.path)
        if problem is not None:
            return failed_outcome(case, Status.ERROR, problem)
        return run_case(self.engine, case)

    def triage_study(self, job: StudyJob) -> TriageResult:
        """One study found by the driver, with its outputs written as the local engine writes
        them."""
        first = next(
            (i.path for series in job.study.series.values() for i in series.instances), None
        )
        problem = None if first is None else not_visible(first)
        if problem is not None:
            detector = self.engine.detector
            return failed_job(
                job, model=detector.info, threshold=detector.threshold, reason=problem
            )
        return triage_job(self.engine, job)

    def triage_path(self, path: Path, out: Path | None) -> list[TriageResult]:
        """The whole of ``path`` as the local engine triages it (for a folder without studies)."""
        return triage_path(self.engine, path, out=out)

    def peak_rss_mb(self) -> float:
        """This worker process's peak resident memory so far, in MiB."""
        return peak_rss_mb()
