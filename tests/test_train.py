"""The training loop: label swap under mirroring, class balance, settings file, resume."""

from __future__ import annotations

import csv
import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from lvo_triage.model_card import DEFAULT_INPUT
from lvo_triage.train.dataset import CaseArrays
from lvo_triage.train.loop import TrainConfig, augment, balanced_order, train

REPO = Path(__file__).resolve().parents[1]


def test_configs_train_yaml_equals_the_defaults() -> None:
    values = yaml.safe_load((REPO / "configs" / "train.yaml").read_text())
    assert values == asdict(TrainConfig())


def test_mirroring_swaps_the_side_label_and_nothing_else() -> None:
    rng = np.random.default_rng(0)
    x = torch.zeros(16, 1, 20, 12, 10)
    x[:, :, :5] = 0.8  # bright on the patient's left (low index of axis 2 of NCXYZ)
    left = torch.ones(16, dtype=torch.int64)
    out, new_left = augment(x, left.clone(), rng, shift=0, affine_prob=0.0)
    bright_left = out[:, 0, :10].mean(dim=(1, 2, 3)) > out[:, 0, 10:].mean(dim=(1, 2, 3))
    assert torch.equal(bright_left, new_left.bool())
    assert 0 < int(new_left.sum()) < 16  # some were mirrored, some not


def test_random_affine_keeps_shape_and_range() -> None:
    rng = np.random.default_rng(1)
    x = torch.rand(2, 1, 20, 24, 16)
    out, _ = augment(x, torch.zeros(2, dtype=torch.int64), rng, shift=1, affine_prob=1.0)
    assert out.shape == x.shape and float(out.min()) >= 0.0 and float(out.max()) <= 1.0


def _asymmetry(x: torch.Tensor) -> float:
    """Mean |x - mirror(x)| about the left-right centre plane of NCXYZ volumes."""
    return float((x - torch.flip(x, dims=[2])).abs().mean())


def test_midline_keeping_augmentation_leaves_the_midline_in_place() -> None:
    # an off-midline structure mirrored onto the other side: a symmetric head, like an aligned one
    x = torch.zeros(16, 1, 24, 28, 20)
    x[:, :, 4:8, 8:20, 6:14] = 0.6
    x = torch.maximum(x, torch.flip(x, dims=[2]))
    left = torch.zeros(16, dtype=torch.int64)
    kept, _ = augment(x, left, np.random.default_rng(4), 3, 1.0, keep_midline=True)
    free, _ = augment(x, left, np.random.default_rng(4), 3, 1.0, keep_midline=False)
    # noise (sigma 0.01) sets a floor for both; free shifts and turns break the symmetry
    assert _asymmetry(kept) < 0.5 * _asymmetry(free)
    assert not torch.allclose(kept, x, atol=0.05)  # it did augment (shifts along y/z, pitch)


def test_balanced_order_draws_both_classes_equally() -> None:
    lvo = np.array([1] * 10 + [0] * 90)
    order = balanced_order(lvo, np.random.default_rng(2))
    assert len(order) == 100 and 0.35 < lvo[order].mean() < 0.65
    even = np.array([1, 0] * 20)
    assert sorted(balanced_order(even, np.random.default_rng(3))) == list(range(40))


def _cases(n: int, seed: int) -> CaseArrays:
    rng = np.random.default_rng(seed)
    x = (rng.random((n, 1, *DEFAULT_INPUT.shape)) * 60).astype(np.uint8)
    lvo = np.array([i % 2 for i in range(n)])
    x[lvo == 1, :, :20, 40:60, 30:40] = 200  # a crude left-sided "finding"
    return CaseArrays(
        x=x,
        lvo=lvo,
        left=lvo.copy(),
        site=np.where(lvo == 1, 1, -1),
        seeds=np.arange(seed, seed + n),
    )


def test_an_interrupted_run_resumes_where_it_stopped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lvo_triage.train import loop

    torch.set_num_threads(2)
    cfg = TrainConfig(epochs=3, batch_size=4, width=4, affine_prob=0.0)
    data, val = _cases(8, 0), _cases(4, 100)
    real = loop._validate
    calls = []

    def crash_in_epoch_3(net: torch.nn.Module, cases: CaseArrays) -> dict[str, float]:
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt  # the machine went away during epoch 3
        return real(net, cases)  # type: ignore[arg-type]

    monkeypatch.setattr(loop, "_validate", crash_in_epoch_3)
    with pytest.raises(KeyboardInterrupt):
        train(data, val, spec=DEFAULT_INPUT, cfg=cfg, out=tmp_path)
    monkeypatch.setattr(loop, "_validate", real)
    summary = train(data, val, spec=DEFAULT_INPUT, cfg=cfg, out=tmp_path, resume=True)
    with (tmp_path / "metrics.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert [r["epoch"] for r in rows] == ["1", "2", "3"]
    assert {"val_auc", "val_side_acc", "val_site_acc"} <= set(rows[0])
    saved = json.loads((tmp_path / "training.json").read_text())
    assert saved["threshold"] == summary["threshold"]
    assert set(saved["validation_at_threshold"]) == {"sensitivity", "specificity"}
    assert (tmp_path / "best.pt").exists() and (tmp_path / "last.pt").exists()


def test_a_nifti_dataset_trains_and_exports_with_the_scripts(tmp_path: Path) -> None:
    """The researcher's path, end to end, without code changes: generated NIfTI dataset →
    scripts/train.py --data → scripts/export_onnx.py → the pipeline's Detector loads it."""
    import subprocess
    import sys

    from lvo_triage.config import ModelSettings
    from lvo_triage.inference import Detector
    from lvo_triage.synth import write_dataset

    data = write_dataset(tmp_path / "data", n=8, seed=21, fast=True, nifti=True, progress=False)
    assert len(list(data.glob("*.nii.gz"))) == 8

    def script(*args: str | Path) -> None:
        cmd = [sys.executable, str(REPO / "scripts" / str(args[0])), *map(str, args[1:])]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-2000:]

    run = tmp_path / "run"
    script("train.py", "--data", data, "--out", run, "--epochs", "1", "--workers", "0")
    assert json.loads((run / "training.json").read_text())["data"] == str(data.resolve())
    model = tmp_path / "tiny.onnx"
    script("export_onnx.py", run, "--out", model, "--name", "tiny")
    detector = Detector(settings=ModelSettings(path=model))
    assert detector.card.name == "tiny"
    prediction = detector.predict(np.zeros((1, 1, *DEFAULT_INPUT.shape), dtype=np.float32))
    assert set(prediction.p_site) == {"ICA-T", "M1", "M2"}


def test_an_older_checkpoint_initialises_what_fits_and_the_rest_starts_fresh(
    tmp_path: Path,
) -> None:
    from lvo_triage.train.loop import _initialise
    from lvo_triage.train.network import LvoNet

    torch.manual_seed(3)
    old = LvoNet(depth=DEFAULT_INPUT.shape[2], width=4)
    state = old.state_dict()
    state["lvo_head.0.weight"] = torch.zeros(32, 3 * old.encoder.channels)  # before the counts
    del state["counts.level"]
    torch.save({"state_dict": state}, tmp_path / "old.pt")
    net = LvoNet(depth=DEFAULT_INPUT.shape[2], width=4)
    fresh_head = net.lvo_head[0].weight.detach().clone()
    _initialise(net, tmp_path / "old.pt")
    loaded = net.state_dict()
    assert torch.equal(loaded["encoder.layers.0.0.weight"], state["encoder.layers.0.0.weight"])
    assert torch.equal(loaded["lvo_head.0.weight"], fresh_head)  # another shape: not loaded
    assert torch.equal(loaded["side_head.0.weight"], state["side_head.0.weight"])


def test_family_b_training_cases_carry_the_labels_of_their_phantoms() -> None:
    from lvo_triage.synth_b import sample_case
    from lvo_triage.train.dataset import SITE_CODES, build_cases, training_site

    seeds = [1_000_000, 1_000_001]
    cases = build_cases(seeds, spec=DEFAULT_INPUT, spacing_mm=4.0, workers=1, family="b")
    assert cases.x.shape == (2, 1, *DEFAULT_INPUT.shape) and cases.x.dtype == np.uint8
    assert cases.x.max() > 200  # arteries and bone, not an empty grid
    assert list(cases.lvo) == [1, 0]
    occ = sample_case(seeds[0], lvo=True, site=training_site(seeds[0])).occlusion
    assert occ is not None
    assert cases.site[0] == SITE_CODES[occ.site] and cases.left[0] == int(occ.side == "left")
    assert cases.site[1] == -1
    with pytest.raises(ValueError, match="phantom family 'c'"):
        build_cases(seeds, spec=DEFAULT_INPUT, family="c")


def test_domain_randomisation_dims_arteries_and_cuts_the_coverage() -> None:
    from lvo_triage.train.loop import BRAIN_LEVEL, _domain

    x = torch.full((1, 20, 24, 30), BRAIN_LEVEL)
    x[:, 8:12, 10:14, :] = 0.85  # an artery along the head's axis
    seen = {"dim": 0, "cut": 0}
    rng = np.random.default_rng(5)
    for _ in range(40):
        out = _domain(x.clone(), rng, prob=0.5)
        assert out.shape == x.shape
        artery = out[:, 8:12, 10:14, 10:20]
        if float(artery.mean()) < 0.8:
            seen["dim"] += 1
        if float(out[:, :, :, -1].abs().max()) == 0.0 or float(out[:, :, :, 0].abs().max()) == 0.0:
            seen["cut"] += 1
    assert seen["dim"] >= 5 and seen["cut"] >= 5
    assert torch.equal(_domain(x.clone(), rng, prob=0.0), x)  # probability 0: unchanged


def test_training_with_domain_randomisation_runs_and_keeps_the_range() -> None:
    rng = np.random.default_rng(6)
    x = torch.rand(4, 1, 20, 24, 16)
    out, _ = augment(x, torch.zeros(4, dtype=torch.int64), rng, 1, 0.0, True, domain_prob=1.0)
    assert out.shape == x.shape and float(out.min()) >= 0.0 and float(out.max()) <= 1.0
