"""One folder mixing everything ingestion must survive, triaged in one run without a traceback.

Every study gets the right series or a ``not_analyzable`` whose reason says what is wrong.
"""

from __future__ import annotations

import shutil
import warnings
from collections.abc import Callable
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.uid import RLELossless, generate_uid

from lvo_triage.config import Settings
from lvo_triage.pipeline import Runtime, triage_path
from lvo_triage.result import Status
from tests.dicom_edits import dose_reports, enhanced_ct, rewrite, study_uid_of


def _acquisition(number: int, ds: pydicom.Dataset) -> None:
    ds.AcquisitionNumber = number


def _rle(ds: pydicom.Dataset) -> None:
    ds.compress(RLELossless)


def _derived(kind: list[str], description: str) -> Callable[[pydicom.Dataset], None]:
    def edit(ds: pydicom.Dataset) -> None:
        ds.ImageType, ds.SeriesDescription = kind, description

    return edit


def _every_fourth(src: Path, dst: Path) -> Path:
    """Keep one slice in four: a thick-slice series."""
    dst.mkdir(parents=True)
    files = sorted(
        src.iterdir(),
        key=lambda p: float(pydicom.dcmread(p, stop_before_pixels=True).ImagePositionPatient[2]),
    )
    for f in files[::4]:
        shutil.copy(f, dst / f.name)
    return dst


@pytest.fixture(scope="module")
def mixed(
    fast_study: Path, plain_study: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict[str, tuple[Status, str]]]:
    """The folder, and per StudyInstanceUID the expected status and a phrase of the reason."""
    root = tmp_path_factory.mktemp("mixed") / "export"
    expect: dict[str, tuple[Status, str]] = {}
    work = root.parent / "work"

    # A: the CTA with what a scanner sends next to it, in nested folders.
    a = generate_uid()
    rewrite(fast_study, root / "A" / "cta", study_uid=a)
    for folder, n, kind, description in (
        ("mip", 30, ["DERIVED", "SECONDARY", "MIP"], "CTA MIP"),
        ("scout", 2, ["ORIGINAL", "PRIMARY", "LOCALIZER"], "Topogram"),
    ):
        edit = _derived(kind, description)
        rewrite(fast_study, root / "A" / folder, study_uid=a, limit=n, edit=edit)
    dose_reports(next((root / "A" / "cta").iterdir()), root / "A" / "dose")
    cta_files = sorted((root / "A" / "cta").iterdir())
    shutil.copy(cta_files[3], root / "A" / "copy-of-slice.dcm")
    (root / "A" / "truncated.dcm").write_bytes(cta_files[4].read_bytes()[:300])
    expect[a] = (Status.OK, "")
    # B: a thin series without contrast. C: thick slices only. D: an Enhanced CT multi-frame CTA.
    b = study_uid_of(rewrite(plain_study, root / "B", study_uid=generate_uid()))
    expect[b] = (Status.NOT_ANALYZABLE, "no contrast-enhanced series")
    c = study_uid_of(rewrite(_every_fourth(fast_study, work / "thick"), root / "C"))
    expect[c] = (Status.NOT_ANALYZABLE, "thicker than the 1.5 mm a CTA needs")
    d = study_uid_of(rewrite(fast_study, work / "d", study_uid=generate_uid()))
    enhanced_ct(work / "d", root / "D" / "enhanced.dcm")
    expect[d] = (Status.OK, "")
    # E: RLE-compressed. F: plain and enhanced acquisitions in one series.
    e = study_uid_of(rewrite(fast_study, root / "E", edit=_rle))
    expect[e] = (Status.OK, "")
    f, series = generate_uid(), generate_uid()
    rewrite(
        plain_study, root / "F", study_uid=f, series_uid=series, edit=lambda ds: _acquisition(1, ds)
    )
    rewrite(
        fast_study, root / "F", study_uid=f, series_uid=series, edit=lambda ds: _acquisition(2, ds)
    )
    expect[f] = (Status.OK, "")
    # G: a single CT slice and an MR image from other software (pydicom's test files).
    others = (("CT_small.dcm", "only 1 image (a CTA needs 20)"), ("MR_small.dcm", "modality MR"))
    for name, phrase in others:
        path = Path(str(get_testdata_file(name)))
        shutil.copy(path, root / name)
        uid = str(pydicom.dcmread(path, stop_before_pixels=True).StudyInstanceUID)
        expect[uid] = (Status.NOT_ANALYZABLE, phrase)
    # Junk at the top: a DICOMDIR, an empty file, text, a thumbnail cache.
    shutil.copy(str(get_testdata_file("DICOMDIR")), root / "DICOMDIR")
    (root / "empty.dcm").write_bytes(b"")
    (root / "README.txt").write_text("exported by PACS")
    (root / "Thumbs.db").write_bytes(b"\x00" * 512)
    return root, expect


def test_every_study_gets_its_series_or_a_reason(
    mixed: tuple[Path, dict[str, tuple[Status, str]]], bundled_model: Path
) -> None:
    root, expect = mixed
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = triage_path(Runtime.create(Settings()), root)
    by_study = {r.study_instance_uid: r for r in results}
    assert set(by_study) == set(expect)
    for uid, (status, phrase) in expect.items():
        result = by_study[uid]
        assert result.status is status, (uid, result.reason)
        assert phrase in (result.reason or ""), (uid, result.reason)
        assert result.series_considered, uid
    ok = [r for r in results if r.status is Status.OK]
    assert all(r.lvo_suspected and r.side == "left" for r in ok)  # all of them are the left M1
    joined = "\n".join(results[0].warnings)
    for name in ("DICOMDIR", "empty.dcm", "README.txt", "Thumbs.db", "truncated.dcm"):
        assert name in joined
    assert joined.count("duplicate of an instance already read") == 1  # the copied slice
