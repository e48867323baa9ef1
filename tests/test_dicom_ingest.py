"""Discovery, series selection and volume loading on real DICOM files written by the phantom."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest

from lvo_triage.config import SelectionSettings
from lvo_triage.dicom.discover import discover
from lvo_triage.dicom.select import select_series
from lvo_triage.dicom.volume import load_volume
from lvo_triage.errors import NotAnalyzable


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def test_discover_groups_one_study_and_reports_junk(fast_study: Path, tmp_path: Path) -> None:
    root = _copy(fast_study, tmp_path / "in")
    files = sorted(root.rglob("*.dcm"))
    (root / "empty.dcm").write_bytes(b"")
    (root / "notes.txt").write_text("not dicom")
    (root / "Thumbs.db").write_bytes(b"\x00" * 64)
    (root / "half.dcm").write_bytes(files[0].read_bytes()[:200])
    shutil.copy(files[1], root / "copy-of-a-slice.dcm")
    found = discover(root)
    assert len(found.studies) == 1
    (series,) = found.studies[0].series.values()
    assert len(series.instances) == len(files)
    joined = "\n".join(found.skipped)
    for name in ("empty.dcm", "notes.txt", "Thumbs.db", "half.dcm", "copy-of-a-slice.dcm"):
        assert name in joined
    assert all("PHANTOM" not in s for s in found.skipped)


def test_selection_prefers_the_thin_original_series(fast_study: Path, tmp_path: Path) -> None:
    root = _copy(fast_study, tmp_path / "in")
    files = sorted(root.rglob("*.dcm"))
    # A "MIP" series made of three slices with DERIVED image type, and a localizer.
    for n, kind in (
        (3, ["DERIVED", "SECONDARY", "MIP"]),
        (1, ["ORIGINAL", "PRIMARY", "LOCALIZER"]),
    ):
        uid = pydicom.uid.generate_uid()
        for f in files[:n]:
            ds = pydicom.dcmread(f)
            ds.SeriesInstanceUID = uid
            ds.SOPInstanceUID = pydicom.uid.generate_uid()
            ds.ImageType = kind
            ds.SeriesDescription = "CTA HEAD"  # same description: must not matter
            ds.save_as(root / f"{ds.SOPInstanceUID}.dcm")
    study = discover(root).studies[0]
    selection = select_series(study, SelectionSettings())
    assert len(selection.series.instances) == len(files)
    considered = selection.report(selection.candidates[0])
    reasons = {c.instances: c.reason for c in considered if not c.selected}
    assert "derived" in reasons[3]
    assert "localizer" in reasons[1]


def test_thick_slices_are_not_analyzable_and_say_the_thickness(fast_study: Path) -> None:
    study = discover(fast_study).studies[0]
    with pytest.raises(NotAnalyzable, match=r"mm apart"):
        select_series(study, SelectionSettings(max_slice_spacing_mm=0.2))


def test_volume_is_ordered_by_position_not_by_file_name(fast_study: Path, tmp_path: Path) -> None:
    root = _copy(fast_study, tmp_path / "in")
    series = next(iter(discover(root).studies[0].series.values()))
    volume, _ = load_volume(series)
    # Every slice's affine position matches the file's own ImagePositionPatient.
    for inst in series.instances[:10]:
        ds = pydicom.dcmread(inst.path)
        k = np.linalg.solve(
            volume.affine[:3, :3], np.asarray(ds.ImagePositionPatient) - volume.affine[:3, 3]
        )
        assert k[0] == pytest.approx(0, abs=1e-3) and k[1] == pytest.approx(0, abs=1e-3)
        kk = round(k[2])
        hu = ds.pixel_array.T * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
        assert np.array_equal(volume.hu[:, :, kk], hu.astype(np.float32))


def test_gap_in_the_series_is_not_analyzable(fast_study: Path, tmp_path: Path) -> None:
    root = _copy(fast_study, tmp_path / "in")
    series = next(iter(discover(root).studies[0].series.values()))
    ordered = sorted(series.instances, key=lambda i: i.position[2] if i.position else 0)
    for inst in ordered[40:46]:
        inst.path.unlink()
    series = next(iter(discover(root).studies[0].series.values()))
    with pytest.raises(NotAnalyzable, match="gap"):
        load_volume(series)


def test_series_without_contrast_is_not_analyzable(tmp_path: Path, bundled_model: Path) -> None:
    import dataclasses

    from lvo_triage.config import Settings
    from lvo_triage.pipeline import Runtime, triage_path
    from lvo_triage.result import Status
    from lvo_triage.synth import sample_spec, write_study

    spec = sample_spec(9_400_000, case_id="plain", lvo=False)
    plain = dataclasses.replace(spec, artery_hu=spec.white_hu + 5.0)
    engine = Runtime.create(Settings())
    (result,) = triage_path(engine, write_study(plain, tmp_path / "plain", fast=True))
    assert result.status is Status.NOT_ANALYZABLE
    assert result.reason is not None and "no contrast-enhanced series" in result.reason
    (cta,) = triage_path(engine, write_study(spec, tmp_path / "cta", fast=True))
    assert cta.status is Status.OK


def test_one_missing_slice_is_interpolated_with_a_warning(fast_study: Path, tmp_path: Path) -> None:
    reference, _ = load_volume(next(iter(discover(fast_study).studies[0].series.values())))
    root = _copy(fast_study, tmp_path / "in")
    series = next(iter(discover(root).studies[0].series.values()))
    ordered = sorted(series.instances, key=lambda i: i.position[2] if i.position else 0)
    ordered[50].path.unlink()
    volume, warnings = load_volume(next(iter(discover(root).studies[0].series.values())))
    assert volume.hu.shape == reference.hu.shape
    assert np.allclose(volume.affine, reference.affine)
    assert any("1 missing slice(s)" in w for w in warnings)
    expected = (reference.hu[:, :, 49] + reference.hu[:, :, 51]) / 2
    assert np.allclose(volume.hu[:, :, 50], expected, atol=1e-3)
    assert np.array_equal(volume.hu[:, :, 51:], reference.hu[:, :, 51:])


def test_files_without_preamble_or_file_meta_are_read(fast_study: Path, tmp_path: Path) -> None:
    """Some exporters write the bare dataset: no 128-byte preamble, or no file meta at all."""
    reference, _ = load_volume(next(iter(discover(fast_study).studies[0].series.values())))
    root = tmp_path / "bare"
    root.mkdir()
    for n, f in enumerate(sorted(fast_study.iterdir())):
        ds = pydicom.dcmread(f)
        ds.preamble = None
        if n % 2:  # no file meta either: the bare dataset, implicit VR little endian
            del ds.file_meta
            ds.save_as(root / f.name, implicit_vr=True, little_endian=True)
        else:
            ds.save_as(root / f.name, enforce_file_format=False)
    found = discover(root)
    assert found.skipped == []
    volume, _ = load_volume(next(iter(found.studies[0].series.values())))
    assert np.array_equal(volume.hu, reference.hu)


def test_shuffled_instance_numbers_do_not_change_the_volume(
    fast_study: Path, tmp_path: Path
) -> None:
    reference, _ = load_volume(next(iter(discover(fast_study).studies[0].series.values())))
    root = _copy(fast_study, tmp_path / "in")
    files = sorted(root.iterdir())
    numbers = np.random.default_rng(3).permutation(len(files)) + 1
    for f, number in zip(files, numbers, strict=True):
        ds = pydicom.dcmread(f)
        ds.InstanceNumber = int(number)
        ds.save_as(f)
    volume, warnings = load_volume(next(iter(discover(root).studies[0].series.values())))
    assert np.array_equal(volume.hu, reference.hu)
    assert "InstanceNumber does not follow slice position; ordered by position" in warnings
