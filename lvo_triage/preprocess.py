"""MONAI transforms from an HU volume to the model grid.

The chain (also used to build training data, so that researchers train on what inference sees):
crop to the head → one anti-aliased (area) resize to the model spacing → orient to RAS →
intensity window to [0, 1] → centre pad/crop to the model shape → (when the model card asks for
it) the head's mid-sagittal plane moved to the grid's centre plane (``midline.py``). Cropping
and resizing first, in the order the volume lies in memory, gives the same result as orienting
first, much faster.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from monai.data import MetaTensor
from monai.transforms import (
    Orientation,
    Resize,
    ResizeWithPadOrCrop,
    ScaleIntensityRange,
    SpatialCrop,
)
from torch.nn import functional as F

from lvo_triage.dicom.volume_types import LPS_TO_RAS, Volume
from lvo_triage.errors import NotAnalyzable
from lvo_triage.midline import MidlinePose, align_midline
from lvo_triage.model_card import InputSpec

MIN_HEAD_VOXELS = 1000
BONE_LEVEL = 0.99  # of the window: bone saturates the model input
ARTERIAL_BOX = ((0.2, 0.8), (0.2, 0.8), (0.3, 0.6))  # central head, above the skull base
TOP_VOXELS = 50
RIM_VOXELS = 2  # around bone, left out of the arterial peak (4 mm at 2 mm)
CROP_MARGIN = 2  # voxels kept around the head
SLAB = 32  # slices per pass of the head search (bounds its temporary memory)


def head_box(
    data: np.ndarray, threshold: float, margin: int = CROP_MARGIN
) -> tuple[int, list[slice]]:
    """How many voxels are denser than ``threshold``, and the box around them widened by
    ``margin`` and clipped to the volume: what MONAI's ``CropForeground(margin=margin,
    allow_smaller=True)`` crops to (a test checks), in one pass over the volume in slabs of
    :data:`SLAB` slices instead of its several full-size passes (~10x faster on 400 slices)."""
    first = np.zeros(data.shape[0], dtype=bool)
    plane = np.zeros(data.shape[1:], dtype=bool)
    count = 0
    for start in range(0, data.shape[0], SLAB):
        mask = data[start : start + SLAB] > threshold
        count += int(np.count_nonzero(mask))
        first[start : start + SLAB] = mask.any(axis=(1, 2))
        plane |= mask.any(axis=0)
    if count == 0:
        return 0, []
    box = []
    for axis, flags in enumerate((first, plane.any(axis=1), plane.any(axis=0))):
        hits = np.flatnonzero(flags)
        lo = max(int(hits[0]) - margin, 0)
        hi = min(int(hits[-1]) + 1 + margin, data.shape[axis])
        box.append(slice(lo, hi))
    return count, box


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
        self._orient = Orientation(axcodes="RAS", labels=None)
        lo, hi = spec.window_hu
        self._window = ScaleIntensityRange(a_min=lo, a_max=hi, b_min=0.0, b_max=1.0, clip=True)
        self._fit = ResizeWithPadOrCrop(spatial_size=spec.shape, mode="constant")

    def _shrink(self, image: MetaTensor) -> MetaTensor:
        """Area-average the crop to the grid spacing, or (``downsample: max``) to half of it and
        then keep the maximum of each 2x2x2 block: a 2 mm voxel that a 1-2 mm artery crosses
        keeps most of the artery's contrast instead of a fraction of it."""
        half = self.spec.downsample == "max"
        target = self.spec.spacing_mm / (2.0 if half else 1.0)
        spacing = np.linalg.norm(np.asarray(image.affine)[:3, :3], axis=0)
        size = [
            max(2 if half else 1, round(n * s / target))
            for n, s in zip(image.shape[1:], spacing, strict=True)
        ]
        out: MetaTensor = Resize(spatial_size=size, mode="area")(image)
        if not half:
            return out
        pooled = F.max_pool3d(out.as_tensor()[None], kernel_size=2)[0]
        affine = torch.as_tensor(out.affine, dtype=torch.float64).clone()
        affine[:3, :3] *= 2.0  # voxel corner stays, so the first voxel centre moves half a step
        affine[:3, 3] += 0.5 * (affine[:3, :3] / 2.0).sum(dim=1)
        return MetaTensor(pooled, affine=affine)

    def __call__(self, volume: Volume) -> np.ndarray:
        """The model input, float32 of shape ``(1, 1, *spec.shape)``."""
        return self.prepare(volume)[0]

    def prepare(self, volume: Volume) -> tuple[np.ndarray, MidlinePose | None]:
        """The model input, and the head pose the mid-sagittal alignment undid (None when the
        model card does not align)."""
        data, affine = in_memory_order(volume.hu, volume.affine)
        count, box = head_box(data, self.spec.foreground_hu)
        if count < MIN_HEAD_VOXELS:
            msg = "no head found in the images (nothing denser than air)"
            raise NotAnalyzable(msg)
        image: Any = MetaTensor(
            torch.from_numpy(data)[None],
            affine=torch.as_tensor(LPS_TO_RAS @ affine, dtype=torch.float64),
        )
        # Crop and shrink in memory order, then orient the small result: the same output as
        # orienting first (flips and axis swaps commute with both), without moving 400 MB.
        image = SpatialCrop(roi_slices=box)(image)
        image = self._shrink(image)
        image = self._orient(image)
        image = self._window(image)
        image = self._fit(image)
        array = np.asarray(image.as_tensor() if isinstance(image, MetaTensor) else image)
        batch = array[None].astype(np.float32, copy=False)
        if not self.spec.align_midline:
            return batch, None
        return align_midline(batch, self.spec.spacing_mm)


def dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    """``mask`` grown by ``radius`` voxels along each axis (a cube of side 2 * radius + 1): the
    same as a max-pool of that size, in shifted ORs (about 100x faster than torch's max_pool3d)."""
    for axis in range(mask.ndim):
        grown = mask.copy()
        for shift in range(1, radius + 1):
            ahead = [slice(None)] * mask.ndim
            behind = [slice(None)] * mask.ndim
            ahead[axis], behind[axis] = slice(shift, None), slice(None, -shift)
            grown[tuple(ahead)] |= mask[tuple(behind)]
            grown[tuple(behind)] |= mask[tuple(ahead)]
        mask = grown
    return mask


def arterial_peak_hu(batch: np.ndarray, spec: InputSpec) -> float:
    """How bright the intracranial arteries are, measured in the model input: the mean HU of the
    brightest voxels of the central head (circle of Willis to the sylvian fissures), bone and a
    4 mm rim around it excluded. About 30-50 HU without contrast, 100-400 HU in a CTA."""
    x = batch[0, 0]
    rim = dilate(x >= BONE_LEVEL, RIM_VOXELS)
    soft = np.where(rim, np.float32(0.0), x)
    box = tuple(
        slice(int(n * a), int(n * b)) for n, (a, b) in zip(soft.shape, ARTERIAL_BOX, strict=True)
    )
    top = np.partition(soft[box].ravel(), -TOP_VOXELS)[-TOP_VOXELS:].mean()
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
