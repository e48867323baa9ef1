"""Family B's own DICOM writer: one CT Image Storage file per slice, like a scanner's archive.

Conventions of this family (deliberately varied, as archives are): file names are hashes of
the SOP Instance UID (no order in them) and files are written in random order; InstanceNumber
runs from the feet or (``descending``) from the vertex; pixels are 16-bit signed (intercept 0
or -1024) or unsigned with 12 bits stored and intercept -1024; pixels outside the
reconstruction circle may hold a padding value (with PixelPaddingValue); the series is stored
as explicit or implicit VR little endian, RLE Lossless (pydicom's own encoder) or JPEG 2000
Lossless (pylibjpeg-openjpeg). Should the JPEG 2000 encoder be missing or fail, the slice is
stored uncompressed (explicit VR) instead: the study stays readable, only less varied.

UIDs come from pydicom's ``generate_uid`` with entropy from the case (family, seed, case id and
label), so a seed always writes the same study and a different label a different one.
"""

from __future__ import annotations

import datetime
import hashlib
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    UID,
    CTImageStorage,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    RLELossless,
    generate_uid,
)

from lvo_triage.dicom.volume_types import Volume
from lvo_triage.synth_b.case import CaseB
from lvo_triage.synth_b.render import render_case
from lvo_triage.synth_b.sampling import rng_for

FAMILY = "lvo-triage synth_b"
COMMENT = "SYNTHETIC PHANTOM - NOT FOR CLINICAL USE"
DESCRIPTIONS = ("CTA HEAD", "CTA Head/COW", "Angio Head {t} {k}", "CTA BRAIN ARTERIAL {t}")
KERNEL_NAMES = {"soft": ("H20f", "FC21", "SOFT"), "standard": ("H30f", "FC43", "STANDARD")}
KERNEL_NAMES["sharp"] = ("H45f", "FC68", "BONE")
SYNTAXES = {"explicit": ExplicitVRLittleEndian, "implicit": ImplicitVRLittleEndian}
SYNTAXES.update({"rle": RLELossless, "j2k": JPEG2000Lossless})


def _uid(case: CaseB, *what: str) -> UID:
    label = f"{case.case_id}/{case.site}/{case.side}"
    return generate_uid(entropy_srcs=[FAMILY, str(case.seed), label, *what])


def _bits_stored(volume: Volume, case: CaseB) -> int:
    """16 for signed pixels; 12 for unsigned ones when the whole series fits (as scanners do)."""
    if case.acquisition.signed:
        return 16
    return 12 if float(volume.hu.max()) - case.acquisition.intercept < 4095.5 else 16


def _stored(hu: np.ndarray, case: CaseB, bits: int) -> np.ndarray:
    """HU → stored values of the case's pixel format."""
    acq = case.acquisition
    values = np.rint(hu - acq.intercept)
    if acq.signed:
        return np.clip(values, -32768, 32767).astype(np.int16)
    return np.clip(values, 0, 2**bits - 1).astype(np.uint16)


def _common(case: CaseB, volume: Volume, fast: bool) -> Dataset:
    """The attributes every slice of the series shares."""
    acq, rng = case.acquisition, rng_for(case.seed, "dicom header")
    when = datetime.datetime(2014, 1, 1) + datetime.timedelta(
        days=int(rng.integers(0, 3650)), seconds=int(rng.integers(6 * 3600, 22 * 3600))
    )
    spacing = volume.spacing
    kernel = str(rng.choice(KERNEL_NAMES[acq.kernel]))
    ds = Dataset()
    ds.SOPClassUID = CTImageStorage
    ds.StudyInstanceUID = _uid(case, "study")
    ds.SeriesInstanceUID = _uid(case, "series", str(fast))
    ds.FrameOfReferenceUID = _uid(case, "frame")
    ds.Modality = "CT"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.Manufacturer = "LVO-TRIAGE PHANTOM"
    ds.ManufacturerModelName = "FAMILY B"
    ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = when.strftime("%Y%m%d")
    ds.StudyTime = ds.SeriesTime = when.strftime("%H%M%S")
    ds.AcquisitionTime = ds.ContentTime = (when + datetime.timedelta(seconds=40)).strftime("%H%M%S")
    ds.AccessionNumber = f"B{case.seed % 10**12:012d}"
    ds.StudyID = str(case.seed % 100000)
    ds.StudyDescription = "CTA HEAD AND NECK"
    template = str(rng.choice(DESCRIPTIONS))
    ds.SeriesDescription = template.format(t=f"{spacing[2]:.2g}", k=kernel)
    ds.SeriesNumber = int(rng.integers(2, 9))
    ds.AcquisitionNumber = 1
    ds.PatientName = f"PHANTOM_B^{case.case_id}"
    ds.PatientID = f"PB{case.seed}"
    ds.PatientBirthDate = ""
    ds.PatientSex = case.head.sex
    ds.PatientAge = f"{case.head.age:03d}Y"
    ds.PatientPosition = "HFS"
    ds.BodyPartExamined = "HEAD"
    ds.ImageComments = COMMENT
    ds.ContrastBolusAgent = case.contrast.agent
    ds.ContrastBolusRoute = "IV"
    ds.KVP = acq.kvp
    ds.ConvolutionKernel = kernel
    ds.ReconstructionDiameter = f"{acq.fov_mm:.1f}"
    ds.GantryDetectorTilt = f"{acq.tilt_deg:.1f}"
    ds.SliceThickness = f"{max(acq.thickness_mm, spacing[2]) if fast else acq.thickness_mm:.3g}"
    ds.SpacingBetweenSlices = f"{spacing[2]:.4g}"
    ds.PixelSpacing = [f"{spacing[1]:.6g}", f"{spacing[0]:.6g}"]  # row spacing, column spacing
    row, col = volume.affine[:3, 0] / spacing[0], volume.affine[:3, 1] / spacing[1]
    ds.ImageOrientationPatient = [f"{v:.6f}" for v in (*row, *col)]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = volume.hu.shape[1], volume.hu.shape[0]
    ds.BitsAllocated = 16
    ds.BitsStored = _bits_stored(volume, case)
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = 1 if acq.signed else 0
    ds.RescaleIntercept = f"{acq.intercept:g}"
    ds.RescaleSlope = "1"
    ds.RescaleType = "HU"
    ds.WindowCenter, ds.WindowWidth = (
        str(int(rng.choice((100, 150, 200)))),
        str(int(rng.choice((600, 700, 800)))),
    )
    if acq.pad_hu is not None and acq.signed:
        ds.PixelPaddingValue = int(acq.pad_hu - acq.intercept)
    return ds


def write_study_b(
    case: CaseB, out_dir: Path, *, fast: bool = False, volume: Volume | None = None
) -> Path:
    """Render ``case`` (unless ``volume`` is given) and write it as one DICOM series into
    ``out_dir`` (created if needed), one file per slice; returns ``out_dir``."""
    volume = volume if volume is not None else render_case(case, fast=fast)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    common = _common(case, volume, fast)
    syntax = SYNTAXES[case.acquisition.encoding]
    n_slices = volume.hu.shape[2]
    normal = volume.affine[:3, 2]
    order = rng_for(case.seed, "file order").permutation(n_slices)
    for k in order:
        ds = Dataset()
        ds.update(common)
        position = volume.affine[:3, 3] + k * normal
        ds.SOPInstanceUID = _uid(case, "sop", str(fast), str(int(k)))
        ds.InstanceNumber = int(n_slices - k if case.acquisition.descending else k + 1)
        ds.ImagePositionPatient = [f"{v:.6f}" for v in position]
        ds.SliceLocation = f"{float(position[2]):.4f}"
        pixels = _stored(volume.hu[:, :, k].T, case, common.BitsStored)
        _encode(ds, pixels, syntax)
        name = hashlib.sha1(str(ds.SOPInstanceUID).encode()).hexdigest()[:16]
        ds.save_as(out_dir / name, enforce_file_format=True)
    return out_dir


def _encode(ds: Dataset, pixels: np.ndarray, syntax: UID) -> None:
    """Pixel data in ``syntax`` (uncompressed explicit VR when the encoder fails)."""
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.ImplementationVersionName = "LVOTRIAGE_B"
    pixels = np.ascontiguousarray(pixels)
    if syntax.is_compressed:
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.PixelData = pixels.tobytes()
        try:
            ds.compress(syntax, pixels, generate_instance_uid=False)
            return
        except (RuntimeError, ValueError, NotImplementedError):
            pass  # no working encoder: stored uncompressed below
    ds.file_meta.TransferSyntaxUID = syntax if not syntax.is_compressed else ExplicitVRLittleEndian
    ds.PixelData = pixels.tobytes()
