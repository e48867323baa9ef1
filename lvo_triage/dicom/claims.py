"""What a header claims, checked before anything is allocated or decoded.

A damaged or wrongly exported file can claim anything: 65535 x 65535 pixels, a thousand frames in
a file of a few kilobytes, 7-bit pixels, NaN positions, an orientation of zeros. Each check here
raises :class:`~lvo_triage.errors.UnreadableFile` with a sentence a radiographer understands; the
file is then skipped and reported like any other unreadable file. A tag that is absent is not a
lie (a structured report has no Rows; selection says why such a series is not the CTA); a tag
that is present must hold a sane value.
"""

from __future__ import annotations

import math

from lvo_triage.errors import UnreadableFile

MAX_SIDE = 16384  # pixels per row or column
MAX_FRAMES = 20000
BITS_ALLOCATED = (1, 8, 16, 32, 64)
SAMPLES = (1, 3, 4)
MAX_COORDINATE_MM = 100_000.0  # 100 m from the scanner's origin: not a position
MAX_PIXEL_SPACING_MM = 100.0
MAX_RESCALE = 1e7
# Tags that only an image has: a file with any of them must say how large its images are.
IMAGE_TAGS = (
    "Rows",
    "Columns",
    "BitsAllocated",
    "NumberOfFrames",
    "ImagePositionPatient",
    "PixelSpacing",
)
DAMAGED = "the file is damaged or was exported wrongly"
CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
# Type 1 in every CT Image Storage instance (the Image Plane module): without them a slice
# cannot be placed, and its series would look like several acquisitions.
CT_PLANE_TAGS = ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing")


def _lie(claim: str) -> UnreadableFile:
    return UnreadableFile(f"its header claims {claim}: {DAMAGED}")


def _shown(text: str) -> str:
    """A raw tag value for a message: short, printable."""
    text = "".join(c if c.isprintable() else "?" for c in text)
    return repr(text if len(text) <= 24 else text[:21] + "...")


def _count(values: dict[str, str], name: str, default: int) -> int:
    """An integer tag that must be a plain number when present."""
    text = values.get(name)
    if text is None or not text.strip():
        return default
    try:
        return int(text.strip())
    except ValueError:
        try:
            number = float(text.strip())
        except ValueError:
            number = math.nan
        if not number.is_integer():
            raise _lie(f"{name} {_shown(text)}, which is not a whole number") from None
        return int(number)


def size_text(n_bytes: float) -> str:
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if n_bytes >= scale:
            return f"{n_bytes / scale:.1f} {unit}"
    return f"{n_bytes:.0f} bytes"


def has_image(values: dict[str, str]) -> bool:
    """Whether the header describes an image (a report or a dose SR does not)."""
    return any(name in values for name in IMAGE_TAGS)


def decoded_bytes(values: dict[str, str]) -> int:
    """Rows x columns x frames x samples x bytes per sample, as the header claims them."""
    rows, columns = _count(values, "Rows", 0), _count(values, "Columns", 0)
    frames = _count(values, "NumberOfFrames", 1)
    samples = _count(values, "SamplesPerPixel", 1)
    bits = _count(values, "BitsAllocated", 16)
    return (rows * columns * frames * samples * bits + 7) // 8


def check_required(values: dict[str, str]) -> None:
    """A CT image says where its slice lies (a damaged header may lose it)."""
    if values.get("SOPClassUID") != CT_IMAGE:
        return
    missing = [name for name in CT_PLANE_TAGS if not values.get(name, "").strip()]
    if missing:
        msg = f"it is a CT image without {' or '.join(missing)}: {DAMAGED}"
        raise UnreadableFile(msg)


def check_image(values: dict[str, str], *, max_bytes: int) -> None:
    """Dimensions, bits, samples and frames within sane ranges, and the decoded size within
    ``max_bytes`` (``limits.max_image_mb``)."""
    rows, columns = _count(values, "Rows", 0), _count(values, "Columns", 0)
    if not (1 <= rows <= MAX_SIDE and 1 <= columns <= MAX_SIDE):
        raise _lie(f"images of {rows} x {columns} pixels (1 to {MAX_SIDE} a side are possible)")
    bits = _count(values, "BitsAllocated", 16)
    if bits not in BITS_ALLOCATED:
        allowed = ", ".join(str(b) for b in BITS_ALLOCATED)
        raise _lie(f"{bits}-bit pixel cells (BitsAllocated must be {allowed})")
    stored = _count(values, "BitsStored", bits)
    if not 1 <= stored <= bits:
        raise _lie(f"{stored} bits stored in {bits}-bit pixel cells")
    representation = _count(values, "PixelRepresentation", 0)
    if representation not in (0, 1):
        raise _lie(f"PixelRepresentation {representation} (0 unsigned or 1 signed)")
    samples = _count(values, "SamplesPerPixel", 1)
    if samples not in SAMPLES:
        raise _lie(f"{samples} samples per pixel (1 for CT, 3 for colour)")
    frames = _count(values, "NumberOfFrames", 1)
    if not 1 <= frames <= MAX_FRAMES:
        raise _lie(f"{frames} frames (1 to {MAX_FRAMES} are possible)")
    size = decoded_bytes(values)
    if size > max_bytes:
        raise UnreadableFile(
            f"its header claims {columns} x {rows} pixels x {frames} frame(s), "
            f"{size_text(size)} decoded: more than the {size_text(max_bytes)} allowed "
            "(limits.max_image_mb); the file is damaged, or raise the limit"
        )


def check_stored_length(values: dict[str, str], length: int) -> None:
    """Uncompressed pixel data must hold what the header claims (``length`` -1: undefined, which
    only compressed pixel data may be)."""
    if length < 0:
        raise UnreadableFile(
            "its transfer syntax says uncompressed but its pixel data is stored compressed: "
            f"{DAMAGED}"
        )
    expected = decoded_bytes(values)
    if values.get("PhotometricInterpretation", "").strip() == "YBR_FULL_422":
        expected = expected * 2 // 3  # two chroma samples are shared by two pixels
    if length < expected:
        raise UnreadableFile(
            f"its header claims {_count(values, 'Columns', 0)} x {_count(values, 'Rows', 0)} "
            f"pixels x {_count(values, 'NumberOfFrames', 1)} frame(s) ({size_text(expected)}) "
            f"but the file holds {size_text(length)} of pixel data: {DAMAGED}"
        )


def _numbers(name: str, text: str | None, n: int) -> tuple[float, ...] | None:
    """``n`` finite numbers, None when the tag is absent; a lie otherwise."""
    if text is None or not text.strip():
        return None
    try:
        out = tuple(float(v) for v in text.split("\\"))
    except ValueError:
        raise _lie(f"{name} {_shown(text)}, which is not {n} numbers") from None
    if len(out) != n or not all(math.isfinite(v) for v in out):
        raise _lie(f"{name} {_shown(text)}, which is not {n} finite numbers")
    return out


def check_geometry(
    *,
    position: str | None,
    orientation: str | None,
    spacing: str | None,
    slope: str | None = None,
    intercept: str | None = None,
) -> None:
    """Position, orientation, pixel spacing and rescale values, where present, finite and sane:
    unit row and column directions at right angles, spacing above zero."""
    where = _numbers("ImagePositionPatient", position, 3)
    if where is not None and max(abs(v) for v in where) > MAX_COORDINATE_MM:
        raise _lie(f"a position {_shown(position or '')} mm, over 100 m from the scanner")
    directions = _numbers("ImageOrientationPatient", orientation, 6)
    if directions is not None:
        row, col = directions[:3], directions[3:]
        norms = [math.sqrt(sum(v * v for v in d)) for d in (row, col)]
        dot = sum(a * b for a, b in zip(row, col, strict=True))
        if not all(abs(norm - 1.0) <= 0.02 for norm in norms) or abs(dot) > 0.02:
            raise _lie(
                f"ImageOrientationPatient {_shown(orientation or '')}, which is not two unit "
                "directions at right angles"
            )
    pixels = _numbers("PixelSpacing", spacing, 2)
    if pixels is not None and not all(0 < v <= MAX_PIXEL_SPACING_MM for v in pixels):
        raise _lie(f"PixelSpacing {_shown(spacing or '')} mm (must be above 0)")
    factor = _numbers("RescaleSlope", slope, 1)
    if factor is not None and not 0 < abs(factor[0]) <= MAX_RESCALE:
        raise _lie(f"RescaleSlope {_shown(slope or '')} (must not be 0)")
    offset = _numbers("RescaleIntercept", intercept, 1)
    if offset is not None and abs(offset[0]) > MAX_RESCALE:
        raise _lie(f"RescaleIntercept {_shown(intercept or '')}")
