"""Engines that run many studies: ``local`` (one warm model in this process, the default) and
``ray`` (one warm model per worker actor, on this machine or a Ray cluster). Both give the same
answers; Ray is the optional extra ``lvo-triage[ray]``, imported only when asked for.

    options.py       --engine, --address, --workers; require_ray()
    ray_cluster.py   joining or starting Ray, sizing and starting the workers
    ray_worker.py    the worker actor: a warm Runtime, fn(runtime, item) per call
    ray_pool.py      the started workers; calls streamed over them, lost ones turned into reasons
    ray_run.py       ``run --engine ray``: the pipeline's jobs mapped over the workers

``bench --engine ray`` lives in ``bench/ray.py``, training-set preprocessing on Ray in
``train/ray_labelled.py``; both use the workers started here.
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
