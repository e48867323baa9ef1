"""Stored values → HU for the pixel encodings scanners use: signed/unsigned, 12/16-bit, slopes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom
import pytest

from lvo_triage.dicom.discover import discover
from lvo_triage.dicom.instance import read_header
from lvo_triage.dicom.pixels import read_stack
from lvo_triage.dicom.volume import load_volume
from tests.dicom_edits import rewrite


def _hu(ds: pydicom.Dataset) -> np.ndarray:
    return ds.pixel_array.astype(np.float64) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)


def _signed16(ds: pydicom.Dataset) -> None:
    hu = _hu(ds)
    ds.PixelRepresentation, ds.BitsStored, ds.HighBit = 1, 16, 15
    ds.RescaleIntercept, ds.RescaleSlope = 0, 1
    ds.PixelData = hu.astype(np.int16).tobytes()


def _half_steps(ds: pydicom.Dataset) -> None:
    hu = _hu(ds)
    ds.PixelRepresentation, ds.BitsStored, ds.HighBit = 0, 16, 15
    ds.RescaleIntercept, ds.RescaleSlope = -1024, "0.5"
    ds.PixelData = ((hu + 1024) * 2).astype(np.uint16).tobytes()


def _signed12_not_extended(ds: pydicom.Dataset) -> None:
    """12-bit two's complement in 16-bit words, upper bits left zero (some older scanners)."""
    hu = np.clip(_hu(ds), -2048, 2047).astype(np.int16)
    ds.PixelRepresentation, ds.BitsStored, ds.HighBit = 1, 12, 11
    ds.RescaleIntercept, ds.RescaleSlope = 0, 1
    ds.PixelData = (hu.astype(np.uint16) & 0x0FFF).tobytes()


ENCODINGS: dict[str, tuple[Callable[[pydicom.Dataset], None], float]] = {
    "signed 16-bit": (_signed16, 1e9),
    "unsigned 16-bit, slope 0.5": (_half_steps, 1e9),
    "signed 12-bit, not sign-extended": (_signed12_not_extended, 2047.0),
}


@pytest.mark.parametrize("name", list(ENCODINGS))
def test_encoding_gives_the_same_hu(name: str, fast_study: Path, tmp_path: Path) -> None:
    edit, ceiling = ENCODINGS[name]
    reference, _ = load_volume(next(iter(discover(fast_study).studies[0].series.values())))
    folder = rewrite(fast_study, tmp_path / "s", edit=edit)
    series = next(iter(discover(folder).studies[0].series.values()))
    volume, _ = load_volume(series)
    expected = np.clip(reference.hu, -2048, ceiling)
    np.testing.assert_array_equal(volume.hu, expected)
    # The in-place reader and pydicom's decoder agree on every slice.
    paths = sorted({i.path for i in series.instances})[:10]
    fast = [read_header(p).instances[0] for p in paths]
    slow = [read_header(p, fast=False).instances[0] for p in paths]
    assert all(i.pixel_offset is not None for i in fast)
    np.testing.assert_array_equal(read_stack(fast), read_stack(slow))
