"""Choose the CTA series of a study by content and tags; say why each series was taken or left.

Selection ranks the usable series (thin ORIGINAL/PRIMARY CT stacks long enough for the
intracranial arteries), most images first; the pipeline then takes the first whose pixels load
and show contrast, and :meth:`Selection.report` says what happened to every series.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from lvo_triage.config import SelectionSettings
from lvo_triage.dicom.acquisitions import split_acquisitions
from lvo_triage.dicom.discover import Series, Study
from lvo_triage.dicom.geometry import slice_normal, slice_spacing, sorted_along_normal
from lvo_triage.errors import NotAnalyzable
from lvo_triage.result import SeriesConsidered

CT_IMAGE_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.2",  # CT Image Storage
    "1.2.840.10008.5.1.4.1.1.2.1",  # Enhanced CT Image Storage
}
SOP_CLASS_WORDS = {
    "1.2.840.10008.5.1.4.1.1.7": "secondary capture (a screenshot, e.g. a dose page)",
    "1.2.840.10008.5.1.4.1.1.88.67": "radiation dose report",
    "1.2.840.10008.5.1.4.1.1.88.11": "structured report",
    "1.2.840.10008.5.1.4.1.1.88.22": "structured report",
    "1.2.840.10008.5.1.4.1.1.88.33": "structured report",
    "1.2.840.10008.5.1.4.1.1.104.1": "PDF document",
    "1.2.840.10008.5.1.4.1.1.66": "raw data",
}
REFORMAT_WORDS = {"MIP", "MPR", "REFORMATTED", "PROJECTION IMAGE", "CURVED", "VOLUME"}
SPACING_TOLERANCE_MM = 1e-3  # positions written with a few decimals: 1.5 mm may read 1.50004
DOSE_WORDS = ("DOSE REPORT", "DOSE INFO", "DOSE_INFO", "SCREEN SAVE", "PATIENT PROTOCOL")


class NotAnalyzableWithSeries(NotAnalyzable):
    """``NotAnalyzable`` that still reports every series considered."""

    def __init__(self, reason: str, considered: list[SeriesConsidered]) -> None:
        super().__init__(reason)
        self.considered = considered


def _kind_rejection(series: Series) -> str | None:
    """Why the images of ``series`` are not CT source slices, from its tags."""
    first = series.instances[0]
    sop = first.sop_class_uid
    for prefix, words in SOP_CLASS_WORDS.items():
        if sop == prefix or sop.startswith(prefix + "."):
            return f"{words}, not CT images"
    if series.modality != "CT":
        return f"modality {series.modality or 'missing'}, not CT"
    if sop and sop not in CT_IMAGE_CLASSES:
        return f"not a CT image (SOP class {sop})"
    kinds = set(first.image_type)
    text = " ".join((*first.image_type, series.description.upper()))
    if any(word in text for word in DOSE_WORDS):
        return "dose report or protocol page, not CT slices"
    if "LOCALIZER" in kinds:
        return "localizer (scout) image"
    if kinds & REFORMAT_WORDS or "SECONDARY" in kinds:
        return "derived/secondary images (reformat or MIP), not the source slices"
    if "DERIVED" in kinds and not (first.lossy and "PRIMARY" in kinds):
        # DERIVED\PRIMARY with LossyImageCompression 01 is a lossy copy of the source slices.
        return "derived images (reformat or MIP), not the source slices"
    return None


def head_foot_coverage_mm(series: Series, positions: np.ndarray, spacing: float) -> float:
    """Extent of the volume along the patient's head-foot axis, in mm."""
    first = series.instances[0]
    assert first.orientation is not None
    row_ps, col_ps = first.pixel_spacing or (1.0, 1.0)
    row_dir, col_dir = np.asarray(first.orientation[:3]), np.asarray(first.orientation[3:])
    normal = slice_normal(first.orientation)
    span = float(positions[-1] - positions[0]) + spacing
    return float(
        abs(row_dir[2]) * first.columns * col_ps
        + abs(col_dir[2]) * first.rows * row_ps
        + abs(normal[2]) * span
    )


def _rejection(series: Series, rules: SelectionSettings) -> tuple[str | None, float]:
    """Why ``series`` cannot be the CTA (None when it can), and its slice spacing."""
    why = _kind_rejection(series)
    if why is not None:
        return why, 0.0
    if len(series.instances) < rules.min_instances:
        n = len(series.instances)
        return f"only {n} image{'s' if n != 1 else ''} (a CTA needs {rules.min_instances})", 0.0
    try:
        _, positions = sorted_along_normal(series.instances)
    except NotAnalyzable as exc:
        return exc.reason, 0.0
    spacing = slice_spacing(positions)
    if spacing > rules.max_slice_spacing_mm + SPACING_TOLERANCE_MM:  # 1.5 mm is 1.5 mm
        return (
            f"slices {spacing:.2f} mm apart, thicker than the {rules.max_slice_spacing_mm:g} mm "
            "a CTA needs",
            spacing,
        )
    coverage = head_foot_coverage_mm(series, positions, spacing)
    if coverage < rules.min_coverage_mm:
        return (
            f"covers only {coverage:.0f} mm from feet to head; the intracranial arteries need "
            f"{rules.min_coverage_mm:g} mm (skull base to vertex)",
            spacing,
        )
    return None, spacing


@dataclass
class Selection:
    """Every series (or acquisition) of a study with its verdict; ``candidates`` are the usable
    ones, best first. The pipeline records load failures with :meth:`failed`."""

    parts: list[Series]
    verdicts: list[tuple[str | None, float]]
    candidates: list[int]
    failures: dict[int, str] = field(default_factory=dict)

    @property
    def series(self) -> Series:
        """The best candidate."""
        return self.parts[self.candidates[0]]

    def failed(self, index: int, reason: str) -> None:
        self.failures[index] = reason

    def report(self, chosen: int | None) -> list[SeriesConsidered]:
        out = []
        for n, (series, (why, spacing)) in enumerate(zip(self.parts, self.verdicts, strict=True)):
            if n == chosen:
                kind = "/".join(series.instances[0].image_type[:2]) or "image"
                why = (
                    f"CT {kind} series, {len(series.instances)} images, {spacing:.2f} mm slices: "
                    "the CTA"
                )
            elif n in self.failures:
                why = self.failures[n]
            elif why is None:
                why = "also a thin CT series, but with fewer images than the selected one"
            out.append(
                SeriesConsidered(
                    series_instance_uid=series.uid,
                    description=series.label,
                    instances=len(series.instances),
                    selected=n == chosen,
                    reason=why,
                )
            )
        return out


def select_series(study: Study, rules: SelectionSettings) -> Selection:
    """Judge every series of ``study``; ``NotAnalyzableWithSeries`` if none can be the CTA."""
    parts = [part for series in study.series.values() for part in split_acquisitions(series)]
    verdicts = [_rejection(part, rules) for part in parts]
    usable = [n for n, (why, _) in enumerate(verdicts) if why is None]
    # Most images first; among equals the earlier acquisition (the arterial phase comes first).
    candidates = sorted(usable, key=lambda n: -len(parts[n].instances))
    selection = Selection(parts=parts, verdicts=verdicts, candidates=candidates)
    if not candidates:
        considered = selection.report(None)
        reasons = "; ".join(
            f"{c.description or c.series_instance_uid}: {c.reason}" for c in considered
        )
        raise NotAnalyzableWithSeries(f"no usable CTA series in the study ({reasons})", considered)
    return selection
