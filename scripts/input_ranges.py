"""Measure what the model's training studies look like, and store it in its model card.

    python scripts/input_ranges.py --model models/lvo-detector.onnx [--n 100] [--update-card]

Renders N phantoms of the training population (training seeds, in-range: no out-of-range factor)
at full acquisition resolution, puts each through the inference preprocessing and measures it the
way each study is measured in use (``lvo_triage/input_ranges.py``: arterial peak, image noise,
head yaw and roll, slice spacing). The range stored for each measurement is its 1st to 99th
percentile over these studies, widened by a tenth of its width on each side; a study outside it
gets a warning. Prints the ranges as JSON; ``--update-card`` stores them as ``input_ranges``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from lvo_triage.config import Settings
from lvo_triage.model_card import card_path
from lvo_triage.train.seeds import TRAIN_BASE

_engine: Any = None


def _init(model: Path) -> None:
    import torch

    from lvo_triage.pipeline import Runtime

    torch.set_num_threads(1)
    global _engine
    base = Settings()
    _engine = Runtime.create(
        replace(base, model=replace(base.model, path=model, intra_op_threads=1))
    )


def _measure(seed: int) -> dict[str, float | None]:
    from lvo_triage.input_ranges import measure
    from lvo_triage.preprocess import arterial_peak_hu
    from lvo_triage.synth import render_acquisition, sample_spec

    spec = sample_spec(seed, case_id=f"r{seed}", lvo=seed % 2 == 0)
    volume = render_acquisition(spec)
    batch, pose = _engine.preprocessor.prepare(volume)
    peak = arterial_peak_hu(batch, _engine.preprocessor.spec)
    return measure(volume, peak_hu=peak, pose=pose).as_dict()


def ranges(rows: list[dict[str, float | None]]) -> dict[str, list[float]]:
    """Each measurement's 1st-99th percentile, widened by a tenth of its width each side."""
    out = {}
    for name in rows[0]:
        values = np.array([r[name] for r in rows if r[name] is not None], dtype=np.float64)
        values = values[np.isfinite(values)]
        if values.size < 10:
            continue
        lo, hi = np.percentile(values, [1, 99])
        pad = 0.1 * (hi - lo)
        out[name] = [round(float(lo - pad), 2), round(float(hi + pad), 2)]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--model", type=Path, default=Path("models/lvo-detector.onnx"))
    parser.add_argument("--n", type=int, default=100, help="training phantoms to measure")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--update-card", action="store_true", help="store them in the card")
    args = parser.parse_args()
    seeds = [TRAIN_BASE + i for i in range(args.n)]
    with mp.get_context("spawn").Pool(
        args.workers, initializer=_init, initargs=(args.model,)
    ) as pool:
        rows = list(tqdm(pool.imap(_measure, seeds), total=len(seeds), desc="measure"))
    document = {
        "ranges": ranges(rows),
        "measured_on": (
            f"{args.n} in-range phantoms of the training population (seeds {seeds[0]}-"
            f"{seeds[-1]}), full acquisition resolution"
        ),
        "command": f"python scripts/input_ranges.py --n {args.n}",
    }
    print(json.dumps(document, indent=2))
    if args.update_card:
        card = json.loads(card_path(args.model).read_text())
        card["input_ranges"] = document
        card_path(args.model).write_text(json.dumps(card, indent=2) + "\n")


if __name__ == "__main__":
    main()
