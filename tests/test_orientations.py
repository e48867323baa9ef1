"""The patient's side in the result is right for any slice orientation and order.

One phantom head with a left M1 occlusion is rendered on grids whose slices are axial (head first,
feet first, and turned 180 degrees in plane), coronal and sagittal, written as DICOM with shuffled
file names, and triaged.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lvo_triage.config import Settings
from lvo_triage.dicom.volume_types import Volume
from lvo_triage.pipeline import Runtime, triage_path
from lvo_triage.result import Priority, Side, Status
from lvo_triage.synth import acquisition_grid, render, sample_spec, write_series

SEED = 9_400_000  # evaluation range, as in test_golden.py
STEP_MM = 1.4
# Columns: DICOM row direction, column direction, slice normal (LPS).
ORIENTATIONS = {
    "axial head-first": np.eye(3),
    "axial feet-first": np.array([[-1.0, 0, 0], [0, 1, 0], [0, 0, -1]]),
    "axial flipped (rows and columns reversed)": np.array([[-1.0, 0, 0], [0, -1, 0], [0, 0, 1]]),
    "coronal": np.array([[1.0, 0, 0], [0, 0, 1], [0, -1, 0]]),
    "sagittal": np.array([[0, 0, -1.0], [1, 0, 0], [0, -1, 0]]),
}


def _grid_like_acquisition(directions: np.ndarray) -> tuple[tuple[int, int, int], np.ndarray]:
    """A grid of ``directions`` covering the same box as the phantom's own (axial) acquisition."""
    spec = sample_spec(SEED, case_id="orient", lvo=True, side="left", site="M1")
    shape, affine = acquisition_grid(spec, fast=True)
    far = affine[:3, :3] @ (np.asarray(shape) - 1) + affine[:3, 3]
    lo, hi = np.minimum(affine[:3, 3], far), np.maximum(affine[:3, 3], far)
    extent = directions.T @ (hi - lo)
    n = np.abs(extent) / STEP_MM
    new_shape = tuple(int(v) + 1 for v in n)
    out = np.eye(4)
    out[:3, :3] = directions * STEP_MM
    # Start at the corner of the box that is lowest along each of the new axes.
    start = np.where(directions.sum(axis=1) >= 0, lo, hi)
    out[:3, 3] = start
    return (new_shape[0], new_shape[1], new_shape[2]), out


@pytest.mark.parametrize("name", list(ORIENTATIONS))
def test_left_occlusion_is_left_in_every_orientation(
    name: str, tmp_path: Path, bundled_model: Path
) -> None:
    directions = ORIENTATIONS[name]
    assert np.allclose(np.cross(directions[:, 0], directions[:, 1]), directions[:, 2])
    spec = sample_spec(SEED, case_id="orient", lvo=True, side="left", site="M1")
    shape, affine = _grid_like_acquisition(directions)
    volume: Volume = render(spec, shape, affine)
    write_series(volume, tmp_path, spec=spec, study_uid="1.2.3.4", series_uid="1.2.3.4.5")
    (result,) = triage_path(Runtime.create(Settings()), tmp_path)
    assert result.status is Status.OK, result.reason
    assert result.priority is Priority.HIGH, result.probability
    assert result.side is Side.LEFT
