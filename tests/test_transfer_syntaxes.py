"""Compressed and other encodings of the same series load to the same HU volume.

pydicom writes RLE, JPEG 2000, JPEG-LS, deflated and implicit VR itself. It cannot write explicit VR
big endian or the JPEG processes 1 (baseline), 2/4 (extended) and 14 (lossless), so those series
are made with dcmtk's command-line tools, called by absolute path (pynetdicom installs commands of
the same names). Without dcmtk those tests skip, unless ``LVO_REQUIRE_DCMTK=1`` (set by CI) makes
them fail.
"""

from __future__ import annotations

import functools
import multiprocessing
import os
import shutil
import subprocess
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import (
    JPEG2000,
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    RLELossless,
)

from lvo_triage.config import SelectionSettings
from lvo_triage.dicom.discover import discover
from lvo_triage.dicom.select import select_series
from lvo_triage.dicom.volume import load_volume
from lvo_triage.errors import NotAnalyzable

DCMTK_BIN = Path("/usr/bin")  # Debian's dcmtk; never the pynetdicom commands on PATH
JPEGFullProgression = UID("1.2.840.10008.1.2.4.55")  # process 10/12, retired; pydicom has no name


def _load_with_warnings(folder: Path) -> tuple[np.ndarray, list[str]]:
    """Selection (lossy copies of source slices stay selectable) and loading, as in a run."""
    series = select_series(discover(folder).studies[0], SelectionSettings()).series
    volume, warnings = load_volume(series)
    return volume.hu, warnings


def _load(folder: Path) -> np.ndarray:
    return _load_with_warnings(folder)[0]


def _recode(src: Path, dst: Path, syntax: UID) -> Path:
    shutil.copytree(src, dst)
    for f in dst.iterdir():
        ds = pydicom.dcmread(f)
        if syntax.is_compressed:
            ds.compress(syntax, **({"j2k_cr": [20]} if syntax == JPEG2000 else {}))
        else:
            ds.file_meta.TransferSyntaxUID = syntax
        ds.save_as(f, enforce_file_format=True)
    return dst


def _dcmtk(tool: str, *, where: Path | None = None) -> Path:
    """The dcmtk command ``tool``; skips the test without it (fails it if CI requires dcmtk)."""
    exe = (where or DCMTK_BIN) / tool
    if os.access(exe, os.X_OK):
        return exe
    msg = f"{exe} not found: install dcmtk (apt-get install dcmtk) to test the encodings it writes"
    if os.environ.get("LVO_REQUIRE_DCMTK") == "1":
        pytest.fail(f"{msg}; LVO_REQUIRE_DCMTK=1 says it must be there")
    pytest.skip(msg)


@functools.cache
def _dcmtk_env() -> dict[str, str] | None:
    """dcmtk with the standard data dictionary alone: our files have no private tags, and loading
    private.dic too costs a quarter of each (short) call. None (the default) where not found."""
    standard = sorted(Path("/usr/share").glob("libdcmtk*/dicom.dic"))
    if "DCMDICTPATH" in os.environ or not standard:
        return None
    return {**os.environ, "DCMDICTPATH": str(standard[-1])}


def _dcmtk_recode(files: Iterable[Path], dst: Path, tool: str, *options: str) -> Path:
    """``tool options f dst/f.name`` for each of ``files``: one call each, in parallel."""
    exe = _dcmtk(tool)
    dst.mkdir(exist_ok=True)

    def one(f: Path) -> subprocess.CompletedProcess[str]:
        command = [exe, *options, f, dst / f.name]
        return subprocess.run(command, capture_output=True, text=True, env=_dcmtk_env())

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        failed = [p for p in pool.map(one, sorted(files)) if p.returncode != 0]
    if failed:
        first = failed[0]
        call = " ".join([tool, *options])
        pytest.fail(f"{call}: exit {first.returncode} on {len(failed)} files: {first.stderr}")
    return dst


def _syntaxes(folder: Path) -> set[UID]:
    return {
        pydicom.dcmread(f, stop_before_pixels=True).file_meta.TransferSyntaxUID
        for f in folder.iterdir()
    }


def _same_tissue(hu: np.ndarray, reference: np.ndarray) -> float:
    """Fraction of voxels in the same class: air (< -200 HU), soft tissue, bone or contrast."""
    edges = [-200.0, 200.0]
    return float((np.digitize(hu, edges) == np.digitize(reference, edges)).mean())


@pytest.fixture(scope="module")
def reference(fast_study: Path) -> np.ndarray:
    return _load(fast_study)


@pytest.mark.parametrize(
    "syntax",
    [
        RLELossless,
        JPEG2000Lossless,
        JPEGLSLossless,
        DeflatedExplicitVRLittleEndian,
        ImplicitVRLittleEndian,
    ],
    ids=lambda s: s.name,
)
def test_lossless_encodings_give_identical_hu(
    fast_study: Path, tmp_path: Path, reference: np.ndarray, syntax: UID
) -> None:
    folder = _recode(fast_study, tmp_path / "s", syntax)
    assert pydicom.dcmread(next(folder.iterdir())).file_meta.TransferSyntaxUID == syntax
    assert np.array_equal(_load(folder), reference)


def test_compressed_series_loads_inside_a_daemonic_worker(
    fast_study: Path, tmp_path: Path, reference: np.ndarray
) -> None:
    """A ``multiprocessing.Pool`` worker may not start the decoder processes: it decodes itself."""
    folder = _recode(fast_study, tmp_path / "s", RLELossless)
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        hu = pool.apply(_load, (folder,))
    assert np.array_equal(hu, reference)


@pytest.mark.parametrize(
    ("syntax", "tool", "options"),
    [
        (ExplicitVRBigEndian, "dcmconv", ["+tb"]),
        (JPEGLosslessSV1, "dcmcjpeg", ["+e1"]),
        (JPEGLossless, "dcmcjpeg", ["+el", "+sv", "7"]),  # process 14 with another predictor
    ],
    ids=["big-endian", "jpeg-lossless-sv1", "jpeg-lossless-process14-sv7"],
)
def test_dcmtk_lossless_encodings_give_identical_hu(
    fast_study: Path,
    tmp_path: Path,
    reference: np.ndarray,
    syntax: UID,
    tool: str,
    options: list[str],
) -> None:
    folder = _dcmtk_recode(fast_study.iterdir(), tmp_path / "s", tool, *options)
    assert _syntaxes(folder) == {syntax}
    assert np.array_equal(_load(folder), reference)


def test_lossy_jpeg2000_stays_close(
    fast_study: Path, tmp_path: Path, reference: np.ndarray
) -> None:
    hu = _load(_recode(fast_study, tmp_path / "s", JPEG2000))
    assert np.abs(hu - reference).mean() < 20.0  # 20:1 compression smooths the noise


def test_jpeg_extended_12_bit_stays_close(
    fast_study: Path, tmp_path: Path, reference: np.ndarray
) -> None:
    """dcmcjpeg +ee (IJG quality 90, about 4.5:1) also moves each slice's RescaleIntercept."""
    folder = _dcmtk_recode(fast_study.iterdir(), tmp_path / "s", "dcmcjpeg", "+ee")
    assert _syntaxes(folder) == {JPEGExtended12Bit}
    hu, warnings = _load_with_warnings(folder)  # DERIVED\PRIMARY + LossyImageCompression 01
    assert any("compressed lossily" in w for w in warnings)
    diff = np.abs(hu - reference)
    # measured with dcmtk 3.6.7: mean 1.4 HU, max 19 HU, 99.98 % of voxels in the same class
    assert diff.mean() < 3.0
    assert diff.max() < 50.0
    assert _same_tissue(hu, reference) > 0.999


def test_jpeg_baseline_8_bit_loads_with_coarse_hu(
    fast_study: Path, tmp_path: Path, reference: np.ndarray
) -> None:
    """dcmcjpeg +eb squeezes the 12-bit slices into 8 bits: one stored step becomes 4095/255 HU
    (RescaleSlope 16.06, RescaleIntercept about -2034, per slice) before the lossy coding. The
    loader must apply that rescale; grey/white matter contrast is lost, the head stays a head."""
    folder = _dcmtk_recode(fast_study.iterdir(), tmp_path / "s", "dcmcjpeg", "+eb")
    assert _syntaxes(folder) == {JPEGBaseline8Bit}
    first = pydicom.dcmread(next(folder.iterdir()), stop_before_pixels=True)
    step = float(first.RescaleSlope)
    assert (first.BitsAllocated, first.BitsStored) == (8, 8)
    assert step > 16.0
    hu, warnings = _load_with_warnings(folder)
    assert any("only 8-bit pixel data (16 HU per step)" in w for w in warnings)
    # measured with dcmtk 3.6.7: mean 13.4 HU, max 287 HU, 99.78 % of voxels in the same class
    assert np.abs(hu - reference).mean() < 20.0
    assert _same_tissue(hu, reference) > 0.99
    # every 8th slice decoded by dcmtk's own decoder (IJG), left in the series uncompressed: the
    # mixed series loads, and the two decoders differ by at most one stored step
    mixed = shutil.copytree(folder, tmp_path / "mixed")
    _dcmtk_recode(sorted(folder.iterdir())[::8], mixed, "dcmdjpeg")
    assert _syntaxes(mixed) == {JPEGBaseline8Bit, ExplicitVRLittleEndian}
    assert np.abs(_load(mixed) - hu).max() <= step + 1e-3


def test_missing_codec_is_not_analyzable_and_names_the_encoding(
    fast_study: Path, tmp_path: Path
) -> None:
    folder = _recode(fast_study, tmp_path / "s", RLELossless)
    for f in folder.iterdir():
        ds = pydicom.dcmread(f)
        ds.file_meta.TransferSyntaxUID = UID("1.2.840.10008.1.2.4.100")  # MPEG2: no decoder
        ds.save_as(f)
    with pytest.raises(NotAnalyzable, match=r"MPEG2.*ask for the series uncompressed"):
        _load(folder)


def test_retired_jpeg_progressive_is_not_analyzable_and_names_the_encoding(
    fast_study: Path, tmp_path: Path
) -> None:
    """A real encoder's output for which no decoder is installed (pydicom has none for 10/12)."""
    folder = _dcmtk_recode(fast_study.iterdir(), tmp_path / "s", "dcmcjpeg", "+ep")
    assert _syntaxes(folder) == {JPEGFullProgression}
    with pytest.raises(NotAnalyzable, match="Full Progression"):
        _load(folder)


def test_without_dcmtk_the_tests_skip_unless_ci_requires_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LVO_REQUIRE_DCMTK", raising=False)
    with pytest.raises(pytest.skip.Exception, match=r"apt-get install dcmtk"):
        _dcmtk("dcmconv", where=tmp_path)
    monkeypatch.setenv("LVO_REQUIRE_DCMTK", "1")
    with pytest.raises(pytest.fail.Exception, match=r"apt-get install dcmtk"):
        _dcmtk("dcmconv", where=tmp_path)
