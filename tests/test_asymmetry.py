"""The non-learned second opinion (``lvo_triage/asymmetry.py``): opacified vessel voxels per MCA
territory, on the detector's own input; in the result document, the key image and ``bench``."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from lvo_triage.asymmetry import vessel_asymmetry
from lvo_triage.config import Settings
from lvo_triage.model_card import InputSpec
from lvo_triage.pipeline import Runtime, triage_path
from lvo_triage.result import Side

SPEC = InputSpec(shape=(88, 104, 72), spacing_mm=2.0, window_hu=(-100.0, 600.0))


def _window(hu: np.ndarray) -> np.ndarray:
    lo, hi = SPEC.window_hu
    return np.clip((hu - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)[None, None]


def _head(*, left_vessels: bool = True, right_vessels: bool = True) -> np.ndarray:
    """A brain of 35 HU with a 500 HU artery in the centre and short 300 HU branches in each
    hemisphere's MCA box; axis 0 runs from the patient's left (index 0) to the right."""
    hu = np.full(SPEC.shape, 35.0, dtype=np.float32)
    hu[40:48, 40:60, 25:35] = 500.0  # the circle of Willis: the arterial peak
    for x in range(14, 38, 6):
        if left_vessels:
            hu[x, 30:70, 30:45] = 300.0
        if right_vessels:
            hu[SPEC.shape[0] - 1 - x, 30:70, 30:45] = 300.0
    return hu


def test_a_symmetric_head_scores_zero() -> None:
    second = vessel_asymmetry(_window(_head()), SPEC)
    assert second.score == 0.0
    assert second.left_ml == second.right_ml > 0


@pytest.mark.parametrize(("missing", "side"), [("left", Side.LEFT), ("right", Side.RIGHT)])
def test_the_hemisphere_without_vessels_is_named(missing: str, side: Side) -> None:
    hu = _head(left_vessels=missing != "left", right_vessels=missing != "right")
    second = vessel_asymmetry(_window(hu), SPEC)
    assert second.hemisphere is side and second.score == pytest.approx(1.0)


def test_bone_and_its_rim_are_not_vessels() -> None:
    hu = _head()
    hu[4:8, 30:70, 30:45] = 1500.0  # skull on the left only, and bright voxels beside it
    hu[8:10, 30:70, 30:45] = 300.0
    second = vessel_asymmetry(_window(hu), SPEC)
    assert second.score == pytest.approx(0.0, abs=0.02)


def test_a_left_m1_occlusion_leaves_the_left_poorer(
    fast_study: Path, tmp_path: Path, bundled_model: Path
) -> None:
    from lvo_triage.synth import sample_spec, write_study

    engine = Runtime.create(Settings())
    (occluded,) = triage_path(engine, fast_study)
    spec = sample_spec(9_500_001, case_id="e2e", lvo=True, side="left", site="M1")
    write_study(dataclasses.replace(spec, lvo=False, side=None, site=None), tmp_path, fast=True)
    (normal,) = triage_path(engine, tmp_path)
    assert occluded.vessel_asymmetry is not None and normal.vessel_asymmetry is not None
    assert occluded.vessel_asymmetry.hemisphere is Side.LEFT
    assert occluded.vessel_asymmetry.score > normal.vessel_asymmetry.score
    assert occluded.vessel_asymmetry.left_ml < normal.vessel_asymmetry.left_ml


def test_no_second_opinion_without_an_analysis(plain_study: Path, bundled_model: Path) -> None:
    (result,) = triage_path(Runtime.create(Settings()), plain_study)  # no contrast
    assert result.to_dict()["vessel_asymmetry"] is None


def test_the_key_image_banner_shows_it() -> None:
    from lvo_triage.outputs.key_image import banner_lines

    second = vessel_asymmetry(_window(_head(left_vessels=False)), SPEC)
    _, detail, _ = banner_lines(
        lvo_suspected=True, side=Side.LEFT, probability=0.9, site="M1", threshold=0.5,
        asymmetry=second,
    )  # fmt: skip
    assert "vessel asymmetry 1.00, fewer LEFT" in detail
