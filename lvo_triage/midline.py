"""Mid-sagittal alignment on the model grid.

The detector compares each hemisphere with the mirror image of the other, about the grid's centre
plane. A head turned (yaw), tilted sideways (roll) or off-centre fills that comparison with the
asymmetry of its pose, in which a small occlusion drowns. This step finds the pose that makes the
volume most like its own mirror image (normalised correlation, searched coarse to fine on 4 mm
and then 2 mm copies of the grid) and resamples the volume once, so that the head's mid-sagittal
plane becomes the grid's centre plane. Axes are those of the model grid: RAS, x = left-right.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

MAX_ANGLE_DEG = 15.0  # searched yaw and roll either way
MAX_SHIFT_MM = 16.0  # searched left-right offset either way
CANDIDATES = 9  # per parameter and round
# (pooling of the model grid, first step in degrees, first step in mm) of each round
ROUNDS = ((4, 3.0, 3.0), (4, 1.0, 1.0), (2, 0.4, 0.4), (2, 0.15, 0.15))


@dataclass(frozen=True)
class MidlinePose:
    """Where the head's mid-sagittal plane lies: rotated ``yaw_deg`` about the head-foot axis and
    ``roll_deg`` about the front-back axis, and ``shift_mm`` off the centre along left-right."""

    yaw_deg: float
    roll_deg: float
    shift_mm: float


def _thetas(shape: tuple[int, ...], params: np.ndarray, spacing_mm: float) -> torch.Tensor:
    """``affine_grid`` matrices (N, 3, 4) for ``params`` (N, 3: yaw rad, roll rad, shift mm) on a
    volume of ``shape`` (x, y, z) voxels of ``spacing_mm``: output voxel p (centred) samples the
    input at R p + t."""
    yaw = torch.as_tensor(params[:, 0], dtype=torch.float32)
    roll = torch.as_tensor(params[:, 1], dtype=torch.float32)
    one, zero = torch.ones_like(yaw), torch.zeros_like(yaw)
    cz, sz, cy, sy = torch.cos(yaw), torch.sin(yaw), torch.cos(roll), torch.sin(roll)
    rz = torch.stack(
        [
            torch.stack([cz, -sz, zero], 1),
            torch.stack([sz, cz, zero], 1),
            torch.stack([zero, zero, one], 1),
        ],
        1,
    )
    ry = torch.stack(
        [
            torch.stack([cy, zero, -sy], 1),
            torch.stack([zero, one, zero], 1),
            torch.stack([sy, zero, cy], 1),
        ],
        1,
    )
    half = torch.tensor([n / 2.0 for n in shape], dtype=torch.float32)
    rotation = (rz @ ry) / half[None, :, None] * half[None, None, :]  # in normalised coordinates
    shift = torch.as_tensor(params[:, 2] / spacing_mm, dtype=torch.float32) / half[0]
    translation = torch.stack([shift, zero, zero], 1)
    order = [2, 1, 0]  # affine_grid orders a 5-D grid's coordinates (z, y, x)
    rotation = rotation[:, order][:, :, order]
    return torch.cat([rotation, translation[:, order, None]], 2)


def _resample(x: torch.Tensor, thetas: torch.Tensor) -> torch.Tensor:
    n = thetas.shape[0]
    grid = F.affine_grid(thetas, [n, 1, *x.shape[2:]], align_corners=False)
    return F.grid_sample(
        x.expand(n, -1, -1, -1, -1),
        grid,
        mode="bilinear",
        padding_mode="zeros",
        align_corners=False,
    )


def _symmetry(volumes: torch.Tensor) -> torch.Tensor:
    """Normalised correlation of each volume (N, 1, x, y, z) with its left-right mirror image."""
    mirrored = torch.flip(volumes, dims=[2])
    dims = (1, 2, 3, 4)
    return (volumes * mirrored).sum(dim=dims) / (volumes * volumes).sum(dim=dims).clamp_min(1e-6)


def _centre_mm(x: torch.Tensor, spacing_mm: float) -> float:
    """Left-right centre of mass of ``x`` (1, 1, x, y, z), mm from the grid's centre plane: where
    a symmetric head's mid-sagittal plane crosses the grid, about."""
    profile = x[0, 0].sum(dim=(1, 2)).double()
    n = profile.shape[0]
    position = (torch.arange(n, dtype=torch.float64) - (n - 1) / 2.0) * spacing_mm
    return float((profile * position).sum() / profile.sum().clamp_min(1e-9))


def estimate_pose(x: torch.Tensor, spacing_mm: float) -> MidlinePose:
    """The pose of the head in ``x`` (1, 1, x, y, z): from its centre of mass, a coordinate search
    over yaw, roll and shift, coarse to fine."""
    limits = np.array([np.radians(MAX_ANGLE_DEG), np.radians(MAX_ANGLE_DEG), MAX_SHIFT_MM])
    best = np.array([0.0, 0.0, np.clip(_centre_mm(x, spacing_mm), -MAX_SHIFT_MM, MAX_SHIFT_MM)])
    pooled: dict[int, torch.Tensor] = {}
    offsets = np.arange(CANDIDATES) - CANDIDATES // 2
    for pool, step_deg, step_mm in ROUNDS:
        small = pooled.setdefault(pool, F.avg_pool3d(x, pool))
        steps = (np.radians(step_deg), np.radians(step_deg), step_mm)
        for k in range(3):
            params = np.repeat(best[None], CANDIDATES, axis=0)
            params[:, k] = np.clip(best[k] + steps[k] * offsets, -limits[k], limits[k])
            thetas = _thetas(small.shape[2:], params, spacing_mm * pool)
            best = params[int(torch.argmax(_symmetry(_resample(small, thetas))))]
    return MidlinePose(float(np.degrees(best[0])), float(np.degrees(best[1])), float(best[2]))


def align_midline(batch: np.ndarray, spacing_mm: float) -> tuple[np.ndarray, MidlinePose]:
    """``batch`` (1, 1, x, y, z) resampled so that the head's mid-sagittal plane is the grid's
    centre plane, and the pose that was undone."""
    x = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32))
    with torch.no_grad():
        pose = estimate_pose(x, spacing_mm)
        params = np.array([[np.radians(pose.yaw_deg), np.radians(pose.roll_deg), pose.shift_mm]])
        aligned = _resample(x, _thetas(x.shape[2:], params, spacing_mm))
    return aligned.numpy(), pose
