"""The detector's mirror properties and the ONNX export's parity with torch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from lvo_triage.model_card import DEFAULT_INPUT
from lvo_triage.train.export import export_onnx, parity
from lvo_triage.train.network import COUNT_REGIONS, ExportWrapper, LvoNet, VesselCounts


def test_mirroring_the_head_swaps_the_side_and_keeps_the_lvo_score() -> None:
    torch.manual_seed(0)
    net = LvoNet(depth=24, width=4).eval()
    x = torch.rand(2, 1, 32, 40, 24)
    with torch.no_grad():
        lvo, side, site = net(x)
        lvo_m, side_m, site_m = net(torch.flip(x, dims=[2]))
    assert torch.allclose(lvo, lvo_m, atol=1e-5)
    assert torch.allclose(site, site_m, atol=1e-5)  # the site does not depend on the side
    assert torch.allclose(side, -side_m, atol=1e-5)
    assert side.abs().min() > 0  # not trivially zero


def test_a_symmetric_head_has_no_side_preference() -> None:
    torch.manual_seed(1)
    net = LvoNet(depth=24, width=4).eval()
    half = torch.rand(1, 1, 16, 40, 24)
    x = torch.cat([half, torch.flip(half, dims=[2])], dim=2)
    with torch.no_grad():
        _, side, _ = net(x)
    assert abs(float(side)) < 1e-5


def test_vessel_counts_name_the_hemisphere_that_lacks_vessels() -> None:
    counts = VesselCounts(slabs=3)
    half = torch.full((1, 3, 16, 40), 0.2)  # brain
    half[:, :, 2:16:3, 2:38:4] = 0.8  # vessels
    m = torch.cat([half, torch.flip(half, dims=[2])], dim=2)  # mirror-symmetric head
    occluded = m.clone()
    occluded[:, 1, :16, 20:30] = 0.2  # slab 1 loses the vessels of the patient's left, posteriorly
    with torch.no_grad():
        normal, deficit = counts(m), counts(occluded)
        mirrored = counts(torch.flip(occluded, dims=[2]))
    assert float(normal.abs().max()) < 1e-5
    per_slab = deficit.view(3, -1)
    assert float(per_slab[1].min()) < -0.25  # left - right < 0: fewer vessels on the left
    assert float(per_slab[[0, 2]].abs().max()) < 1e-5
    assert torch.allclose(mirrored, -deficit, atol=1e-6)
    assert per_slab.shape[1] == COUNT_REGIONS[0] * COUNT_REGIONS[1]


def test_onnx_export_matches_torch(tmp_path: Path) -> None:
    torch.manual_seed(2)
    wrapper = ExportWrapper(LvoNet(depth=DEFAULT_INPUT.shape[2], width=4), temperature=1.7).eval()
    path = tmp_path / "m.onnx"
    export_onnx(wrapper, DEFAULT_INPUT, path)
    inputs = np.random.default_rng(0).random((2, 1, *DEFAULT_INPUT.shape), dtype=np.float32)
    assert parity(wrapper, path, inputs) < 1e-4


def test_slab_mips_drop_bone_and_keep_vessels() -> None:
    from lvo_triage.train.network import n_slabs, slab_mips

    x = torch.full((1, 1, 20, 20, 24), 0.2)
    x[0, 0, 0:2] = 1.0  # a wall of bone at the patient's left edge
    x[0, 0, 10, 10, 5] = 0.7  # one bright vessel voxel
    m = slab_mips(x)
    assert m.shape == (1, n_slabs(24), 20, 20)
    assert float(m[0, :, 0:3].max()) == 0.0  # bone and its rim are gone
    assert float(m[0, 0, 10, 10]) == pytest.approx(0.7)
    assert float(m[0, -1, 10, 10]) == pytest.approx(0.2)  # a slab that does not hold it


def _summary() -> dict[str, object]:
    return {
        "input": DEFAULT_INPUT.to_dict(),
        "threshold": 0.3,
        "target_sensitivity": 0.95,
        "validation_at_threshold": {"sensitivity": 0.96, "specificity": 0.9},
        "temperature": 1.7,
        "n_train": 10,
        "n_val": 4,
        "train_seeds": [0, 9],
        "val_seeds": [10, 13],
        "config": {},
        "best_val_auc": 0.9,
    }


def test_export_embeds_the_model_card_and_int8_runs(tmp_path: Path) -> None:
    import json

    from lvo_triage.model_card import ModelCard, card_path, sha256_of
    from lvo_triage.train.export import (
        CARD_KEY,
        onnx_outputs,
        quantize_int8,
        read_metadata,
        write_card,
    )

    torch.manual_seed(3)
    wrapper = ExportWrapper(LvoNet(depth=DEFAULT_INPUT.shape[2], width=4), temperature=1.7).eval()
    path = tmp_path / "m.onnx"
    export_onnx(wrapper, DEFAULT_INPUT, path)
    card = write_card(path, _summary(), name="tiny", version="0.0.1")
    meta = read_metadata(path)
    assert "NOT FOR CLINICAL USE" in meta["intended_use"]
    embedded = json.loads(meta[CARD_KEY])
    assert embedded["threshold"] == 0.3
    assert embedded["operating_point"]["expected_specificity"] == 0.9
    assert card["sha256"] == sha256_of(path)  # taken after embedding: the Detector accepts it
    assert ModelCard.load(path).threshold == 0.3
    assert json.loads(card_path(path).read_text())["size_bytes"] == path.stat().st_size
    x = np.random.default_rng(1).random((6, 1, *DEFAULT_INPUT.shape), dtype=np.float32)
    quantize_int8(path, tmp_path / "m-int8.onnx", x[:4])
    p32, _ = onnx_outputs(path, x)
    p8, _ = onnx_outputs(tmp_path / "m-int8.onnx", x)
    assert p8.shape == p32.shape and np.all((p8 >= 0) & (p8 <= 1))
