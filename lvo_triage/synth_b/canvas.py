"""A slab of slices on which tissues are painted, solid after solid, in head-frame terms.

A solid is a signed distance (mm) evaluated only inside the index box of its head-frame
bounding box; painting blends its value in with the partial-volume occupancy of each voxel, so a
later solid covers an earlier one and edges are anti-aliased. Tissue can be painted on a
coarser in-plane grid (``stride``) and resampled to the voxel grid by :func:`upsample`: the
reconstruction kernel blurs tissue edges by about that much anyway.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from lvo_triage.synth_b.geometry import Grid
from lvo_triage.synth_b.shapes import F32, Solid, Triple, alpha, ellipsoid

Coords = tuple[np.ndarray, np.ndarray, np.ndarray]
Value = float | Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]
Box = tuple[slice, slice, slice]


class Canvas:
    """Slices ``k0`` to ``k1`` of ``grid``, every ``stride``-th column and row."""

    def __init__(self, grid: Grid, k0: int, k1: int, stride: int = 1) -> None:
        self.grid, self.k0, self.k1, self.stride = grid, k0, k1, stride
        n = grid.shape[1]
        self.size = math.ceil(n / stride)
        centres = stride * np.arange(self.size, dtype=np.float64) + (stride - 1) / 2.0
        self.ks = np.arange(k0, k1, dtype=np.float64)
        self.js = self.is_ = centres
        self.hu = np.full((k1 - k0, self.size, self.size), -1000.0, dtype=np.float32)
        self.width = float((grid.pixel_mm * stride) ** 2 * grid.slice_mm) ** (1 / 3)
        self.everything: Box = (slice(None), slice(None), slice(None))
        self._cache: dict[str, np.ndarray] = {}
        self._coords: Coords | None = None

    def cached(self, name: str, field: Solid) -> np.ndarray:
        """``field`` over the whole slab, computed once per slab under ``name``."""
        if name not in self._cache:
            if self._coords is None:
                self._coords = self.coords(self.everything)
            self._cache[name] = field(*self._coords)
        return self._cache[name]

    def box(self, lo: tuple[float, ...] | None, hi: tuple[float, ...] | None) -> Box | None:
        """The part of this slab inside the head-frame box ``lo``..``hi`` (None: nothing)."""
        if lo is None or hi is None:
            return self.everything
        idx_lo, idx_hi = self.grid.index_box(np.asarray(lo), np.asarray(hi), 1.5 * self.width)
        k_lo = max(math.floor(idx_lo[0]) - self.k0, 0)
        k_hi = min(math.ceil(idx_hi[0]) + 1 - self.k0, self.k1 - self.k0)
        s = self.stride
        j_lo = max(math.floor((idx_lo[1] - (s - 1) / 2) / s), 0)
        j_hi = min(math.ceil((idx_hi[1] - (s - 1) / 2) / s) + 1, self.size)
        i_lo = max(math.floor((idx_lo[2] - (s - 1) / 2) / s), 0)
        i_hi = min(math.ceil((idx_hi[2] - (s - 1) / 2) / s) + 1, self.size)
        if k_lo >= k_hi or j_lo >= j_hi or i_lo >= i_hi:
            return None
        return (slice(k_lo, k_hi), slice(j_lo, j_hi), slice(i_lo, i_hi))

    def coords(self, box: Box) -> Coords:
        if self._coords is not None:
            x, y, z = self._coords
            return x[box], y[box], z[box]
        return self.grid.head_coords(self.ks[box[0]], self.js[box[1]], self.is_[box[2]])

    def paint(
        self,
        solid: Solid,
        value: Value,
        lo: tuple[float, ...] | None = None,
        hi: tuple[float, ...] | None = None,
        within: np.ndarray | None = None,
    ) -> None:
        """Blend ``value`` (HU, or a function of the coordinates) into the voxels of ``solid``
        (intersected with the slab-sized signed distance ``within``, if given)."""
        box = self.box(lo, hi)
        if box is None:
            return
        x, y, z = self.coords(box)
        distance = solid(x, y, z)
        if within is not None:
            distance = np.maximum(distance, within[box])
        occupancy = alpha(distance, self.width)
        if not occupancy.any():
            return
        hu = self.hu[box]
        fill = value(x, y, z) if callable(value) else F32(value)
        hu += occupancy * (fill - hu)

    def ellipsoid(self, centre: Triple, semi: Triple, value: Value, power: float = 2.0) -> None:
        """Paint a superellipsoid (its bounding box found from ``centre`` and ``semi``)."""
        lo = tuple(c - s for c, s in zip(centre, semi, strict=True))
        hi = tuple(c + s for c, s in zip(centre, semi, strict=True))
        self.paint(ellipsoid(centre, semi, power), value, lo, hi)

    def blend(self, box: Box, occupancy: np.ndarray, value: np.ndarray | float) -> None:
        """Blend precomputed ``occupancy`` (0..1) of ``value`` into the voxels of ``box``."""
        hu = self.hu[box]
        hu += occupancy * (np.asarray(value, dtype=np.float32) - hu)


def upsample(coarse: np.ndarray, stride: int, size: int) -> np.ndarray:
    """Bilinear in-plane resampling of ``(slices, m, m)`` painted at every ``stride``-th voxel
    (centres at ``stride * m + (stride - 1) / 2``) to ``(slices, size, size)``."""
    if stride == 1:
        return coarse
    m = coarse.shape[1]
    pos = (np.arange(size) - (stride - 1) / 2.0) / stride
    lo = np.clip(np.floor(pos).astype(np.int64), 0, m - 1)
    hi = np.clip(lo + 1, 0, m - 1)
    w = np.clip(pos - lo, 0.0, 1.0).astype(np.float32)
    rows = coarse[:, lo, :] * (1 - w)[None, :, None] + coarse[:, hi, :] * w[None, :, None]
    return rows[:, :, lo] * (1 - w)[None, None, :] + rows[:, :, hi] * w[None, None, :]
