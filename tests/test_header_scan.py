"""The fast header scan reads exactly what pydicom reads, on our files and on third-party ones."""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_files

from lvo_triage.dicom.header import scan_file
from lvo_triage.dicom.instance import FileHeader, read_header
from lvo_triage.dicom.pixels import read_stack


def _without_offsets(header: FileHeader) -> FileHeader:
    return dataclasses.replace(
        header, instances=[dataclasses.replace(i, pixel_offset=None) for i in header.instances]
    )


def _third_party() -> list[Path]:
    return [Path(f) for f in get_testdata_files() if Path(f).is_file()]


def test_scan_agrees_with_pydicom_on_every_scannable_third_party_file() -> None:
    scanned = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for path in _third_party():
            if scan_file(str(path)) is None:
                continue
            try:
                slow = read_header(path, fast=False)
            except ValueError:
                with pytest.raises(ValueError):
                    read_header(path)
                continue
            try:
                fast = read_header(path)
            except ValueError as exc:  # e.g. MR_truncated.dcm: pydicom cannot decode it either
                assert "truncated" in str(exc) or "of pixel data" in str(exc), path.name
                with pytest.raises(ValueError):
                    _ = pydicom.dcmread(path).pixel_array
                continue
            ds = pydicom.dcmread(path, stop_before_pixels=True)
            if str(ds.get("SpecificCharacterSet", "")) not in ("", "ISO_IR 100", "ISO_IR 6"):
                fast = dataclasses.replace(fast, description=slow.description)
            assert _without_offsets(fast) == slow, path.name
            scanned += 1
    assert scanned > 50  # most of pydicom's test files take the fast path


def test_scan_agrees_with_pydicom_on_the_phantom(fast_study: Path) -> None:
    for path in sorted(fast_study.iterdir())[:20]:
        fast = read_header(path)
        assert fast.instances[0].pixel_offset is not None  # uncompressed: read in place
        assert _without_offsets(fast) == read_header(path, fast=False)


def test_pixels_read_in_place_equal_pydicom_decoding(fast_study: Path) -> None:
    paths = sorted(fast_study.iterdir())[:20]
    fast = [read_header(p).instances[0] for p in paths]
    slow = [read_header(p, fast=False).instances[0] for p in paths]
    assert all(i.pixel_offset is None for i in slow)
    np.testing.assert_array_equal(read_stack(fast), read_stack(slow, workers=1))
    ds = pydicom.dcmread(paths[0])
    hu = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    np.testing.assert_array_equal(read_stack(fast)[0], hu.astype(np.float32))


def test_truncated_pixel_data_is_not_analyzable(fast_study: Path, tmp_path: Path) -> None:
    from lvo_triage.errors import NotAnalyzable

    src = sorted(fast_study.iterdir())[0]
    cut = tmp_path / "cut.dcm"
    data = src.read_bytes()
    cut.write_bytes(data[: len(data) - 100])
    with pytest.raises(ValueError, match="truncated"):
        read_header(cut)  # discovery skips it
    inst = read_header(src).instances[0]
    moved = dataclasses.replace(inst, path=cut)  # cut after discovery: loading says so
    with pytest.raises(NotAnalyzable, match="ends inside its pixel data"):
        read_stack([moved])
