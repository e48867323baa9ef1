"""The HU volume that flows from loading to preprocessing."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# DICOM patient coordinates (LPS: +x to the patient's left, +y posterior) <-> RAS+ (NIfTI, MONAI's
# "RAS": +x to the patient's right, +y anterior); the matrix is its own inverse.
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


@dataclass(frozen=True)
class Volume:
    """A CT volume in Hounsfield units with its geometry.

    ``hu`` is float32 with shape ``(nx, ny, nz)`` indexed ``[i, j, k]``: ``i`` runs along the
    DICOM row direction (the column index of a slice), ``j`` along the column direction (the row
    index), ``k`` along the slice normal in increasing position. ``affine`` maps ``(i, j, k, 1)`` to
    DICOM patient coordinates (LPS, millimetres): +x is the patient's left, +y posterior,
    +z superior.
    """

    hu: np.ndarray
    affine: np.ndarray

    def __post_init__(self) -> None:
        if self.hu.ndim != 3:
            msg = f"volume must be 3D, got shape {self.hu.shape}"
            raise ValueError(msg)
        if self.affine.shape != (4, 4):
            msg = f"affine must be 4x4, got shape {self.affine.shape}"
            raise ValueError(msg)

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel size in millimetres along i, j, k."""
        norms = np.linalg.norm(self.affine[:3, :3], axis=0)
        return (float(norms[0]), float(norms[1]), float(norms[2]))
