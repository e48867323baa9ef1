"""Discover studies under a path by reading DICOM headers only; junk is skipped and reported."""

from __future__ import annotations

import logging
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

log = logging.getLogger(__name__)

DICOMDIR_CLASS = "1.2.840.10008.1.3.10"
JUNK_NAMES = {"thumbs.db", ".ds_store", "desktop.ini"}


@dataclass(frozen=True)
class Instance:
    """The header facts of one DICOM file that selection and loading need (no patient data)."""

    path: Path
    sop_instance_uid: str
    sop_class_uid: str
    modality: str
    image_type: tuple[str, ...]
    position: tuple[float, float, float] | None
    orientation: tuple[float, float, float, float, float, float] | None
    pixel_spacing: tuple[float, float] | None
    rows: int
    columns: int
    instance_number: int | None
    frames: int


@dataclass
class Series:
    uid: str
    description: str
    modality: str
    instances: list[Instance] = field(default_factory=list)


@dataclass
class Study:
    uid: str
    accession_number: str | None
    series: dict[str, Series] = field(default_factory=dict)


@dataclass
class Discovery:
    """What a scan found: studies in order of first appearance, and the files skipped (with why)."""

    studies: list[Study]
    skipped: list[str]
    files_seen: int


def _floats(value: object, n: int) -> tuple[float, ...] | None:
    try:
        out = tuple(float(v) for v in value)  # type: ignore[attr-defined]
    except (TypeError, ValueError):
        return None
    return out if len(out) == n else None


def _int(value: object) -> int | None:
    """An integer tag value, or None when it is missing or malformed (e.g. IS '1A')."""
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return None


def _read_header(path: Path) -> Dataset:
    try:
        return pydicom.dcmread(path, stop_before_pixels=True)
    except InvalidDicomError:
        # No preamble or no file meta: still DICOM if the dataset parses and names its instance.
        ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
        if "SOPInstanceUID" not in ds or "StudyInstanceUID" not in ds:
            raise
        return ds


def read_instance(path: Path) -> tuple[Instance | None, str | None, str | None, str, str]:
    """Parse one file's header. Returns (instance or None, study uid, accession, series uid,
    description), or raises ``ValueError`` with the reason the file is skipped."""
    if path.name.lower() in JUNK_NAMES:
        raise ValueError("not a DICOM file")
    if path.stat().st_size == 0:
        raise ValueError("empty file")
    try:
        ds = _read_header(path)
    except (InvalidDicomError, EOFError, OSError, KeyError, TypeError, struct.error) as exc:
        raise ValueError(f"not readable as DICOM ({type(exc).__name__})") from exc
    meta_class = str(getattr(ds.file_meta, "MediaStorageSOPClassUID", "")) if ds.file_meta else ""
    if meta_class == DICOMDIR_CLASS or "DirectoryRecordSequence" in ds:
        raise ValueError("DICOMDIR index, not an image")
    sop = str(ds.get("SOPInstanceUID", "")).strip()
    study = str(ds.get("StudyInstanceUID", "")).strip()
    series = str(ds.get("SeriesInstanceUID", "")).strip()
    if not (sop and study and series):
        raise ValueError("DICOM file without SOP/study/series instance UID")
    spacing = _floats(ds.get("PixelSpacing"), 2)
    inst = Instance(
        path=path,
        sop_instance_uid=sop,
        sop_class_uid=str(ds.get("SOPClassUID", "")),
        modality=str(ds.get("Modality", "")).upper(),
        image_type=tuple(str(v).upper() for v in (ds.get("ImageType") or ())),
        position=_floats(ds.get("ImagePositionPatient"), 3),  # type: ignore[arg-type]
        orientation=_floats(ds.get("ImageOrientationPatient"), 6),  # type: ignore[arg-type]
        pixel_spacing=spacing,  # type: ignore[arg-type]
        rows=_int(ds.get("Rows")) or 0,
        columns=_int(ds.get("Columns")) or 0,
        instance_number=_int(ds.get("InstanceNumber")),
        frames=_int(ds.get("NumberOfFrames")) or 1,
    )
    accession = str(ds.get("AccessionNumber", "")).strip() or None
    description = str(ds.get("SeriesDescription", "")).strip()
    return inst, study, accession, series, description


def iter_files(root: Path) -> Iterator[Path]:
    """Every regular file under ``root`` (or ``root`` itself), in a stable order."""
    if root.is_file():
        yield root
        return
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            yield Path(dirpath) / name


def discover(root: Path) -> Discovery:
    """Group the DICOM files under ``root`` into studies and series; one copy per SOPInstanceUID."""
    studies: dict[str, Study] = {}
    skipped: list[str] = []
    seen_sops: set[str] = set()
    n = 0
    for path in iter_files(root):
        n += 1
        rel = path.relative_to(root) if path != root else Path(path.name)
        try:
            inst, study_uid, accession, series_uid, description = read_instance(path)
        except ValueError as exc:
            skipped.append(f"skipped {rel}: {exc}")
            continue
        assert inst is not None and study_uid is not None
        if inst.sop_instance_uid in seen_sops:
            skipped.append(f"skipped {rel}: duplicate of an instance already read")
            continue
        seen_sops.add(inst.sop_instance_uid)
        study = studies.setdefault(study_uid, Study(uid=study_uid, accession_number=accession))
        series = study.series.setdefault(
            series_uid, Series(uid=series_uid, description=description, modality=inst.modality)
        )
        series.instances.append(inst)
    for message in skipped:  # file paths can name patients: debug level only
        log.debug(message)
    return Discovery(studies=list(studies.values()), skipped=skipped, files_seen=n)
