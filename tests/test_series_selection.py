"""Series selection by content: acquisitions split, coverage, dose reports, Enhanced CT."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom
import pytest

from lvo_triage.config import SelectionSettings, Settings
from lvo_triage.dicom.discover import discover
from lvo_triage.dicom.select import select_series
from lvo_triage.dicom.volume import load_volume
from lvo_triage.errors import NotAnalyzable
from lvo_triage.pipeline import Runtime, triage_path
from lvo_triage.result import Status
from tests.dicom_edits import dose_reports, enhanced_ct, rewrite, study_uid_of


@pytest.fixture(scope="module")
def engine(bundled_model: Path) -> Runtime:
    return Runtime.create(Settings())


def _acquisition(number: int) -> Callable[[pydicom.Dataset], None]:
    def edit(ds: pydicom.Dataset) -> None:
        ds.AcquisitionNumber = number

    return edit


def test_two_acquisitions_in_one_series_are_split_and_the_enhanced_one_taken(
    fast_study: Path, plain_study: Path, tmp_path: Path, engine: Runtime
) -> None:
    study, series = pydicom.uid.generate_uid(), pydicom.uid.generate_uid()
    # Acquisition 1 (first in line) has no contrast; acquisition 2 is the CTA, same positions.
    rewrite(plain_study, tmp_path / "in", study_uid=study, series_uid=series, edit=_acquisition(1))
    rewrite(fast_study, tmp_path / "in", study_uid=study, series_uid=series, edit=_acquisition(2))
    (result,) = triage_path(engine, tmp_path / "in")
    assert result.status is Status.OK, result.reason
    assert result.lvo_suspected and result.side == "left"
    by_part = {c.description: c for c in result.series_considered}
    assert set(by_part) == {"CTA HEAD (acquisition 1)", "CTA HEAD (acquisition 2)"}
    assert by_part["CTA HEAD (acquisition 2)"].selected
    assert "no contrast-enhanced series" in by_part["CTA HEAD (acquisition 1)"].reason
    assert all(c.series_instance_uid == series for c in result.series_considered)


def test_short_coverage_is_not_analyzable(fast_study: Path, tmp_path: Path) -> None:
    series = next(iter(discover(fast_study).studies[0].series.values()))
    z = sorted(i.position[2] for i in series.instances if i.position)
    keep = tmp_path / "short"
    keep.mkdir()
    for inst in series.instances:
        if inst.position and z[20] <= inst.position[2] < z[20] + 60.0:
            (keep / inst.path.name).write_bytes(inst.path.read_bytes())
    with pytest.raises(NotAnalyzable, match=r"covers only 6\d mm from feet to head"):
        select_series(discover(keep).studies[0], SelectionSettings())
    select_series(discover(keep).studies[0], SelectionSettings(min_coverage_mm=50))


def test_dose_reports_are_named_and_left_out(fast_study: Path, tmp_path: Path) -> None:
    root = rewrite(fast_study, tmp_path / "in", study_uid=pydicom.uid.generate_uid())
    dose_reports(next(root.iterdir()), root / "dose")
    selection = select_series(discover(root).studies[0], SelectionSettings())
    reasons = {c.description: c.reason for c in selection.report(selection.candidates[0])}
    assert reasons["Dose Report"].startswith("secondary capture")
    assert reasons["Radiation Dose Information"].startswith("radiation dose report")


def test_enhanced_ct_multiframe_loads_like_the_single_frame_series(
    fast_study: Path, tmp_path: Path
) -> None:
    reference, _ = load_volume(next(iter(discover(fast_study).studies[0].series.values())))
    enhanced_ct(fast_study, tmp_path / "mf" / "enhanced.dcm")
    (series,) = discover(tmp_path / "mf").studies[0].series.values()
    assert {i.frame for i in series.instances} == set(range(len(series.instances)))
    selection = select_series(discover(tmp_path / "mf").studies[0], SelectionSettings())
    volume, warnings = load_volume(selection.series)
    assert warnings == []
    assert np.array_equal(volume.hu, reference.hu)
    assert np.allclose(volume.affine, reference.affine)


def test_a_study_of_only_unusable_series_lists_each_reason(
    fast_study: Path, tmp_path: Path, engine: Runtime
) -> None:
    uid = study_uid_of(fast_study)
    dose_reports(next(fast_study.iterdir()), tmp_path / "in")
    rewrite(fast_study, tmp_path / "in" / "thin", study_uid=uid, limit=10)
    (result,) = triage_path(engine, tmp_path / "in")
    assert result.status is Status.NOT_ANALYZABLE
    assert result.reason is not None and "no usable CTA series" in result.reason
    assert len(result.series_considered) == 3
    assert not any(c.selected for c in result.series_considered)


def test_slices_exactly_at_the_limit_are_thin_enough(fast_study: Path) -> None:
    """Positions written with a few decimals put 1.5 mm slices at 1.50004 mm or so."""
    study = discover(fast_study).studies[0]
    series = next(iter(study.series.values()))
    spacing = float(np.median(np.diff(sorted(i.position[2] for i in series.instances))))  # type: ignore[index]
    rules = SelectionSettings(max_slice_spacing_mm=round(spacing, 3) - 0.0004)
    assert select_series(study, rules).series is not None
    with pytest.raises(NotAnalyzable, match="thicker than"):
        select_series(study, SelectionSettings(max_slice_spacing_mm=spacing - 0.01))
