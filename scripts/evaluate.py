"""Held-out evaluation of an ONNX model on phantoms whose seeds training never used.

    python scripts/evaluate.py --model models/lvo-detector.onnx [--n 60] [--update-card]
    python scripts/evaluate.py --out-of-range --n 100 [--update-card]
    python scripts/evaluate.py --site M2 --n 100 [--update-card]      # every LVO at M2
    python scripts/evaluate.py --family b --n 100 [--update-card]     # the independent family

Each case is rendered at full acquisition resolution (512x512, 0.4-0.5 mm, 0.5-1.25 mm slices),
written as DICOM, and triaged by the real pipeline (discover → select → load → preprocess → ONNX),
then deleted. Prints the figures as JSON; --update-card stores them in the model card
(``metrics.held_out_phantoms``, or ``metrics.out_of_range_phantoms``).

--out-of-range draws every case with two factors beyond the training ranges (dim arteries, noise,
head tilt, venous phase, thick slices, streaks, motion; see lvo_triage/synth/spec.py), from seeds
OUT_OF_RANGE_BASE up, and reports the figures per factor too. --site puts every LVO at one site
(seeds from SITE_BASE up; stored as ``metrics.held_out_<site>_phantoms``): the population has only
30 % of its LVOs at M2, too few in 100 cases for a useful interval. --family b draws the cases
from the independently built phantom family B (``lvo_triage/synth_b``) instead of the training
family A, and stores the figures under the set's key with ``_family_b`` appended.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing as mp
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from lvo_triage.config import Settings
from lvo_triage.metrics import bootstrap_ci, roc_auc, summarise
from lvo_triage.model_card import card_path
from lvo_triage.train.seeds import OUT_OF_RANGE_BASE, SITE_BASE, TEST_BASE, split_of

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


def _write(
    family: str,
    seed: int,
    lvo: bool,
    site: str | None,
    *,
    fast: bool,
    oor: bool,
    out: Path,
) -> tuple[bool, str, str, list[str]]:
    """One case of phantom family ``a`` (``lvo_triage.synth``, the training family) or ``b``
    (``lvo_triage.synth_b``, built independently) written as DICOM into ``out``; its labels and
    out-of-range factors."""
    site = site if lvo else None
    if family == "b":
        from lvo_triage.synth_b import sample_case, write_study_b

        case = sample_case(seed, lvo=lvo, site=site, out_of_range=oor)
        write_study_b(case, out, fast=fast)
        return case.lvo, case.side or "", case.site or "", list(case.factors)
    from lvo_triage.synth import sample_spec, write_study

    spec = sample_spec(seed, case_id=f"t{seed}", lvo=lvo, site=site, out_of_range=oor)
    write_study(spec, out, fast=fast)
    return spec.lvo, spec.side or "", spec.site or "", list(spec.out_of_range)


def _case(job: tuple[int, bool, bool, bool, str | None, str]) -> dict[str, Any]:
    from lvo_triage.pipeline import triage_path

    seed, lvo, fast, out_of_range, site, family = job
    with tempfile.TemporaryDirectory(prefix="lvo-eval-") as tmp:
        labels = _write(family, seed, lvo, site, fast=fast, oor=out_of_range, out=Path(tmp))
        (result,) = triage_path(_engine, Path(tmp))
    second = result.vessel_asymmetry
    return {
        "seed": seed,
        "lvo": int(labels[0]),
        "side": labels[1],
        "site": labels[2],
        "status": result.status.value,
        "reason": result.reason,
        "p_lvo": result.probability,
        "side_pred": result.side.value if result.side else "",
        "asymmetry": second.score if second is not None else None,
        "asymmetry_side": second.hemisphere.value if second is not None else "",
        "total_ms": result.timings_ms.get("total"),
        "factors": labels[3],
    }


def _figures(rows: list[dict[str, Any]], threshold: float, *, ci: bool = True) -> dict[str, Any]:
    lvo = np.array([r["lvo"] for r in rows])
    if len(set(lvo.tolist())) < 2:
        return {"n": len(rows), "note": "one class only: no AUC"}
    out: dict[str, Any] = summarise(
        lvo=lvo,
        p_lvo=np.array([r["p_lvo"] for r in rows]),
        threshold=threshold,
        side_true=np.array([r["side"] for r in rows]),
        side_pred=np.array([r["side_pred"] for r in rows]),
        site=np.array([r["site"] for r in rows]),
        rounds=2000 if ci else 10,
    )
    out["baseline"] = _baseline(rows, lvo, rounds=2000 if ci else 10)
    return out if ci else {k: v for k, v in out.items() if not k.endswith("_ci95")}


def _baseline(rows: list[dict[str, Any]], lvo: np.ndarray, *, rounds: int) -> dict[str, Any]:
    """The non-learned vessel-asymmetry score on the same cases: its AUC (with a bootstrap
    interval) and how often its poorer hemisphere is the LVO's side."""
    score = np.array([r["asymmetry"] for r in rows], dtype=np.float64)
    auc = roc_auc(lvo, score)
    lo, hi = bootstrap_ci(lambda i: roc_auc(lvo[i], score[i]), len(rows), rounds=rounds)
    sided = [r for r in rows if r["lvo"] and r["side"]]
    return {
        "name": "vessel asymmetry per MCA territory (not learned)",
        "auc": round(auc, 4),
        "auc_ci95": [round(lo, 4), round(hi, 4)],
        "side_accuracy_lvo": round(
            sum(r["asymmetry_side"] == r["side"] for r in sided) / max(1, len(sided)), 4
        ),
    }


def _which_set(out_of_range: bool, site: str | None) -> tuple[int, str, str]:
    """The first seed, the command-line flag and the model card key of an evaluation set."""
    if out_of_range:
        return OUT_OF_RANGE_BASE, " --out-of-range", "out_of_range_phantoms"
    if site:
        return SITE_BASE, f" --site {site}", f"held_out_{site.lower().replace('-', '_')}_phantoms"
    return TEST_BASE, "", "held_out_phantoms"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--model", type=Path, default=Path("models/lvo-detector.onnx"))
    parser.add_argument("--n", type=int, default=60, help="cases (half with an LVO)")
    parser.add_argument("--seed", type=int, help="first phantom seed (default: per set)")
    parser.add_argument(
        "--out-of-range", action="store_true", help="two factors beyond the training ranges"
    )
    parser.add_argument("--site", choices=("ICA-T", "M1", "M2"), help="every LVO at this site")
    parser.add_argument(
        "--family",
        choices=("a", "b"),
        default="a",
        help="phantom family: a (lvo_triage.synth, the bundled model's training family) or b "
        "(lvo_triage.synth_b, built independently: the cross-family figure)",
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--fast", action="store_true", help="low-resolution studies (smoke test)")
    parser.add_argument("--update-card", action="store_true", help="store the figures in the card")
    parser.add_argument("--cases-out", type=Path, help="write per-case rows as JSON Lines here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.site and args.out_of_range:
        parser.error("--site and --out-of-range are separate sets: give one")
    base, flag, key = _which_set(args.out_of_range, args.site)
    if args.family == "b":
        flag, key = f"{flag} --family b", f"{key}_family_b"
    first = args.seed if args.seed is not None else base
    seeds = [first + i for i in range(args.n)]
    leaked = [s for s in seeds if split_of(s) != "test"]
    if leaked:
        parser.error(f"seeds {leaked[:3]}... belong to the training/validation ranges")
    jobs = [
        (s, i % 2 == 0, args.fast, args.out_of_range, args.site, args.family)
        for i, s in enumerate(seeds)
    ]
    with mp.get_context("spawn").Pool(
        args.workers, initializer=_init, initargs=(args.model,)
    ) as pool:
        rows = list(tqdm(pool.imap(_case, jobs), total=len(jobs), desc="evaluate"))
    if args.cases_out:
        args.cases_out.write_text("".join(json.dumps(r) + "\n" for r in rows))
    card = json.loads(card_path(args.model).read_text())
    ok = [r for r in rows if r["status"] == "ok"]
    threshold = float(card["threshold"])
    figures = _figures(ok, threshold)
    if args.out_of_range:
        names = sorted({f for r in rows for f in r["factors"]})
        figures["by_factor"] = {
            name: _figures([r for r in ok if name in r["factors"]], threshold, ci=False)
            for name in names
        }
    figures["not_analyzable"] = len(rows) - len(ok)
    figures["seeds"] = [seeds[0], seeds[-1]]
    figures["resolution"] = "fast (128x128)" if args.fast else "full acquisition (512x512)"
    figures["median_total_ms"] = float(np.median([r["total_ms"] for r in rows]))
    figures["command"] = f"python scripts/evaluate.py{flag} --n {args.n} --seed {first}"
    print(json.dumps(figures, indent=2))
    if args.update_card:
        card["metrics"][key] = figures
        card_path(args.model).write_text(json.dumps(card, indent=2) + "\n")


if __name__ == "__main__":
    main()
