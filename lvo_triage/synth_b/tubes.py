"""Vessels as tapered tubes along centrelines, and the tree that connects them.

A :class:`Branch` is a polyline (head frame, mm) with a radius per point. Arteries form a tree
in the direction of flow: ``parent`` is the branch this one leaves, at its point ``attach``.
Centrelines through anatomical landmarks are centripetal Catmull-Rom splines (no overshoot
loops between unevenly spaced landmarks), sampled about every millimetre.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

LEFT, RIGHT, MIDLINE = 0, 1, -1
Landmarks = np.ndarray | Sequence[Sequence[float]]  # (n, 3) head-frame points


@dataclass
class Branch:
    name: str  # e.g. ICA, M1, M2, MCA-ctx, A1, SSS
    side: int  # LEFT, RIGHT or MIDLINE
    kind: str  # artery or vein
    points: np.ndarray  # (n, 3) head frame, mm
    radius: np.ndarray  # (n,) mm
    parent: int = -1
    attach: int = 0

    def arc(self) -> np.ndarray:
        """Arc length (mm) at every point, from the first."""
        steps = np.linalg.norm(np.diff(self.points, axis=0), axis=1)
        return np.concatenate([[0.0], np.cumsum(steps)])

    @property
    def length(self) -> float:
        return float(self.arc()[-1])


def catmull_rom(landmarks: np.ndarray, step_mm: float = 1.0) -> np.ndarray:
    """A centripetal Catmull-Rom spline through ``landmarks`` (m, 3), sampled every ~step."""
    pts = np.asarray(landmarks, dtype=np.float64)
    if len(pts) < 2:
        return pts.copy()
    ext = np.vstack([2 * pts[0] - pts[1], pts, 2 * pts[-1] - pts[-2]])
    out = [pts[:1]]
    for i in range(1, len(ext) - 2):
        p0, p1, p2, p3 = ext[i - 1], ext[i], ext[i + 1], ext[i + 2]
        t0 = 0.0
        t1 = t0 + max(float(np.linalg.norm(p1 - p0)) ** 0.5, 1e-6)
        t2 = t1 + max(float(np.linalg.norm(p2 - p1)) ** 0.5, 1e-6)
        t3 = t2 + max(float(np.linalg.norm(p3 - p2)) ** 0.5, 1e-6)
        n = max(2, int(np.ceil(np.linalg.norm(p2 - p1) / step_mm)) + 1)
        t = np.linspace(t1, t2, n)[1:, None]
        a1 = (t1 - t) / (t1 - t0) * p0 + (t - t0) / (t1 - t0) * p1
        a2 = (t2 - t) / (t2 - t1) * p1 + (t - t1) / (t2 - t1) * p2
        a3 = (t3 - t) / (t3 - t2) * p2 + (t - t2) / (t3 - t2) * p3
        b1 = (t2 - t) / (t2 - t0) * a1 + (t - t0) / (t2 - t0) * a2
        b2 = (t3 - t) / (t3 - t1) * a2 + (t - t1) / (t3 - t1) * a3
        out.append((t2 - t) / (t2 - t1) * b1 + (t - t1) / (t2 - t1) * b2)
    return np.vstack(out)


def tube(
    name: str,
    side: int,
    landmarks: Landmarks,
    r_start: float,
    r_end: float,
    *,
    kind: str = "artery",
    parent: int = -1,
    attach: int = 0,
    step_mm: float = 1.0,
) -> Branch:
    """A branch through ``landmarks`` whose radius tapers linearly along its length."""
    points = catmull_rom(np.asarray(landmarks, dtype=np.float64), step_mm)
    steps = np.linalg.norm(np.diff(points, axis=0), axis=1)
    s = np.concatenate([[0.0], np.cumsum(steps)])
    frac = s / max(float(s[-1]), 1e-6)
    radius = r_start + (r_end - r_start) * frac
    return Branch(name, side, kind, points, radius, parent, attach)


def mirror(points: Landmarks, side: int) -> np.ndarray:
    """Landmarks given for the left (+x) side, on ``side``."""
    pts = np.array(points, dtype=np.float64)
    if side == RIGHT:
        pts[:, 0] *= -1.0
    return pts


def jitter(
    rng: np.random.Generator, points: np.ndarray, scale_mm: float, keep_ends: bool = False
) -> np.ndarray:
    """Landmarks moved by smooth random offsets (tortuosity), optionally keeping both ends."""
    out = np.array(points, dtype=np.float64)
    moves = rng.normal(0.0, scale_mm, size=out.shape)
    if keep_ends:
        moves[0] = moves[-1] = 0.0
    return out + moves


def nearest_index(branch: Branch, point: np.ndarray) -> int:
    return int(np.argmin(np.linalg.norm(branch.points - point, axis=1)))


def index_at(branch: Branch, arc_mm: float) -> int:
    """Index of the first point at or beyond ``arc_mm`` along the branch (clipped)."""
    found = int(np.searchsorted(branch.arc(), arc_mm))
    return min(found, len(branch.points) - 1)
