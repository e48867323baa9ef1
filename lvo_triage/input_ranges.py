"""Is this study like the ones the model was trained on? Measured on each study, not assumed.

Each analysed study is measured four ways, and each measurement is held against the range it had
over the model's training studies (the model card's ``input_ranges``, written by
``scripts/input_ranges.py``):

- ``arterial_peak_hu``: how bright the intracranial arteries are in the model input (dim or late
  contrast, a venous phase that washed the arteries out);
- ``noise_hu``: the image noise of the acquisition, the robust spread of each soft-tissue pixel
  against the mean of its four neighbours in a few central slices (low-dose scans, sharp kernels);
- ``yaw_deg`` and ``roll_deg``: the head's rotation that the mid-sagittal alignment undid (only
  for a model whose card aligns the midline);
- ``slice_spacing_mm``: the distance between slices.

A measurement outside its range becomes a warning in the result ("outside the model's training
range: image noise 24 HU (trained on 4-15 HU)") and a caution on the key image. A model card
without ``input_ranges`` gets no such warnings.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from lvo_triage.dicom.volume_types import Volume
from lvo_triage.midline import MidlinePose

SOFT_HU = (0.0, 80.0)  # pixels whose neighbourhood's mean lies in this band are soft tissue
CENTRAL_SLICES = (0.4, 0.6)  # of the slices, along the slice axis
MAD_TO_SD = 1.4826
NEIGHBOUR_FACTOR = float(np.sqrt(1.25))  # sd of (v - mean of 4 neighbours) for white noise
MEASURES = {  # name: what the warning calls it, its unit
    "arterial_peak_hu": ("arterial contrast (peak)", "HU"),
    "noise_hu": ("image noise", "HU"),
    "yaw_deg": ("head rotation (yaw)", "degrees"),
    "roll_deg": ("head rotation (roll)", "degrees"),
    "slice_spacing_mm": ("slice spacing", "mm"),
}


@dataclass(frozen=True)
class InputStats:
    arterial_peak_hu: float
    noise_hu: float
    yaw_deg: float | None
    roll_deg: float | None
    slice_spacing_mm: float

    def as_dict(self) -> dict[str, float | None]:
        return asdict(self)


def noise_hu(volume: Volume) -> float:
    """Image noise in HU: the robust spread of soft-tissue pixels against the mean of their four
    in-plane neighbours, over a few central slices (NaN when there is no soft tissue)."""
    hu = volume.hu
    n = hu.shape[2]
    lo = int(n * CENTRAL_SLICES[0])
    hi = max(int(n * CENTRAL_SLICES[1]), lo + 1)
    residuals = []
    for k in np.unique(np.linspace(lo, hi - 1, num=5).round().astype(int)):
        plane = np.asarray(hu[:, :, k], dtype=np.float32)
        centre = plane[1:-1, 1:-1]
        around = (plane[:-2, 1:-1], plane[2:, 1:-1], plane[1:-1, :-2], plane[1:-1, 2:])
        mean4 = sum(around) / 4.0
        local = (centre + 4.0 * mean4) / 5.0  # the noise does not decide which pixels count
        soft = (local >= SOFT_HU[0]) & (local <= SOFT_HU[1])
        residual = centre - mean4
        residuals.append(residual[soft])
    values = np.concatenate(residuals) if residuals else np.zeros(0, dtype=np.float32)
    if values.size < 100:
        return float("nan")
    mad = float(np.median(np.abs(values - np.median(values))))
    return MAD_TO_SD * mad / NEIGHBOUR_FACTOR


def measure(volume: Volume, *, peak_hu: float, pose: MidlinePose | None) -> InputStats:
    return InputStats(
        arterial_peak_hu=round(peak_hu, 1),
        noise_hu=round(noise_hu(volume), 2),
        yaw_deg=None if pose is None else round(pose.yaw_deg, 1),
        roll_deg=None if pose is None else round(pose.roll_deg, 1),
        slice_spacing_mm=round(float(np.linalg.norm(volume.affine[:3, 2])), 3),
    )


def outside(stats: InputStats, ranges: dict[str, tuple[float, float]]) -> list[tuple[str, str]]:
    """The measurements outside their training range: (short name, the warning's sentence)."""
    out = []
    for name, value in stats.as_dict().items():
        if value is None or name not in ranges or not np.isfinite(value):
            continue
        lo, hi = ranges[name]
        if lo <= value <= hi:
            continue
        what, unit = MEASURES[name]
        sentence = (
            f"outside the model's training range: {what} {value:g} {unit} (trained on "
            f"{lo:g} to {hi:g} {unit}); the answer may be less reliable"
        )
        out.append((what.split(" (")[0], sentence))
    return out
