"""Synthetic CTA phantom: DICOM validity, labels, determinism and the occlusion signal."""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

import numpy as np
import pydicom
import pytest

from lvo_triage.synth import (
    acquisition_grid,
    head_to_lps,
    render,
    sample_spec,
    training_grid,
    write_dataset,
    write_study,
)
from lvo_triage.synth.occlusion import build_tubes
from lvo_triage.synth.spec import PhantomSpec

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_dataset(tmp_path_factory.mktemp("synth"), n=4, seed=7, fast=True, progress=False)


def test_fast_study_reads_back_as_consistent_ct_series(tmp_path: Path) -> None:
    spec = sample_spec(11, case_id="case0011", lvo=True, side="right", site="M1")
    out = write_study(spec, tmp_path / "case0011", fast=True)
    shape, affine = acquisition_grid(spec, fast=True)
    files = sorted(out.iterdir())
    assert len(files) == shape[2]
    datasets = [pydicom.dcmread(f) for f in files]
    ds0 = datasets[0]
    assert ds0.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
    assert ds0.preamble == b"\0" * 128
    for ds, f in zip(datasets, files, strict=True):
        assert ds.SOPClassUID == CT_IMAGE_STORAGE
        assert ds.Modality == "CT"
        assert f.name == f"{ds.SOPInstanceUID}.dcm"
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        assert ds.StudyInstanceUID == ds0.StudyInstanceUID
        assert ds.SeriesInstanceUID == ds0.SeriesInstanceUID
        assert ds.FrameOfReferenceUID == ds0.FrameOfReferenceUID
        assert list(ds.ImageType) == ["ORIGINAL", "PRIMARY", "AXIAL"]
        assert ds.ContrastBolusAgent == "IODINE"
        assert ds.PatientName == "PHANTOM^case0011"
        assert (ds.Rows, ds.Columns) == (shape[1], shape[0])
    assert len({ds.SOPInstanceUID for ds in datasets}) == len(datasets)
    assert sorted(int(ds.InstanceNumber) for ds in datasets) == list(range(1, shape[2] + 1))
    # geometry: positions along the slice normal are evenly spaced and match the grid
    iop = np.array(ds0.ImageOrientationPatient, dtype=float)
    normal = np.cross(iop[:3], iop[3:])
    pos = np.array([np.array(ds.ImagePositionPatient, dtype=float) for ds in datasets])
    order = np.argsort(pos @ normal)
    gaps = np.diff((pos @ normal)[order])
    assert np.allclose(gaps, np.linalg.norm(affine[:3, 2]), atol=1e-3)
    assert np.allclose(pos[order][0], affine[:3, 3], atol=1e-3)
    assert np.allclose(
        np.array(ds0.PixelSpacing, dtype=float), np.linalg.norm(affine[:3, :2], axis=0), atol=1e-4
    )
    # pixels: HU after rescale
    hu = np.stack(
        [ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept) for ds in datasets],
        axis=-1,
    )
    assert hu.shape == (shape[1], shape[0], shape[2])
    assert abs(float(np.median(hu[:4, :4, :])) + 1000.0) < 30.0  # air in the corners
    assert (hu > 150).sum() > 100  # contrast-filled arteries (and bone)
    assert hu.min() >= -1024 and hu.max() <= 3071


def test_labels_csv_follows_contract(dataset: Path) -> None:
    with (dataset / "labels.csv").open(newline="") as fh:
        reader = csv.DictReader(fh)
        assert reader.fieldnames == ["case_id", "lvo", "side", "site"]
        rows = list(reader)
    assert [r["case_id"] for r in rows] == [f"case{i:04d}" for i in range(4)]
    assert [r["lvo"] for r in rows] == ["1", "0", "1", "0"]
    for r in rows:
        assert (dataset / r["case_id"]).is_dir()
        assert any((dataset / r["case_id"]).glob("*.dcm"))
        if r["lvo"] == "1":
            assert r["side"] in ("left", "right")
            assert r["site"] in ("ICA-T", "M1", "M2")
        else:
            assert r["side"] == "" and r["site"] == ""


def test_render_is_deterministic_and_seed_dependent() -> None:
    spec = sample_spec(3, case_id="a")
    grid = acquisition_grid(spec, fast=True)
    a = render(spec, *grid).hu
    b = render(sample_spec(3, case_id="a"), *grid).hu
    assert a.dtype == np.float32
    assert np.array_equal(a, b)
    other = render(sample_spec(4, case_id="a"), *grid).hu
    assert not np.array_equal(a, other)


def test_label_does_not_change_anatomy_or_acquisition() -> None:
    normal = sample_spec(21, case_id="x", lvo=False)
    lvo = sample_spec(21, case_id="x", lvo=True, side="left", site="M2")
    assert normal.vessels == lvo.vessels
    assert normal.head == lvo.head
    assert normal.artery_hu == lvo.artery_hu
    assert acquisition_grid(normal)[0] == acquisition_grid(lvo)[0]


def _centreline_voxels(
    spec: PhantomSpec, affine: np.ndarray, prefix: str, shape: tuple[int, ...]
) -> np.ndarray:
    pts = np.vstack(
        [
            np.asarray(v.points)
            for v in spec.vessels
            if v.name.startswith((f"{prefix}_M2", f"{prefix}_MCA"))
        ]
    )
    lps = pts @ head_to_lps(spec)[:3, :3].T + head_to_lps(spec)[:3, 3]
    ijk = (np.linalg.inv(affine[:3, :3]) @ (lps - affine[:3, 3]).T).T
    idx = np.unique(np.rint(ijk).astype(int), axis=0)
    inside = np.all((idx >= 0) & (idx < np.asarray(shape)), axis=1)
    return idx[inside]


@pytest.mark.parametrize("seed", [5, 6])
def test_left_m1_occlusion_removes_left_mca_contrast(seed: int) -> None:
    normal = sample_spec(seed, case_id="x", lvo=False)
    occluded = sample_spec(seed, case_id="x", lvo=True, side="left", site="M1")
    shape, affine = training_grid(normal, spacing_mm=1.5)
    a, b = render(normal, shape, affine).hu, render(occluded, shape, affine).hu
    left = _centreline_voxels(normal, affine, "L", shape)
    right = _centreline_voxels(normal, affine, "R", shape)
    lpos = (np.column_stack([left, np.ones(len(left))]) @ affine.T)[:, 0]
    assert np.all(lpos > 0), "left MCA must lie at patient's left (+x in LPS)"

    def mean_at(vol: np.ndarray, idx: np.ndarray) -> float:
        return float(vol[idx[:, 0], idx[:, 1], idx[:, 2]].mean())

    assert mean_at(a, left) - mean_at(b, left) > 40.0  # thin vessels, blurred by thick slices
    assert abs(mean_at(a, right) - mean_at(b, right)) < 1.0
    # a box over the left MCA territory darkens on average; its mirror on the right does not
    lo, hi = left.min(axis=0), left.max(axis=0) + 1
    box = (slice(lo[0], hi[0]), slice(lo[1], hi[1]), slice(lo[2], hi[2]))
    assert float(a[box].mean() - b[box].mean()) > 0.2
    rlo, rhi = right.min(axis=0), right.max(axis=0) + 1
    rbox = (slice(rlo[0], rhi[0]), slice(rlo[1], rhi[1]), slice(rlo[2], rhi[2]))
    assert abs(float(a[rbox].mean() - b[rbox].mean())) < 0.02


def test_partial_volume_keeps_mean_hu_across_resolutions() -> None:
    spec = sample_spec(8, case_id="pv", lvo=False)
    fine_shape, fine_aff = training_grid(spec, spacing_mm=0.5)
    coarse_shape, coarse_aff = training_grid(spec, spacing_mm=2.0)
    # compare a central 40 mm cube (vessels of the circle of Willis) without noise
    quiet = PhantomSpec(**{**spec.__dict__, "noise_sigma": 0.0})
    centre = head_to_lps(spec)[:3, 3]

    def cube_mean(shape: tuple[int, int, int], aff: np.ndarray) -> float:
        c = np.linalg.inv(aff[:3, :3]) @ (centre - aff[:3, 3])
        half = 20.0 / np.linalg.norm(aff[:3, :3], axis=0)
        lo = np.floor(c - half).astype(int)
        n = np.rint(2 * half).astype(int)
        origin = aff[:3, :3] @ lo + aff[:3, 3]
        sub = aff.copy()
        sub[:3, 3] = origin
        return float(render(quiet, (int(n[0]), int(n[1]), int(n[2])), sub).hu.mean())

    assert cube_mean(fine_shape, fine_aff) == pytest.approx(
        cube_mean(coarse_shape, coarse_aff), abs=3.0
    )


def test_bad_labels_are_rejected() -> None:
    with pytest.raises(ValueError, match="'middle'"):
        sample_spec(1, case_id="x", lvo=True, side="middle")
    with pytest.raises(ValueError, match="'M3'"):
        sample_spec(1, case_id="x", lvo=True, site="M3")


@pytest.mark.parametrize("site", ["ICA-T", "M1", "M2"])
@pytest.mark.parametrize("side", ["left", "right"])
def test_every_site_empties_only_the_ipsilateral_territory(site: str, side: str) -> None:
    spec = sample_spec(31, case_id="x", lvo=True, side=side, site=site)
    base = {t.name: t.hu for t in build_tubes(sample_spec(31, case_id="x", lvo=False))}
    tubes = {t.name: t.hu for t in build_tubes(spec)}
    assert "clot" in tubes and 50.0 <= float(tubes["clot"][0]) <= 80.0
    ipsi, contra = ("L", "R") if side == "left" else ("R", "L")
    div = f"{ipsi}_M2_{spec.m2_division}"
    assert float(tubes[div][-1]) < spec.white_hu + 15.0 < float(base[div][-1])
    for name, hu in base.items():
        if name.startswith(contra) or name in ("BA", "SSS", "ACom"):
            assert np.array_equal(tubes[name], hu), name


def test_out_of_range_cases_push_two_factors_beyond_training() -> None:
    training = {
        "dim arteries": lambda s: s.artery_hu < 200,
        "noise": lambda s: s.noise_sigma > 15,
        "head tilt": lambda s: abs(s.pose_deg[1]) > 20,
        "venous phase": lambda s: s.venous_fraction > 1.1,
        "thick slices": lambda s: s.slice_thickness_mm > 1.9,
        "streaks": lambda s: s.streak_hu > 60,
        "motion": lambda s: s.motion_mm > 2.5,
    }
    for seed in range(9_700_000, 9_700_040):
        normal = sample_spec(seed, case_id="x")
        odd = sample_spec(seed, case_id="x", out_of_range=True)
        assert normal.out_of_range == () and len(odd.out_of_range) == 2
        assert not any(beyond(normal) for beyond in training.values())
        assert all(training[name](odd) for name in odd.out_of_range)
        assert odd.head == normal.head and odd.lvo == normal.lvo


def test_streaks_darken_only_the_skull_base_band() -> None:
    spec = dataclasses.replace(
        sample_spec(7, case_id="x", lvo=False), streak_hu=50.0, motion_mm=0.0
    )
    clean = dataclasses.replace(spec, streak_hu=0.0)
    shape, affine = training_grid(spec, spacing_mm=2.0)
    diff = render(spec, shape, affine).hu - render(clean, shape, affine).hu
    assert diff.max() <= 1e-3 and diff.min() < -20.0
    darkened = np.flatnonzero((diff < -1.0).any(axis=(0, 1)))
    assert 0 < len(darkened) * 2.0 <= 2 * 12.0 + 8.0  # a band of about 24 mm of slices
