"""Tubes → voxels with partial volume: every centreline step is a tapered capsule.

A voxel near a capsule of radius ``r`` gets the occupancy ``f = c(r) * ramp((R - d) / w)``:
``d`` is its distance to the capsule's axis, ``w`` the voxel size, ``c(r) = 1 - exp(-r^2 /
2 s^2)`` the fraction of a Gaussian spot of width ``s = 0.4 w`` that a disc of radius ``r``
covers (thin vessels stay faint, as in a real scan), and ``R = sqrt(r^2 + s^2)``. Where tubes
overlap, the one covering a voxel most gives its HU (later tubes win ties: arteries over veins);
within a chunk of consecutive steps of one branch, the HU is their occupancy-weighted mean.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lvo_triage.synth_b.geometry import Grid
from lvo_triage.synth_b.tubes import Branch

F32 = np.float32


CHUNK = 8  # consecutive capsules of a branch drawn together


@dataclass(frozen=True)
class Capsules:
    """Capsule ``n`` runs from ``a[n]`` to ``b[n]`` (grid millimetres along r, c, n); capsules
    ``chunks[m, 0]`` to ``chunks[m, 1]`` are consecutive steps of one branch, drawn together."""

    a: np.ndarray
    b: np.ndarray
    ra: np.ndarray
    rb: np.ndarray
    hua: np.ndarray
    hub: np.ndarray
    chunks: np.ndarray  # (m, 2) start, end
    k_lo: np.ndarray  # slices each chunk may touch
    k_hi: np.ndarray


def _coarsen(points: np.ndarray, step_mm: float) -> np.ndarray:
    """Indices of points kept so that consecutive ones are about ``step_mm`` apart."""
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(points, axis=0), axis=1))])
    if arc[-1] <= step_mm:
        return np.array([0, len(points) - 1]) if len(points) > 1 else np.array([0])
    marks = np.searchsorted(arc, np.arange(0.0, arc[-1], step_mm))
    return np.unique(np.concatenate([marks, [len(points) - 1]]))


def capsules(
    grid: Grid,
    branches: list[Branch] | tuple[Branch, ...],
    hus: list[np.ndarray],
    spheres: list[tuple[np.ndarray, float, float]] | None = None,
) -> Capsules:
    """The capsules of ``branches`` (with HU per point) and of spheres (centre, radius, HU),
    in drawing order."""
    step = max(1.0, 1.2 * grid.pixel_mm)
    parts: list[tuple[np.ndarray, ...]] = []
    for branch, hu in zip(branches, hus, strict=True):
        if len(branch.points) < 2:
            continue
        keep = _coarsen(branch.points, step)
        pts = grid.to_grid_mm(branch.points[keep])
        r, h = branch.radius[keep], hu[keep]
        parts.append((pts[:-1], pts[1:], r[:-1], r[1:], h[:-1], h[1:]))
    for centre, radius, hu_value in spheres or []:
        p = grid.to_grid_mm(np.asarray(centre)[None])
        r, h = np.array([radius]), np.array([hu_value])
        parts.append((p, p, r, r, h, h))
    a, b, ra, rb, hua, hub = (np.concatenate([p[i] for p in parts]) for i in range(6))
    bounds, at = [], 0
    for part in parts:
        n = len(part[0])
        bounds += [(s, min(s + CHUNK, at + n)) for s in range(at, at + n, CHUNK)]
        at += n
    chunks = np.array(bounds, dtype=np.int64)
    reach = np.maximum(ra, rb) + 2.0 * grid.voxel_mm
    low = np.minimum(a[:, 2], b[:, 2]) - reach
    high = np.maximum(a[:, 2], b[:, 2]) + reach
    k_lo = np.array([np.floor(low[s:e].min() / grid.slice_mm) for s, e in chunks], dtype=np.int64)
    k_hi = np.array([np.ceil(high[s:e].max() / grid.slice_mm) for s, e in chunks], dtype=np.int64)
    return Capsules(a, b, ra, rb, hua, hub, chunks, k_lo, k_hi)


def rasterize(
    caps: Capsules, grid: Grid, k0: int, k1: int, frac: np.ndarray, value: np.ndarray
) -> None:
    """Draw the capsules into slices ``k0``..``k1`` of ``frac`` (occupancy) and ``value`` (HU)."""
    w = grid.voxel_mm
    sigma2 = F32((0.4 * w) ** 2)
    n = grid.shape[1]
    step = np.array([grid.pixel_mm, grid.pixel_mm, grid.slice_mm])
    limit = np.array([n, n, k1])
    for s, e in caps.chunks[(caps.k_hi >= k0) & (caps.k_lo < k1)]:
        a, b = caps.a[s:e], caps.b[s:e]
        reach = np.maximum(caps.ra[s:e], caps.rb[s:e])[:, None] + 1.5 * w
        lo = np.ceil((np.minimum(a, b) - reach).min(axis=0) / step).astype(np.int64)
        hi = np.floor((np.maximum(a, b) + reach).max(axis=0) / step).astype(np.int64) + 1
        lo = np.maximum(lo, [0, 0, k0])
        hi = np.minimum(hi, limit)
        if np.any(lo >= hi):
            continue
        a32 = a.astype(F32)
        x = (
            np.arange(lo[0], hi[0], dtype=F32)[None, None, None, :] * F32(step[0])
            - a32[:, 0, None, None, None]
        )
        y = (
            np.arange(lo[1], hi[1], dtype=F32)[None, None, :, None] * F32(step[1])
            - a32[:, 1, None, None, None]
        )
        z = (
            np.arange(lo[2], hi[2], dtype=F32)[None, :, None, None] * F32(step[2])
            - a32[:, 2, None, None, None]
        )
        d = (b - a).astype(F32)
        length2 = np.maximum((d * d).sum(axis=1), F32(1e-9))
        dx, dy, dz = (d[:, i, None, None, None] for i in range(3))
        t = np.clip((x * dx + y * dy + z * dz) / length2[:, None, None, None], F32(0), F32(1))
        dist = np.sqrt((x - t * dx) ** 2 + (y - t * dy) ** 2 + (z - t * dz) ** 2)
        ra = caps.ra[s:e].astype(F32)[:, None, None, None]
        r = ra + t * (caps.rb[s:e].astype(F32)[:, None, None, None] - ra)
        r2 = r * r
        ramp = np.clip(F32(0.5) + (np.sqrt(r2 + sigma2) - dist) / F32(w), F32(0), F32(1))
        f = (F32(1) - np.exp(-r2 / (F32(2) * sigma2))) * ramp
        cover = f.max(axis=0)
        box = (slice(lo[2] - k0, hi[2] - k0), slice(lo[1], hi[1]), slice(lo[0], hi[0]))
        old = frac[box]
        wins = cover >= old
        if not wins.any():
            continue
        ha = caps.hua[s:e].astype(F32)[:, None, None, None]
        hb = caps.hub[s:e].astype(F32)[:, None, None, None]
        # the HU where the capsules of the chunk cover the voxel (they are steps of one branch)
        hu = (f * (ha + t * (hb - ha))).sum(axis=0) / np.maximum(f.sum(axis=0), F32(1e-6))
        frac[box] = np.where(wins, cover, old)
        value[box] = np.where(wins, hu, value[box])
