"""Where the head lies in the scanner and where the voxels are.

The head frame (``case.py``) is turned by the pose (yaw about z, pitch about x, roll about y)
and moved to ``shift_mm`` in patient coordinates (LPS). The slices are planes with row direction
``r`` = +x, column direction ``c`` tilted about x by the gantry-like tilt, and normal ``n = r x c``;
they are stacked along ``n`` from the lowest covered level (C1/C2) to above the vertex. The
reconstruction circle is centred on the scanner's axis (x = y = 0).

Arrays of a volume are stored slice-major, ``[k, j, i]`` (slice, row, column), as DICOM slices
are; :class:`~lvo_triage.dicom.volume_types.Volume` sees them transposed to ``[i, j, k]``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from lvo_triage.synth_b.case import CaseB

FULL_MATRIX = 512
FAST_MATRIX = 128


def rotation(yaw_deg: float, pitch_deg: float, roll_deg: float) -> np.ndarray:
    """Head frame → patient frame: yaw about z, then pitch about x, then roll about y."""
    y, p, r = (math.radians(v) for v in (yaw_deg, pitch_deg, roll_deg))
    rz = np.array([[math.cos(y), -math.sin(y), 0], [math.sin(y), math.cos(y), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, math.cos(p), -math.sin(p)], [0, math.sin(p), math.cos(p)]])
    ry = np.array([[math.cos(r), 0, math.sin(r)], [0, 1, 0], [-math.sin(r), 0, math.cos(r)]])
    out: np.ndarray = ry @ rx @ rz
    return out


def cranial_top_mm(case: CaseB) -> float:
    """Head-frame z of the scalp at the vertex."""
    head = case.head
    return head.centre[2] + head.half_axes[2] + head.skull_mm + head.scalp_mm


@dataclass(frozen=True)
class Grid:
    """The voxels of one rendering: ``shape`` is ``(slices, rows, columns)``."""

    shape: tuple[int, int, int]
    pixel_mm: float
    slice_mm: float
    thickness_mm: float
    axes: np.ndarray  # 3x3, columns r, c, n in patient coordinates
    origin: np.ndarray  # patient position of the centre of voxel [0, 0, 0]
    pose: np.ndarray  # 3x3 head frame → patient
    shift: np.ndarray  # head-frame origin in patient coordinates
    noise_scale: float = 1.0  # of the acquisition's noise SD (coarser voxels average it down)

    @property
    def affine(self) -> np.ndarray:
        """``(i, j, k, 1)`` → patient coordinates (LPS mm), as :class:`Volume` expects."""
        out = np.eye(4)
        out[:3, 0] = self.axes[:, 0] * self.pixel_mm
        out[:3, 1] = self.axes[:, 1] * self.pixel_mm
        out[:3, 2] = self.axes[:, 2] * self.slice_mm
        out[:3, 3] = self.origin
        return out

    @property
    def voxel_mm(self) -> float:
        """Edge of the cube of the same volume (partial-volume blur of vessel edges)."""
        return float((self.pixel_mm**2 * max(self.thickness_mm, self.slice_mm)) ** (1 / 3))

    def to_patient(self, head_points: np.ndarray) -> np.ndarray:
        out: np.ndarray = np.asarray(head_points, dtype=np.float64) @ self.pose.T + self.shift
        return out

    def to_grid_mm(self, head_points: np.ndarray) -> np.ndarray:
        """Head-frame points → millimetres along (r, c, n) from the centre of voxel [0, 0, 0]."""
        out: np.ndarray = (self.to_patient(head_points) - self.origin) @ self.axes
        return out

    def head_steps(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Head-frame position of voxel [0, 0, 0] and the head-frame steps of one column (i),
        one row (j) and one slice (k)."""
        back = self.pose.T
        start = back @ (self.origin - self.shift)
        return (
            start,
            back @ self.axes[:, 0] * self.pixel_mm,
            back @ self.axes[:, 1] * self.pixel_mm,
            back @ self.axes[:, 2] * self.slice_mm,
        )

    def head_coords(
        self, ks: np.ndarray, js: np.ndarray, is_: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Head-frame x, y, z (float32, shape ``(len(ks), len(js), len(is_))``) of the voxels
        at (possibly fractional) indices ``ks`` x ``js`` x ``is_``."""
        start, di, dj, dk = self.head_steps()
        out = []
        for axis in range(3):
            plane = (js * dj[axis]).astype(np.float32)[:, None] + (is_ * di[axis]).astype(
                np.float32
            )[None, :]
            column = (start[axis] + ks * dk[axis]).astype(np.float32)
            out.append(column[:, None, None] + plane[None])
        return out[0], out[1], out[2]

    def index_box(
        self, lo: np.ndarray, hi: np.ndarray, margin_mm: float = 2.0
    ) -> tuple[np.ndarray, np.ndarray]:
        """Fractional (k, j, i) bounds of the head-frame box ``lo``..``hi`` (grown by
        ``margin_mm``), clipped to nothing: callers clip to their own index range."""
        corners = np.array(
            [[a, b, c] for a in (lo[0], hi[0]) for b in (lo[1], hi[1]) for c in (lo[2], hi[2])]
        )
        mm = self.to_grid_mm(corners)
        step = np.array([self.pixel_mm, self.pixel_mm, self.slice_mm])
        idx_lo = (mm.min(axis=0) - margin_mm) / step
        idx_hi = (mm.max(axis=0) + margin_mm) / step
        return idx_lo[::-1], idx_hi[::-1]


def make_grid(case: CaseB, *, fast: bool = False, voxel_mm: float | None = None) -> Grid:
    """The voxel grid of ``case``: 512 x 512 over the field of view (``fast``: 128 x 128 and
    slices of 1 or 1.25 mm; ``voxel_mm``: cubes of that edge, for training, with the noise an
    acquisition averaged to them would keep), covering C1/C2 to the vertex along the slice
    normal."""
    acq = case.acquisition
    matrix = FAST_MATRIX if fast else FULL_MATRIX
    pixel = acq.fov_mm / matrix
    spacing = (1.0 if acq.spacing_mm <= 0.625 else 1.25) if fast else acq.spacing_mm
    thickness = max(spacing, acq.thickness_mm) if fast else acq.thickness_mm
    noise_scale = 1.0
    if voxel_mm is not None:
        if not 0.2 <= voxel_mm <= 4.0:
            msg = f"voxel_mm must be 0.2-4 mm, got {voxel_mm}"
            raise ValueError(msg)
        acquired = pixel**2 * max(acq.spacing_mm, acq.thickness_mm)
        matrix = math.ceil(acq.fov_mm / voxel_mm)
        pixel = spacing = voxel_mm
        thickness = max(voxel_mm, acq.thickness_mm)
        noise_scale = min(1.0, math.sqrt(acquired / (voxel_mm**2 * thickness)))
    tilt = math.radians(acq.tilt_deg)
    r = np.array([1.0, 0.0, 0.0])
    c = np.array([0.0, math.cos(tilt), math.sin(tilt)])
    n = np.cross(r, c)
    pose = rotation(acq.yaw_deg, acq.pitch_deg, acq.roll_deg)
    shift = np.array(acq.shift_mm, dtype=np.float64)
    bottom = np.array([0.0, 15.0, acq.bottom_mm])
    top = np.array([0.0, case.head.centre[1], cranial_top_mm(case) + acq.top_margin_mm])
    along = [float(n @ (pose @ p + shift)) for p in (bottom, top)]
    slices = math.floor((along[1] - along[0]) / spacing) + 1
    axis_point = np.array([0.0, 0.0, along[0] / n[2]])  # on the scanner axis, slice 0
    origin = axis_point - (matrix - 1) / 2.0 * pixel * (r + c)
    return Grid(
        shape=(slices, matrix, matrix),
        pixel_mm=pixel,
        slice_mm=spacing,
        thickness_mm=thickness,
        axes=np.stack([r, c, n], axis=1),
        origin=origin,
        pose=pose,
        shift=shift,
        noise_scale=noise_scale,
    )
