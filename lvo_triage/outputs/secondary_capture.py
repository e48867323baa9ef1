"""The key image as a DICOM Secondary Capture for PACS.

The RGB PNG of :func:`lvo_triage.outputs.key_image.key_image_png`, stored uncompressed in the
analysed study (patient and study attributes copied from a header of the analysed series, nothing
invented), in a new series. Its banner is text burned into the pixels (Burned In Annotation YES),
and the series description says it is not for clinical use.
"""

from __future__ import annotations

import io

import highdicom as hd
import numpy as np
import pydicom
from PIL import Image, UnidentifiedImageError
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from lvo_triage.outputs.sr import MANUFACTURER, evidence_header

SERIES_DESCRIPTION = "LVO triage key image - NOT FOR CLINICAL USE"
IMAGE_COMMENTS = "NOT FOR CLINICAL USE - research software trained on synthetic phantoms"
MODEL_NAME = "lvo-triage"
# the key image is axial in radiological convention: columns run toward the patient's left,
# rows toward posterior
PATIENT_ORIENTATION = ("L", "P")


def key_image_sc(
    png: bytes,
    source: pydicom.Dataset,
    *,
    series_number: int = 9902,
    instance_number: int = 1,
) -> pydicom.Dataset:
    """A Secondary Capture of the key image ``png`` in the study of ``source`` (a header of the
    analysed series, read with ``stop_before_pixels``); a new series with new UIDs."""
    pixels = png_rgb(png)
    reference = evidence_header(source)
    sc = hd.sc.SCImage.from_ref_dataset(
        ref_dataset=reference,
        pixel_array=pixels,
        photometric_interpretation=hd.PhotometricInterpretationValues.RGB,
        bits_allocated=8,
        coordinate_system=hd.CoordinateSystemNames.PATIENT,
        series_instance_uid=generate_uid(),
        series_number=series_number,
        sop_instance_uid=generate_uid(),
        instance_number=instance_number,
        manufacturer=MANUFACTURER,
        patient_orientation=PATIENT_ORIENTATION,
        transfer_syntax_uid=ExplicitVRLittleEndian,
        series_description=SERIES_DESCRIPTION,
        manufacturer_model_name=MODEL_NAME,
    )
    sc.copy_patient_and_study_information(reference)
    sc.BurnedInAnnotation = "YES"
    sc.ImageComments = IMAGE_COMMENTS
    return sc


def png_rgb(png: bytes) -> np.ndarray:
    """The PNG's pixels as ``(rows, columns, 3)`` uint8 RGB."""
    try:
        with Image.open(io.BytesIO(png)) as image:
            rgb = np.asarray(image.convert("RGB"), dtype=np.uint8)
    except (UnidentifiedImageError, OSError) as exc:
        msg = f"key image is not a readable PNG ({len(png)} bytes): {exc}"
        raise ValueError(msg) from exc
    return np.ascontiguousarray(rgb)
