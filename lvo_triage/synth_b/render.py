"""A family-B case → an HU volume: tissues, vessels, artefacts, slab by slab.

Each slab of slices is painted (tissue on a grid of half the in-plane resolution at full size,
resampled), gets its vessels at full resolution with partial volume, then streaks, correlated
noise and the reconstruction circle. Nothing here depends on the occlusion except the HU of
the vessels, so the same case with and without a clot differs only along its arteries.
"""

from __future__ import annotations

import numpy as np

from lvo_triage.dicom.volume_types import Volume
from lvo_triage.synth_b.artefacts import add_streaks, noise, reconstruction_circle
from lvo_triage.synth_b.canvas import Canvas, upsample
from lvo_triage.synth_b.case import CaseB
from lvo_triage.synth_b.face import paint_skull_base, paint_soft
from lvo_triage.synth_b.geometry import Grid, make_grid
from lvo_triage.synth_b.head import paint_brain, paint_deep, paint_scalp_and_vault
from lvo_triage.synth_b.raster import Capsules, capsules, rasterize
from lvo_triage.synth_b.tubes import Branch
from lvo_triage.synth_b.vessels import Vascular, artery_hu, build_vessels, vein_hu

SLAB = 16  # slices painted at a time (bounds the temporary memory)
FINE_PIXEL_MM = 0.8  # finer pixels: tissue painted on every second one and resampled


def plaque_spheres(case: CaseB, vascular: Vascular) -> list[tuple[np.ndarray, float, float]]:
    """Calcified plaques on the wall of the cavernous and clinoid ICA: (centre, radius, HU)."""
    out = []
    for side, s, angle, size, hu in case.vessels.plaques:
        ica: Branch = vascular.arteries[vascular.index[f"ICA.{('left', 'right')[side]}"]]
        arc = ica.arc()
        k = int(np.searchsorted(arc, arc[-1] - (1.0 - s) * 45.0))
        k = int(np.clip(k, 1, len(arc) - 2))
        tangent = ica.points[k + 1] - ica.points[k - 1]
        tangent /= np.linalg.norm(tangent)
        normal = np.cross(tangent, [0.0, 0.0, 1.0] if abs(tangent[2]) < 0.9 else [1.0, 0.0, 0.0])
        normal /= np.linalg.norm(normal)
        other = np.cross(tangent, normal)
        direction = np.cos(angle) * normal + np.sin(angle) * other
        centre = ica.points[k] + direction * (ica.radius[k] + 0.2 * size)
        out.append((centre, 0.5 * size, hu))
    return out


def vessel_capsules(case: CaseB, grid: Grid) -> Capsules:
    vascular = build_vessels(case)
    branches = list(vascular.veins) + list(vascular.arteries)
    hus = vein_hu(case, vascular) + artery_hu(case, vascular)
    return capsules(grid, branches, hus, plaque_spheres(case, vascular))


def paint_tissue(canvas: Canvas, case: CaseB) -> None:
    head = case.head
    paint_soft(canvas, head)
    paint_scalp_and_vault(canvas, head)
    paint_skull_base(canvas, head)
    paint_brain(canvas, head)
    paint_deep(canvas, head)
    add_streaks(canvas, case)


def render_case(case: CaseB, *, fast: bool = False, voxel_mm: float | None = None) -> Volume:
    """The HU volume of ``case`` (float32, ``[i, j, k]`` with an LPS affine). ``fast``: 128 x
    128 pixels over the same field of view and slices of 1-1.5 mm; ``voxel_mm``: cubes of that
    edge (training grids)."""
    grid = make_grid(case, fast=fast, voxel_mm=voxel_mm)
    caps = vessel_capsules(case, grid)
    stride = 1 if fast or grid.pixel_mm >= FINE_PIXEL_MM else 2
    outside = reconstruction_circle(grid)
    pad = case.acquisition.pad_hu
    out = np.empty(grid.shape, dtype=np.float32)
    n = grid.shape[1]
    for k0 in range(0, grid.shape[0], SLAB):
        k1 = min(k0 + SLAB, grid.shape[0])
        canvas = Canvas(grid, k0, k1, stride)
        paint_tissue(canvas, case)
        hu = upsample(canvas.hu, stride, n)
        frac = np.zeros_like(hu)
        value = np.zeros_like(hu)
        rasterize(caps, grid, k0, k1, frac, value)
        hu += frac * (value - hu)
        hu += noise(case, grid, k0, k1)
        if pad is not None:
            np.copyto(hu, np.float32(pad), where=outside[None])
        out[k0:k1] = hu
    return Volume(hu=out.transpose(2, 1, 0), affine=grid.affine)
