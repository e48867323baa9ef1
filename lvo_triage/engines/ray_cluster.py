"""Reaching Ray and starting the workers: :func:`ray_session` joins a cluster (``--address``) or
starts Ray on this machine, :func:`plan_workers` sizes the workers to the CPUs Ray sees, and
:func:`start_pool` starts one :class:`TriageWorker` actor per worker."""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray

from lvo_triage.config import DEFAULT_MODEL, Settings
from lvo_triage.engines.options import EngineUnavailable
from lvo_triage.engines.ray_pool import WorkerPool
from lvo_triage.engines.ray_worker import TriageWorker

log = logging.getLogger(__name__)

MAX_RESTARTS = 2  # a worker whose process dies is started again (with a fresh engine) this often


@contextmanager
def ray_session(address: str | None) -> Iterator[None]:
    """Ray for the duration of the block: the cluster at ``address``, or (``None``) the one
    ``ray start`` runs on this machine, else a private one started here and stopped at the end.
    A session that is already open (a test, a notebook) is used as it is and left open."""
    if ray.is_initialized():
        yield
        return
    try:
        ray.init(address=address, include_dashboard=False, logging_level=logging.WARNING)
    except Exception as exc:  # Ray raises ConnectionError, RuntimeError, ValueError, ...
        where = f"the Ray cluster at {address!r}" if address else "Ray on this machine"
        msg = (
            f"cannot start or reach {where} ({type(exc).__name__}: {exc}); check the address "
            "that `ray start --head` printed and `ray status` on that machine, or leave "
            "--address out to run Ray on this machine"
        )
        raise EngineUnavailable(msg) from exc
    try:
        yield
    finally:
        ray.shutdown()


@dataclass(frozen=True)
class WorkerPlan:
    """How many workers, and the CPUs (Ray resource) and threads each one gets."""

    workers: int
    cpus_each: float
    threads: int


def plan_workers(*, node_cpus: Sequence[float], requested: int | None, items: int) -> WorkerPlan:
    """One worker per CPU unless ``requested`` says otherwise, never more than ``items``.

    Fewer workers than CPUs: each gets an equal share of the CPUs (at most one node's worth), and
    runs ONNX Runtime and torch with that many threads; one worker per CPU or more: each gets
    its share (one CPU or less) and one thread, so that workers sharing a machine do not
    oversubscribe it."""
    total = sum(node_cpus)
    if total <= 0:
        msg = (
            "the Ray cluster has no CPUs to run workers on; start nodes with CPUs "
            "(`ray start --address ... --num-cpus N`)"
        )
        raise EngineUnavailable(msg)
    if items < 1:
        msg = f"items={items} must be at least 1"
        raise ValueError(msg)
    workers = requested if requested is not None else max(1, math.floor(total))
    workers = max(1, min(workers, items))
    if workers >= total:
        return WorkerPlan(workers=workers, cpus_each=total / workers, threads=1)
    cpus_each = float(min(math.floor(total / workers), math.floor(max(node_cpus))))
    cpus_each = max(cpus_each, 1.0)
    return WorkerPlan(workers=workers, cpus_each=cpus_each, threads=math.floor(cpus_each))


def _node_cpus() -> list[float]:
    return [
        float(node["Resources"].get("CPU", 0.0))
        for node in ray.nodes()
        if node.get("Alive") and node.get("Resources")
    ]


def start_pool(settings: Settings, *, requested: int | None, items: int) -> WorkerPool:
    """Start the worker actors (inside :func:`ray_session`); they load the model in parallel."""
    plan = plan_workers(node_cpus=_node_cpus(), requested=requested, items=items)
    bundled = Path(settings.model.path).resolve() == DEFAULT_MODEL.resolve()
    actor_class: Any = ray.remote(TriageWorker)
    actors = [
        actor_class.options(
            num_cpus=plan.cpus_each, max_restarts=MAX_RESTARTS, max_task_retries=0
        ).remote(settings, threads=plan.threads, bundled_model=bundled)
        for _ in range(plan.workers)
    ]
    log.info(
        "starting %d Ray workers (%.3g CPUs and %d threads each)",
        plan.workers,
        plan.cpus_each,
        plan.threads,
    )
    return WorkerPool(actors)
