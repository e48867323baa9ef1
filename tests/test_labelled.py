"""Labelled datasets (DICOM or NIfTI) → training arrays: labels.csv, loading, the RAS/LPS turn,
caching and unreadable cases."""

from __future__ import annotations

import logging
import os
import re
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from lvo_triage.cli import main
from lvo_triage.dicom.volume_types import Volume
from lvo_triage.errors import DatasetError, NotAnalyzable
from lvo_triage.labels import CaseKind, read_labels
from lvo_triage.model_card import DEFAULT_INPUT
from lvo_triage.preprocess import Preprocessor
from lvo_triage.synth import (
    acquisition_grid,
    case_seed,
    sample_spec,
    write_dataset,
    write_study_nifti,
)
from lvo_triage.train import labelled
from lvo_triage.train.labelled import build_labelled_arrays, load_case, load_image

SEED = 1  # case0000: left ICA-T, case0002: right M1, case0001/3: no LVO


@pytest.fixture(scope="module")
def dicom_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dicom_set")
    return write_dataset(out, n=4, seed=SEED, fast=True, progress=False)


@pytest.fixture(scope="module")
def nifti_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("nifti_set")
    return write_dataset(out, n=4, seed=SEED, fast=True, progress=False, nifti=True)


# ---------------------------------------------------------------------------------- labels.csv


def test_both_layouts_read_the_same_labels(dicom_set: Path, nifti_set: Path) -> None:
    assert (dicom_set / "labels.csv").read_bytes() == (nifti_set / "labels.csv").read_bytes()
    dicom, nifti = read_labels(dicom_set), read_labels(nifti_set)
    assert [c.case_id for c in dicom] == ["case0000", "case0001", "case0002", "case0003"]
    assert [(c.lvo, c.side, c.site) for c in dicom] == [
        (True, "left", "ICA-T"),
        (False, None, None),
        (True, "right", "M1"),
        (False, None, None),
    ]
    assert [(c.lvo, c.side, c.site) for c in nifti] == [(c.lvo, c.side, c.site) for c in dicom]
    assert all(c.kind is CaseKind.DICOM and c.path == dicom_set / c.case_id for c in dicom)
    assert all(
        c.kind is CaseKind.NIFTI and c.path == nifti_set / f"{c.case_id}.nii.gz" for c in nifti
    )
    assert not any(p.is_dir() for p in nifti_set.iterdir())


def _dataset(root: Path, table: str, *, folders: tuple[str, ...] = ("abc",)) -> Path:
    for name in folders:
        (root / name).mkdir()
    (root / "labels.csv").write_text(table)
    return root


def test_labels_are_matched_ignoring_case_and_extra_columns_ignored(tmp_path: Path) -> None:
    (tmp_path / "b.nii").write_bytes(b"")
    table = "age,case_id,lvo,site,side\n71,abc,1,m1,Left\n60,b,0,,\n"
    cases = read_labels(_dataset(tmp_path, table))
    assert [(c.case_id, c.lvo, c.side, c.site, c.kind) for c in cases] == [
        ("abc", True, "left", "M1", CaseKind.DICOM),
        ("b", False, None, None, CaseKind.NIFTI),
    ]


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ("case_id,side\nabc,left\n", "has no column 'lvo' (its header: case_id, side)"),
        ("case_id,lvo\n", "lists no cases"),
        ("case_id,lvo\nabc,yes\n", "labels.csv line 2: lvo must be 0 or 1, got 'yes'"),
        ("case_id,lvo,side\nabc,1,L\n", "line 2: side must be left, right or empty, got 'L'"),
        ("case_id,lvo,site\nabc,1,M3\n", "site must be ICA-T, M1, M2 or empty, got 'M3'"),
        ("case_id,lvo,side\nabc,0,left\n", "lvo is 0 but side 'left' is given"),
        (
            "case_id,lvo\nabc,1\nzzz,0\n",
            "labels.csv line 3: case 'zzz' has neither a folder zzz/ nor zzz.nii.gz "
            "(or zzz.nii) beside labels.csv",
        ),
        ("case_id,lvo\nabc,1\nabc,0\n", "line 3: case 'abc' is listed twice (first on line 2)"),
        ("case_id,lvo\n../abc,1\n", "case_id '../abc' must be a plain name"),
        ("case_id,lvo\n,1\n", "line 2: case_id is empty"),
        ("case_id,lvo\nabc,2\nzzz,1\n", "2 problems in"),
    ],
)
def test_bad_labels_say_what_is_wrong(tmp_path: Path, table: str, message: str) -> None:
    with pytest.raises(DatasetError) as info:
        read_labels(_dataset(tmp_path, table))
    assert message in str(info.value)


def test_missing_table_and_ambiguous_image(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=re.escape("no labels.csv in")):
        read_labels(tmp_path)
    (tmp_path / "abc.nii.gz").write_bytes(b"")
    with pytest.raises(DatasetError, match=re.escape("case 'abc' has both abc/ and abc.nii.gz")):
        read_labels(_dataset(tmp_path, "case_id,lvo\nabc,1\n"))


# ---------------------------------------------------------------------------------- geometry


def test_nifti_holds_the_dicom_volume_in_ras(dicom_set: Path, nifti_set: Path) -> None:
    """The file says RAS+ in nibabel's own terms; read back, it is the DICOM route's volume."""
    spec = sample_spec(case_seed(SEED, 0), case_id="case0000", lvo=True)
    image = nib.load(nifti_set / "case0000.nii.gz")
    # The phantom's rows run toward the patient's left, columns posterior, slices superior.
    assert nib.aff2axcodes(image.affine) == ("L", "P", "S")
    assert image.get_data_dtype() == np.int16
    dicom, nifti = load_case(read_labels(dicom_set)[0]), load_case(read_labels(nifti_set)[0])
    _, affine = acquisition_grid(spec, fast=True)
    np.testing.assert_allclose(nifti.affine, affine, atol=1e-3)  # sform is float32
    np.testing.assert_allclose(nifti.affine, dicom.affine, atol=1e-3)  # DICOM DS: 16 chars
    assert np.abs(nifti.hu - dicom.hu).max() <= 1.0  # rint(hu) vs rint(hu + 1024) - 1024


def test_dicom_and_nifti_give_the_same_model_input(dicom_set: Path, nifti_set: Path) -> None:
    dicom = build_labelled_arrays(
        read_labels(dicom_set), spec=DEFAULT_INPUT, cache_dir=None, progress=False
    )
    nifti = build_labelled_arrays(
        read_labels(nifti_set), spec=DEFAULT_INPUT, cache_dir=None, progress=False
    )
    assert dicom.x.shape == nifti.x.shape == (4, 1, *DEFAULT_INPUT.shape)
    assert dicom.x.dtype == nifti.x.dtype == np.uint8
    for name in ("lvo", "left", "site", "seeds"):
        np.testing.assert_array_equal(getattr(dicom, name), getattr(nifti, name))
    np.testing.assert_array_equal(dicom.lvo, [1, 0, 1, 0])
    np.testing.assert_array_equal(dicom.left, [1, -1, 0, -1])  # -1: no side
    np.testing.assert_array_equal(dicom.site, [0, -1, 1, -1])
    np.testing.assert_array_equal(dicom.seeds, [0, 1, 2, 3])
    diff = np.abs(dicom.x.astype(np.int16) - nifti.x.astype(np.int16))
    # Measured: mean 1e-5, max 1 (a few voxels on a rounding edge), in uint8 steps.
    assert diff.mean() < 0.01
    assert diff.max() <= 2
    # The check has teeth: the NIfTI affine taken as LPS (no conversion) mirrors the head.
    volume = load_case(read_labels(nifti_set)[0])
    unturned = Volume(hu=volume.hu, affine=labelled.LPS_TO_RAS @ volume.affine)
    wrong = labelled.to_uint8(Preprocessor(spec=DEFAULT_INPUT)(unturned)[0])
    assert np.abs(wrong.astype(np.int16) - dicom.x[0].astype(np.int16)).mean() > 2.0


def test_left_occlusion_stays_on_the_patients_left(nifti_set: Path, tmp_path: Path) -> None:
    """Without occlusion minus with: the lost contrast lies at low x of the RAS model grid."""
    normal = sample_spec(case_seed(SEED, 0), case_id="case0000", lvo=False)
    path = write_study_nifti(normal, tmp_path / "normal.nii.gz", fast=True)
    pre = Preprocessor(spec=DEFAULT_INPUT)
    occluded = pre(load_image(nifti_set / "case0000.nii.gz", "nifti"))[0, 0]
    lost = np.clip(pre(load_image(path, "nifti"))[0, 0] - occluded, 0.0, None)
    half = DEFAULT_INPUT.shape[0] // 2
    left, right = float(lost[:half].sum()), float(lost[half:].sum())
    assert left > 5.0 * right, (left, right)


@pytest.mark.parametrize(
    ("shape", "codes", "offset", "message"),
    [
        ((40, 40, 30, 1), (1, 1), 0.0, None),
        ((40, 40, 30, 2), (1, 1), 0.0, "expected one 3D volume"),
        ((40, 40, 30), (0, 0), 0.0, "has no orientation"),
        ((40, 40, 30), (1, 0), 1024.0, "has no air"),
    ],
)
def test_nifti_shapes_orientation_and_units(
    tmp_path: Path,
    shape: tuple[int, ...],
    codes: tuple[int, int],
    offset: float,
    message: str | None,
) -> None:
    data = np.full(shape, 0, dtype=np.int16)
    data[:5] = -1000  # air
    affine = np.diag([-0.7, 0.7, 1.2, 1.0])
    image = nib.Nifti1Image(data, affine)
    image.set_sform(affine, code=codes[0])
    image.set_qform(affine, code=codes[1])
    image.header.set_slope_inter(1.0, offset)  # stored value + offset = value read
    path = tmp_path / "x.nii.gz"
    nib.save(image, path)
    if message is None:
        volume = load_image(path, "nifti")
        assert volume.hu.shape == shape[:3]
        np.testing.assert_allclose(volume.affine, np.diag([0.7, -0.7, 1.2, 1.0]))
        assert volume.hu.min() == -1000.0
    else:
        with pytest.raises(NotAnalyzable, match=message):
            load_image(path, "nifti")


def test_scaled_nifti_is_read_in_hu(tmp_path: Path) -> None:
    stored = np.zeros((20, 20, 20), dtype=np.uint16)
    stored[5:15, 5:15, 5:15] = 1064  # 40 HU brain inside air
    image = nib.Nifti1Image(stored, np.eye(4))
    image.header.set_slope_inter(1.0, -1024.0)
    nib.save(image, tmp_path / "s.nii")
    hu = load_image(tmp_path / "s.nii", "nifti").hu
    assert hu.dtype == np.float32
    assert (hu.min(), hu.max()) == (-1024.0, 40.0)


# ---------------------------------------------------------------------------------- arrays


def test_second_build_reads_the_cache(
    nifti_set: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    real = labelled.load_image

    def counting(path: Path, kind: CaseKind | str) -> Volume:
        calls.append(Path(path).name)
        return real(path, kind)

    monkeypatch.setattr(labelled, "load_image", counting)
    root = tmp_path / "set"
    shutil.copytree(nifti_set, root)
    cases, cache = read_labels(root), tmp_path / "cache"
    first = build_labelled_arrays(cases, spec=DEFAULT_INPUT, cache_dir=cache, progress=False)
    assert len(calls) == 4
    assert len(list(cache.glob("*.pt"))) == 4
    second = build_labelled_arrays(cases, spec=DEFAULT_INPUT, cache_dir=cache, progress=False)
    assert len(calls) == 4
    for name in ("x", "lvo", "left", "site", "seeds"):
        np.testing.assert_array_equal(getattr(first, name), getattr(second, name))
    # an edited image is processed again, the others still come from the cache
    edited = root / "case0002.nii.gz"
    stat = edited.stat()
    os.utime(edited, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    build_labelled_arrays(cases, spec=DEFAULT_INPUT, cache_dir=cache, progress=False)
    assert calls[4:] == ["case0002.nii.gz"]


def test_unreadable_case_is_skipped_with_a_warning(
    nifti_set: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = tmp_path / "set"
    shutil.copytree(nifti_set, root)
    (root / "case0001.nii.gz").write_bytes(b"\x1f\x8b not really gzip, nor NIfTI" * 10)
    with caplog.at_level(logging.WARNING, logger="lvo_triage.train.labelled"):
        arrays = build_labelled_arrays(
            read_labels(root), spec=DEFAULT_INPUT, cache_dir=tmp_path / "cache", progress=False
        )
    np.testing.assert_array_equal(arrays.seeds, [0, 2, 3])
    np.testing.assert_array_equal(arrays.lvo, [1, 1, 0])
    assert arrays.x.shape[0] == 3
    messages = [r.getMessage() for r in caplog.records]
    assert any("skipped case 'case0001': cannot read case0001.nii.gz" in m for m in messages)
    assert "skipped 1 of 4 cases; 3 remain" in messages


def test_no_readable_case_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "Thumbs.db").write_bytes(b"not DICOM")
    (tmp_path / "bad.nii.gz").write_bytes(b"garbage")
    (tmp_path / "labels.csv").write_text("case_id,lvo\njunk,0\nbad,0\n")
    cases = read_labels(tmp_path)
    with pytest.raises(NotAnalyzable, match="no DICOM images in junk/"):
        load_case(cases[0])
    with pytest.raises(DatasetError, match="none of the 2 cases could be analysed"):
        build_labelled_arrays(cases, spec=DEFAULT_INPUT, cache_dir=None, progress=False)


def test_cli_synth_writes_nifti(tmp_path: Path) -> None:
    out = tmp_path / "nii"
    assert main(["synth", str(out), "--n", "1", "--fast", "--format", "nifti"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["case0000.nii.gz", "labels.csv"]
    assert read_labels(out)[0].kind is CaseKind.NIFTI
