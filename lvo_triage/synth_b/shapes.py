"""Smooth solids of the head frame as approximate signed distances (mm, negative inside).

The cranial cavity is a superquadric ``(|x/a|^p + |y/b|^p + |z/c|^p)^(1/p) = 1`` whose
half-width grows towards the back (an egg, wider at the parietal eminences) and whose radius is
modulated by smooth bumps on the sphere of directions. The level function is homogeneous of
degree one about the centre, so a point's radial distance to the surface is ``r (1 - 1/L)``.
Below, the cavity is closed by the floor of the anterior, middle and posterior cranial fossae,
a smooth height field ``floor_z(x, y)`` with the sella, the petrous ridges and the clivus.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from lvo_triage.synth_b.case import HeadB

F32 = np.float32
Solid = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]
Triple = tuple[float, float, float]


def _bumps(head: HeadB, x: np.ndarray, y: np.ndarray, z: np.ndarray, r: np.ndarray) -> np.ndarray:
    """1 + the sum of the head's bumps at the directions of (x, y, z) (r: their length)."""
    inv = F32(1.0) / np.maximum(r, F32(1e-3))
    total = np.ones_like(r)
    for ux, uy, uz, amp, width in head.bumps:
        cos = (x * F32(ux) + y * F32(uy) + z * F32(uz)) * inv
        total += F32(amp) * np.exp(F32(width) * (cos - F32(1.0)))
    return total


def cranial_level(
    head: HeadB, x: np.ndarray, y: np.ndarray, z: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The superquadric level ``L`` (1 on the inner table) and the distance ``r`` from its
    centre, for head-frame coordinates (arrays of any shape)."""
    cx, cy, cz = head.centre
    a, b, c = head.half_axes
    p = F32(head.exponent)
    dx, dy, dz = x - F32(cx), y - F32(cy), z - F32(cz)
    widen = F32(1.0) + F32(head.taper / b) * dy
    level = (
        np.abs(dx / (F32(a) * widen)) ** p + np.abs(dy / F32(b)) ** p + np.abs(dz / F32(c)) ** p
    ) ** (F32(1.0) / p)
    r = np.sqrt(dx * dx + dy * dy + dz * dz)
    return level / _bumps(head, dx, dy, dz, r), r


def inner_distance(head: HeadB, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Radial distance (mm) to the inner table of the vault, positive outside."""
    level, r = cranial_level(head, x, y, z)
    out: np.ndarray = r * (F32(1.0) - F32(1.0) / np.maximum(level, F32(1e-3)))
    return out


def _sigmoid(t: np.ndarray) -> np.ndarray:
    out: np.ndarray = F32(0.5) + F32(0.5) * np.tanh(t)
    return out


def petrous_ridge_y(ax: np.ndarray) -> np.ndarray:
    """Head-frame y of the petrous ridge at lateral distance ``ax`` (runs back and out)."""
    return F32(2.0) + F32(0.5) * np.maximum(ax - F32(12.0), F32(0.0))


def floor_z(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Head-frame z of the floor of the cranial cavity above (x, y)."""
    ax = np.abs(x)
    anterior = F32(-7.0) - F32(7.0) * np.exp(-((x / F32(7.0)) ** 2)) + F32(0.04) * ax
    middle = F32(-38.0) + F32(24.0) * np.exp(-((x / F32(15.0)) ** 2))
    posterior = (
        F32(-52.0) + F32(10.0) * (x / F32(40.0)) ** 2 + F32(0.5) * np.maximum(y - F32(60.0), 0)
    )
    to_middle = _sigmoid((y + F32(22.0) - F32(0.2) * ax) / F32(2.5))
    ridge_y = petrous_ridge_y(ax)
    to_posterior = _sigmoid((y - ridge_y - F32(4.0)) / F32(3.0))
    lateral = _sigmoid((ax - F32(13.0)) / F32(2.0))
    ridge = F32(17.0) * np.exp(-(((y - ridge_y) / F32(4.5)) ** 2)) * lateral
    dorsum = F32(14.0) * np.exp(-(((y - F32(2.0)) / F32(2.5)) ** 2) - (x / F32(9.0)) ** 2)
    base = anterior + to_middle * (middle + to_posterior * (posterior - middle) - anterior)
    out: np.ndarray = base + ridge + dorsum
    return out


def cavity_distance(head: HeadB, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Signed distance (mm) to the cranial cavity: the vault intersected with 'above the floor'."""
    out: np.ndarray = np.maximum(inner_distance(head, x, y, z), floor_z(x, y) - z)
    return out


def superellipsoid(
    x: np.ndarray,
    y: np.ndarray,
    z: np.ndarray,
    centre: tuple[float, float, float],
    semi: tuple[float, float, float],
    power: float = 2.0,
) -> np.ndarray:
    """Approximate signed distance (mm) to an axis-aligned superellipsoid."""
    dx, dy, dz = x - F32(centre[0]), y - F32(centre[1]), z - F32(centre[2])
    p = F32(power)
    level = (
        np.abs(dx / F32(semi[0])) ** p
        + np.abs(dy / F32(semi[1])) ** p
        + np.abs(dz / F32(semi[2])) ** p
    ) ** (F32(1.0) / p)
    r = np.sqrt(dx * dx + dy * dy + dz * dz)
    out: np.ndarray = r * (F32(1.0) - F32(1.0) / np.maximum(level, F32(1e-3)))
    return out


def ellipsoid(centre: Triple, semi: Triple, power: float = 2.0) -> Solid:
    """The solid of :func:`superellipsoid`."""

    def solid(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        return superellipsoid(x, y, z, centre, semi, power)

    return solid


def segment_distance(
    x: np.ndarray, y: np.ndarray, z: np.ndarray, a: Triple, b: Triple
) -> np.ndarray:
    """Distance (mm) to the segment a-b."""
    d = np.asarray(b, dtype=np.float32) - np.asarray(a, dtype=np.float32)
    px, py, pz = x - F32(a[0]), y - F32(a[1]), z - F32(a[2])
    t = np.clip((px * d[0] + py * d[1] + pz * d[2]) / F32(d @ d), 0, 1)
    out: np.ndarray = np.sqrt((px - t * d[0]) ** 2 + (py - t * d[1]) ** 2 + (pz - t * d[2]) ** 2)
    return out


def rod(a: Triple, b: Triple, radius: float) -> Solid:
    """A capsule of ``radius`` around the segment a-b."""

    def solid(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        return segment_distance(x, y, z, a, b) - F32(radius)

    return solid


def alpha(distance: np.ndarray, width: float) -> np.ndarray:
    """Partial-volume occupancy of a voxel of size ``width`` at a signed distance."""
    return np.clip(F32(0.5) - distance / F32(width), F32(0.0), F32(1.0))


def shell_points(head: HeadB, directions: np.ndarray, offset_mm: np.ndarray | float) -> np.ndarray:
    """Points along unit ``directions`` (n, 3) from the cranial centre at ``offset_mm`` from
    the inner table (negative: inside), lifted above the floor where they would fall below it
    (so that they lie on the inferior surface of the brain instead)."""
    u = np.asarray(directions, dtype=np.float32)
    centre = np.asarray(head.centre, dtype=np.float32)
    level, _ = cranial_level(head, u[:, 0] + centre[0], u[:, 1] + centre[1], u[:, 2] + centre[2])
    radius = F32(1.0) / np.maximum(level, F32(1e-3))  # L is homogeneous of degree one
    pts = centre + u * (radius + np.asarray(offset_mm, dtype=np.float32))[:, None]
    lowest = floor_z(pts[:, 0], pts[:, 1]) - np.minimum(np.asarray(offset_mm, dtype=np.float32), 0)
    pts[:, 2] = np.maximum(pts[:, 2], lowest)
    out: np.ndarray = pts.astype(np.float64)
    return out


def snap_to_surface(head: HeadB, pts: np.ndarray, depth_mm: np.ndarray) -> np.ndarray:
    """Points moved to ``depth_mm`` below the inner table along their radial direction, or
    to that height above the floor when the floor is the nearer surface."""
    pts = np.asarray(pts, dtype=np.float64)
    centre = np.asarray(head.centre)
    rel = pts - centre
    norm = np.linalg.norm(rel, axis=1, keepdims=True)
    snapped = shell_points(head, rel / np.maximum(norm, 1e-6), -depth_mm)
    to_floor = pts[:, 2] - floor_z(pts[:, 0].astype(F32), pts[:, 1].astype(F32))
    to_vault = -inner_distance(head, *(pts.astype(F32).T))
    use_floor = to_floor < to_vault
    snapped[use_floor] = pts[use_floor]
    floor = floor_z(pts[use_floor, 0].astype(F32), pts[use_floor, 1].astype(F32))
    snapped[use_floor, 2] = floor + depth_mm[use_floor]
    return snapped
