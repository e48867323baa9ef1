"""The key image: one PNG that a stroke physician reads on a phone.

An axial maximum intensity projection (MIP) through the MCA territory of the model input, bone
removed as the detector's front end removes it, shown in radiological convention (the patient's
right on the image's left, anterior at the top) with ``R``/``L`` letters at the edges. When an LVO
is suspected on a known side, an orange box marks that hemisphere's MCA region. A black banner on
top says what the model decided and, always, that this is not for clinical use.

The input is the ``(1, 1, X, Y, Z)`` model input in RAS orientation: axis X runs from the
patient's left (index 0) to the right, Y from posterior to anterior, Z from inferior to superior.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from lvo_triage.model_card import InputSpec
from lvo_triage.preprocess import ARTERIAL_BOX, BONE_LEVEL
from lvo_triage.result import Side, VesselAsymmetry

TARGET_WIDTH_PX = 384  # the image is scaled up by a whole factor to about this width
DISPLAY_HU = (-50.0, 450.0)  # grey window: brain dark grey, contrast-filled arteries bright
MARKER_RGB = (255, 120, 0)
# The MCA region of one hemisphere, as fractions of the grid: from near the midline (where M1
# leaves the circle of Willis) to the lateral edge (sylvian branches), middle third front-to-back.
MCA_MEDIAL, MCA_LATERAL = 0.06, 0.44  # distance from the midline, fraction of the grid width
MCA_AP = (1 / 3, 2 / 3)  # posterior to anterior, fraction of the grid depth
NOT_FOR_CLINICAL_USE = "NOT FOR CLINICAL USE - research software"
PAD_PX = 6


def key_image_png(
    batch: np.ndarray,
    spec: InputSpec,
    *,
    lvo_suspected: bool | None,
    side: Side | None,
    probability: float | None,
    site: str | None,
    threshold: float,
    asymmetry: VesselAsymmetry | None = None,
    cautions: Sequence[str] = (),
) -> bytes:
    """The key image of one study as RGB PNG bytes (the same bytes for the same arguments).

    ``batch`` is the model input, float32 of shape ``(1, 1, *spec.shape)`` in [0, 1]. ``side`` is
    marked only when ``lvo_suspected`` is True; ``lvo_suspected=None`` means the model could not
    judge the study. ``site`` (e.g. ``"M1"``) is shown when an LVO is suspected; ``asymmetry``
    (the non-learned second opinion) is shown beside the threshold; ``cautions`` (what the study
    measured outside the model's training ranges) make a caution line.
    """
    mip = mca_mip(batch, spec)
    scale = max(1, round(TARGET_WIDTH_PX / mip.shape[0]))
    grey = _to_grey(mip, spec)
    # radiological display: rows anterior (high Y) first, columns patient right (high X) first
    picture = Image.fromarray(np.ascontiguousarray(grey.T[::-1, ::-1]))
    width, height = picture.width * scale, picture.height * scale
    picture = picture.resize((width, height), Image.Resampling.BILINEAR).convert("RGB")
    draw = ImageDraw.Draw(picture)
    if lvo_suspected and side is not None:
        _mark_side(draw, side, width, height)
    _orientation_letters(draw, width, height)
    lines = banner_lines(
        lvo_suspected=lvo_suspected,
        side=side,
        probability=probability,
        site=site,
        threshold=threshold,
        asymmetry=asymmetry,
        cautions=cautions,
    )
    banner = _banner(lines, width)
    page = Image.new("RGB", (width, banner.height + height), (0, 0, 0))
    page.paste(banner, (0, 0))
    page.paste(picture, (0, banner.height))
    out = io.BytesIO()
    page.save(out, format="PNG", optimize=False)
    return out.getvalue()


def mca_mip(batch: np.ndarray, spec: InputSpec) -> np.ndarray:
    """Axial MIP ``(X, Y)`` in [0, 1] over the z band of ``ARTERIAL_BOX``, with bone and a
    one-voxel rim around it set to zero (as the detector's ``slab_mips`` does)."""
    expected = (1, 1, *spec.shape)
    if batch.shape != expected:
        msg = f"batch of shape {batch.shape} is not the model input; expected {expected}"
        raise ValueError(msg)
    volume = np.asarray(batch[0, 0], dtype=np.float32)
    if not np.isfinite(volume).all():
        msg = "batch holds NaN or infinite values; it must be the preprocessed model input"
        raise ValueError(msg)
    z_lo, z_hi = ARTERIAL_BOX[2]
    depth = spec.shape[2]
    z0, z1 = int(depth * z_lo), int(depth * z_hi)
    # the rim reaches one voxel beyond the slab, so dilate over the slab and one slice each side
    a, b = max(0, z0 - 1), min(depth, z1 + 1)
    rim = _dilate(volume[:, :, a:b] >= BONE_LEVEL)[:, :, z0 - a : z1 - a]
    soft = np.where(rim, np.float32(0.0), volume[:, :, z0:z1])
    mip: np.ndarray = np.clip(soft.max(axis=2), 0.0, 1.0)
    return mip


def banner_lines(
    *,
    lvo_suspected: bool | None,
    side: Side | None,
    probability: float | None,
    site: str | None,
    threshold: float,
    asymmetry: VesselAsymmetry | None = None,
    cautions: Sequence[str] = (),
) -> tuple[str, ...]:
    """The banner's lines: the decision; the site, threshold and second opinion; a caution when
    the study lies outside the model's training ranges; the intended-use notice."""
    p = "" if probability is None else f"  p={probability:.2f}"
    if lvo_suspected is None:
        headline = f"Cannot judge - look yourself{p}"
    elif lvo_suspected:
        where = f" - {side.value.upper()}" if side is not None else " - side unclear"
        headline = f"LVO suspected{where}{p}"
    else:
        headline = f"No LVO suspected{p}"
    detail = f"threshold p >= {threshold:.2f}"
    if lvo_suspected and site:
        detail = f"suspected site {site} - {detail}"
    if asymmetry is not None:
        fewer = asymmetry.hemisphere.value.upper()
        detail = f"{detail} - vessel asymmetry {asymmetry.score:.2f}, fewer {fewer}"
    if cautions:
        caution = f"CAUTION: outside the training range ({', '.join(cautions)})"
        return headline, detail, caution, NOT_FOR_CLINICAL_USE
    return headline, detail, NOT_FOR_CLINICAL_USE


def _dilate(mask: np.ndarray) -> np.ndarray:
    """3x3x3 binary dilation (a box maximum filter, done one axis at a time)."""
    out = mask.copy()
    for axis in range(out.ndim):
        src = np.moveaxis(out.copy(), axis, 0)
        dst = np.moveaxis(out, axis, 0)  # a view: writing it writes ``out``
        dst[1:] |= src[:-1]
        dst[:-1] |= src[1:]
    return out


def _to_grey(mip: np.ndarray, spec: InputSpec) -> np.ndarray:
    lo, hi = spec.window_hu
    d_lo, d_hi = DISPLAY_HU
    hu = lo + mip.astype(np.float64) * (hi - lo)
    level = np.clip((hu - d_lo) / (d_hi - d_lo), 0.0, 1.0)
    return np.rint(level * 255.0).astype(np.uint8)


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _mark_side(draw: ImageDraw.ImageDraw, side: Side, width: int, height: int) -> None:
    """An orange box over the suspect hemisphere's MCA region, tagged with its side letter."""
    mid = width / 2
    near, far = MCA_MEDIAL * width, MCA_LATERAL * width
    # radiological display: the patient's left is on the image's right
    x0, x1 = (mid + near, mid + far) if side is Side.LEFT else (mid - far, mid - near)
    y0, y1 = (1 - MCA_AP[1]) * height, (1 - MCA_AP[0]) * height
    line = max(2, width // 120)
    draw.rectangle((round(x0), round(y0), round(x1), round(y1)), outline=MARKER_RGB, width=line)
    font = _font(max(14, width // 22))
    letter = "L" if side is Side.LEFT else "R"
    left, top, right, bottom = draw.textbbox((0, 0), letter, font=font)
    tag_w, tag_h = right - left + 2 * PAD_PX, bottom - top + PAD_PX
    tx = round(x1) - tag_w if side is Side.LEFT else round(x0)
    ty = round(y0) - tag_h
    draw.rectangle((tx, ty, tx + tag_w, ty + tag_h), fill=MARKER_RGB)
    draw.text((tx + PAD_PX - left, ty + PAD_PX // 2 - top), letter, fill=(0, 0, 0), font=font)


def _orientation_letters(draw: ImageDraw.ImageDraw, width: int, height: int) -> None:
    """Small white ``R`` at the image's left edge and ``L`` at its right edge."""
    font = _font(max(12, width // 28))
    for letter, at_left in (("R", True), ("L", False)):
        left, top, right, bottom = draw.textbbox((0, 0), letter, font=font)
        x = PAD_PX - left if at_left else width - PAD_PX - right
        y = height // 2 - (top + bottom) // 2
        draw.text(
            (x, y), letter, fill=(255, 255, 255), font=font, stroke_width=2, stroke_fill=(0, 0, 0)
        )


def _banner(lines: tuple[str, ...], width: int) -> Image.Image:
    """Black strip, white text: the headline larger, each line shrunk until it fits; a caution
    line in the marker colour."""
    sizes = [max(16, width // 18)] + [max(12, width // 25)] * (len(lines) - 1)
    rendered: list[tuple[str, ImageFont.FreeTypeFont | ImageFont.ImageFont]] = []
    for text, size in zip(lines, sizes, strict=True):
        font = _font(size)
        while size > 8 and font.getlength(text) > width - 2 * PAD_PX:
            size -= 1
            font = _font(size)
        rendered.append((text, font))
    heights = [int(font.getbbox("Hg")[3]) + PAD_PX for _, font in rendered]
    banner = Image.new("RGB", (width, sum(heights) + PAD_PX), (0, 0, 0))
    draw = ImageDraw.Draw(banner)
    y = PAD_PX
    for (text, font), h in zip(rendered, heights, strict=True):
        colour = MARKER_RGB if text.startswith("CAUTION") else (255, 255, 255)
        draw.text((PAD_PX, y), text, fill=colour, font=font)
        y += h
    return banner
