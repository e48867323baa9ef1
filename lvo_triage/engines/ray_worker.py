"""The Ray worker: one actor per worker, holding a warm :class:`~lvo_triage.pipeline.Runtime`
(one ONNX Runtime session) for every call it is given.

:class:`TriageWorker` is a plain class; :mod:`lvo_triage.engines.ray_cluster` makes it an actor
with ``ray.remote``. It knows nothing of what it runs: :meth:`TriageWorker.call` applies a
module-level function ``fn(runtime, item)`` (``run`` gives :func:`study_on_worker`, ``bench``
its case function) to one item. It is created on the worker's node, so the bundled model is
found there (the driver's install path may not exist on another machine), and it runs with as
many threads as the CPUs Ray gave it: several workers sharing a machine then do not fight over
its cores.
"""

from __future__ import annotations

import dataclasses
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import torch

from lvo_triage.config import DEFAULT_MODEL, Settings
from lvo_triage.pipeline import Runtime, StudyJob, failed_job, triage_job
from lvo_triage.result import ModelInfo, TriageResult
from lvo_triage.timing import peak_rss_mb

Item = TypeVar("Item")
Value = TypeVar("Value")


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


def study_on_worker(runtime: Runtime, job: StudyJob) -> TriageResult:
    """:func:`~lvo_triage.pipeline.triage_job` on a worker: a study whose files this node
    cannot see gets an ``error`` result that says so."""
    first = None
    if job.study is not None:
        first = next((i.path for s in job.study.series.values() for i in s.instances), None)
    problem = None if first is None else not_visible(first)
    if problem is not None:
        detector = runtime.detector
        return failed_job(job, model=detector.info, threshold=detector.threshold, reason=problem)
    return triage_job(runtime, job)


class TriageWorker:
    """A warm runtime in a worker process; each call handles one item."""

    def __init__(self, settings: Settings, *, threads: int, bundled_model: bool) -> None:
        if threads < 1:
            msg = f"threads={threads} must be at least 1"
            raise ValueError(msg)
        torch.set_num_threads(threads)  # preprocessing (MONAI on torch) shares the CPUs too
        self.threads = threads
        self.runtime = Runtime.create(
            worker_settings(settings, threads=threads, bundled_model=bundled_model)
        )

    def ready(self) -> WorkerInfo:
        return WorkerInfo(
            host=socket.gethostname(),
            pid=os.getpid(),
            threads=self.threads,
            model=self.runtime.detector.info,
            threshold=self.runtime.detector.threshold,
        )

    def call(self, fn: Callable[[Runtime, Item], Value], item: Item) -> Value:
        """``fn(runtime, item)`` with this worker's warm runtime."""
        return fn(self.runtime, item)

    def peak_rss_mb(self) -> float:
        """This worker process's peak resident memory so far, in MiB."""
        return peak_rss_mb()
