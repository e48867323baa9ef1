"""Compressed and other encodings of the same series load to the same HU volume."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import (
    JPEG2000,
    UID,
    DeflatedExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLSLossless,
    RLELossless,
)

from lvo_triage.dicom.discover import discover
from lvo_triage.dicom.volume import load_volume
from lvo_triage.errors import NotAnalyzable


def _load(folder: Path) -> np.ndarray:
    series = next(iter(discover(folder).studies[0].series.values()))
    volume, _ = load_volume(series)
    return volume.hu


def _recode(src: Path, dst: Path, syntax: UID) -> Path:
    shutil.copytree(src, dst)
    for f in dst.iterdir():
        ds = pydicom.dcmread(f)
        if syntax.is_compressed:
            ds.compress(syntax, **({"j2k_cr": [20]} if syntax == JPEG2000 else {}))
        else:
            ds.file_meta.TransferSyntaxUID = syntax
        ds.save_as(f, enforce_file_format=True)
    return dst


@pytest.fixture(scope="module")
def reference(fast_study: Path) -> np.ndarray:
    return _load(fast_study)


@pytest.mark.parametrize(
    "syntax",
    [
        RLELossless,
        JPEG2000Lossless,
        JPEGLSLossless,
        DeflatedExplicitVRLittleEndian,
        ImplicitVRLittleEndian,
    ],
    ids=lambda s: s.name,
)
def test_lossless_encodings_give_identical_hu(
    fast_study: Path, tmp_path: Path, reference: np.ndarray, syntax: UID
) -> None:
    folder = _recode(fast_study, tmp_path / "s", syntax)
    assert pydicom.dcmread(next(folder.iterdir())).file_meta.TransferSyntaxUID == syntax
    assert np.array_equal(_load(folder), reference)


def test_lossy_jpeg2000_stays_close(
    fast_study: Path, tmp_path: Path, reference: np.ndarray
) -> None:
    hu = _load(_recode(fast_study, tmp_path / "s", JPEG2000))
    assert np.abs(hu - reference).mean() < 20.0  # 20:1 compression smooths the noise


def test_missing_codec_is_not_analyzable_and_names_the_encoding(
    fast_study: Path, tmp_path: Path
) -> None:
    folder = _recode(fast_study, tmp_path / "s", RLELossless)
    for f in folder.iterdir():
        ds = pydicom.dcmread(f)
        ds.file_meta.TransferSyntaxUID = UID("1.2.840.10008.1.2.4.100")  # MPEG2: no decoder
        ds.save_as(f)
    with pytest.raises(NotAnalyzable, match="MPEG2"):
        _load(folder)
