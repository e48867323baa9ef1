"""A small detector trained from scratch learns: the recipe does not depend on older weights.

Phantoms of family A rendered on a 2 mm grid (fast), occlusions at the ICA terminus and M1 (an
M2 trunk is about one voxel of such a grid), the default training settings with a narrower
network and fewer epochs; held-out phantoms from the test seed range.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from lvo_triage.metrics import roc_auc
from lvo_triage.model_card import DEFAULT_INPUT
from lvo_triage.train.dataset import CaseArrays, build_cases
from lvo_triage.train.loop import TrainConfig, predict_logits, train
from lvo_triage.train.network import LvoNet
from lvo_triage.train.seeds import TEST_BASE, TRAIN_BASE, VAL_BASE

SPEC = replace(DEFAULT_INPUT, align_midline=True, downsample="max")
SITES = ("ICA-T", "M1")


@pytest.mark.slow
def test_a_detector_trained_from_scratch_learns(tmp_path: Path) -> None:
    torch.set_num_threads(2)

    def cases(base: int, n: int) -> CaseArrays:
        seeds = list(range(base, base + n))
        return build_cases(seeds, spec=SPEC, spacing_mm=2.0, workers=2, sites=SITES)

    data, val, test = cases(TRAIN_BASE, 320), cases(VAL_BASE, 80), cases(TEST_BASE + 50_000, 80)
    cfg = TrainConfig(epochs=8, width=8, affine_prob=0.0)
    summary = train(data, val, spec=SPEC, cfg=cfg, out=tmp_path)
    net = LvoNet(depth=SPEC.shape[2], width=cfg.width)
    net.load_state_dict(torch.load(tmp_path / "best.pt")["state_dict"])
    lvo_logit, side_logit, _ = predict_logits(net, test)
    auc = roc_auc(test.lvo, lvo_logit)
    print(f"from scratch: validation AUC {summary['best_val_auc']}, held-out AUC {auc:.3f}")
    assert auc >= 0.9
    pos = test.lvo == 1
    side_ok = (side_logit[pos] > 0).astype(int) == test.left[pos]
    assert float(np.mean(side_ok)) >= 0.8
