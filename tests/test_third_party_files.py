"""Real third-party DICOM files shipped inside pydicom: none may crash the pipeline.

Each file ends up in a study (which gets a result) or in the list of skipped files (with a reason).
"""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import pytest
from pydicom.data import get_testdata_files

from lvo_triage.config import Settings
from lvo_triage.dicom.discover import discover
from lvo_triage.pipeline import Runtime, triage_path
from lvo_triage.result import Status


@pytest.fixture(scope="module")
def third_party(tmp_path_factory: pytest.TempPathFactory) -> Path:
    files = [Path(f) for f in get_testdata_files() if Path(f).is_file()]
    assert len(files) > 100
    root = tmp_path_factory.mktemp("pydicom_files")
    for i, f in enumerate(files):
        (root / f"{i:03d}").mkdir()
        shutil.copy(f, root / f"{i:03d}" / f.name)
    return root


def test_every_file_is_accounted_for(third_party: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        found = discover(third_party)
    in_studies = len(
        {i.path for st in found.studies for s in st.series.values() for i in s.instances}
    )
    assert in_studies + len(found.skipped) == found.files_seen
    assert all(": " in message for message in found.skipped)  # each skip says why


def test_no_file_crashes_the_pipeline(third_party: Path, bundled_model: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = triage_path(Runtime.create(Settings()), third_party)
    assert results
    errors = [r.reason for r in results if r.status is Status.ERROR]
    assert errors == []
    for r in results:
        assert r.status is Status.OK or r.reason
