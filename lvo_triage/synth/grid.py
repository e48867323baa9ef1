"""Voxel grids of the synthetic scan: the CT acquisition and a coarser training grid.

Grids are ``(shape, affine)`` with ``affine`` mapping ``(i, j, k, 1)`` to patient LPS millimetres,
``i`` along the image rows (DICOM row direction), ``k`` along the slice normal.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from lvo_triage.synth.spec import PhantomSpec

Shape = tuple[int, int, int]


def head_to_lps(spec: PhantomSpec) -> np.ndarray:
    """4x4 transform of the head pose: head frame -> patient LPS."""
    t = np.eye(4)
    t[:3, :3] = spec.rotation()
    t[:3, 3] = spec.translation()
    return t


def _slice_axes(spec: PhantomSpec) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row direction, column direction and slice normal (all unit, LPS)."""
    a = np.radians(spec.tilt_deg)
    row = np.array([1.0, 0.0, 0.0])
    col = np.array([0.0, np.cos(a), -np.sin(a)])
    return row, col, np.cross(row, col)


def _max_along(spec: PhantomSpec, direction: np.ndarray) -> float:
    """Largest projection of the outer head surface (scalp) onto ``direction`` (LPS)."""
    h = spec.head
    axes = h.axes(h.skull_mm + h.scalp_mm)
    pose = head_to_lps(spec)
    centre = pose[:3, :3] @ np.asarray(h.centre) + pose[:3, 3]
    return float(direction @ centre + np.linalg.norm(axes * (pose[:3, :3].T @ direction)))


def acquisition_grid(spec: PhantomSpec, *, fast: bool = False) -> tuple[Shape, np.ndarray]:
    """Shape and LPS affine of the CT acquisition.

    Normal: 512x512 pixels of 0.4-0.5 mm, 0.5-1.25 mm slices from below the skull base to the
    vertex. ``fast``: the same physical coverage with 128x128 pixels and 1-1.45 mm slices.
    """
    row, col, normal = _slice_axes(spec)
    pose = head_to_lps(spec)
    h = spec.head
    need = 2.0 * (max(h.inner_axes[:2]) + h.skull_mm + h.scalp_mm) + 4.0
    pixel = max(spec.pixel_mm, need / 512.0)
    n_px, slice_mm = 512, spec.slice_mm
    if fast:
        n_px, pixel, slice_mm = 128, pixel * 4.0, spec.fast_slice_mm
    head_centre = pose[:3, :3] @ np.asarray(h.centre) + pose[:3, 3]
    centre = head_centre + spec.fov_offset_mm[0] * row + spec.fov_offset_mm[1] * col
    start_pt = pose[:3, :3] @ np.array([0.0, 15.0, -spec.below_cow_mm]) + pose[:3, 3]
    start = float(normal @ start_pt)
    stop = _max_along(spec, normal) + spec.vertex_margin_mm
    span = float(np.clip(stop - start, 150.0, 190.0))
    nz = round(span / slice_mm) + 1
    origin = (
        centre
        - row * pixel * (n_px - 1) / 2.0
        - col * pixel * (n_px - 1) / 2.0
        + normal * (start - float(normal @ centre))
    )
    affine = np.eye(4)
    affine[:3, 0] = row * pixel
    affine[:3, 1] = col * pixel
    affine[:3, 2] = normal * slice_mm
    affine[:3, 3] = origin
    return (n_px, n_px, nz), affine


def training_grid(spec: PhantomSpec, *, spacing_mm: float = 1.0) -> tuple[Shape, np.ndarray]:
    """The acquisition's field of view resampled at ``spacing_mm`` along every axis."""
    if not spacing_mm > 0:
        msg = f"spacing_mm must be > 0, got {spacing_mm}"
        raise ValueError(msg)
    shape, aff = acquisition_grid(spec)
    steps = np.linalg.norm(aff[:3, :3], axis=0)
    dirs = aff[:3, :3] / steps
    corner = aff[:3, 3] - 0.5 * aff[:3, :3].sum(axis=1)
    extent = steps * np.asarray(shape)
    n = np.maximum(1, np.ceil(extent / spacing_mm - 1e-6)).astype(int)
    out = np.eye(4)
    out[:3, :3] = dirs * spacing_mm
    out[:3, 3] = corner + 0.5 * out[:3, :3].sum(axis=1)
    return (int(n[0]), int(n[1]), int(n[2])), out


def with_slices(spec: PhantomSpec, target: int) -> PhantomSpec:
    """``spec`` with ``slice_mm`` (and thickness) chosen so that its acquisition has ``target``
    slices (or one off): benchmarks use it for series longer than sampled phantoms have.

    The grid's z-span does not depend on ``slice_mm`` and ``nz = round(span / slice_mm) + 1`` falls
    as ``slice_mm`` grows, so bisection finds the spacing.
    """

    def with_mm(mm: float) -> tuple[PhantomSpec, int]:
        s = dataclasses.replace(spec, slice_mm=mm, slice_thickness_mm=mm)
        return s, acquisition_grid(s)[0][2]

    lo, hi = 0.1, 1.5  # slices: many at lo, few at hi
    best, best_nz = with_mm(hi)
    for _ in range(60):
        mid = (lo + hi) / 2.0
        s, nz = with_mm(mid)
        if abs(nz - target) < abs(best_nz - target):
            best, best_nz = s, nz
        if nz == target:
            break
        if nz > target:
            lo = mid
        else:
            hi = mid
    if abs(best_nz - target) > 1:
        msg = f"no slice spacing in (0.1, 1.5) mm gives ~{target} slices (best {best_nz})"
        raise ValueError(msg)
    return best
