"""Choose the CTA series of a study by content and tags; say why each series was taken or left."""

from __future__ import annotations

from dataclasses import dataclass

from lvo_triage.config import SelectionSettings
from lvo_triage.dicom.discover import Series, Study
from lvo_triage.dicom.geometry import slice_spacing, sorted_along_normal
from lvo_triage.errors import NotAnalyzable
from lvo_triage.result import SeriesConsidered

CT_IMAGE_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.2",  # CT Image Storage
    "1.2.840.10008.5.1.4.1.1.2.1",  # Enhanced CT Image Storage
}


class NotAnalyzableWithSeries(NotAnalyzable):
    """``NotAnalyzable`` that still reports every series considered."""

    def __init__(self, reason: str, considered: list[SeriesConsidered]) -> None:
        super().__init__(reason)
        self.considered = considered


@dataclass(frozen=True)
class Selection:
    series: Series
    considered: list[SeriesConsidered]
    slice_spacing_mm: float


def _rejection(series: Series, rules: SelectionSettings) -> tuple[str | None, float]:
    """Why ``series`` cannot be the CTA (None when it can), and its slice spacing."""
    first = series.instances[0]
    if series.modality != "CT":
        return f"modality {series.modality or 'missing'}, not CT", 0.0
    if first.sop_class_uid and first.sop_class_uid not in CT_IMAGE_CLASSES:
        return f"not a CT image (SOP class {first.sop_class_uid})", 0.0
    kinds = set(first.image_type)
    if "LOCALIZER" in kinds:
        return "localizer (scout) image", 0.0
    if kinds & {"DERIVED", "SECONDARY"}:
        return "derived/secondary images (reformat or MIP), not the source slices", 0.0
    if any(inst.frames > 1 for inst in series.instances):
        return "multi-frame images are not supported yet", 0.0
    if len(series.instances) < rules.min_instances:
        return f"only {len(series.instances)} images (a CTA needs >= {rules.min_instances})", 0.0
    try:
        _, positions = sorted_along_normal(series.instances)
    except NotAnalyzable as exc:
        return exc.reason, 0.0
    spacing = slice_spacing(positions)
    if spacing > rules.max_slice_spacing_mm:
        return (
            f"slices {spacing:.2f} mm apart, thicker than the {rules.max_slice_spacing_mm} mm "
            "a CTA needs",
            spacing,
        )
    return None, spacing


def select_series(study: Study, rules: SelectionSettings) -> Selection:
    """The thin ORIGINAL/PRIMARY CT series with the most images; ``NotAnalyzable`` if none."""
    verdicts = {uid: _rejection(s, rules) for uid, s in study.series.items()}
    candidates = [uid for uid, (why, _) in verdicts.items() if why is None]
    chosen = max(candidates, key=lambda uid: len(study.series[uid].instances), default=None)
    considered = []
    for uid, series in study.series.items():
        why, spacing = verdicts[uid]
        if uid == chosen:
            why = (
                f"CT {'/'.join(series.instances[0].image_type[:2]) or 'image'} series, "
                f"{len(series.instances)} images, {spacing:.2f} mm slices: the CTA"
            )
        elif why is None:
            why = "also a thin CT series, but with fewer images than the selected one"
        considered.append(
            SeriesConsidered(
                series_instance_uid=uid,
                description=series.description,
                instances=len(series.instances),
                selected=uid == chosen,
                reason=why,
            )
        )
    if chosen is None:
        reasons = "; ".join(
            f"{c.description or c.series_instance_uid}: {c.reason}" for c in considered
        )
        raise NotAnalyzableWithSeries(f"no usable CTA series in the study ({reasons})", considered)
    return Selection(
        series=study.series[chosen], considered=considered, slice_spacing_mm=verdicts[chosen][1]
    )
