"""Property-based tests (Hypothesis, derandomized: the same examples on every run) of the fast
header scanner against pydicom, on phantom files damaged in every way Hypothesis can think of:
bytes flipped anywhere, cut at any byte, runs of bytes inserted or removed.

- The scanner and :func:`read_header` never raise anything but ``UnreadableFile``.
- When both the fast path (the scanner) and the reference path (pydicom) accept a damaged file,
  they read the same instances from it.
- The fast path never accepts what pydicom refuses; when it refuses what pydicom accepts, the
  reason is one only the fast path can see: pixel data that does not fit the header.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lvo_triage.dicom.header import scan_bytes
from lvo_triage.dicom.instance import FileHeader, read_header
from lvo_triage.errors import UnreadableFile
from tests.fuzz_dicom import Template

FAST_ONLY = ("truncated", "of pixel data", "stored compressed", "stored uncompressed", "encoding")
EXAMPLES = 300


@pytest.fixture(scope="module")
def phantom_files(fast_study: Path) -> list[bytes]:
    return list(Template.from_folder(fast_study).files[::20])


@st.composite
def damaged(draw: st.DrawFn, files: list[bytes]) -> bytes:
    data = bytearray(files[draw(st.integers(0, len(files) - 1))])
    head = min(len(data), 2048)  # the header: where damage changes what is read
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(st.sampled_from(["flip", "insert", "delete", "flip_header"]))
        size = head if kind == "flip_header" else len(data)
        at = draw(st.integers(0, max(size - 1, 0)))
        if kind in ("flip", "flip_header") and data:
            data[at] ^= draw(st.integers(1, 255))
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif kind == "delete":
            del data[at : at + draw(st.integers(1, 16))]
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]
    return bytes(data)


def _read(path: Path, data: bytes, *, fast: bool) -> FileHeader | UnreadableFile:
    try:
        header = read_header(path, fast=fast, data=data)
    except UnreadableFile as exc:
        return exc
    return dataclasses.replace(
        header, instances=[dataclasses.replace(i, pixel_offset=None) for i in header.instances]
    )


def _property(files: list[bytes]) -> None:
    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(data=damaged(files))
    def check(data: bytes) -> None:
        scanned = scan_bytes(data[:16384])  # never raises: a header or None
        assert scanned is None or scanned.transfer_syntax
        path = Path("IM0001")
        fast = _read(path, data, fast=True)
        slow = _read(path, data, fast=False)
        if isinstance(fast, FileHeader) and isinstance(slow, FileHeader):
            assert fast == slow
        elif isinstance(fast, FileHeader):
            raise AssertionError(f"only pydicom refused it: {slow}")
        elif isinstance(slow, FileHeader):
            assert any(words in fast.reason for words in FAST_ONLY), fast.reason

    check()


def test_the_scanner_reads_what_pydicom_reads_from_damaged_files(
    phantom_files: list[bytes],
) -> None:
    _property(phantom_files)
