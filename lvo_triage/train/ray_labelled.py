"""Training-set preprocessing on Ray (``scripts/train.py --data DATASET --engine ray``):
:func:`lvo_triage.train.labelled.preprocess_item` as one Ray task per case, so that the cases
are loaded and preprocessed on every CPU of the cluster into the same cache, and the same
arrays, as the local path. The dataset and the cache folder must be at the same path on every
node."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import ray
from ray.exceptions import RayError, RayTaskError

from lvo_triage.engines.ray_pool import task_failure
from lvo_triage.errors import DatasetError
from lvo_triage.model_card import InputSpec
from lvo_triage.train.labelled import preprocess_item

RETRIES = 1  # a task whose worker process died is run once more before the job gives up


def _preprocess(item: dict[str, Any], spec: InputSpec, cache_dir: Path | None) -> dict[str, Any]:
    out = preprocess_item(item, spec=spec, cache_dir=cache_dir)
    if "x" in out:
        out["x"] = np.asarray(out["x"], dtype=np.uint8)
    return out


class RayPreprocess:
    """An :data:`~lvo_triage.train.labelled.ItemMapper` running on Ray: one task per case item,
    outputs as they finish. Use it inside
    :func:`~lvo_triage.engines.ray_cluster.ray_session`."""

    def __init__(self, *, spec: InputSpec, cache_dir: Path | None) -> None:
        self.spec = spec
        self.cache_dir = cache_dir.resolve() if cache_dir is not None else None

    def __call__(self, items: Sequence[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        task: Any = ray.remote(_preprocess).options(num_cpus=1, max_retries=RETRIES)
        spec_ref = ray.put(self.spec)
        refs = {
            task.remote(item, spec_ref, self.cache_dir): index for index, item in enumerate(items)
        }
        while refs:
            (ref,), _ = ray.wait(list(refs), num_returns=1)
            index = refs.pop(ref)
            case_id = items[index]["case_id"]
            try:
                out: dict[str, Any] = ray.get(ref)
            except RayTaskError as exc:  # the local path stops on it too
                msg = f"case {case_id!r} failed in a Ray worker: {task_failure(exc)}"
                raise DatasetError(msg) from exc
            except RayError as exc:
                msg = (
                    f"the Ray worker preprocessing case {case_id!r} was lost, also on the retry "
                    f"({exc}); "
                    "preprocess it with --engine local to see whether the case crashes it"
                )
                raise DatasetError(msg) from exc
            out["index"] = index
            yield out
