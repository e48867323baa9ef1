"""Pixels → one HU volume with its LPS affine, slices ordered along the slice normal."""

from __future__ import annotations

import numpy as np

from lvo_triage.dicom.claims import size_text
from lvo_triage.dicom.discover import Instance, Series
from lvo_triage.dicom.geometry import slice_normal, slice_spacing, sorted_along_normal
from lvo_triage.dicom.pixels import read_slices
from lvo_triage.dicom.volume_types import Volume
from lvo_triage.errors import NotAnalyzable

GAP_FACTOR = 1.5


def _fill_gaps(
    hu: np.ndarray, positions: np.ndarray, spacing: float
) -> tuple[np.ndarray, list[str]]:
    """Insert linearly interpolated slices into the gaps (already checked to be small); a gap that
    is not a whole number of slices is ``NotAnalyzable``."""
    steps = np.diff(positions)
    gaps = np.flatnonzero(steps > spacing * GAP_FACTOR).tolist()
    if not gaps:
        return hu, []
    worst = float(steps[gaps].max())
    parts: list[np.ndarray] = []
    start = 0
    missing = 0
    for g in gaps:
        n = round(float(steps[g]) / spacing)
        if abs(float(steps[g]) - n * spacing) > 0.2 * spacing:
            msg = f"slices {steps[g]:.2f} mm apart where the series has {spacing:.2f} mm"
            raise NotAnalyzable(msg)
        parts.append(hu[:, :, start : g + 1])
        a, b = hu[:, :, g], hu[:, :, g + 1]
        parts.extend((a + (b - a) * (j / n))[:, :, None] for j in range(1, n))
        missing += n - 1
        start = g + 1
    parts.append(hu[:, :, start:])
    warning = (
        f"{missing} missing slice(s) in {len(gaps)} gap(s) of up to {worst:.1f} mm interpolated"
    )
    return np.concatenate(parts, axis=2), [warning]


def _quality_warnings(instances: list[Instance]) -> list[str]:
    """Warnings for pixel data that lost information before it reached us."""
    out = []
    if any(i.lossy for i in instances):
        out.append(
            "the images were compressed lossily: lvo-triage has not been validated on lossy data"
        )
    bits = min(i.pixel.bits_stored for i in instances)
    if bits <= 8:
        step = max(abs(i.pixel.slope) for i in instances)
        out.append(f"only {bits}-bit pixel data ({step:.0f} HU per step): fine contrast is lost")
    return out


def _check_size(instances: list[Instance], spacing: float, span: float, max_bytes: int) -> None:
    """The HU volume (gaps filled) fits in ``max_bytes`` (``limits.max_volume_mb``)."""
    first = instances[0]
    slices = max(len(instances), round(span / spacing) + 1 if spacing > 0 else 0)
    size = slices * first.rows * first.columns * 4
    if size > max_bytes:
        msg = (
            f"the series would take {size_text(size)} of memory as a volume ({slices} slices of "
            f"{first.columns} x {first.rows}), more than the {size_text(max_bytes)} allowed "
            "(limits.max_volume_mb)"
        )
        raise NotAnalyzable(msg)


def _check_steps(positions: np.ndarray, spacing: float, max_gap_mm: float) -> None:
    """One slice per position, and no gap larger than the interpolation fills."""
    steps = np.diff(positions)
    if spacing <= 0 or np.any(steps < spacing * 0.5):
        msg = "two images share one slice position (several acquisitions in one series?)"
        raise NotAnalyzable(msg)
    if np.any(steps > max(spacing * GAP_FACTOR, max_gap_mm)):
        worst = float(steps.max())
        msg = (
            f"a gap of {worst:.1f} mm between slices (normally {spacing:.2f} mm): images missing; "
            f"gaps up to {max_gap_mm:g} mm are interpolated"
        )
        raise NotAnalyzable(msg)


def _without_failed(
    stack: np.ndarray,
    positions: np.ndarray,
    failures: dict[int, str],
    spacing: float,
    max_gap_mm: float,
) -> tuple[np.ndarray, np.ndarray, str]:
    """The slices whose pixels were read, as long as the gaps they leave can be filled; and the
    warning that says what was left out. ``NotAnalyzable`` (with the first file's reason) else."""
    first = failures[min(failures)]
    keep = [k for k in range(len(positions)) if k not in failures]
    if len(keep) < 2:
        raise NotAnalyzable(first)
    try:
        _check_steps(positions[keep], spacing, max_gap_mm)
    except NotAnalyzable as exc:
        n = len(failures)
        msg = f"{n} image(s) cannot be read ({first}), which leaves {exc.reason}"
        raise NotAnalyzable(msg) from exc
    warning = f"{len(failures)} image(s) left out because their pixels cannot be read ({first})"
    return stack[keep], positions[keep], warning


def load_volume(
    series: Series, *, max_gap_mm: float = 3.0, max_volume_mb: float = 4000.0
) -> tuple[Volume, list[str]]:
    """Read every slice of ``series`` into HU; returns the volume and warnings. A series whose
    volume would exceed ``max_volume_mb`` is ``NotAnalyzable`` before anything is read; slices
    whose pixels cannot be read (damaged files) are left out like missing images."""
    instances, positions = sorted_along_normal(series.instances)
    warnings: list[str] = []
    spacing = slice_spacing(positions)
    _check_steps(positions, spacing, max_gap_mm)
    _check_size(instances, spacing, float(positions[-1] - positions[0]), int(max_volume_mb * 1e6))
    warnings.extend(_quality_warnings(instances))
    numbers = [i.instance_number for i in instances if i.instance_number is not None]
    ordered = len(numbers) < len(instances) or numbers in (sorted(numbers), sorted(numbers)[::-1])
    if not ordered:
        warnings.append("InstanceNumber does not follow slice position; ordered by position")

    if instances[0].pixel_spacing is None:
        msg = "the images have no PixelSpacing, so distances cannot be measured"
        raise NotAnalyzable(msg)
    stack, failures = read_slices(instances)
    if failures:
        stack, positions, warning = _without_failed(stack, positions, failures, spacing, max_gap_mm)
        instances = [inst for k, inst in enumerate(instances) if k not in failures]
        warnings.append(warning)
    hu = stack.transpose(2, 1, 0)  # (slice, row, col) -> [i, j, k], a view

    hu, gap_warnings = _fill_gaps(hu, positions, spacing)
    warnings.extend(gap_warnings)

    first = instances[0]
    assert first.orientation is not None and first.position is not None
    assert first.pixel_spacing is not None
    row_dir = np.asarray(first.orientation[:3])
    col_dir = np.asarray(first.orientation[3:])
    affine = np.eye(4)
    affine[:3, 0] = row_dir * first.pixel_spacing[1]
    affine[:3, 1] = col_dir * first.pixel_spacing[0]
    affine[:3, 2] = slice_normal(first.orientation) * spacing
    affine[:3, 3] = first.position
    return Volume(hu=hu, affine=affine), warnings
