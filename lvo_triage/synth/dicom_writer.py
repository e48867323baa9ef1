"""Write an HU volume as a CT Image Storage series (one file per slice).

Explicit VR little endian with preamble and file meta, 12-bit unsigned pixels with
RescaleIntercept -1024. One dataset is built once and only the per-slice attributes change, so
300 slices of 512x512 take about a second. File names are the SOPInstanceUID (no order encoded).
Every dataset says SYNTHETIC PHANTOM - NOT FOR CLINICAL USE.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    UID,
    CTImageStorage,
    ExplicitVRLittleEndian,
    generate_uid,
)

from lvo_triage.dicom.volume_types import Volume
from lvo_triage.synth.spec import PhantomSpec

INTERCEPT = -1024.0
MAX_STORED = 4095


def _ds(x: float) -> str:
    """Format a float for a DS element (at most 16 characters)."""
    s = f"{x:.6g}"
    return "0" if s in ("-0", "0") else s


def uid(spec: PhantomSpec, *parts: object) -> str:
    """Deterministic UID from the case seed and ``parts``."""
    return str(
        generate_uid(
            entropy_srcs=["lvo-triage-synth", str(spec.seed), spec.case_id, *map(str, parts)]
        )
    )


def _geometry(volume: Volume) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Unit row, column, normal directions and spacings; checks the grid is a plain slice stack."""
    cols = volume.affine[:3, :3]
    spacing = np.linalg.norm(cols, axis=0)
    if np.any(spacing <= 0):
        msg = f"affine has a zero-length axis: spacing {spacing.tolist()}"
        raise ValueError(msg)
    row, col, nrm = (cols / spacing).T
    if abs(row @ col) > 1e-4 or np.linalg.norm(np.cross(row, col) - nrm) > 1e-4:
        msg = f"affine {volume.affine.tolist()} is not an orthogonal slice stack along row x column"
        raise ValueError(msg)
    return row, col, nrm, spacing


def _base_dataset(spec: PhantomSpec, study_uid: str, series_uid: str, frame_uid: str) -> Dataset:
    day = date(2020, 1, 1) + timedelta(days=spec.seed % 1800)
    minute = spec.seed % 1440
    ds = Dataset()
    ds.SOPClassUID = CTImageStorage
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = day.strftime("%Y%m%d")
    ds.StudyTime = ds.SeriesTime = ds.AcquisitionTime = ds.ContentTime = (
        f"{minute // 60:02d}{minute % 60:02d}00"
    )
    ds.AccessionNumber = f"SYN{spec.seed % 10**12:012d}"
    ds.Modality = "CT"
    ds.Manufacturer = "lvo-triage synthetic phantom"
    ds.ManufacturerModelName = "PHANTOM"
    ds.InstitutionName = "SYNTHETIC"
    ds.ReferringPhysicianName = ""
    ds.StationName = "SYNTH"
    ds.StudyDescription = "CTA HEAD STROKE"
    ds.PatientName = f"PHANTOM^{spec.case_id}"
    ds.PatientID = f"PHANTOM-{spec.case_id}"
    ds.PatientBirthDate = ""
    ds.PatientSex = "O"
    ds.PatientAge = "070Y"
    ds.ContrastBolusAgent = "IODINE"
    ds.ContrastBolusRoute = "IV"
    ds.BodyPartExamined = "HEAD"
    ds.KVP = _ds(spec.kvp)
    ds.ConvolutionKernel = "STANDARD"
    ds.PatientPosition = "HFS"
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.StudyID = "1"
    ds.AcquisitionNumber = 1
    ds.FrameOfReferenceUID = frame_uid
    ds.PositionReferenceIndicator = ""
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.RescaleIntercept = _ds(INTERCEPT)
    ds.RescaleSlope = "1"
    ds.RescaleType = "HU"
    ds.WindowCenter = ["300", "40"]
    ds.WindowWidth = ["700", "400"]
    ds.BurnedInAnnotation = "NO"
    ds.ImageComments = "SYNTHETIC PHANTOM - NOT FOR CLINICAL USE"
    return ds


def write_series(
    volume: Volume,
    out_dir: Path,
    *,
    spec: PhantomSpec,
    study_uid: str,
    series_uid: str,
    series_number: int = 3,
    description: str = "CTA HEAD",
    slice_thickness_mm: float | None = None,
) -> list[Path]:
    """Write ``volume`` as one CT Image Storage file per slice into ``out_dir``; return paths."""
    row, col, nrm, spacing = _geometry(volume)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ds = _base_dataset(spec, study_uid, series_uid, uid(spec, study_uid, "frame"))
    ds.SeriesNumber = series_number
    ds.SeriesDescription = description
    nx, ny, nz = volume.hu.shape
    ds.Rows, ds.Columns = ny, nx
    ds.PixelSpacing = [
        _ds(spacing[1]),
        _ds(spacing[0]),
    ]  # row spacing (along j), column spacing (along i)
    ds.ImageOrientationPatient = [_ds(v) for v in (*row, *col)]
    ds.SliceThickness = _ds(slice_thickness_mm if slice_thickness_mm is not None else spacing[2])
    ds.SpacingBetweenSlices = _ds(spacing[2])
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = "LVO_TRIAGE_SYN"
    ds.file_meta = meta
    ds.preamble = b"\0" * 128
    stored = np.clip(np.rint(volume.hu - INTERCEPT), 0, MAX_STORED).astype("<u2")
    paths = []
    for k in range(nz):
        sop = uid(spec, series_uid, k)
        pos = volume.affine[:3, :3] @ np.array([0.0, 0.0, float(k)]) + volume.affine[:3, 3]
        number = nz - k if spec.instances_descending else k + 1
        meta.MediaStorageSOPInstanceUID = UID(sop)
        ds.SOPInstanceUID = sop
        ds.InstanceNumber = number
        ds.ImagePositionPatient = [_ds(v) for v in pos]
        ds.SliceLocation = _ds(float(pos @ nrm))
        ds.PixelData = np.ascontiguousarray(stored[:, :, k].T).tobytes()
        path = out_dir / f"{sop}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths
