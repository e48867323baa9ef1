"""The key image: a PNG in radiological convention, the suspect side marked on the correct half."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from lvo_triage.model_card import DEFAULT_INPUT
from lvo_triage.outputs.key_image import banner_lines, key_image_png
from lvo_triage.result import Side

SPEC = DEFAULT_INPUT
X, Y, Z = SPEC.shape
Z_BAND = slice(int(Z * 0.35), int(Z * 0.55))  # inside the MIP slab (z fraction 0.3 to 0.6)


def _head() -> np.ndarray:
    """A (1, 1, X, Y, Z) batch: brain at 0.2 inside a bone shell at 1.0, and symmetric 'arteries'
    at 0.6 in the arterial band: a midline tube front to back and an MCA-like tube on each side."""
    i, j, k = np.meshgrid(
        (np.arange(X) - X / 2) / (0.42 * X),
        (np.arange(Y) - Y / 2) / (0.45 * Y),
        (np.arange(Z) - Z / 2) / (0.48 * Z),
        indexing="ij",
    )
    r = np.sqrt(i**2 + j**2 + k**2)
    x = np.zeros(SPEC.shape, dtype=np.float32)
    x[r < 1.0] = 1.0
    x[r < 0.92] = 0.2
    zc = (Z_BAND.start + Z_BAND.stop) // 2
    x[X // 2 - 1 : X // 2 + 1, Y // 4 : 3 * Y // 4, zc - 1 : zc + 1] = 0.6
    x[X // 8 : 3 * X // 8, Y // 2 - 1 : Y // 2 + 1, zc - 1 : zc + 1] = 0.6
    x[5 * X // 8 : 7 * X // 8, Y // 2 - 1 : Y // 2 + 1, zc - 1 : zc + 1] = 0.6
    return x[None, None]


def _png(
    batch: np.ndarray,
    *,
    lvo_suspected: bool | None = True,
    side: Side | None = Side.LEFT,
    probability: float | None = 0.97,
    site: str | None = "M1",
) -> bytes:
    return key_image_png(
        batch,
        SPEC,
        lvo_suspected=lvo_suspected,
        side=side,
        probability=probability,
        site=site,
        threshold=0.5,
    )


def _rgb(png: bytes) -> np.ndarray:
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG"
    assert image.mode == "RGB"
    return np.asarray(image).astype(np.int16)


def _coloured_columns(rgb: np.ndarray) -> np.ndarray:
    """Columns of the pixels that are not grey (the marker; text and MIP are grey)."""
    chroma = rgb.max(axis=2) - rgb.min(axis=2)
    return np.argwhere(chroma > 40)[:, 1]


def _changed(a: bytes, b: bytes) -> np.ndarray:
    """(row, column) of the pixels that differ between two key images of the same size."""
    ra, rb = _rgb(a), _rgb(b)
    assert ra.shape == rb.shape
    return np.argwhere(np.abs(ra - rb).max(axis=2) > 30)


def test_valid_rgb_png_of_phone_width() -> None:
    png = _png(_head())
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    rgb = _rgb(png)
    height, width, _ = rgb.shape
    assert 300 <= width <= 500
    assert height > width  # the head is longer than wide, plus the banner


def test_left_lvo_is_marked_on_the_image_right_half() -> None:
    rgb = _rgb(_png(_head(), side=Side.LEFT))
    columns = _coloured_columns(rgb)
    assert len(columns) > 100
    assert columns.min() >= rgb.shape[1] // 2


def test_right_lvo_is_marked_on_the_image_left_half() -> None:
    rgb = _rgb(_png(_head(), side=Side.RIGHT))
    columns = _coloured_columns(rgb)
    assert len(columns) > 100
    assert columns.max() < rgb.shape[1] // 2


@pytest.mark.parametrize(
    ("lvo_suspected", "side"), [(False, None), (False, Side.LEFT), (None, None), (True, None)]
)
def test_no_marker_without_a_suspected_side(lvo_suspected: bool | None, side: Side | None) -> None:
    rgb = _rgb(_png(_head(), lvo_suspected=lvo_suspected, side=side, site=None))
    assert len(_coloured_columns(rgb)) == 0


def test_same_input_same_bytes() -> None:
    assert _png(_head()) == _png(_head())


@pytest.mark.parametrize(
    "shape", [SPEC.shape, (1, *SPEC.shape), (1, 1, X, Y, Z - 2), (2, 1, *SPEC.shape)]
)
def test_wrong_shape_raises(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="shape"):
        _png(np.zeros(shape, dtype=np.float32))


def test_non_finite_input_raises() -> None:
    batch = _head()
    batch[0, 0, 0, 0, Z // 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        _png(batch)


def _with_blob(x0: int, x1: int, y0: int, y1: int, z: slice = Z_BAND, value: float = 0.7) -> bytes:
    batch = _head()
    batch[0, 0, x0:x1, y0:y1, z] = value
    return _png(batch, lvo_suspected=False, side=None)


def _plain() -> bytes:
    return _png(_head(), lvo_suspected=False, side=None)


def test_patient_left_blob_appears_on_the_image_right() -> None:
    # RAS: axis X runs from the patient's left (index 0) to the right; see test_preprocess
    mid_y = Y // 2 + 8
    left = _changed(_plain(), _with_blob(X // 4 - 3, X // 4 + 3, mid_y - 3, mid_y + 3))
    right = _changed(_plain(), _with_blob(3 * X // 4 - 3, 3 * X // 4 + 3, mid_y - 3, mid_y + 3))
    width = _rgb(_plain()).shape[1]
    assert len(left) > 50 and len(right) > 50
    assert left[:, 1].min() > width // 2
    assert right[:, 1].max() < width // 2


def test_anterior_blob_appears_above_a_posterior_one() -> None:
    cx = X // 2 + 10
    anterior = _changed(_plain(), _with_blob(cx - 3, cx + 3, 3 * Y // 4 - 3, 3 * Y // 4 + 3))
    posterior = _changed(_plain(), _with_blob(cx - 3, cx + 3, Y // 4 - 3, Y // 4 + 3))
    assert len(anterior) > 50 and len(posterior) > 50
    assert anterior[:, 0].max() < posterior[:, 0].min()


def test_only_the_mca_slab_is_projected() -> None:
    below = slice(0, int(Z * 0.3) - 2)
    above = slice(int(Z * 0.6) + 2, Z)
    for z in (below, above):
        assert len(_changed(_plain(), _with_blob(20, 30, 40, 50, z=z))) == 0


def test_bone_is_suppressed_not_shown_bright() -> None:
    plain = _rgb(_plain())
    bony = _rgb(_with_blob(20, 30, 40, 50, z=slice(None), value=1.0))  # through the slab
    difference = (bony - plain).max(axis=2)
    assert difference.max() <= 0  # nothing got brighter
    assert difference.min() < -20  # the bone and its rim are blanked


def test_banner_text() -> None:
    lines = banner_lines(
        lvo_suspected=True, side=Side.LEFT, probability=0.97, site="M1", threshold=0.5
    )
    assert lines == (
        "LVO suspected - LEFT  p=0.97",
        "suspected site M1 - threshold p >= 0.50",
        "NOT FOR CLINICAL USE - research software",
    )
    lines = banner_lines(lvo_suspected=False, side=None, probability=0.03, site=None, threshold=0.5)
    assert lines[0] == "No LVO suspected  p=0.03"
    assert lines[1] == "threshold p >= 0.50"
    lines = banner_lines(lvo_suspected=None, side=None, probability=None, site=None, threshold=0.5)
    assert lines[0].startswith("Cannot judge")
    assert lines[2] == "NOT FOR CLINICAL USE - research software"
