"""Slice geometry: the slice normal, order along it, and spacing from positions."""

from __future__ import annotations

import numpy as np

from lvo_triage.dicom.discover import Instance
from lvo_triage.errors import NotAnalyzable


def slice_normal(orientation: tuple[float, ...]) -> np.ndarray:
    """Unit normal of a slice: row direction x column direction."""
    row = np.asarray(orientation[:3], dtype=np.float64)
    col = np.asarray(orientation[3:], dtype=np.float64)
    n = np.cross(row, col)
    norm = float(np.linalg.norm(n))
    if norm < 1e-6:
        msg = f"ImageOrientationPatient {list(orientation)} is degenerate"
        raise NotAnalyzable(msg)
    return n / norm


def sorted_along_normal(instances: list[Instance]) -> tuple[list[Instance], np.ndarray]:
    """Instances ordered by position along the slice normal (never by name or InstanceNumber),
    and their positions along it in mm."""
    first = instances[0]
    if first.orientation is None or any(i.position is None for i in instances):
        msg = "the images carry no position/orientation, so the volume cannot be rebuilt"
        raise NotAnalyzable(msg)
    normal = slice_normal(first.orientation)
    for inst in instances:
        assert inst.orientation is not None
        if not np.allclose(inst.orientation, first.orientation, atol=1e-3):
            msg = "the series mixes image orientations, so it is not one volume"
            raise NotAnalyzable(msg)
    along = np.array([float(np.dot(normal, inst.position)) for inst in instances])  # type: ignore[arg-type]
    order = np.argsort(along, kind="stable")
    return [instances[i] for i in order], along[order]


def slice_spacing(positions: np.ndarray) -> float:
    """Median distance between neighbouring slices, in mm."""
    if positions.size < 2:
        return 0.0
    return float(np.median(np.diff(positions)))
