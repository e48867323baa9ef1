"""The non-learned second opinion: how many contrast-filled vessel voxels each MCA territory holds.

An occluded ICA terminus, M1 or M2 leaves its territory with fewer opacified arteries than the
other hemisphere. This is measured on the detector's own input (the same preprocessing: the 2 mm
RAS grid, head centred, mid-sagittally aligned when the model card asks), with no learning:

1. bone and a 4 mm rim around it are removed (skull, calcifications next to it);
2. the arterial peak (the brightest voxels of the central head, as the contrast check measures
   it) and the brain level (the median of the soft-tissue voxels there) are read;
3. a voxel counts as a vessel when it is brighter than the brain by ``VESSEL_FRACTION`` of the
   way from brain to peak (15 %: a fraction, so dim or bright contrast alike);
4. vessel voxels are counted in each hemisphere's MCA box: lateral from 8 mm off the grid's centre
   plane, the middle half front to back, 30-70 % of the grid's height.

``score`` = |right - left| / (right + left), in [0, 1]; ``hemisphere`` is the side with fewer
vessel voxels (the suspect one). A radiologist can check it on the key image: the boxed hemisphere
should look poorer in vessels. It is a baseline, not a diagnosis: a normal head with a hypoplastic
segment scores too, and bilateral or posterior occlusions do not.
"""

from __future__ import annotations

import numpy as np

from lvo_triage.model_card import InputSpec
from lvo_triage.preprocess import ARTERIAL_BOX, BONE_LEVEL, RIM_VOXELS, TOP_VOXELS, dilate
from lvo_triage.result import Side, VesselAsymmetry

VESSEL_FRACTION = 0.15  # of the way from brain to arterial peak: brighter is a vessel
MIDLINE_MM = 8.0  # left out on each side of the centre plane (ACA, falx, sagittal sinus)
LATERAL_EDGE = 0.1  # of the grid's width left out at each side (outside the brain)
FRONT_BACK = (0.25, 0.75)  # of the grid's depth: the MCA territory's span front to back
HEIGHT = (0.3, 0.7)  # of the grid's height: from the M1 level to the upper convexity
BRAIN_HU = (-20.0, 100.0)  # soft-tissue voxels whose median gives the brain level


def vessel_asymmetry(batch: np.ndarray, spec: InputSpec) -> VesselAsymmetry:
    """The second opinion for one model input ``batch`` of shape (1, 1, X, Y, Z), RAS: axis X
    runs from the patient's left (index 0) to the right."""
    x = batch[0, 0]
    lo, hi = spec.window_hu
    rim = dilate(x >= BONE_LEVEL, RIM_VOXELS)
    hu = np.where(rim, np.float32(lo), lo + x * np.float32(hi - lo))
    nx, ny, nz = hu.shape
    central = hu[
        tuple(
            slice(int(n * a), int(n * b)) for n, (a, b) in zip(hu.shape, ARTERIAL_BOX, strict=True)
        )
    ]
    peak = float(np.partition(central.ravel(), -TOP_VOXELS)[-TOP_VOXELS:].mean())
    soft = central[(central > BRAIN_HU[0]) & (central < BRAIN_HU[1])]
    brain = float(np.median(soft)) if soft.size else 35.0
    threshold = brain + VESSEL_FRACTION * max(peak - brain, 0.0)
    ys = slice(int(ny * FRONT_BACK[0]), int(ny * FRONT_BACK[1]))
    zs = slice(int(nz * HEIGHT[0]), int(nz * HEIGHT[1]))
    mid, gap = nx // 2, max(1, round(MIDLINE_MM / spec.spacing_mm))
    edge = int(nx * LATERAL_EDGE)
    left = int(np.count_nonzero(hu[edge : mid - gap, ys, zs] > threshold))
    right = int(np.count_nonzero(hu[mid + gap : nx - edge, ys, zs] > threshold))
    total = left + right
    score = abs(right - left) / total if total else 0.0
    ml_per_voxel = spec.spacing_mm**3 / 1000.0
    return VesselAsymmetry(
        score=float(score),
        hemisphere=Side.LEFT if left < right else Side.RIGHT,
        left_ml=round(left * ml_per_voxel, 2),
        right_ml=round(right * ml_per_voxel, 2),
    )
