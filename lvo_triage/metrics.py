"""Accuracy figures shared by training, evaluation and the benchmark suite (numpy only)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U with tie correction)."""
    y = np.asarray(labels).astype(bool)
    s = np.asarray(scores, dtype=np.float64)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        msg = f"AUC needs both classes, got {n_pos} positives and {n_neg} negatives"
        raise ValueError(msg)
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s), dtype=np.float64)
    sorted_s = s[order]
    i = 0
    while i < len(s):
        j = i
        while j + 1 < len(s) and sorted_s[j + 1] == sorted_s[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def sensitivity_specificity(
    labels: np.ndarray, scores: np.ndarray, threshold: float
) -> tuple[float, float]:
    y = np.asarray(labels).astype(bool)
    pred = np.asarray(scores) >= threshold
    sens = float((pred & y).sum() / max(1, y.sum()))
    spec = float((~pred & ~y).sum() / max(1, (~y).sum()))
    return sens, spec


def threshold_for_sensitivity(labels: np.ndarray, scores: np.ndarray, target: float) -> float:
    """The highest threshold whose sensitivity is at least ``target``."""
    if not 0.0 < target <= 1.0:
        msg = f"target sensitivity {target} must be in (0, 1]"
        raise ValueError(msg)
    pos = np.sort(np.asarray(scores)[np.asarray(labels).astype(bool)])
    if pos.size == 0:
        msg = "no positive cases to choose a threshold from"
        raise ValueError(msg)
    k = int(np.floor((1.0 - target) * pos.size + 1e-9))
    return float(pos[min(k, pos.size - 1)])


def bootstrap_ci(
    statistic: Callable[[np.ndarray], float],
    n: int,
    *,
    rounds: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``statistic(indices)`` over ``n`` cases."""
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(rounds):
        idx = rng.integers(0, n, size=n)
        try:
            values.append(statistic(idx))
        except ValueError:  # a resample without one of the classes
            continue
    lo, hi = np.quantile(values, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(lo), float(hi)


def fit_temperature(labels: np.ndarray, logits: np.ndarray) -> float:
    """Temperature T minimising the log-loss of sigmoid(logit / T) (grid + refinement)."""
    y = np.asarray(labels, dtype=np.float64)
    z = np.asarray(logits, dtype=np.float64)

    def nll(t: float) -> float:
        p = 1.0 / (1.0 + np.exp(-np.clip(z / t, -50, 50)))
        p = np.clip(p, 1e-7, 1 - 1e-7)
        return float(-(y * np.log(p) + (1 - y) * np.log(1 - p)).mean())

    grid = np.exp(np.linspace(np.log(0.05), np.log(20.0), 200))
    best = float(grid[int(np.argmin([nll(t) for t in grid]))])
    fine = np.linspace(best * 0.9, best * 1.1, 41)
    return float(fine[int(np.argmin([nll(t) for t in fine]))])


def summarise(
    *,
    lvo: np.ndarray,
    p_lvo: np.ndarray,
    threshold: float,
    side_true: np.ndarray,
    side_pred: np.ndarray,
    site: np.ndarray,
    rounds: int = 2000,
) -> dict[str, object]:
    """Held-out figures: AUC, sensitivity, specificity (bootstrap 95% CIs), side accuracy among
    detected LVOs, sensitivity per site. ``side_*`` hold "left"/"right"; ``site`` is "" for
    negatives."""
    y = np.asarray(lvo).astype(int)
    p = np.asarray(p_lvo, dtype=np.float64)
    n = len(y)
    sens, spec = sensitivity_specificity(y, p, threshold)
    detected = (y == 1) & (p >= threshold)
    side_ok = np.asarray(side_true) == np.asarray(side_pred)

    def ci(stat: Callable[[np.ndarray], float]) -> list[float]:
        return [round(v, 4) for v in bootstrap_ci(stat, n, rounds=rounds)]

    out: dict[str, object] = {
        "n": n,
        "n_lvo": int(y.sum()),
        "threshold": threshold,
        "auc": round(roc_auc(y, p), 4),
        "auc_ci95": ci(lambda i: roc_auc(y[i], p[i])),
        "sensitivity": round(sens, 4),
        "sensitivity_ci95": ci(lambda i: sensitivity_specificity(y[i], p[i], threshold)[0]),
        "specificity": round(spec, 4),
        "specificity_ci95": ci(lambda i: sensitivity_specificity(y[i], p[i], threshold)[1]),
        "side_accuracy_detected": round(float(side_ok[detected].mean()), 4)
        if detected.any()
        else None,
        "n_detected": int(detected.sum()),
        "sensitivity_by_site": {
            s: round(float((p[site == s] >= threshold).mean()), 4)
            for s in sorted(set(np.asarray(site)[y == 1]))
        },
    }
    return out
