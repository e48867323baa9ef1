"""Damage DICOM files the way disks, networks and buggy exporters do: seeded mutations of the
phantom's files, for the fuzz tests (``tests/test_fuzz.py``).

A :class:`Template` holds one phantom study as bytes; :meth:`Template.copy` gives copy ``k`` of it
with every UID made unique to that copy (same length, so a plain byte replacement), and
:func:`damaged_study` damages a few files of a copy with the operators of ``MUTATIONS``. All edits
work on the bytes (no pydicom), so that a file can be broken in ways pydicom would never write.
The phantom's files are explicit VR little endian with a file meta group, without sequences.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom

PREAMBLE = 132  # 128 bytes and "DICM"
PIXEL_TAG = 0x7FE00010
LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT"}
LONG_VRS |= {b"UV"}
SYNTAXES = (
    "1.2.840.10008.1.2",  # implicit VR little endian
    "1.2.840.10008.1.2.2",  # explicit VR big endian
    "1.2.840.10008.1.2.1.99",  # deflated
    "1.2.840.10008.1.2.4.50",  # JPEG baseline
    "1.2.840.10008.1.2.4.70",  # JPEG lossless SV1
    "1.2.840.10008.1.2.4.80",  # JPEG-LS lossless
    "1.2.840.10008.1.2.4.90",  # JPEG 2000 lossless
    "1.2.840.10008.1.2.4.201",  # HTJ2K lossless
    "1.2.840.10008.1.2.5",  # RLE
    "1.2.3.4.5.6.7.8.9",  # no transfer syntax at all
    "",
)

Rng = np.random.Generator
Mutation = Callable[[bytes, Rng], bytes]


@dataclass(frozen=True)
class Element:
    """One data element of a file: where its header starts, its tag, VR, where its value starts
    and how long it is."""

    offset: int
    tag: int
    vr: bytes
    value: int
    length: int

    @property
    def length_field(self) -> tuple[int, str]:
        """Offset and struct format of the length field."""
        if self.vr in LONG_VRS:
            return self.offset + 8, "<I"
        return self.offset + 6, "<H"


def elements(data: bytes) -> list[Element]:
    """The elements of an undamaged phantom file, meta group included, pixel data last."""
    out = []
    pos = PREAMBLE
    while pos + 8 <= len(data):
        group, elem = struct.unpack_from("<HH", data, pos)
        vr = data[pos + 4 : pos + 6]
        if vr in LONG_VRS:
            (length,) = struct.unpack_from("<I", data, pos + 8)
            value = pos + 12
        else:
            (length,) = struct.unpack_from("<H", data, pos + 6)
            value = pos + 8
        tag = (group << 16) | elem
        out.append(Element(pos, tag, vr, value, length))
        if tag == PIXEL_TAG:
            break
        pos = value + length
    return out


def _find(data: bytes, tag: int) -> Element | None:
    return next((e for e in elements(data) if e.tag == tag), None)


def _meta_end(data: bytes) -> int:
    first = elements(data)[0]  # (0002,0000) group length
    return first.value + 4 + struct.unpack_from("<I", data, first.value)[0]


def _pixel_start(data: bytes) -> int:
    pixel = _find(data, PIXEL_TAG)
    assert pixel is not None
    return pixel.value


def _flip(data: bytes, rng: Rng, lo: int, hi: int, most: int) -> bytes:
    out = bytearray(data)
    for _ in range(int(rng.integers(1, most + 1))):
        pos = int(rng.integers(lo, hi))
        out[pos] ^= int(rng.integers(1, 256))
    return bytes(out)


def with_value(data: bytes, tag: int, value: bytes, vr: bytes | None = None) -> bytes:
    """``data`` with the value of ``tag`` replaced (inserted, in tag order, when absent; ``vr``
    then names its VR)."""
    if len(value) % 2:
        value += b" "
    found = _find(data, tag)
    if found is not None:
        vr = found.vr
    assert vr is not None
    header = struct.pack("<HH", tag >> 16, tag & 0xFFFF) + vr
    if vr in LONG_VRS:
        header += b"\0\0" + struct.pack("<I", len(value))
    else:
        header += struct.pack("<H", len(value))
    if found is not None:
        return data[: found.offset] + header + value + data[found.value + found.length :]
    after = next(e for e in elements(data) if e.tag > tag)
    return data[: after.offset] + header + value + data[after.offset :]


def truncate(data: bytes, rng: Rng) -> bytes:
    return data[: int(rng.integers(0, len(data)))]


def flip_meta(data: bytes, rng: Rng) -> bytes:
    return _flip(data, rng, 128, _meta_end(data), 4)


def flip_dataset(data: bytes, rng: Rng) -> bytes:
    return _flip(data, rng, _meta_end(data), _pixel_start(data), 6)


def flip_pixels(data: bytes, rng: Rng) -> bytes:
    return _flip(data, rng, _pixel_start(data), len(data), 64)


def flip_anywhere(data: bytes, rng: Rng) -> bytes:
    return _flip(data, rng, 0, len(data), 16)


def wrong_vr(data: bytes, rng: Rng) -> bytes:
    element = elements(data)[int(rng.integers(0, len(elements(data))))]
    choices = [b"UG", b"XX", b"SQ", b"OB", b"UN", b"US", b"\0\0", bytes(rng.integers(0, 256, 2))]
    vr = choices[int(rng.integers(0, len(choices)))]
    return data[: element.offset + 4] + vr + data[element.offset + 6 :]


def wrong_length(data: bytes, rng: Rng) -> bytes:
    element = elements(data)[int(rng.integers(0, len(elements(data))))]
    at, fmt = element.length_field
    top = 0xFFFF if fmt == "<H" else 0xFFFFFFFF
    choices = [0, 1, element.length + 1, element.length + 2, top - 1, top, len(data)]
    choices.append(int(rng.integers(0, top + 1)))
    length = choices[int(rng.integers(0, len(choices)))]
    return data[:at] + struct.pack(fmt, length) + data[at + struct.calcsize(fmt) :]


def _item(body: bytes, *, defined: bool) -> bytes:
    if defined:
        return struct.pack("<HHI", 0xFFFE, 0xE000, len(body)) + body
    return (
        struct.pack("<HHI", 0xFFFE, 0xE000, 0xFFFFFFFF)
        + body
        + struct.pack("<HHI", 0xFFFE, 0xE00D, 0)
    )


def undefined_sequence(data: bytes, rng: Rng) -> bytes:
    """An undefined-length sequence (Referenced Image Sequence) before Pixel Data: well formed,
    nested, or missing its delimiters."""
    inner = b"\x08\x00\x50\x11UI\x1a\x001.2.840.10008.5.1.4.1.1.2\0"
    nested = b"\x08\x00\x15\x92SQ\0\0\xff\xff\xff\xff" + _item(inner, defined=False)
    nested += struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)
    body = inner if rng.random() < 0.5 else inner + nested
    items = _item(body, defined=rng.random() < 0.3) + _item(inner, defined=False)
    end = struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)
    kind = int(rng.integers(0, 4))
    if kind == 1:  # the sequence never ends
        end = b""
    elif kind == 2:  # an item never ends
        items = struct.pack("<HHI", 0xFFFE, 0xE000, 0xFFFFFFFF) + inner
    elif kind == 3:  # a delimiter where an item should be
        items = struct.pack("<HHI", 0xFFFE, 0xE00D, 0) + items
    sequence = b"\x08\x00\x40\x11SQ\0\0\xff\xff\xff\xff" + items + end
    pixel = _find(data, PIXEL_TAG)
    assert pixel is not None
    return data[: pixel.offset] + sequence + data[pixel.offset :]


def syntax_mismatch(data: bytes, rng: Rng) -> bytes:
    """The file meta group names another transfer syntax than the one the data set is in."""
    syntax = SYNTAXES[int(rng.integers(0, len(SYNTAXES)))].encode()
    if len(syntax) % 2:
        syntax += b"\0"
    meta_end = _meta_end(data)
    meta = [e for e in elements(data) if e.offset < meta_end]
    body = b""
    for e in meta[1:]:
        value = syntax if e.tag == 0x00020010 else data[e.value : e.value + e.length]
        head = data[e.offset : e.offset + 6]  # tag and VR
        if e.vr in LONG_VRS:
            body += head + b"\0\0" + struct.pack("<I", len(value)) + value
        else:
            body += head + struct.pack("<H", len(value)) + value
    group = b"\x02\x00\x00\x00UL\x04\x00" + struct.pack("<I", len(body))
    return data[:PREAMBLE] + group + body + data[meta_end:]


LIES: tuple[tuple[int, bytes, bytes | None], ...] = (
    (0x00280010, struct.pack("<H", 65535), None),  # Rows
    (0x00280011, struct.pack("<H", 65535), None),  # Columns
    (0x00280010, struct.pack("<H", 0), None),
    (0x00280011, struct.pack("<H", 4096), None),
    (0x00280100, struct.pack("<H", 7), None),  # BitsAllocated
    (0x00280100, struct.pack("<H", 32), None),
    (0x00280101, struct.pack("<H", 17), None),  # BitsStored
    (0x00280101, struct.pack("<H", 0), None),
    (0x00280103, struct.pack("<H", 9), None),  # PixelRepresentation
    (0x00280002, struct.pack("<H", 3), None),  # SamplesPerPixel
    (0x00280008, b"1000", b"IS"),  # NumberOfFrames
    (0x00280008, b"2147483647", b"IS"),
    (0x00280008, b"-3", b"IS"),
)
BAD_GEOMETRY: tuple[tuple[int, bytes], ...] = (
    (0x00200032, b"nan\\nan\\nan"),  # ImagePositionPatient
    (0x00200032, b"inf\\0\\0"),
    (0x00200032, b"1e308\\-1e308\\1e308"),
    (0x00200032, b"1\\2"),
    (0x00200037, b"0\\0\\0\\0\\0\\0"),  # ImageOrientationPatient
    (0x00200037, b"nan\\0\\0\\0\\1\\0"),
    (0x00200037, b"1\\0\\0\\1\\0\\0"),
    (0x00200037, b"3\\0\\0\\0\\5\\0"),
    (0x00280030, b"0\\0"),  # PixelSpacing
    (0x00280030, b"-1\\-1"),
    (0x00280030, b"inf\\nan"),
    (0x00281053, b"0"),  # RescaleSlope
    (0x00281053, b"nan"),
    (0x00281052, b"inf"),  # RescaleIntercept
)


def lying_dimensions(data: bytes, rng: Rng) -> bytes:
    """Rows, Columns, frames, bits or samples that do not match the pixel data."""
    for _ in range(int(rng.integers(1, 3))):
        tag, value, vr = LIES[int(rng.integers(0, len(LIES)))]
        data = with_value(data, tag, value, vr)
    return data


def bad_geometry(data: bytes, rng: Rng) -> bytes:
    """Positions, orientations, spacings or rescale values that are NaN, infinite or degenerate."""
    tag, value = BAD_GEOMETRY[int(rng.integers(0, len(BAD_GEOMETRY)))]
    return with_value(data, tag, value)


def garbage(data: bytes, rng: Rng) -> bytes:
    """Another file in its place: empty, or random bytes (with or without a DICOM preamble)."""
    kind = int(rng.integers(0, 3))
    if kind == 0:
        return b""
    noise = bytes(rng.integers(0, 256, int(rng.integers(1, 4096)), dtype=np.uint8))
    return data[:PREAMBLE] + noise if kind == 1 else noise


MUTATIONS: dict[str, Mutation] = {
    "truncate": truncate,
    "flip_meta": flip_meta,
    "flip_dataset": flip_dataset,
    "flip_pixels": flip_pixels,
    "flip_anywhere": flip_anywhere,
    "wrong_vr": wrong_vr,
    "wrong_length": wrong_length,
    "undefined_sequence": undefined_sequence,
    "syntax_mismatch": syntax_mismatch,
    "lying_dimensions": lying_dimensions,
    "bad_geometry": bad_geometry,
    "garbage": garbage,
}


@dataclass(frozen=True)
class Template:
    """One phantom study as bytes, and the UIDs a copy must change (study, series, frame of
    reference, every SOP instance)."""

    files: tuple[bytes, ...]
    uids: tuple[str, ...]

    @classmethod
    def from_folder(cls, folder: Path) -> Template:
        paths = sorted(p for p in folder.rglob("*.dcm"))
        files = tuple(p.read_bytes() for p in paths)
        uids: list[str] = []
        for path in paths:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
            if not uids:
                uids += [ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID]
            uids.append(ds.SOPInstanceUID)
        return cls(files=files, uids=tuple(uids))

    @property
    def study_uid(self) -> str:
        return self.uids[0]

    def uid(self, uid: str, k: int) -> str:
        """``uid`` in copy ``k``: its last 8 digits replaced (same length)."""
        return f"{uid[:-8]}9{k:07d}"

    def copy(self, k: int) -> list[bytes]:
        out = []
        for data in self.files:
            for uid in self.uids:
                if uid.encode() in data:
                    data = data.replace(uid.encode(), self.uid(uid, k).encode())
            out.append(data)
        return out


def damaged_study(
    template: Template, k: int, rng: Rng, *, most: int = 3
) -> tuple[list[bytes], list[str]]:
    """Copy ``k`` of ``template`` with 1 to ``most`` files damaged; the files and the names of
    the mutations applied."""
    files = template.copy(k)
    names = list(MUTATIONS)
    applied = []
    for index in rng.choice(len(files), size=int(rng.integers(1, most + 1)), replace=False):
        name = names[int(rng.integers(0, len(names)))]
        files[int(index)] = MUTATIONS[name](files[int(index)], rng)
        applied.append(name)
    return files, applied


def write_study(folder: Path, files: list[bytes]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for n, data in enumerate(files):
        (folder / f"IM{n:04d}").write_bytes(data)
