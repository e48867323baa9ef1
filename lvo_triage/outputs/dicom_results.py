"""The DICOM results of one study, written beside ``result.json``: the SR (``sr.dcm``) and, when
the result has a key image, that image as a Secondary Capture (``key_image.dcm``). Both take the
patient and study attributes from a header of the analysed series, read when the study was
triaged (:func:`reference_header`); ``serve`` sends these files to PACS as they are."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import pydicom

from lvo_triage.outputs.files import write_dicom
from lvo_triage.outputs.secondary_capture import key_image_sc
from lvo_triage.outputs.sr import triage_sr
from lvo_triage.result import TriageResult

log = logging.getLogger(__name__)

SR_FILE = "sr.dcm"
KEY_IMAGE_FILE = "key_image.dcm"
HEADERS_TRIED = 5  # damaged files among the first of a series: the next one will do


def reference_header(paths: Sequence[Path]) -> pydicom.Dataset | None:
    """The header (no pixels) of the first readable file of ``paths`` (images of the analysed
    series, or of the study when none was analysed); None when none of the first few reads."""
    for path in paths[:HEADERS_TRIED]:
        try:
            return pydicom.dcmread(path, stop_before_pixels=True)
        except Exception as exc:  # a boundary: a damaged file, another one will do
            log.debug("no reference header from %s: %s", path.name, exc)
    return None


def write_dicom_results(
    study_out: Path, result: TriageResult, header: pydicom.Dataset, key_png: bytes | None
) -> list[Path]:
    """Build and write (atomically) the SR of ``result`` and, given ``key_png``, the key image
    as a Secondary Capture into ``study_out``; their paths."""
    out = [(study_out / SR_FILE, triage_sr(result, header))]
    if key_png is not None:
        out.append((study_out / KEY_IMAGE_FILE, key_image_sc(key_png, header)))
    for path, ds in out:
        write_dicom(path, ds)
    return [path for path, _ in out]
