"""Rasterise a PhantomSpec onto any voxel grid, partial-volume aware, with correlated noise.

Every voxel centre is mapped back into the head frame; tissue boundaries are smoothed over one
voxel width from approximate signed distances, and vessels are capsules whose occupancy is
normalised so that the cross-sectional integral equals the true lumen area (a thin vessel on a
coarse grid keeps its mean HU). The volume is filled in slabs of ``SLAB`` slices; each vessel
segment is evaluated only inside its bounding box.
"""

from __future__ import annotations

import numpy as np

from lvo_triage.dicom.volume_types import Volume
from lvo_triage.synth.artefacts import (
    STREAK_BAND_MM,
    motion,
    skull_base_streaks,
    thickness_blur,
)
from lvo_triage.synth.grid import Shape, acquisition_grid, head_to_lps
from lvo_triage.synth.occlusion import Tube, build_tubes
from lvo_triage.synth.spec import PhantomSpec

SLAB = 16
AIR_HU = -1000.0
Box = tuple[int, int, int, int, int, int]


class _Grid:
    """Voxel <-> head-frame mapping of one render call."""

    def __init__(self, spec: PhantomSpec, shape: Shape, affine: np.ndarray) -> None:
        vox2head = np.linalg.inv(head_to_lps(spec)) @ affine
        self.m = vox2head[:3, :3].astype(np.float32)
        self.c = vox2head[:3, 3].astype(np.float32)
        self.head2vox = np.linalg.inv(vox2head)
        self.shape = shape
        self.spacing = np.linalg.norm(affine[:3, :3], axis=0)
        self.h = float(np.cbrt(np.prod(self.spacing)))

    def coords(self, box: Box) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        i0, i1, j0, j1, k0, k1 = box
        i = np.arange(i0, i1, dtype=np.float32)[:, None, None]
        j = np.arange(j0, j1, dtype=np.float32)[None, :, None]
        k = np.arange(k0, k1, dtype=np.float32)[None, None, :]
        m, c = self.m, self.c
        return (
            m[0, 0] * i + m[0, 1] * j + (m[0, 2] * k + c[0]),
            m[1, 0] * i + m[1, 1] * j + (m[1, 2] * k + c[1]),
            m[2, 0] * i + m[2, 1] * j + (m[2, 2] * k + c[2]),
        )

    def index_box(self, lo: np.ndarray, hi: np.ndarray, within: Box) -> Box | None:
        """Voxel box covering the head-frame box [lo, hi], clipped to ``within``; None if empty."""
        corners = np.array(
            [[x, y, z, 1.0] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])]
        )
        idx = (self.head2vox @ corners.T)[:3]
        a = np.floor(idx.min(axis=1)).astype(int)
        b = np.ceil(idx.max(axis=1)).astype(int) + 1
        out = (
            max(a[0], within[0]), min(b[0], within[1]),
            max(a[1], within[2]), min(b[1], within[3]),
            max(a[2], within[4]), min(b[2], within[5]),
        )  # fmt: skip
        if out[0] >= out[1] or out[2] >= out[3] or out[4] >= out[5]:
            return None
        return out


def _ellipsoid_occ(
    x: np.ndarray, y: np.ndarray, z: np.ndarray, centre: np.ndarray, axes: np.ndarray, h: float
) -> np.ndarray:
    """Soft inside-occupancy of an ellipsoid from a first-order signed distance."""
    dx = (x - np.float32(centre[0])) * np.float32(1.0 / axes[0])
    dy = (y - np.float32(centre[1])) * np.float32(1.0 / axes[1])
    dz = (z - np.float32(centre[2])) * np.float32(1.0 / axes[2])
    q = np.sqrt(dx * dx + dy * dy + dz * dz)
    g = np.sqrt(
        (dx * np.float32(1.0 / axes[0])) ** 2
        + (dy * np.float32(1.0 / axes[1])) ** 2
        + (dz * np.float32(1.0 / axes[2])) ** 2
    )
    dist = (q - 1.0) * q / (g + np.float32(1e-6))
    occ: np.ndarray = np.clip(np.float32(0.5) - dist * np.float32(1.0 / h), 0.0, 1.0)
    return occ


def _blend(dst: np.ndarray, occ: np.ndarray, value: float | np.ndarray) -> None:
    dst += occ * (value - dst)


def _ellipsoid_dist(
    x: np.ndarray, y: np.ndarray, z: np.ndarray, centre: np.ndarray, axes: np.ndarray
) -> np.ndarray:
    """First-order signed distance (mm, negative inside) to an ellipsoid surface."""
    inv = [np.float32(1.0 / a) for a in axes]
    dx = (x - np.float32(centre[0])) * inv[0]
    dy = (y - np.float32(centre[1])) * inv[1]
    dz = (z - np.float32(centre[2])) * inv[2]
    q = np.sqrt(dx * dx + dy * dy + dz * dz)
    dx *= inv[0]
    dy *= inv[1]
    dz *= inv[2]
    g = np.sqrt(dx * dx + dy * dy + dz * dz)
    g += np.float32(1e-6)
    q -= 1.0
    dist: np.ndarray = q * (q + 1.0) / g
    return dist


def _ramp(dn: np.ndarray, offset: float) -> np.ndarray:
    """Inside-occupancy of the surface ``offset`` mm outside the reference (dn = distance / h)."""
    occ: np.ndarray = np.clip(np.float32(0.5 + offset) - dn, 0.0, 1.0)
    return occ


def _tissues(spec: PhantomSpec, grid: _Grid, block: np.ndarray, box: Box) -> None:
    """Fill ``block`` (the voxels of ``box``) with scalp, skull, skull base, brain and CSF.

    All shells are parallel surfaces of the inner skull ellipsoid, so one distance serves all.
    """
    hd, h = spec.head, grid.h
    x, y, z = grid.coords(box)
    dn = _ellipsoid_dist(x, y, z, np.asarray(hd.centre), hd.axes(0.0))
    dn *= np.float32(1.0 / h)
    block[...] = AIR_HU
    _blend(block, _ramp(dn, (hd.skull_mm + hd.scalp_mm) / h), spec.scalp_hu)
    o_skull = _ramp(dn, hd.skull_mm / h)
    zb = (z - np.float32(hd.base_z) - np.float32(hd.base_slope) * y) * np.float32(1.0 / h)
    o_above = np.clip(zb + np.float32(0.5), 0.0, 1.0)
    o_basebone = np.clip(zb + np.float32(0.5 + hd.base_bone_mm / h), 0.0, 1.0)
    _blend(block, o_skull * (1.0 - o_basebone), spec.neck_hu)
    _blend(block, o_skull * o_basebone, spec.bone_hu)
    _blend(block, _ramp(dn, 0.0) * o_above, spec.csf_hu)  # subarachnoid CSF under the inner table
    o_brain = _ramp(dn, -1.5 / h) * o_above
    o_white = _ramp(dn, -(1.5 + hd.cortex_mm) / h)
    _blend(block, o_brain, spec.grey_hu + o_white * np.float32(spec.white_hu - spec.grey_hu))
    # foramen magnum: medulla/cord with CSF through the skull base
    d_fm = (np.sqrt(x * x + (y - np.float32(22.0)) ** 2) - np.float32(14.0)) * np.float32(1.0 / h)
    o_fm = np.clip(np.float32(0.5) - d_fm, 0.0, 1.0) * (1.0 - o_above) * o_skull
    _blend(block, o_fm, 0.5 * (spec.csf_hu + spec.white_hu))


def _csf_spaces(spec: PhantomSpec) -> list[tuple[np.ndarray, np.ndarray]]:
    """Ventricles and the basal cistern as (centre, semi-axes) ellipsoids."""
    vs = spec.head.ventricle_scale
    out = [
        (np.array([s * (4.0 + 4.0 * vs), 6.0, 20.0]), np.array([4.5 * vs, 26.0, 6.0 * vs]))
        for s in (1.0, -1.0)
    ]
    out.append((np.array([0.0, 8.0, 4.0]), np.array([1.2 * vs + 0.5, 11.0, 7.0])))
    out.append((np.array([0.0, 2.0, -4.0]), np.asarray(spec.head.cistern_axes)))
    return out


def _draw_csf(spec: PhantomSpec, grid: _Grid, block: np.ndarray, slab: Box) -> None:
    for centre, axes in _csf_spaces(spec):
        box = grid.index_box(centre - axes - 2.0, centre + axes + 2.0, slab)
        if box is None:
            continue
        x, y, z = grid.coords(box)
        sub = _sub(block, box, slab)
        _blend(sub, _ellipsoid_occ(x, y, z, centre, axes, grid.h), spec.csf_hu)


def _sub(block: np.ndarray, box: Box, slab: Box) -> np.ndarray:
    return block[
        box[0] - slab[0] : box[1] - slab[0],
        box[2] - slab[2] : box[3] - slab[2],
        box[4] - slab[4] : box[5] - slab[4],
    ]


def _area_scale(r: float, h: float) -> float:
    """Normalise the linear edge ramp so the occupancy integral equals pi r^2."""
    if r >= h / 2:
        return r * r / (r * r + h * h / 12.0)
    big_r = r + h / 2
    return 3.0 * h * r * r / big_r**3


def _decimate(tube: Tube, h: float) -> Tube:
    """Drop centreline points on coarse grids (segments of about one voxel or 1.5 mm)."""
    step = max(1, int(h / 1.0))
    if step == 1 or len(tube.points) <= 2:
        return tube
    keep = np.unique(np.append(np.arange(0, len(tube.points), step), len(tube.points) - 1))
    return Tube(tube.name, tube.points[keep], tube.radii[keep], tube.hu[keep])


def _segment_boxes(tube: Tube, grid: _Grid) -> np.ndarray:
    """(S, 6) voxel index boxes [i0, i1, j0, j1, k0, k1) of every segment capsule, clipped."""
    pts = np.column_stack([tube.points, np.ones(len(tube.points))])
    idx = (grid.head2vox @ pts.T)[:3].T
    per_mm = np.linalg.norm(grid.head2vox[:3, :3], axis=1)
    margin = (np.maximum(tube.radii[:-1], tube.radii[1:]) + grid.h)[:, None] * per_mm
    lo = np.floor(np.minimum(idx[:-1], idx[1:]) - margin).astype(int)
    hi = np.ceil(np.maximum(idx[:-1], idx[1:]) + margin).astype(int) + 1
    lo = np.clip(lo, 0, grid.shape)
    hi = np.clip(hi, 0, grid.shape)
    return np.stack([lo[:, 0], hi[:, 0], lo[:, 1], hi[:, 1], lo[:, 2], hi[:, 2]], axis=1)


def _draw_tube(
    tube: Tube,
    boxes: np.ndarray,
    grid: _Grid,
    block: np.ndarray,
    slab: Box,
    bufs: tuple[np.ndarray, np.ndarray],
) -> None:
    """Max-combine the tube's segment capsules into the buffers, then blend into ``block``."""
    h = grid.h
    pts, radii, hus = tube.points, tube.radii, tube.hu
    sel = np.flatnonzero(
        (boxes[:, 4] < slab[5])
        & (boxes[:, 5] > slab[4])
        & (boxes[:, 0] < boxes[:, 1])
        & (boxes[:, 2] < boxes[:, 3])
    )
    if len(sel) == 0:
        return
    occ_buf, hu_buf = bufs
    clipped = boxes[sel].copy()
    clipped[:, 4] = np.maximum(clipped[:, 4], slab[4])
    clipped[:, 5] = np.minimum(clipped[:, 5], slab[5])
    for s, row in zip(sel, clipped, strict=True):
        box: Box = (int(row[0]), int(row[1]), int(row[2]), int(row[3]), int(row[4]), int(row[5]))
        a, b = pts[s], pts[s + 1]
        x, y, z = grid.coords(box)
        ab = (b - a).astype(np.float32)
        px, py, pz = x - np.float32(a[0]), y - np.float32(a[1]), z - np.float32(a[2])
        t = (px * ab[0] + py * ab[1] + pz * ab[2]) * np.float32(1.0 / max(float(ab @ ab), 1e-9))
        np.clip(t, 0.0, 1.0, out=t)
        px -= t * ab[0]
        py -= t * ab[1]
        pz -= t * ab[2]
        d = np.sqrt(px * px + py * py + pz * pz)
        r = np.float32(radii[s]) + t * np.float32(radii[s + 1] - radii[s])
        occ = np.clip((r + np.float32(h / 2) - d) * np.float32(1.0 / h), 0.0, 1.0)
        occ *= np.float32(_area_scale(0.5 * float(radii[s] + radii[s + 1]), h))
        hu = np.float32(hus[s]) + t * np.float32(hus[s + 1] - hus[s])
        ob, hb = _sub(occ_buf, box, slab), _sub(hu_buf, box, slab)
        better = occ > ob
        ob[better] = occ[better]
        hb[better] = hu[better]
    ubox: Box = (
        int(clipped[:, 0].min()),
        int(clipped[:, 1].max()),
        int(clipped[:, 2].min()),
        int(clipped[:, 3].max()),
        int(clipped[:, 4].min()),
        int(clipped[:, 5].max()),
    )
    ob, hb = _sub(occ_buf, ubox, slab), _sub(hu_buf, ubox, slab)
    _blend(_sub(block, ubox, slab), ob, hb)
    ob[...] = 0.0


def noise_sigma(spec: PhantomSpec, affine: np.ndarray) -> float:
    """Noise sigma on this grid: the acquisition's, scaled by sqrt(voxel volume ratio)."""
    _, acq = acquisition_grid(spec)
    v_acq = abs(np.linalg.det(acq[:3, :3]))
    v = abs(np.linalg.det(affine[:3, :3]))
    return float(spec.noise_sigma * np.sqrt(v_acq / v))


def _noise(seed: int, k0: int, shape: tuple[int, int, int], sigma: float) -> np.ndarray:
    """In-plane correlated gaussian noise of standard deviation ``sigma`` (deterministic)."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x5EED, k0]))
    n = rng.standard_normal(shape, dtype=np.float32)
    for axis in (0, 1):
        if n.shape[axis] < 3:
            continue
        s = n.swapaxes(0, axis)
        sm = s.copy()
        sm[1:-1] = 0.5 * s[1:-1] + 0.25 * (s[:-2] + s[2:])
        n = sm.swapaxes(0, axis)
    n *= np.float32(sigma / 0.375)
    return n


def _check_grid(shape: Shape, affine: np.ndarray) -> None:
    if len(shape) != 3 or min(shape) < 1:
        msg = f"shape must be three positive sizes, got {shape}"
        raise ValueError(msg)
    if affine.shape != (4, 4) or abs(np.linalg.det(affine[:3, :3])) < 1e-9:
        msg = f"affine must be an invertible 4x4 matrix, got {affine.tolist()}"
        raise ValueError(msg)


def _artefacts(spec: PhantomSpec, grid: _Grid, hu: np.ndarray) -> None:
    """Slice thickness, motion and skull-base streaks, on the noise-free volume (in place)."""
    thickness_blur(hu, spec.slice_thickness_mm, float(grid.spacing[2]))
    motion(spec, hu, grid.spacing)
    if spec.streak_hu <= 0:
        return
    nx, ny, nz = hu.shape
    band = STREAK_BAND_MM + 40.0  # generous: the exact test is per slice, inside the head
    base = spec.head.base_z
    for k in range(nz):
        centre_z = grid.coords((nx // 2, nx // 2 + 1, ny // 2, ny // 2 + 1, k, k + 1))[2]
        if abs(float(centre_z.ravel()[0]) - base) > band:
            continue
        x, y, z = grid.coords((0, nx, 0, ny, k, k + 1))
        xyz = np.stack(np.broadcast_arrays(x[..., 0], y[..., 0], z[..., 0]))
        skull_base_streaks(spec, hu, xyz, k, hu[:, :, k] > -300.0)


def render(spec: PhantomSpec, shape: Shape, affine: np.ndarray) -> Volume:
    """HU float32 volume of the phantom on the grid ``(shape, affine)``, noise included."""
    shape = (int(shape[0]), int(shape[1]), int(shape[2]))
    affine = np.asarray(affine, dtype=np.float64)
    _check_grid(shape, affine)
    grid = _Grid(spec, shape, affine)
    tubes = build_tubes(spec)
    hd = spec.head
    outer = hd.axes(hd.skull_mm + hd.scalp_mm) + 2.0 * grid.h
    centre = np.asarray(hd.centre)
    full: Box = (0, shape[0], 0, shape[1], 0, shape[2])
    head_box = grid.index_box(centre - outer, centre + outer, full)
    rasters = []
    for tube in tubes:
        coarse = _decimate(tube, grid.h)
        rasters.append((coarse, _segment_boxes(coarse, grid)))
    sigma = noise_sigma(spec, affine)
    hu = np.empty(shape, dtype=np.float32)
    occ_buf = np.zeros((shape[0], shape[1], min(SLAB, shape[2])), dtype=np.float32)
    hu_buf = np.zeros_like(occ_buf)
    for k0 in range(0, shape[2], SLAB):
        k1 = min(shape[2], k0 + SLAB)
        slab_box: Box = (0, shape[0], 0, shape[1], k0, k1)
        block = hu[:, :, k0:k1]
        block[...] = AIR_HU
        hb = None if head_box is None else grid.index_box(centre - outer, centre + outer, slab_box)
        if hb is not None:
            _tissues(spec, grid, _sub(block, hb, slab_box), hb)
            _draw_csf(spec, grid, block, slab_box)
            for tube, boxes in rasters:
                _draw_tube(tube, boxes, grid, block, slab_box, (occ_buf, hu_buf))
    _artefacts(spec, grid, hu)
    for k0 in range(0, shape[2], SLAB):
        block = hu[:, :, k0 : min(shape[2], k0 + SLAB)]
        block += _noise(spec.seed, k0, block.shape, sigma)
    np.clip(hu, -1024.0, 3071.0, out=hu)
    return Volume(hu=hu, affine=affine.copy())
