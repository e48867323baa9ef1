"""The benchmark's figures: the ``metrics.json`` document built from the cases' outcomes.

Accuracy is measured over the analysable cases (status ``ok``) at the model's operating point
(the threshold in the result documents); the cases the pipeline could not judge are counted
apart, by reason. Latency is measured over the analysable cases too (the time to a flag).
Every rate comes with its numerator and denominator, and a percentile-bootstrap 95% interval
over the analysable cases.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from lvo_triage import __version__
from lvo_triage.bench.cases import CaseOutcome
from lvo_triage.metrics import bootstrap_ci, roc_auc
from lvo_triage.result import ModelInfo, Status, utc_now

SCHEMA = "lvo-triage/bench/v1"
NOT_FOR_CLINICAL_USE = (
    "NOT FOR CLINICAL USE: research software, model trained on synthetic phantoms"
)
STAGE_ORDER = ("discover", "select", "load", "preprocess", "inference", "postprocess", "emit")
SITE_ORDER = ("ICA-T", "M1", "M2")
SIDE_ORDER = ("left", "right")
DIGITS = 4  # rates, probabilities
MS_DIGITS = 1  # milliseconds

Stat = Callable[[np.ndarray], float]


@dataclass(frozen=True, kw_only=True)
class RunInfo:
    """What the loop knows besides the outcomes. ``engine``: ``local`` or ``ray``;
    ``workers``: the processes that triaged (one locally); ``peak_rss_mb``: the largest peak
    resident memory among them."""

    dataset_name: str
    model: ModelInfo
    threshold: float
    wall_s: float
    startup_s: float
    peak_rss_mb: float
    engine: str = "local"
    workers: int = 1


def bench_metrics(
    outcomes: Sequence[CaseOutcome], run: RunInfo, *, rounds: int = 2000, seed: int = 0
) -> dict[str, Any]:
    """The ``metrics.json`` document (schema ``lvo-triage/bench/v1``)."""
    if rounds < 1:
        msg = f"bootstrap rounds must be at least 1, got {rounds}"
        raise ValueError(msg)
    ok = [o for o in outcomes if o.analysable]
    n = len(outcomes)
    return {
        "schema": SCHEMA,
        "not_for_clinical_use": NOT_FOR_CLINICAL_USE,
        "created_at": utc_now(),
        "lvo_triage_version": __version__,
        "dataset": run.dataset_name,
        "model": {
            "name": run.model.name,
            "version": run.model.version,
            "sha256": run.model.sha256,
            "provider": run.model.provider,
        },
        "threshold": run.threshold,
        "bootstrap": {"rounds": rounds, "seed": seed, "level": 0.95},
        "cases": {
            "n": n,
            "n_lvo": sum(o.lvo for o in outcomes),
            "n_analysable": len(ok),
            "n_not_analysable": n - len(ok),
        },
        "not_analysable": _not_analysable(outcomes),
        "accuracy": _accuracy(ok, rounds=rounds, seed=seed),
        "baseline": _baseline(ok, rounds=rounds, seed=seed),
        "latency_ms": _latency(ok),
        "throughput": {
            "studies": n,
            "wall_s": round(run.wall_s, 3),
            "studies_per_s": round(n / run.wall_s, DIGITS) if run.wall_s > 0 else None,
            "engine_startup_s": round(run.startup_s, 3),
            "engine": run.engine,
            "workers": run.workers,
        },
        "memory": {"peak_rss_mb": round(run.peak_rss_mb, MS_DIGITS)},
    }


def _not_analysable(outcomes: Sequence[CaseOutcome]) -> dict[str, Any]:
    """Cases without an answer: status ``not_analyzable`` (the input) or ``error`` (internal)."""
    failed = [o for o in outcomes if not o.analysable]
    reasons = Counter(o.reason or "no reason given" for o in failed)
    statuses = Counter(o.status for o in failed)
    return {
        "n": len(failed),
        "rate": round(len(failed) / len(outcomes), DIGITS) if outcomes else None,
        "by_status": {s.value: statuses.get(s.value, 0) for s in Status if s is not Status.OK},
        "by_reason": dict(sorted(reasons.items(), key=lambda item: (-item[1], item[0]))),
    }


def _rate(numerator: np.ndarray, denominator: np.ndarray, rounds: int, seed: int) -> dict[str, Any]:
    """``sum(numerator & denominator) / sum(denominator)`` with its bootstrap interval."""
    hits, total = int((numerator & denominator).sum()), int(denominator.sum())

    def stat(i: np.ndarray) -> float:
        den = int(denominator[i].sum())
        if den == 0:
            msg = "empty denominator in this resample"
            raise ValueError(msg)
        return float((numerator[i] & denominator[i]).sum() / den)

    value = round(hits / total, DIGITS) if total else None
    return {
        "value": value,
        "ci95": _ci(stat, len(numerator), rounds, seed) if total else None,
        "numerator": hits,
        "denominator": total,
    }


def _ci(stat: Stat, n: int, rounds: int, seed: int) -> list[float] | None:
    try:
        lo, hi = bootstrap_ci(stat, n, rounds=rounds, seed=seed)
    except (ValueError, IndexError):  # no resample had both classes
        return None
    return [round(lo, DIGITS), round(hi, DIGITS)]


def _accuracy(ok: Sequence[CaseOutcome], *, rounds: int, seed: int) -> dict[str, Any]:
    y = np.array([o.lvo for o in ok], dtype=bool)
    p = np.array([o.probability for o in ok], dtype=np.float64)
    pred = np.array([bool(o.lvo_suspected) for o in ok], dtype=bool)
    tp, fn = int((pred & y).sum()), int((~pred & y).sum())
    fp, tn = int((pred & ~y).sum()), int((~pred & ~y).sum())
    both = bool(y.any() and (~y).any())
    auc: dict[str, Any] = {"value": None, "ci95": None}
    if both:
        auc = {
            "value": round(roc_auc(y, p), DIGITS),
            "ci95": _ci(lambda i: roc_auc(y[i], p[i]), len(y), rounds, seed),
        }
    return {
        "n": len(ok),
        "n_lvo": int(y.sum()),
        "n_no_lvo": int((~y).sum()),
        "note": None if both else "AUC and the ROC curve need analysable cases of both classes",
        "auc": auc,
        "roc_curve": _roc_curve(y, p) if both else None,
        "confusion_matrix": {"tp": tp, "fn": fn, "fp": fp, "tn": tn},
        "sensitivity": _rate(pred, y, rounds, seed),
        "specificity": _rate(~pred, ~y, rounds, seed),
        "ppv": _rate(y, pred, rounds, seed),
        "npv": _rate(~y, ~pred, rounds, seed),
        "sensitivity_by_site": _by_label(ok, "site_label", SITE_ORDER),
        "sensitivity_by_side": _by_label(ok, "side_label", SIDE_ORDER),
        "side_accuracy_true_positives": _side_accuracy(ok),
    }


def _baseline(ok: Sequence[CaseOutcome], *, rounds: int, seed: int) -> dict[str, Any]:
    """The non-learned second opinion (vessel asymmetry) on the same cases, beside the model: its
    AUC, the model's AUC minus it (positive: the model is better), and how often its hemisphere
    with fewer vessels is the labelled side of an LVO. It has no operating point."""
    rated = [o for o in ok if o.asymmetry is not None and o.probability is not None]
    y = np.array([o.lvo for o in rated], dtype=bool)
    a = np.array([o.asymmetry for o in rated], dtype=np.float64)
    p = np.array([o.probability for o in rated], dtype=np.float64)
    sided = [o for o in rated if o.lvo and o.side_label is not None]
    correct = sum(o.asymmetry_side == o.side_label for o in sided)
    out: dict[str, Any] = {
        "name": "vessel asymmetry per MCA territory (not learned)",
        "n": len(rated),
        "auc": {"value": None, "ci95": None},
        "model_auc_minus_baseline": {"value": None, "ci95": None},
        "side_accuracy_lvo": {
            "n": len(sided),
            "correct": correct,
            "accuracy": round(correct / len(sided), DIGITS) if sided else None,
        },
    }
    if y.any() and (~y).any():
        out["auc"] = {
            "value": round(roc_auc(y, a), DIGITS),
            "ci95": _ci(lambda i: roc_auc(y[i], a[i]), len(y), rounds, seed),
        }
        out["model_auc_minus_baseline"] = {
            "value": round(roc_auc(y, p) - roc_auc(y, a), DIGITS),
            "ci95": _ci(lambda i: roc_auc(y[i], p[i]) - roc_auc(y[i], a[i]), len(y), rounds, seed),
        }
    return out


def _roc_curve(y: np.ndarray, p: np.ndarray) -> dict[str, list[float]]:
    """False and true positive rates at every distinct probability, from (0, 0) to (1, 1)."""
    cuts = np.unique(p)[::-1]
    fpr, tpr = [0.0], [0.0]
    for cut in cuts:
        flagged = p >= cut
        fpr.append(round(float((flagged & ~y).sum() / (~y).sum()), DIGITS))
        tpr.append(round(float((flagged & y).sum() / y.sum()), DIGITS))
    return {"fpr": fpr, "tpr": tpr, "thresholds": [round(float(c), 6) for c in cuts]}


def _by_label(ok: Sequence[CaseOutcome], attribute: str, order: Sequence[str]) -> dict[str, Any]:
    """Sensitivity among the LVO cases labelled with each site (or side)."""
    out: dict[str, Any] = {}
    for label in order:
        cases = [o for o in ok if o.lvo and getattr(o, attribute) == label]
        if not cases:
            continue
        detected = sum(bool(o.lvo_suspected) for o in cases)
        out[label] = {
            "n": len(cases),
            "detected": detected,
            "sensitivity": round(detected / len(cases), DIGITS),
        }
    return out


def _side_accuracy(ok: Sequence[CaseOutcome]) -> dict[str, Any]:
    """Among true positives with a side label: how often the predicted side is the labelled one."""
    sided = [o for o in ok if o.lvo and o.lvo_suspected and o.side_label is not None]
    correct = sum(o.side == o.side_label for o in sided)
    return {
        "n": len(sided),
        "correct": correct,
        "accuracy": round(correct / len(sided), DIGITS) if sided else None,
    }


def stage_names(outcomes: Sequence[CaseOutcome]) -> list[str]:
    """Every stage seen, in pipeline order (unknown ones after), ``total`` last."""
    seen = {name for o in outcomes for name in o.timings_ms} - {"total"}
    known = [name for name in STAGE_ORDER if name in seen]
    extra = sorted(seen - set(STAGE_ORDER))
    total = ["total"] if any("total" in o.timings_ms for o in outcomes) else []
    return known + extra + total


def _latency(ok: Sequence[CaseOutcome]) -> dict[str, Any]:
    stages: dict[str, Any] = {}
    for name in stage_names(ok):
        values = np.array([o.timings_ms[name] for o in ok if name in o.timings_ms])
        stages[name] = {
            "n": len(values),
            "p50": round(float(np.percentile(values, 50)), MS_DIGITS),
            "p95": round(float(np.percentile(values, 95)), MS_DIGITS),
            "max": round(float(values.max()), MS_DIGITS),
        }
    return {"over": "analysable cases (status ok)", "n": len(ok), "stages": stages}
