"""Train the LVO detector on synthetic phantoms.

    python scripts/train.py --out runs/NAME [--n-train 1000] [--n-val 200] [--epochs 14]

Phantom seeds: training cases use seeds TRAIN_BASE + i, validation VAL_BASE + i; evaluation
(scripts/evaluate.py) uses seeds from TEST_BASE up, which training never sees.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from lvo_triage.model_card import DEFAULT_INPUT
from lvo_triage.train.dataset import CaseArrays, build_cases
from lvo_triage.train.loop import TrainConfig, train
from lvo_triage.train.seeds import TRAIN_BASE, VAL_BASE


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--out", type=Path, required=True, help="run folder (checkpoints, metrics)")
    parser.add_argument("--n-train", type=int, default=1000)
    parser.add_argument("--n-val", type=int, default=200)
    parser.add_argument("--epochs", type=int, default=TrainConfig().epochs)
    parser.add_argument("--workers", type=int, default=2, help="processes rendering phantoms")
    parser.add_argument("--seed", type=int, default=0, help="seed of weights and augmentation")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="train: %(message)s")

    spec = DEFAULT_INPUT
    cache = args.out / "cache"
    datasets = {}
    for name, base, n in (("train", TRAIN_BASE, args.n_train), ("val", VAL_BASE, args.n_val)):
        path = cache / f"{name}-{n}.npz"
        if path.exists():
            datasets[name] = CaseArrays.load(path)
        else:
            seeds = [base + i for i in range(n)]
            datasets[name] = build_cases(seeds, spec=spec, workers=args.workers, desc=name)
            datasets[name].save(path)
    cfg = TrainConfig(epochs=args.epochs, seed=args.seed)
    summary = train(datasets["train"], datasets["val"], spec=spec, cfg=cfg, out=args.out)
    print(
        f"best validation AUC {summary['best_val_auc']:.4f}; threshold {summary['threshold']:.4f}"
    )


if __name__ == "__main__":
    main()
