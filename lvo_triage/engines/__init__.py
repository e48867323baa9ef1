"""Engines that run many studies: ``local`` (one warm model in this process, the default) and
``ray`` (one warm model per worker actor, on this machine or a Ray cluster). Both give the same
answers; Ray is the optional extra ``lvo-triage[ray]``, imported only when asked for.

    options.py       --engine, --address, --workers; require_ray()
    ray_cluster.py   joining or starting Ray, sizing and starting the workers
    ray_worker.py    the worker actor: a warm Engine, one case or study per call
    ray_pool.py      the started workers; calls streamed over them, lost ones turned into reasons
    study_jobs.py    one discovered study of ``run`` as a job, triaged as the local engine does
    ray_bench.py     ``bench --engine ray``
    ray_run.py       ``run --engine ray``
    ray_labelled.py  training-set preprocessing on Ray (scripts/train.py --engine ray)
"""

from __future__ import annotations

from lvo_triage.engines.options import (
    RAY_EXTRA_HINT,
    EngineKind,
    EngineOptions,
    EngineUnavailable,
    require_ray,
)

__all__ = ["RAY_EXTRA_HINT", "EngineKind", "EngineOptions", "EngineUnavailable", "require_ray"]
