"""Train the LVO detector: on a labelled dataset (DICOM or NIfTI), or on synthetic phantoms.

    python scripts/train.py --data DATASET --out runs/NAME [--config configs/train.yaml]
    python scripts/train.py --out runs/NAME [--n-train 2400] [--n-val 300]   # phantoms
    python scripts/train.py --out runs/NAME --family b ...                     # phantom family B
    python scripts/train.py ... --resume                                       # continue a run
    python scripts/train.py --data DATASET --out runs/NAME --engine ray [--address HOST:PORT]

DATASET has the layout of docs/contract.md: labels.csv (case_id, lvo, optional side, site) and one
DICOM folder or <case_id>.nii.gz per case. Every case goes through the inference transforms once
(cached in OUT/cache, or --cache) and the epochs then augment it (mirror with the side label
swapped, rotation and scale, shift, intensity, noise). Validation: --val-data, or a stratified
--val-fraction of DATASET. Each epoch writes metrics.csv, best.pt and last.pt; the end writes
training.json with the temperature and the operating point (--target-sensitivity).

Phantom seeds: training TRAIN_BASE + i, validation VAL_BASE + i; scripts/evaluate.py uses seeds
from TEST_BASE up, which training never sees.
"""

from __future__ import annotations

import argparse
import json
import logging
from contextlib import AbstractContextManager, nullcontext
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from lvo_triage.model_card import DEFAULT_INPUT, DOWNSAMPLE_MODES, InputSpec
from lvo_triage.train.dataset import FAMILIES, CaseArrays, cached_cases
from lvo_triage.train.loop import TrainConfig, train
from lvo_triage.train.seeds import TRAIN_BASE, VAL_BASE

DEFAULT_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "train.yaml"


def load_config(path: Path) -> TrainConfig:
    """TrainConfig from YAML; unknown keys are an error that lists the known ones."""
    values: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    known = {f.name for f in fields(TrainConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise SystemExit(f"{path}: unknown setting(s) {', '.join(unknown)}; known: {sorted(known)}")
    return TrainConfig(**values)


def cache_suffix(spec: InputSpec) -> str:
    """Cache names of a preprocessing other than the default one: ``-max``, ``-midline``."""
    return ("-max" if spec.downsample == "max" else "") + ("-midline" if spec.align_midline else "")


def split(data: CaseArrays, fraction: float, seed: int) -> tuple[CaseArrays, CaseArrays]:
    """A validation split stratified by label (deterministic for ``seed``)."""
    rng = np.random.default_rng(seed)
    val_idx: list[int] = []
    for label in (0, 1):
        idx = np.flatnonzero(data.lvo == label)
        rng.shuffle(idx)
        val_idx += idx[: max(1, round(fraction * len(idx)))].tolist() if len(idx) > 1 else []
    val = np.zeros(len(data.lvo), dtype=bool)
    val[val_idx] = True
    if val.all() or not val.any():
        raise SystemExit(f"cannot split {len(data.lvo)} cases into training and validation")
    return data.subset(~val), data.subset(val)


def ray_engine(args: argparse.Namespace) -> AbstractContextManager[None]:
    """Ray for the preprocessing (``--engine ray``): this machine's, or the cluster at
    ``--address``; exits with how to install Ray when it is missing."""
    from lvo_triage.engines import EngineUnavailable, require_ray

    try:
        require_ray()
    except EngineUnavailable as exc:
        raise SystemExit(f"train: {exc}") from exc
    from lvo_triage.engines.ray_cluster import ray_session

    return ray_session(args.address)


def labelled(
    args: argparse.Namespace, cache: Path, spec: InputSpec
) -> tuple[CaseArrays, CaseArrays]:
    from lvo_triage.labels import read_labels
    from lvo_triage.train.labelled import build_labelled_arrays

    on_ray = args.engine == "ray"

    def arrays(root: Path, name: str) -> CaseArrays:
        mapper = None
        folder = cache / (name + cache_suffix(spec))
        if on_ray:  # one Ray task per case, into the same cache
            from lvo_triage.train.ray_labelled import RayPreprocess

            mapper = RayPreprocess(spec=spec, cache_dir=folder)
        return build_labelled_arrays(
            read_labels(root),
            spec=spec,
            cache_dir=folder,
            workers=args.workers,
            mapper=mapper,
        )

    with ray_engine(args) if on_ray else nullcontext():
        data = arrays(args.data, "data")
        val = arrays(args.val_data, "val") if args.val_data is not None else None
    if val is not None:
        return data, val
    return split(data, args.val_fraction, args.split_seed)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--out", type=Path, required=True, help="run folder (checkpoints, metrics)")
    parser.add_argument("--data", type=Path, help="labelled dataset (default: phantoms)")
    parser.add_argument("--val-data", type=Path, help="validation dataset (default: a split)")
    parser.add_argument("--val-fraction", type=float, default=0.2)
    parser.add_argument("--split-seed", type=int, default=0)
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="training settings")
    parser.add_argument("--n-train", type=int, default=2400, help="phantoms for training")
    parser.add_argument("--n-val", type=int, default=300, help="phantoms for validation")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--lr", type=float, help="peak learning rate")
    parser.add_argument("--seed", type=int, help="seed of weights, augmentation and order")
    parser.add_argument("--target-sensitivity", type=float)
    parser.add_argument(
        "--family",
        choices=FAMILIES,
        default="a",
        help="phantom family to train on (without --data): a (lvo_triage.synth) or b "
        "(lvo_triage.synth_b); test on the other with scripts/evaluate.py --family",
    )
    parser.add_argument("--workers", type=int, default=2, help="processes preparing cases")
    parser.add_argument(
        "--engine",
        choices=("local", "ray"),
        default="local",
        help="preprocess a labelled dataset (--data) locally, or one Ray task per case (needs "
        "the ray extra; the dataset and the cache at the same path on every node)",
    )
    parser.add_argument(
        "--address", help="with --engine ray: the Ray cluster to join (default: this machine)"
    )
    parser.add_argument("--init", type=Path, help="start from this checkpoint (fine-tuning)")
    parser.add_argument("--resume", action="store_true", help="continue OUT/last.pt")
    parser.add_argument("--cache", type=Path, help="preprocessed cases (default: OUT/cache)")
    parser.add_argument(
        "--align-midline",
        action="store_true",
        help="move each head's mid-sagittal plane to the grid's centre (recorded in the card)",
    )
    parser.add_argument(
        "--downsample",
        choices=DOWNSAMPLE_MODES,
        default="area",
        help="acquisition to model grid: area average, or max of 2x2x2 after averaging to half "
        "the spacing (keeps thin arteries bright; recorded in the card)",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="train: %(message)s")

    if args.engine == "ray" and args.data is None:
        parser.error("--engine ray preprocesses a labelled dataset: give --data DATASET")
    if args.address is not None and args.engine != "ray":
        parser.error("--address is for --engine ray")
    cfg = load_config(args.config)
    overrides = {
        "epochs": args.epochs,
        "lr": args.lr,
        "seed": args.seed,
        "target_sensitivity": args.target_sensitivity,
    }
    cfg = replace(cfg, **{k: v for k, v in overrides.items() if v is not None})
    cache = args.cache or args.out / "cache"
    spec = replace(DEFAULT_INPUT, align_midline=args.align_midline, downsample=args.downsample)
    suffix = cache_suffix(spec)  # chunks of another preprocessing
    if args.data is not None:
        train_data, val_data = labelled(args, cache, spec)
    else:
        train_data, val_data = (
            cached_cases(
                cache, name + suffix, base, n, spec=spec, workers=args.workers, family=args.family
            )
            for name, base, n in (
                ("train", TRAIN_BASE, args.n_train),
                ("val", VAL_BASE, args.n_val),
            )
        )
    summary = train(
        train_data,
        val_data,
        spec=spec,
        cfg=cfg,
        out=args.out,
        init=args.init,
        resume=args.resume,
    )
    summary["cache"] = str(cache.resolve())
    summary["data"] = (
        str(args.data.resolve()) if args.data else f"synthetic phantoms, family {args.family}"
    )
    if args.data is None:
        summary["phantom_family"] = args.family
    (args.out / "training.json").write_text(json.dumps(summary, indent=2) + "\n")
    at = summary["validation_at_threshold"]
    print(
        f"best validation AUC {summary['best_val_auc']:.4f}; threshold {summary['threshold']:.4f} "
        f"(validation sensitivity {at['sensitivity']:.2f}, specificity {at['specificity']:.2f})"  # type: ignore[index]
    )


if __name__ == "__main__":
    main()
