"""Train the LVO detector on synthetic phantoms.

    python scripts/train.py --out runs/NAME [--n-train 1000] [--n-val 200] [--epochs 14]

Phantom seeds: training cases use seeds TRAIN_BASE + i, validation VAL_BASE + i; evaluation
(scripts/evaluate.py) uses seeds from TEST_BASE up, which training never sees.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from lvo_triage.model_card import DEFAULT_INPUT
from lvo_triage.train.dataset import cached_cases
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
    parser.add_argument("--lr", type=float, default=TrainConfig().lr, help="peak learning rate")
    parser.add_argument("--init", type=Path, help="start from this checkpoint (fine-tuning)")
    parser.add_argument("--cache", type=Path, help="preprocessed cases (default: OUT/cache)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="train: %(message)s")

    spec = DEFAULT_INPUT
    cache = args.cache or args.out / "cache"
    datasets = {
        name: cached_cases(cache, name, base, n, spec=spec, workers=args.workers)
        for name, base, n in (("train", TRAIN_BASE, args.n_train), ("val", VAL_BASE, args.n_val))
    }
    cfg = TrainConfig(epochs=args.epochs, seed=args.seed, lr=args.lr)
    summary = train(
        datasets["train"], datasets["val"], spec=spec, cfg=cfg, out=args.out, init=args.init
    )
    summary["cache"] = str(cache.resolve())
    (args.out / "training.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(
        f"best validation AUC {summary['best_val_auc']:.4f}; threshold {summary['threshold']:.4f}"
    )


if __name__ == "__main__":
    main()
