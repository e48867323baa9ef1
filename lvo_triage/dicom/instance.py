"""One DICOM file's header → the ``Instance`` records (one per frame) that selection and loading
need. The fast scanner of ``header.py`` reads common files; pydicom reads every other one."""

from __future__ import annotations

import struct
from dataclasses import dataclass, replace
from io import BytesIO
from pathlib import Path
from typing import Any

import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.multival import MultiValue
from pydicom.uid import UID

from lvo_triage.config import LimitsSettings
from lvo_triage.dicom.claims import (
    DAMAGED,
    MAX_FRAMES,
    check_geometry,
    check_image,
    check_required,
    check_stored_length,
    has_image,
)
from lvo_triage.dicom.header import (
    EXPLICIT_LE,
    HEAD_BYTES,
    IMPLICIT_LE,
    WANTED,
    scan_bytes,
    scan_file,
)
from lvo_triage.errors import UnreadableFile

DICOMDIR_CLASS = "1.2.840.10008.1.3.10"
JUNK_NAMES = {"thumbs.db", ".ds_store", "desktop.ini"}
NATIVE_SYNTAXES = {EXPLICIT_LE, IMPLICIT_LE}


@dataclass(frozen=True)
class PixelFormat:
    """How the stored values of one frame become HU."""

    transfer_syntax: str
    bits_allocated: int
    bits_stored: int
    pixel_representation: int
    samples: int
    slope: float
    intercept: float


@dataclass(frozen=True)
class Instance:
    """One image (a file, or one frame of a multi-frame file): the header facts selection and
    loading need, no patient data. ``pixel_offset`` is set when the frame is stored uncompressed
    at a known place in the file, so loading reads it directly."""

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
    acquisition_number: int | None
    frames: int
    frame: int | None
    pixel: PixelFormat
    pixel_offset: int | None
    lossy: bool = False


@dataclass(frozen=True)
class FileHeader:
    """What one file contributes: its images and the study/series it belongs to."""

    instances: list[Instance]
    study_uid: str
    accession_number: str | None
    series_uid: str
    description: str


def _floats(text: str | None, n: int) -> tuple[float, ...] | None:
    if not text:
        return None
    try:
        out = tuple(float(v) for v in text.split("\\"))
    except ValueError:
        return None
    return out if len(out) == n else None


def _int(text: str | None) -> int | None:
    """An integer tag value, or None when it is missing or malformed (e.g. IS '1A')."""
    try:
        return int(str(text).strip())
    except (TypeError, ValueError):
        try:
            return int(float(str(text)))
        except (TypeError, ValueError):
            return None


def _float(text: str | None, default: float) -> float:
    try:
        return float(str(text).strip()) if text not in (None, "") else default
    except ValueError:
        return default


def _as_text(value: Any) -> str:
    if isinstance(value, MultiValue | list | tuple):
        return "\\".join(str(v) for v in value)
    return str(value)


def _dataset_values(ds: Dataset) -> dict[str, str]:
    out: dict[str, str] = {}
    for name in WANTED.values():
        value = ds.get(name)
        if value is not None and value != "":
            out[name] = _as_text(value)
    return out


def syntax_of(ds: Dataset) -> str:
    """The transfer syntax of a dataset read by pydicom; for a bare dataset without file meta,
    the encoding pydicom found while reading it."""
    meta = ds.file_meta if ds.file_meta is not None else Dataset()
    if "TransferSyntaxUID" in meta:
        return str(meta.TransferSyntaxUID)
    implicit, little = ds.original_encoding
    if implicit:
        return IMPLICIT_LE
    return EXPLICIT_LE if little is not False else "1.2.840.10008.1.2.2"


def _read_with_pydicom(path: Path | BytesIO) -> Dataset:
    try:
        return pydicom.dcmread(path, stop_before_pixels=True)
    except InvalidDicomError:
        # No preamble or no file meta: still DICOM if the dataset parses and names its instance.
        if isinstance(path, BytesIO):
            path.seek(0)
        ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
        if "SOPInstanceUID" not in ds or "StudyInstanceUID" not in ds:
            raise
        return ds


def _instance(path: Path, v: dict[str, str], syntax: str, offset: int | None) -> Instance:
    rows, cols = _int(v.get("Rows")) or 0, _int(v.get("Columns")) or 0
    pixel = PixelFormat(
        transfer_syntax=syntax,
        bits_allocated=_int(v.get("BitsAllocated")) or 16,
        bits_stored=_int(v.get("BitsStored")) or _int(v.get("BitsAllocated")) or 16,
        pixel_representation=_int(v.get("PixelRepresentation")) or 0,
        samples=_int(v.get("SamplesPerPixel")) or 1,
        slope=_float(v.get("RescaleSlope"), 1.0) or 1.0,
        intercept=_float(v.get("RescaleIntercept"), 0.0),
    )
    return Instance(
        path=path,
        sop_instance_uid=v.get("SOPInstanceUID", ""),
        sop_class_uid=v.get("SOPClassUID", ""),
        modality=v.get("Modality", "").upper(),
        image_type=tuple(t.strip().upper() for t in v.get("ImageType", "").split("\\") if t),
        position=_floats(v.get("ImagePositionPatient"), 3),  # type: ignore[arg-type]
        orientation=_floats(v.get("ImageOrientationPatient"), 6),  # type: ignore[arg-type]
        pixel_spacing=_floats(v.get("PixelSpacing"), 2),  # type: ignore[arg-type]
        rows=rows,
        columns=cols,
        instance_number=_int(v.get("InstanceNumber")),
        acquisition_number=_int(v.get("AcquisitionNumber")),
        frames=_int(v.get("NumberOfFrames")) or 1,
        frame=None,
        pixel=pixel,
        pixel_offset=offset,
        lossy=v.get("LossyImageCompression", "").strip() == "01",
    )


def _group_value(ds: Dataset, frame: int, sequence: str, name: str) -> Any:
    """An attribute of one frame from the per-frame functional groups, else the shared ones."""
    for groups, index in (
        ("PerFrameFunctionalGroupsSequence", frame),
        ("SharedFunctionalGroupsSequence", 0),
    ):
        items = ds.get(groups)
        if items is None or len(items) <= index:
            continue
        inner = items[index].get(sequence)
        if inner and name in inner[0]:
            return inner[0].get(name)
    return None


def _frames(base: Instance, ds: Dataset) -> list[Instance]:
    """The frames of a multi-frame (Enhanced CT) file as instances with their own geometry."""
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    if per_frame is not None and len(per_frame) < base.frames:
        msg = f"its header claims {base.frames} frames but describes {len(per_frame)}: {DAMAGED}"
        raise UnreadableFile(msg)
    out = []
    for k in range(min(base.frames, MAX_FRAMES)):

        def get(seq: str, name: str, k: int = k) -> str | None:
            value = _group_value(ds, k, seq, name)
            return None if value is None else _as_text(value)

        pos = get("PlanePositionSequence", "ImagePositionPatient")
        ori = get("PlaneOrientationSequence", "ImageOrientationPatient")
        spacing = get("PixelMeasuresSequence", "PixelSpacing")
        slope = get("PixelValueTransformationSequence", "RescaleSlope")
        intercept = get("PixelValueTransformationSequence", "RescaleIntercept")
        check_geometry(
            position=pos, orientation=ori, spacing=spacing, slope=slope, intercept=intercept
        )
        pixel = replace(
            base.pixel,
            slope=_float(slope, base.pixel.slope) or 1.0,
            intercept=_float(intercept, base.pixel.intercept),
        )
        out.append(
            replace(
                base,
                position=_floats(pos, 3) or base.position,  # type: ignore[arg-type]
                orientation=_floats(ori, 6) or base.orientation,  # type: ignore[arg-type]
                pixel_spacing=_floats(spacing, 2) or base.pixel_spacing,  # type: ignore[arg-type]
                frame=k,
                pixel=pixel,
            )
        )
    return out


def _native_offset(values: dict[str, str], offset: int | None, length: int) -> int | None:
    """The pixel offset when one uncompressed single frame of the expected size is stored."""
    if offset is None or length < 0:
        return None
    rows, cols = _int(values.get("Rows")) or 0, _int(values.get("Columns")) or 0
    bits = _int(values.get("BitsAllocated")) or 0
    samples = _int(values.get("SamplesPerPixel")) or 1
    frames = _int(values.get("NumberOfFrames")) or 1
    if frames != 1 or samples != 1 or bits not in (8, 16) or length < rows * cols * bits // 8:
        return None
    return offset


def read_header(
    path: Path,
    *,
    fast: bool = True,
    limits: LimitsSettings | None = None,
    data: bytes | None = None,
) -> FileHeader:
    """Parse one file's header, or raise :class:`UnreadableFile` with the reason the file is
    skipped, whatever the damage (nothing else escapes). ``fast=False`` always uses pydicom (the
    reference the fast scan is tested against). ``data``: the file's bytes when they are already
    at hand (an instance received by the DICOM node); ``path`` then only names it."""
    try:
        return _read_header(path, fast, limits if limits is not None else LimitsSettings(), data)
    except UnreadableFile:
        raise
    except Exception as exc:  # pydicom, numpy, the OS: a damaged file may make any of them raise
        msg = f"not readable as DICOM ({type(exc).__name__}): the file is damaged or not DICOM"
        raise UnreadableFile(msg) from exc


def _check_encoding(values: dict[str, str], syntax: str, pixel_length: int) -> None:
    """The pixel data is stored as the transfer syntax says (native: all of it; compressed: as
    fragments of undefined length)."""
    if syntax in NATIVE_SYNTAXES:
        if has_image(values):
            check_stored_length(values, pixel_length)
        return
    uid = UID(syntax)
    if not uid.is_transfer_syntax or uid.is_private:
        msg = (
            f"its pixel data is in an encoding lvo-triage does not know (transfer syntax "
            f"{syntax[:64]!r}): the file is damaged, or ask for the series uncompressed"
        )
        raise UnreadableFile(msg)
    if uid.is_encapsulated and pixel_length >= 0:
        msg = (
            f"its transfer syntax says compressed ({uid.name}) but its pixel data is stored "
            f"uncompressed: {DAMAGED}"
        )
        raise UnreadableFile(msg)


def _check_claims(values: dict[str, str], limits: LimitsSettings) -> None:
    check_required(values)
    if has_image(values):
        check_image(values, max_bytes=limits.max_image_bytes)
    check_geometry(
        position=values.get("ImagePositionPatient"),
        orientation=values.get("ImageOrientationPatient"),
        spacing=values.get("PixelSpacing"),
        slope=values.get("RescaleSlope"),
        intercept=values.get("RescaleIntercept"),
    )


def _read_header(path: Path, fast: bool, limits: LimitsSettings, data: bytes | None) -> FileHeader:
    if path.name.lower() in JUNK_NAMES:
        raise UnreadableFile("not a DICOM file")
    size = len(data) if data is not None else path.stat().st_size
    if size == 0:
        raise UnreadableFile("empty file")
    scanned = None
    if fast:
        scanned = scan_file(str(path)) if data is None else scan_bytes(data[:HEAD_BYTES])
    end = None if scanned is None else scanned.pixel_offset
    if end is not None and size < end + max(scanned.pixel_length, 0):  # type: ignore[union-attr]
        raise UnreadableFile("truncated: the file ends inside its pixel data")
    ds: Dataset | None = None
    if scanned is not None and scanned.values.get("SOPClassUID") != DICOMDIR_CLASS:
        values, syntax = scanned.values, scanned.transfer_syntax
        _check_claims(values, limits)
        if scanned.pixel_offset is not None:
            _check_encoding(values, syntax, scanned.pixel_length)
        offset = scanned.pixel_offset if syntax in NATIVE_SYNTAXES else None
        offset = _native_offset(values, offset, scanned.pixel_length)
    else:
        source = path if data is None else BytesIO(data)
        try:
            ds = _read_with_pydicom(source)
        except (InvalidDicomError, EOFError, OSError, KeyError, TypeError, struct.error) as exc:
            raise UnreadableFile(f"not readable as DICOM ({type(exc).__name__})") from exc
        meta = ds.file_meta if ds.file_meta is not None else Dataset()
        if str(meta.get("MediaStorageSOPClassUID", "")) == DICOMDIR_CLASS or (
            "DirectoryRecordSequence" in ds
        ):
            raise UnreadableFile("DICOMDIR index, not an image")
        values, offset = _dataset_values(ds), None
        syntax = syntax_of(ds)
        _check_claims(values, limits)
    base = _instance(path, values, syntax, offset)
    study, series = values.get("StudyInstanceUID", ""), values.get("SeriesInstanceUID", "")
    if not (base.sop_instance_uid and study and series):
        raise UnreadableFile("DICOM file without SOP/study/series instance UID")
    instances = [base]
    if base.frames > 1:
        if ds is None:
            ds = _read_with_pydicom(path if data is None else BytesIO(data))
        instances = _frames(base, ds)
    return FileHeader(
        instances=instances,
        study_uid=study,
        accession_number=values.get("AccessionNumber") or None,
        series_uid=series,
        description=values.get("SeriesDescription", ""),
    )
