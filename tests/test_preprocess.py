"""The model grid: shape, range, and the patient's left on the same side for any orientation."""

from __future__ import annotations

import numpy as np
import pytest

from lvo_triage.dicom.volume_types import Volume
from lvo_triage.errors import NotAnalyzable
from lvo_triage.model_card import DEFAULT_INPUT
from lvo_triage.preprocess import Preprocessor


def _head_with_left_blob(affine: np.ndarray, shape: tuple[int, int, int]) -> Volume:
    """A 'head' ellipsoid of 30 HU with a 400 HU blob at patient-left (LPS x = +40 mm)."""
    idx = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), axis=-1)
    xyz = idx @ affine[:3, :3].T + affine[:3, 3]
    x, y, z = xyz[..., 0], xyz[..., 1], xyz[..., 2]
    hu = np.full(shape, -1000.0, dtype=np.float32)
    hu[(x / 70) ** 2 + (y / 90) ** 2 + (z / 70) ** 2 < 1] = 30.0
    hu[(x - 40) ** 2 + y**2 + z**2 < 15**2] = 400.0
    return Volume(hu=hu, affine=affine)


def _grid(directions: np.ndarray, spacing: float, shape: tuple[int, int, int]) -> np.ndarray:
    affine = np.eye(4)
    affine[:3, :3] = directions * spacing
    affine[:3, 3] = -affine[:3, :3] @ (np.asarray(shape) - 1) / 2
    return affine


@pytest.mark.parametrize(
    "directions",
    [
        np.eye(3),  # axial, head first
        np.diag([-1.0, 1.0, 1.0]),  # rows running right-to-left
        np.diag([1.0, -1.0, -1.0]),  # feet-first style: slices going down
        np.array([[1.0, 0, 0], [0, 0, -1], [0, 1, 0]]),  # coronal source
        np.array([[0, 0, 1.0], [1.0, 0, 0], [0, 1, 0]]),  # sagittal source
    ],
)
def test_patient_left_lands_in_the_low_half_of_axis0(directions: np.ndarray) -> None:
    shape = (80, 80, 80)
    volume = _head_with_left_blob(_grid(directions, 2.5, shape), shape)
    x = Preprocessor(spec=DEFAULT_INPUT)(volume)
    assert x.shape == (1, 1, *DEFAULT_INPUT.shape)
    assert x.dtype == np.float32 and x.min() >= 0.0 and x.max() <= 1.0
    bright = np.argwhere(x[0, 0] > 0.5)
    assert len(bright) > 50
    assert bright[:, 0].mean() < DEFAULT_INPUT.shape[0] / 2 - 5


def test_empty_volume_is_not_analyzable() -> None:
    volume = Volume(hu=np.full((40, 40, 40), -1000.0, dtype=np.float32), affine=np.eye(4))
    with pytest.raises(NotAnalyzable, match="no head"):
        Preprocessor(spec=DEFAULT_INPUT)(volume)


def _orient_first(volume: Volume) -> np.ndarray:
    """The chain as first written (orient to RAS, then crop, resize, window, fit), for reference."""
    import torch
    from monai.data import MetaTensor
    from monai.transforms import (
        CropForeground,
        Orientation,
        Resize,
        ResizeWithPadOrCrop,
        ScaleIntensityRange,
    )

    from lvo_triage.preprocess import LPS_TO_RAS

    spec = DEFAULT_INPUT
    image = MetaTensor(
        torch.from_numpy(np.ascontiguousarray(volume.hu))[None],
        affine=torch.as_tensor(LPS_TO_RAS @ volume.affine, dtype=torch.float64),
    )
    image = Orientation(axcodes="RAS", labels=None)(image)
    crop = CropForeground(select_fn=lambda x: x > spec.foreground_hu, margin=2, allow_smaller=True)
    image = crop(image)
    spacing = np.linalg.norm(np.asarray(image.affine)[:3, :3], axis=0)
    size = [round(n * s / spec.spacing_mm) for n, s in zip(image.shape[1:], spacing, strict=True)]
    image = Resize(spatial_size=size, mode="area")(image)
    lo, hi = spec.window_hu
    image = ScaleIntensityRange(a_min=lo, a_max=hi, b_min=0.0, b_max=1.0, clip=True)(image)
    image = ResizeWithPadOrCrop(spatial_size=spec.shape, mode="constant")(image)
    return np.asarray(image.as_tensor())[None]


@pytest.mark.parametrize(
    "directions",
    [np.diag([-1.0, 1.0, -1.0]), np.array([[0, 0, 1.0], [1.0, 0, 0], [0, 1, 0]])],
    ids=["feet-first", "sagittal"],
)
def test_cropping_before_orienting_changes_nothing(directions: np.ndarray) -> None:
    volume = _head_with_left_blob(_grid(directions, 1.3, (150, 131, 120)), (150, 131, 120))
    reference = _orient_first(volume)
    prep = Preprocessor(spec=DEFAULT_INPUT)
    np.testing.assert_allclose(prep(volume), reference, atol=1e-6)
    # the loader's layout: a transposed view of a slice-major array
    view = Volume(hu=np.ascontiguousarray(volume.hu.transpose(2, 1, 0)).T, affine=volume.affine)
    np.testing.assert_allclose(prep(view), reference, atol=1e-6)


@pytest.mark.parametrize("where", ["inside", "touching the edges", "one voxel"])
def test_head_box_crops_what_monai_crop_foreground_crops(where: str) -> None:
    import torch
    from monai.transforms import CropForeground

    from lvo_triage.preprocess import SLAB, head_box

    rng = np.random.default_rng(3)
    data = np.full((SLAB * 2 + 5, 40, 33), -1000.0, dtype=np.float32)
    if where == "inside":
        data[10:50, 5:30, 7:20] = rng.normal(0, 300, (40, 25, 13))
    elif where == "touching the edges":
        data[0:70, 1:40, 0:2] = rng.normal(0, 300, (69, 39, 2))
    else:
        data[SLAB, 20, 16] = 40.0
    expected = CropForeground(select_fn=lambda x: x > -500, margin=2, allow_smaller=True)(
        torch.from_numpy(data)[None]
    )
    count, box = head_box(data, -500.0)
    assert count == int((data > -500).sum())
    np.testing.assert_array_equal(data[tuple(box)], np.asarray(expected)[0])


def test_dilate_is_a_max_pool() -> None:
    import torch

    from lvo_triage.preprocess import dilate

    mask = np.random.default_rng(4).random((30, 24, 17)) > 0.97
    pooled = torch.nn.functional.max_pool3d(
        torch.from_numpy(mask.astype(np.float32))[None, None], 5, stride=1, padding=2
    )
    np.testing.assert_array_equal(dilate(mask, 2), pooled[0, 0].numpy() > 0)


def _head_with_artery(directions: np.ndarray) -> Volume:
    """The blob head at 0.5 mm, without its blob, with a 2 mm-wide 400 HU 'artery' (an M2 trunk)
    running along y on the patient's left."""
    shape = (120, 120, 120)
    volume = _head_with_left_blob(_grid(directions, 0.5, shape), shape)
    hu = volume.hu.copy()
    idx = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), axis=-1)
    xyz = idx @ volume.affine[:3, :3].T + volume.affine[:3, 3]
    hu[(xyz[..., 0] - 15) ** 2 + xyz[..., 2] ** 2 < 1.0**2] = 400.0  # LPS x > 0: left
    hu[(xyz[..., 0] - 40) ** 2 + xyz[..., 1] ** 2 + xyz[..., 2] ** 2 < 15**2] = 30.0  # no blob
    return Volume(hu=hu, affine=volume.affine)


@pytest.mark.parametrize("directions", [np.eye(3), np.diag([-1.0, 1.0, -1.0])])
def test_max_downsampling_keeps_a_thin_artery_bright_and_the_grid_in_place(
    directions: np.ndarray,
) -> None:
    from dataclasses import replace

    volume = _head_with_artery(directions)
    area = Preprocessor(spec=DEFAULT_INPUT)(volume)[0, 0]
    peak = Preprocessor(spec=replace(DEFAULT_INPUT, downsample="max"))(volume)[0, 0]
    artery = (400 + 100) / 700  # 400 HU in the [-100, 600] window
    brain = (30 + 100) / 700
    # averaged into 2 mm voxels the artery keeps under half its contrast (0.375 measured); the
    # maximum of 1 mm voxels keeps three quarters of it
    assert area.max() < brain + 0.5 * (artery - brain)
    assert peak.max() > brain + 0.65 * (artery - brain)
    # same head box and orientation: the artery lies in the same voxels, on the patient's left
    where_area = np.unravel_index(int(area.argmax()), area.shape)
    where_peak = np.unravel_index(int(peak.argmax()), peak.shape)
    assert abs(where_area[0] - where_peak[0]) <= 1 and abs(where_area[2] - where_peak[2]) <= 1
    assert where_peak[0] < DEFAULT_INPUT.shape[0] / 2
    # the brain itself keeps its level (a max of noise-free tissue is the tissue)
    middle = tuple(n // 2 for n in DEFAULT_INPUT.shape)
    assert abs(float(peak[middle]) - brain) < 0.01


def test_unknown_downsample_mode_is_refused() -> None:
    from dataclasses import replace

    with pytest.raises(ValueError, match="downsample"):
        replace(DEFAULT_INPUT, downsample="median")
