"""Family-B phantoms (``lvo_triage.synth_b``): through the real pipeline, deterministic, clots
that remove contrast on the labelled side, natural asymmetry, independence from family A, and
the labelled-dataset layout."""

from __future__ import annotations

import ast
import csv
import dataclasses
from pathlib import Path

import numpy as np
import pydicom
import pytest

from lvo_triage.config import Settings
from lvo_triage.labels import CaseKind, read_labels
from lvo_triage.pipeline import Runtime, triage_path
from lvo_triage.result import Status
from lvo_triage.synth_b import (
    SITES,
    CaseB,
    build_vessels,
    make_grid,
    render_case,
    sample_case,
    write_dataset_b,
    write_study_b,
)
from lvo_triage.train.labelled import load_case, load_image

PACKAGE = Path(__file__).resolve().parents[1] / "lvo_triage" / "synth_b"


@pytest.fixture(scope="module")
def engine(bundled_model: Path) -> Runtime:
    return Runtime.create(Settings())


# ---------------------------------------------------------------------------------- pipeline


@pytest.mark.parametrize(
    ("seed", "lvo", "side", "site"), [(21, False, None, None), (22, True, "left", "M1")]
)
def test_fast_study_is_accepted_by_the_pipeline(
    engine: Runtime, tmp_path: Path, seed: int, lvo: bool, side: str | None, site: str | None
) -> None:
    case = sample_case(seed, lvo=lvo, side=side, site=site)
    folder = write_study_b(case, tmp_path / "study", fast=True)
    results = triage_path(engine, folder)
    assert len(results) == 1
    result = results[0]
    assert result.status is Status.OK, result.reason
    assert result.probability is not None and 0.0 <= result.probability <= 1.0
    assert len(result.series_considered) == 1 and result.series_considered[0].selected


@pytest.mark.parametrize("seed", [31])
def test_out_of_range_study_gets_a_result_never_an_error(
    engine: Runtime, tmp_path: Path, seed: int
) -> None:
    case = sample_case(seed, out_of_range=True)
    assert len(case.factors) == 2
    results = triage_path(engine, write_study_b(case, tmp_path / "study", fast=True))
    assert len(results) == 1
    assert results[0].status in (Status.OK, Status.NOT_ANALYZABLE), results[0].reason


def test_written_series_has_the_promised_header_and_reads_back(tmp_path: Path) -> None:
    case = sample_case(23, lvo=True, side="right", site="ICA-T")
    tilted = dataclasses.replace(
        case.acquisition, tilt_deg=12.0, descending=True, encoding="rle", signed=False
    )
    case = dataclasses.replace(case, acquisition=dataclasses.replace(tilted, intercept=-1024.0))
    volume = render_case(case, fast=True)
    folder = write_study_b(case, tmp_path / "s", fast=True, volume=volume)
    files = sorted(folder.iterdir())
    assert len(files) == volume.hu.shape[2]
    ds = pydicom.dcmread(files[0])
    assert ds.Modality == "CT" and list(ds.ImageType) == ["ORIGINAL", "PRIMARY", "AXIAL"]
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.2"
    assert ds.file_meta.TransferSyntaxUID == pydicom.uid.RLELossless
    assert str(ds.PatientName) == f"PHANTOM_B^{case.case_id}"
    assert ds.ImageComments == "SYNTHETIC PHANTOM - NOT FOR CLINICAL USE"
    assert ds.ContrastBolusAgent and ds.AccessionNumber and ds.SeriesDescription
    for uid in (ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID):
        assert uid.is_valid
    assert ds.FrameOfReferenceUID.is_valid
    assert abs(float(ds.ImageOrientationPatient[5])) > 0.1  # tilted, not exactly axial
    top = max(files, key=lambda f: float(pydicom.dcmread(f).ImagePositionPatient[2]))
    assert pydicom.dcmread(top).InstanceNumber == 1  # descending
    again = write_study_b(case, tmp_path / "again", fast=True, volume=volume)
    assert sorted(p.name for p in again.iterdir()) == [p.name for p in files]
    loaded = load_image(folder, CaseKind.DICOM)
    assert np.allclose(loaded.affine, volume.affine, atol=1e-3)
    assert np.abs(loaded.hu - np.maximum(volume.hu, -1024.0)).max() <= 0.51


# ---------------------------------------------------------------------------------- rendering


def test_render_is_deterministic_and_seed_dependent() -> None:
    assert sample_case(41) == sample_case(41)
    first = render_case(sample_case(41), fast=True)
    again = render_case(sample_case(41), fast=True)
    other = render_case(sample_case(42), fast=True)
    assert np.array_equal(first.hu, again.hu) and np.array_equal(first.affine, again.affine)
    assert first.hu.shape != other.hu.shape or not np.array_equal(first.hu, other.hu)
    assert first.hu.dtype == np.float32 and first.hu.min() < -900 and first.hu.max() > 700


def _occluded(seed: int, side: str, site: str) -> CaseB:
    case = sample_case(seed, lvo=True, side=side, site=site)
    assert case.occlusion is not None
    occlusion = dataclasses.replace(case.occlusion, fill=0.0, collateral="none", clot_mm=8.0)
    contrast = dataclasses.replace(case.contrast, artery_hu=350.0, phase="arterial")
    acquisition = dataclasses.replace(case.acquisition, noise_hu=5.0, streak_hu=0.0)
    return dataclasses.replace(
        case, occlusion=occlusion, contrast=contrast, acquisition=acquisition
    )


@pytest.mark.parametrize(
    ("seed", "side", "site"), [(51, "left", "M1"), (52, "right", "ICA-T"), (53, "left", "M2")]
)
def test_clot_removes_contrast_distally_on_the_labelled_side(
    seed: int, side: str, site: str
) -> None:
    occluded = _occluded(seed, side, site)
    normal = dataclasses.replace(occluded, occlusion=None)
    with_clot, without = render_case(occluded, fast=True), render_case(normal, fast=True)
    assert np.array_equal(with_clot.affine, without.affine)
    drop = without.hu - with_clot.hu
    assert drop.min() > -1.0  # a clot never adds contrast anywhere

    # along the occluded artery, just beyond the clot
    vascular = build_vessels(occluded)
    trunk = f"M1.{side}"
    if site == "M2":
        assert occluded.occlusion is not None
        trunks = sorted(k for k in vascular.index if k.startswith("M2.") and k.endswith(side))
        trunk = trunks[occluded.occlusion.m2_trunk % len(trunks)]
    branch = vascular.arteries[vascular.index[trunk]]
    grid = make_grid(occluded, fast=True)
    mm = grid.to_grid_mm(branch.points[-len(branch.points) // 3 :])
    idx = np.rint(mm / [grid.pixel_mm, grid.pixel_mm, grid.slice_mm]).astype(int)
    along = drop[idx[:, 0], idx[:, 1], idx[:, 2]]
    assert np.median(along) > 100.0, along

    # and on the patient's side: LPS +x is the patient's left
    changed = np.argwhere(drop > 100.0)
    assert len(changed) > 20
    x = (with_clot.affine[:3, :3] @ changed.T + with_clot.affine[:3, 3:])[0]
    midline = grid.to_patient(np.zeros((1, 3)))[0, 0]
    share_left = float(np.mean(x > midline))
    assert share_left > 0.95 if side == "left" else share_left < 0.05


# ---------------------------------------------------------------------------------- anatomy


def test_normal_anatomy_is_naturally_asymmetric() -> None:
    cases = [sample_case(seed, lvo=False) for seed in range(100, 120)]
    m1 = np.array([c.vessels.m1_r for c in cases])
    ratio = m1[:, 0] / m1[:, 1]
    assert np.all(np.abs(np.log(ratio)) <= np.log(1.25))  # at most ~20 % apart
    assert np.mean(np.abs(ratio - 1.0) > 0.03) > 0.3
    targets = np.array([c.vessels.mca_targets for c in cases])
    assert np.any(targets[:, 0] != targets[:, 1])
    variants = [
        (c.vessels.a1_r[0] < 0.7) != (c.vessels.a1_r[1] < 0.7)
        or (c.vessels.p1_r[0] < 0.75) != (c.vessels.p1_r[1] < 0.75)
        or c.vessels.m2_trunks[0] != c.vessels.m2_trunks[1]
        or c.vessels.early_branch[0] != c.vessels.early_branch[1]
        for c in cases
    ]
    assert sum(variants) >= 4  # one-sided variants are common
    counts = []
    for case in cases[:3]:
        names = [(b.name, b.side) for b in build_vessels(case).arteries]
        counts.append((names.count(("MCA-ctx", 0)), names.count(("MCA-ctx", 1))))
    assert all(left > 5 and right > 5 for left, right in counts)
    assert any(left != right for left, right in counts)


def test_sites_and_labels_are_drawn_and_checked() -> None:
    drawn = [sample_case(seed) for seed in range(200, 260)]
    assert 0.3 < np.mean([c.lvo for c in drawn]) < 0.7
    assert {c.site for c in drawn if c.lvo} == set(SITES)
    assert all(c.side is None and c.site is None for c in drawn if not c.lvo)
    case = sample_case(5, side="right")
    assert case.lvo and case.side == "right"
    with pytest.raises(ValueError, match="site 'M3' must be one of"):
        sample_case(5, site="M3")
    with pytest.raises(ValueError, match="a normal case has no side or site"):
        sample_case(5, lvo=False, side="left")


def test_family_b_never_imports_family_a() -> None:
    modules = sorted(PACKAGE.glob("*.py"))
    assert len(modules) >= 10
    for path in modules:
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            for name in names:
                family_a = name == "lvo_triage.synth" or name.startswith("lvo_triage.synth.")
                assert not family_a, f"{path.name} imports {name}"


# ---------------------------------------------------------------------------------- datasets


def test_dataset_follows_the_labelled_layout(tmp_path: Path) -> None:
    out = write_dataset_b(tmp_path / "set", n=4, seed=3, fast=True, progress=False)
    with (out / "labels.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["case_id"] for r in rows] == [f"caseB{i:04d}" for i in range(4)]
    for column in ("case_id", "lvo", "side", "site", "family", "factors", "collateral_grade"):
        assert column in rows[0]
    cases = read_labels(out)
    assert [c.kind for c in cases] == [CaseKind.DICOM] * 4
    for row, case in zip(rows, cases, strict=True):
        assert case.lvo == (row["lvo"] == "1")
        assert case.side == (row["side"] or None) and case.site == (row["site"] or None)
    volume = load_case(cases[0])
    assert volume.hu.min() < -900 and volume.hu.max() > 700
    with pytest.raises(FileExistsError, match="not an empty folder"):
        write_dataset_b(out, n=1, seed=3, fast=True, progress=False)


def test_nifti_dataset_reads_back_in_the_same_place(tmp_path: Path) -> None:
    out = write_dataset_b(tmp_path / "nii", n=1, seed=4, fast=True, fmt="nifti", progress=False)
    (case,) = read_labels(out)
    assert case.kind is CaseKind.NIFTI
    volume = load_case(case)
    seed = int(next(csv.DictReader((out / "labels.csv").open()))["seed"])
    expected = render_case(sample_case(seed, case_id=case.case_id), fast=True)
    assert np.allclose(volume.affine, expected.affine, atol=1e-4)
    assert np.abs(volume.hu - expected.hu).max() <= 0.5 + 1e-3


@pytest.mark.slow
def test_full_resolution_study_is_accepted_by_the_pipeline(engine: Runtime, tmp_path: Path) -> None:
    case = sample_case(61, lvo=True, side="right", site="M1")
    volume = render_case(case)
    assert volume.hu.shape[:2] == (512, 512)
    assert 0.38 <= volume.spacing[0] <= 0.5 and 0.5 <= volume.spacing[2] <= 1.5
    results = triage_path(engine, write_study_b(case, tmp_path / "study", volume=volume))
    assert len(results) == 1 and results[0].status is Status.OK, results[0].reason


def test_a_training_grid_has_cubic_voxels_and_the_noise_they_average_to() -> None:
    case = sample_case(1_000_002)
    fine, coarse = make_grid(case), make_grid(case, voxel_mm=1.0)
    assert coarse.pixel_mm == coarse.slice_mm == 1.0
    assert coarse.shape[1] * coarse.pixel_mm >= case.acquisition.fov_mm
    assert coarse.noise_scale < 1.0 == fine.noise_scale  # 1 mm cubes average several voxels
    with pytest.raises(ValueError, match="voxel_mm"):
        make_grid(case, voxel_mm=10.0)
