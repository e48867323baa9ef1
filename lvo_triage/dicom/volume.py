"""Pixels → one HU volume with its LPS affine, slices ordered along the slice normal."""

from __future__ import annotations

import numpy as np

from lvo_triage.dicom.discover import Instance, Series
from lvo_triage.dicom.geometry import slice_normal, slice_spacing, sorted_along_normal
from lvo_triage.dicom.pixels import read_stack
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


def load_volume(series: Series, *, max_gap_mm: float = 3.0) -> tuple[Volume, list[str]]:
    """Read every slice of ``series`` into HU; returns the volume and warnings."""
    instances, positions = sorted_along_normal(series.instances)
    warnings: list[str] = []
    spacing = slice_spacing(positions)
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
    warnings.extend(_quality_warnings(instances))
    numbers = [i.instance_number for i in instances if i.instance_number is not None]
    ordered = len(numbers) < len(instances) or numbers in (sorted(numbers), sorted(numbers)[::-1])
    if not ordered:
        warnings.append("InstanceNumber does not follow slice position; ordered by position")

    first = instances[0]
    assert first.orientation is not None and first.position is not None
    if first.pixel_spacing is None:
        msg = "the images have no PixelSpacing, so distances cannot be measured"
        raise NotAnalyzable(msg)
    hu = read_stack(instances).transpose(2, 1, 0)  # (slice, row, col) -> [i, j, k], a view

    hu, gap_warnings = _fill_gaps(hu, positions, spacing)
    warnings.extend(gap_warnings)

    row_dir = np.asarray(first.orientation[:3])
    col_dir = np.asarray(first.orientation[3:])
    affine = np.eye(4)
    affine[:3, 0] = row_dir * first.pixel_spacing[1]
    affine[:3, 1] = col_dir * first.pixel_spacing[0]
    affine[:3, 2] = slice_normal(first.orientation) * spacing
    affine[:3, 3] = first.position
    return Volume(hu=hu, affine=affine), warnings
