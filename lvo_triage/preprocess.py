"""MONAI transforms from an HU volume to the model grid.

The chain (also used to build training data, so that researchers train on what inference sees):
crop to the head → one anti-aliased (area) resize to the model spacing → orient to RAS →
intensity window to [0, 1] → centre pad/crop to the model shape. Cropping and resizing first, in
the order the volume lies in memory, gives the same result as orienting first, much faster.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from monai.data import MetaTensor
from monai.transforms import (
    CropForeground,
    Orientation,
    Resize,
    ResizeWithPadOrCrop,
    ScaleIntensityRange,
)

from lvo_triage.dicom.volume_types import LPS_TO_RAS, Volume
from lvo_triage.errors import NotAnalyzable
from lvo_triage.model_card import InputSpec

MIN_HEAD_VOXELS = 1000
BONE_LEVEL = 0.99  # of the window: bone saturates the model input
ARTERIAL_BOX = ((0.2, 0.8), (0.2, 0.8), (0.3, 0.6))  # central head, above the skull base
TOP_VOXELS = 50


def in_memory_order(hu: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The same volume with its axes in memory order (C-contiguous, no copy when ``hu`` is a
    transposed view, as the loader returns it) and the affine's columns permuted to match;
    Orientation then brings it to RAS in one pass instead of a slow strided copy first."""
    order = np.argsort([-abs(s) for s in hu.strides], kind="stable")
    data = np.ascontiguousarray(hu.transpose(order))
    permuted = affine.copy()
    permuted[:3, :3] = affine[:3, :3][:, order]
    return data, permuted


class Preprocessor:
    """Builds the MONAI transforms once; call it with a :class:`Volume`."""

    def __init__(self, *, spec: InputSpec) -> None:
        self.spec = spec
        threshold = spec.foreground_hu
        self._orient = Orientation(axcodes="RAS", labels=None)
        self._crop = CropForeground(select_fn=lambda x: x > threshold, margin=2, allow_smaller=True)
        lo, hi = spec.window_hu
        self._window = ScaleIntensityRange(a_min=lo, a_max=hi, b_min=0.0, b_max=1.0, clip=True)
        self._fit = ResizeWithPadOrCrop(spatial_size=spec.shape, mode="constant")

    def __call__(self, volume: Volume) -> np.ndarray:
        """The model input, float32 of shape ``(1, 1, *spec.shape)``."""
        data, affine = in_memory_order(volume.hu, volume.affine)
        image: Any = MetaTensor(
            torch.from_numpy(data)[None],
            affine=torch.as_tensor(LPS_TO_RAS @ affine, dtype=torch.float64),
        )
        if int((image > self.spec.foreground_hu).sum()) < MIN_HEAD_VOXELS:
            msg = "no head found in the images (nothing denser than air)"
            raise NotAnalyzable(msg)
        # Crop and shrink in memory order, then orient the small result: the same output as
        # orienting first (flips and axis swaps commute with both), without moving 400 MB.
        image = self._crop(image)
        spacing = np.linalg.norm(np.asarray(image.affine)[:3, :3], axis=0)
        size = [
            max(1, round(n * s / self.spec.spacing_mm))
            for n, s in zip(image.shape[1:], spacing, strict=True)
        ]
        image = Resize(spatial_size=size, mode="area")(image)
        image = self._orient(image)
        image = self._window(image)
        image = self._fit(image)
        array = np.asarray(image.as_tensor() if isinstance(image, MetaTensor) else image)
        return array[None].astype(np.float32, copy=False)


def arterial_peak_hu(batch: np.ndarray, spec: InputSpec) -> float:
    """How bright the intracranial arteries are, measured in the model input: the mean HU of the
    brightest voxels of the central head (circle of Willis to the sylvian fissures), bone and a
    4 mm rim around it excluded. About 30-50 HU without contrast, 100-400 HU in a CTA."""
    x = torch.from_numpy(batch)
    bone = (x >= BONE_LEVEL).to(x.dtype)
    rim = torch.nn.functional.max_pool3d(bone, kernel_size=5, stride=1, padding=2) > 0
    soft = torch.where(rim, torch.zeros_like(x), x)[0, 0].numpy()
    box = tuple(
        slice(int(n * a), int(n * b)) for n, (a, b) in zip(soft.shape, ARTERIAL_BOX, strict=True)
    )
    top = np.sort(soft[box].ravel())[-TOP_VOXELS:].mean()
    lo, hi = spec.window_hu
    return float(lo + top * (hi - lo))


def require_contrast(batch: np.ndarray, spec: InputSpec, min_hu: float) -> float:
    """``NotAnalyzable`` unless the arteries are contrast-enhanced; returns the peak HU."""
    peak = arterial_peak_hu(batch, spec)
    if peak < min_hu:
        msg = (
            f"no contrast-enhanced series: peak arterial HU {peak:.0f} (a CTA shows > {min_hu:.0f})"
        )
        raise NotAnalyzable(msg)
    return peak
