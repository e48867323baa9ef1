"""Mid-sagittal alignment: a symmetric head turned, tilted and moved is brought back."""

from __future__ import annotations

import numpy as np
import pytest

from lvo_triage.midline import _resample, _thetas, align_midline, estimate_pose

SPACING = 2.0
SHAPE = (88, 104, 72)


def _symmetric_head() -> np.ndarray:
    """A skull-like ellipsoidal shell with a mirror-symmetric pair of bright vessels and a midline
    falx, on the model grid (RAS voxel centres, x = left-right), values in [0, 1]."""
    x, y, z = np.meshgrid(*[(np.arange(n) - (n - 1) / 2) * SPACING for n in SHAPE], indexing="ij")
    r = np.sqrt((x / 70) ** 2 + (y / 90) ** 2 + (z / 60) ** 2)
    head = np.where(r < 1.0, 0.25, 0.0) + np.where((r >= 0.9) & (r < 1.0), 0.75, 0.0)
    for side in (-1, 1):  # vessels: tubes running front to back, off the midline
        head += 0.6 * np.exp(-(((x - side * 30) ** 2 + (z - 10) ** 2) / (2 * 3.0**2))) * (r < 0.9)
    head += 0.3 * np.exp(-(x**2) / (2 * 1.5**2)) * (r < 0.9) * (z > 0)  # falx
    head[:, y.shape[1] // 2 + 20 :, :] *= 1.1  # front and back differ, as in a head
    return np.clip(head, 0, 1).astype(np.float32)[None, None]


def _posed(volume: np.ndarray, yaw: float, roll: float, shift: float) -> np.ndarray:
    import torch

    params = np.array([[np.radians(yaw), np.radians(roll), shift]])
    theta = _thetas(volume.shape[2:], params, SPACING)
    # the head at pose p: sample the upright head at the inverse transform
    full = torch.cat([theta, torch.tensor([[[0.0, 0.0, 0.0, 1.0]]])], 1)
    inverse = torch.linalg.inv(full)[:, :3]
    return _resample(torch.from_numpy(volume), inverse).numpy()


@pytest.mark.parametrize(("yaw", "roll", "shift"), [(7.0, -5.0, 6.0), (-11.0, 3.0, -9.0)])
def test_a_turned_tilted_moved_head_is_brought_back(yaw: float, roll: float, shift: float) -> None:
    upright = _symmetric_head()
    posed = _posed(upright, yaw, roll, shift)
    import torch

    pose = estimate_pose(torch.from_numpy(posed), SPACING)
    assert pose.yaw_deg == pytest.approx(yaw, abs=1.0)
    assert pose.roll_deg == pytest.approx(roll, abs=1.0)
    assert pose.shift_mm == pytest.approx(shift, abs=1.0)
    aligned, _ = align_midline(posed, SPACING)
    mirror_error = np.abs(aligned - aligned[:, :, ::-1]).mean()
    assert mirror_error < 0.3 * np.abs(posed - posed[:, :, ::-1]).mean()


def test_an_upright_head_is_left_as_it_is() -> None:
    upright = _symmetric_head()
    aligned, pose = align_midline(upright, SPACING)
    assert abs(pose.yaw_deg) < 0.5 and abs(pose.roll_deg) < 0.5 and abs(pose.shift_mm) < 0.5
    inside = upright > 0
    assert np.abs(aligned - upright)[inside].mean() < 0.02


def test_the_model_card_says_whether_to_align() -> None:
    from dataclasses import replace

    from lvo_triage.model_card import DEFAULT_INPUT, InputSpec

    assert not DEFAULT_INPUT.align_midline
    old_card = DEFAULT_INPUT.to_dict()
    del old_card["align_midline"]
    assert not InputSpec.from_dict(old_card).align_midline  # cards written before the field
    aligned = replace(DEFAULT_INPUT, align_midline=True)
    assert InputSpec.from_dict(aligned.to_dict()) == aligned


def test_the_preprocessor_aligns_when_the_card_asks() -> None:
    from dataclasses import replace

    from lvo_triage.model_card import DEFAULT_INPUT
    from lvo_triage.preprocess import Preprocessor
    from tests.test_preprocess import _grid, _head_with_left_blob

    shape = (150, 131, 120)
    volume = _head_with_left_blob(_grid(np.diag([-1.0, 1.0, -1.0]), 1.3, shape), shape)
    plain = Preprocessor(spec=DEFAULT_INPUT)(volume)
    aligned = Preprocessor(spec=replace(DEFAULT_INPUT, align_midline=True))(volume)
    expected, _ = align_midline(plain, DEFAULT_INPUT.spacing_mm)
    np.testing.assert_allclose(aligned, expected, atol=1e-6)
