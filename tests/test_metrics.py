import itertools

import numpy as np
import pytest

from lvo_triage.metrics import (
    bootstrap_ci,
    fit_temperature,
    roc_auc,
    sensitivity_specificity,
    threshold_for_sensitivity,
)


def _pairwise_auc(y: np.ndarray, s: np.ndarray) -> float:
    pos, neg = s[y == 1], s[y == 0]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(pos, neg))
    return wins / (len(pos) * len(neg))


def test_auc_matches_pairwise_definition_with_ties() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 60)
    s = np.round(rng.normal(y * 0.8, 1.0), 1)
    assert roc_auc(y, s) == pytest.approx(_pairwise_auc(y, s))


def test_auc_needs_both_classes() -> None:
    with pytest.raises(ValueError, match="both classes"):
        roc_auc(np.ones(3), np.arange(3))


def test_threshold_reaches_target_sensitivity() -> None:
    rng = np.random.default_rng(1)
    y = np.r_[np.ones(100), np.zeros(100)]
    s = np.r_[rng.uniform(0.3, 1, 100), rng.uniform(0, 0.7, 100)]
    t = threshold_for_sensitivity(y, s, 0.95)
    sens, spec = sensitivity_specificity(y, s, t)
    assert sens >= 0.95
    assert sens < 0.97  # the highest such threshold, not a trivial one
    assert 0 < spec < 1


def test_temperature_recovers_overconfidence() -> None:
    rng = np.random.default_rng(2)
    z = rng.normal(0, 2, 4000)
    y = (rng.uniform(size=z.size) < 1 / (1 + np.exp(-z))).astype(int)
    assert fit_temperature(y, 3 * z) == pytest.approx(3.0, rel=0.15)


def test_bootstrap_interval_contains_estimate() -> None:
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 80)
    s = rng.normal(y, 1.0)
    lo, hi = bootstrap_ci(lambda i: roc_auc(y[i], s[i]), len(y), rounds=300)
    assert lo < roc_auc(y, s) < hi
