"""Write an HU volume as a NIfTI-1 image: int16 HU, the LPS affine turned into NIfTI's RAS+.

NIfTI world coordinates are RAS+ (+x toward the patient's right, +y anterior), DICOM's are LPS
(+x toward the patient's left, +y posterior): the same points with x and y negated, so the NIfTI
affine is ``LPS_TO_RAS @ volume.affine`` and the voxel array is written unchanged.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np

from lvo_triage.dicom.volume_types import LPS_TO_RAS, Volume

HU_RANGE = (-1024, 3071)  # what the DICOM writer can store (12 bits, intercept -1024)
SCANNER = 1  # NIfTI xform code "scanner anatomical"


def write_nifti(volume: Volume, path: Path, *, description: str = "") -> Path:
    """Write ``volume`` to ``path`` (``.nii.gz`` is gzipped) with sform and qform set; atomic."""
    path = Path(path)
    if not path.name.endswith((".nii", ".nii.gz")):
        msg = f"NIfTI file name {path.name!r} must end in .nii or .nii.gz"
        raise ValueError(msg)
    if len(description) > 79:
        msg = f"description {description!r} is longer than the 79 characters NIfTI-1 keeps"
        raise ValueError(msg)
    ras = LPS_TO_RAS @ volume.affine
    data = np.clip(np.rint(volume.hu), *HU_RANGE).astype(np.int16)
    image = nib.Nifti1Image(data, ras)
    image.set_sform(ras, code=SCANNER)
    image.set_qform(ras, code=SCANNER)
    image.header.set_xyzt_units(xyz="mm")
    image.header["descrip"] = description.encode("ascii")
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".partial-{path.name}")  # keeps the suffix nibabel compresses by
    nib.save(image, partial)
    partial.replace(path)
    return path
