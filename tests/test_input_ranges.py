"""Inputs unlike the model's training studies are measured and said (``input_ranges.py``): image
noise, arterial contrast, head rotation, slice spacing held against the model card's
``input_ranges``; a warning in the result and a caution on the key image."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from lvo_triage.config import Settings
from lvo_triage.dicom.volume_types import Volume
from lvo_triage.input_ranges import InputStats, noise_hu, outside
from lvo_triage.outputs.key_image import banner_lines
from lvo_triage.pipeline import Runtime, triage_path


@pytest.mark.parametrize("sigma", [5.0, 12.0, 25.0])
def test_the_noise_of_a_uniform_tissue_is_measured(sigma: float) -> None:
    rng = np.random.default_rng(3)
    hu = (40.0 + rng.normal(0.0, sigma, size=(96, 96, 40))).astype(np.float32)
    hu[:8], hu[-8:] = -1000.0, -1000.0  # air around it is left out
    assert noise_hu(Volume(hu=hu, affine=np.eye(4))) == pytest.approx(sigma, rel=0.1)


def test_a_measurement_outside_its_range_is_said() -> None:
    stats = InputStats(
        arterial_peak_hu=150.0, noise_hu=4.0, yaw_deg=None, roll_deg=None, slice_spacing_mm=0.6
    )
    ranges = {"arterial_peak_hu": (200.0, 500.0), "noise_hu": (2.0, 6.0)}
    ((short, sentence),) = outside(stats, ranges)
    assert short == "arterial contrast"
    assert "arterial contrast (peak) 150 HU (trained on 200 to 500 HU)" in sentence
    assert outside(stats, {}) == []  # a card without ranges: nothing to say


def test_the_banner_cautions() -> None:
    lines = banner_lines(
        lvo_suspected=False, side=None, probability=0.1, site=None, threshold=0.5,
        cautions=["image noise"],
    )  # fmt: skip
    assert lines[2] == "CAUTION: outside the training range (image noise)"
    assert lines[-1].startswith("NOT FOR CLINICAL USE")


def _model_with_ranges(tmp_path: Path, model: Path, ranges: dict[str, list[float]]) -> Path:
    copy = tmp_path / "model" / model.name
    copy.parent.mkdir()
    shutil.copy(model, copy)
    card = json.loads(model.with_suffix(".json").read_text())
    card["input_ranges"] = {"ranges": ranges}
    copy.with_suffix(".json").write_text(json.dumps(card))
    return copy


def test_a_study_unlike_the_training_studies_gets_a_warning_and_a_caution(
    fast_study: Path, tmp_path: Path, bundled_model: Path
) -> None:
    base = Settings()
    narrow = _model_with_ranges(tmp_path, bundled_model, {"noise_hu": [0.0, 0.01]})
    engine = Runtime.create(replace(base, model=replace(base.model, path=narrow)))
    (result,) = triage_path(engine, fast_study, out=tmp_path / "out")
    warned = [w for w in result.warnings if w.startswith("outside the model's training range")]
    assert len(warned) == 1 and "image noise" in warned[0]
    assert result.cautions == ["image noise"]
    wide = {name: [-1e9, 1e9] for name in ("arterial_peak_hu", "noise_hu", "yaw_deg")}
    (tmp_path / "w").mkdir()
    model = _model_with_ranges(tmp_path / "w", bundled_model, wide)
    engine = Runtime.create(replace(base, model=replace(base.model, path=model)))
    (result,) = triage_path(engine, fast_study)
    assert not [w for w in result.warnings if w.startswith("outside the model's training")]
