"""Edits that turn the phantom's series into what hospitals send: new studies, other series kinds,
several acquisitions in one series, Enhanced CT multi-frame files, dose reports."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import (
    EnhancedCTImageStorage,
    ExplicitVRLittleEndian,
    SecondaryCaptureImageStorage,
    generate_uid,
)

XRAY_DOSE_SR = "1.2.840.10008.5.1.4.1.1.88.67"


def rewrite(
    src: Path,
    dst: Path,
    *,
    study_uid: str | None = None,
    series_uid: str | None = None,
    edit: Callable[[Dataset], None] | None = None,
    limit: int | None = None,
) -> Path:
    """Copy the series in ``src`` to ``dst`` with new instance UIDs (and the given study/series
    UIDs, else new ones), applying ``edit`` to each dataset."""
    dst.mkdir(parents=True, exist_ok=True)
    study_uid = study_uid or generate_uid()
    series_uid = series_uid or generate_uid()
    for path in sorted(src.iterdir())[:limit]:
        ds = pydicom.dcmread(path)
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        if edit is not None:
            edit(ds)
        ds.save_as(dst / f"{ds.SOPInstanceUID}.dcm", enforce_file_format=True)
    return dst


def study_uid_of(folder: Path) -> str:
    return str(
        pydicom.dcmread(
            next(iter(sorted(folder.iterdir()))), stop_before_pixels=True
        ).StudyInstanceUID
    )


def enhanced_ct(src: Path, out_file: Path, *, reverse: bool = True) -> Path:
    """All slices of the series in ``src`` as one Enhanced CT multi-frame file with per-frame
    positions (frames stored in reverse slice order unless ``reverse`` is False)."""
    slices = [pydicom.dcmread(p) for p in sorted(src.iterdir())]
    slices.sort(key=lambda d: float(d.ImagePositionPatient[2]), reverse=reverse)
    first = slices[0]
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = EnhancedCTImageStorage
    ds.SOPClassUID = EnhancedCTImageStorage
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    for name in ("StudyInstanceUID", "AccessionNumber", "PatientName", "PatientID", "StudyDate"):
        setattr(ds, name, getattr(first, name))
    ds.SeriesInstanceUID = generate_uid()
    ds.SeriesDescription = "CTA ENHANCED"
    ds.Modality = "CT"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL", "NONE"]
    ds.Rows, ds.Columns = first.Rows, first.Columns
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 12, 11
    ds.PixelRepresentation = 0
    ds.NumberOfFrames = len(slices)
    shared = Dataset()
    orientation, measures, transform = Dataset(), Dataset(), Dataset()
    orientation.ImageOrientationPatient = first.ImageOrientationPatient
    measures.PixelSpacing = first.PixelSpacing
    measures.SliceThickness = first.get("SliceThickness", 1.0)
    transform.RescaleIntercept, transform.RescaleSlope = first.RescaleIntercept, 1
    transform.RescaleType = "HU"
    shared.PlaneOrientationSequence = Sequence([orientation])
    shared.PixelMeasuresSequence = Sequence([measures])
    shared.PixelValueTransformationSequence = Sequence([transform])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    frames = []
    for s in slices:
        item, position = Dataset(), Dataset()
        position.ImagePositionPatient = s.ImagePositionPatient
        item.PlanePositionSequence = Sequence([position])
        frames.append(item)
    ds.PerFrameFunctionalGroupsSequence = Sequence(frames)
    ds.PixelData = np.stack([s.pixel_array for s in slices]).astype(np.uint16).tobytes()
    out_file.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(out_file, enforce_file_format=True)
    return out_file


def dose_reports(template: Path, out: Path) -> list[Path]:
    """A dose page as a secondary capture and an X-ray radiation dose SR, in the study of the
    CT file ``template`` (the two things a scanner sends next to the images)."""
    out.mkdir(parents=True, exist_ok=True)
    ct = pydicom.dcmread(template)
    sc = pydicom.dcmread(template)
    sc.SOPClassUID = sc.file_meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    sc.SOPInstanceUID = sc.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    sc.SeriesInstanceUID = generate_uid()
    sc.SeriesDescription = "Dose Report"
    sc.ImageType = ["DERIVED", "SECONDARY", "SCREEN SAVE"]
    sr = Dataset()
    sr.file_meta = FileMetaDataset()
    sr.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    sr.SOPClassUID = sr.file_meta.MediaStorageSOPClassUID = XRAY_DOSE_SR
    sr.SOPInstanceUID = sr.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    sr.StudyInstanceUID, sr.SeriesInstanceUID = ct.StudyInstanceUID, generate_uid()
    sr.Modality, sr.SeriesDescription = "SR", "Radiation Dose Information"
    sr.ValueType = "CONTAINER"
    paths = [out / "dose-page.dcm", out / "dose-sr.dcm"]
    sc.save_as(paths[0], enforce_file_format=True)
    sr.save_as(paths[1], enforce_file_format=True)
    return paths
