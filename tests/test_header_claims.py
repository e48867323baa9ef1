"""What a header claims is checked before it is used (issue 13, item 2): lying dimensions, bits,
frames, NaN and degenerate geometry, pixel data that does not fit, a decoded size beyond
``limits``; the file is skipped with a reason a radiographer understands, the rest of the series
is still analysed, and nothing large is allocated for a tiny file that claims to be huge."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from lvo_triage.config import LimitsSettings, Settings
from lvo_triage.dicom.discover import discover
from lvo_triage.dicom.instance import read_header
from lvo_triage.dicom.pixels import read_slices
from lvo_triage.dicom.select import select_series
from lvo_triage.dicom.volume import load_volume
from lvo_triage.errors import ConfigError, NotAnalyzable, UnreadableFile
from lvo_triage.pipeline import Runtime, triage_path
from lvo_triage.result import Status
from tests.fuzz_dicom import BAD_GEOMETRY, LIES, Template, with_value, write_study

ROWS, COLUMNS, FRAMES = 0x00280010, 0x00280011, 0x00280008


@pytest.fixture(scope="module")
def template(fast_study: Path) -> Template:
    return Template.from_folder(fast_study)


def _header(tmp_path: Path, data: bytes) -> UnreadableFile:
    path = tmp_path / "IM0001"
    path.write_bytes(data)
    with pytest.raises(UnreadableFile) as caught:
        read_header(path)
    return caught.value


@pytest.mark.parametrize(("tag", "value", "vr"), LIES)
def test_every_lying_dimension_is_refused_with_a_reason(
    template: Template, tmp_path: Path, tag: int, value: bytes, vr: bytes | None
) -> None:
    error = _header(tmp_path, with_value(template.files[40], tag, value, vr))
    assert error.reason.startswith("its header claims"), error.reason
    assert "damaged" in error.reason, error.reason


@pytest.mark.parametrize(("tag", "value"), BAD_GEOMETRY)
def test_nan_infinite_and_degenerate_geometry_is_refused(
    template: Template, tmp_path: Path, tag: int, value: bytes
) -> None:
    error = _header(tmp_path, with_value(template.files[40], tag, value))
    assert error.reason.startswith("its header claims"), error.reason


def test_the_reasons_name_the_lie(template: Template, tmp_path: Path) -> None:
    rows = _header(tmp_path, with_value(template.files[3], ROWS, struct.pack("<H", 65535)))
    assert "65535" in rows.reason and "pixels" in rows.reason
    bits = _header(tmp_path, with_value(template.files[3], 0x00280100, struct.pack("<H", 7)))
    assert "7-bit" in bits.reason
    nan = _header(tmp_path, with_value(template.files[3], 0x00200032, b"nan\\nan\\nan"))
    assert "ImagePositionPatient" in nan.reason and "finite" in nan.reason
    short = _header(tmp_path, with_value(template.files[3], COLUMNS, struct.pack("<H", 4096)))
    assert "4096 x 128 pixels" in short.reason and "of pixel data" in short.reason


def test_a_decoded_size_beyond_the_configured_ceiling_is_refused(
    template: Template, tmp_path: Path
) -> None:
    path = tmp_path / "IM0001"
    path.write_bytes(template.files[5])  # 128 x 128 x 16 bits: 32.8 KB
    read_header(path, limits=LimitsSettings(max_image_mb=1))
    with pytest.raises(UnreadableFile, match=r"limits\.max_image_mb"):
        read_header(path, limits=LimitsSettings(max_image_mb=0.01))
    with pytest.raises(ConfigError, match="max_image_mb"):
        LimitsSettings(max_image_mb=0)


def test_a_volume_beyond_the_configured_ceiling_is_not_analyzable(fast_study: Path) -> None:
    study = discover(fast_study).studies[0]
    series = select_series(study, Settings().selection).series
    with pytest.raises(NotAnalyzable, match=r"limits\.max_volume_mb"):
        load_volume(series, max_volume_mb=1)


def test_one_lying_file_is_skipped_and_the_study_still_analysed(
    template: Template, fast_study: Path, tmp_path: Path, bundled_model: Path
) -> None:
    files = template.copy(7)
    files[60] = with_value(files[60], ROWS, struct.pack("<H", 65535))
    files[61] = with_value(files[61], 0x00200032, b"nan\\nan\\nan")
    write_study(tmp_path / "study", files)
    engine = Runtime.create(Settings())
    (result,) = triage_path(engine, tmp_path / "study")
    (reference,) = triage_path(engine, fast_study)
    assert result.status is Status.OK
    skipped = [w for w in result.warnings if w.startswith("skipped")]
    assert len(skipped) == 2 and all("its header claims" in w for w in skipped)
    assert any("interpolated" in w for w in result.warnings)  # two slices rebuilt
    assert result.probability == pytest.approx(reference.probability, abs=0.05)


def test_a_slice_whose_pixels_cannot_be_read_is_left_out(
    template: Template, tmp_path: Path
) -> None:
    files = template.copy(8)
    write_study(tmp_path / "study", files)
    series = select_series(discover(tmp_path / "study").studies[0], Settings().selection).series
    ordered = sorted(series.instances, key=lambda i: i.position[2])  # type: ignore[index]
    victim = ordered[50]
    victim.path.write_bytes(victim.path.read_bytes()[:-100])  # cut after discovery
    _, failures = read_slices(ordered)
    assert list(failures) == [50] and "ends inside its pixel data" in failures[50]
    volume, warnings = load_volume(series)
    assert volume.hu.shape[2] == len(series.instances)  # the slice was interpolated back
    assert any("1 image(s) left out" in w for w in warnings)
    for inst in series.instances[::3]:  # a third of the slices: the gaps are too large
        inst.path.write_bytes(b"")
    with pytest.raises(NotAnalyzable, match="cannot be read"):
        load_volume(series)


def test_a_folder_of_damaged_files_says_why_in_its_reason(
    template: Template, tmp_path: Path, bundled_model: Path
) -> None:
    folder = tmp_path / "junk"
    write_study(folder, [with_value(f, ROWS, struct.pack("<H", 0)) for f in template.files[:5]])
    (result,) = triage_path(Runtime.create(Settings()), folder)
    assert result.status is Status.NOT_ANALYZABLE
    assert "5 skipped" in str(result.reason) and "its header claims" in str(result.reason)


HUGE = """\
import sys
from pathlib import Path
from tests.fuzz_dicom import Template, with_value
import struct
t = Template.from_folder(Path(sys.argv[1]))
data = with_value(t.files[0], 0x00280010, struct.pack("<H", 65535))
data = with_value(data, 0x00280011, struct.pack("<H", 65535))
data = with_value(data, 0x00280008, b"1000", b"IS")
Path(sys.argv[2]).write_bytes(data)
"""


def _peak_rss_mb(args: list[str]) -> tuple[int, float]:
    """Exit status and peak resident memory (MB) of ``lvo-triage ARGS`` in a process of its own."""
    cmd = [sys.executable, "-m", "lvo_triage.cli", *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, usage.ru_maxrss / 1024.0


def test_a_tiny_file_claiming_to_be_huge_is_refused_before_any_allocation(
    fast_study: Path, tmp_path: Path, bundled_model: Path
) -> None:
    huge, plain = tmp_path / "huge", tmp_path / "plain"
    huge.mkdir()
    plain.mkdir()
    root = Path(__file__).resolve().parents[1]
    subprocess.run(
        [sys.executable, "-c", HUGE, str(fast_study), str(huge / "IM0001")], check=True, cwd=root
    )
    (plain / "IM0001").write_bytes(b"not DICOM")
    data = (huge / "IM0001").read_bytes()
    assert len(data) < 50_000  # 65535 x 65535 x 1000 frames claimed: 8.6 TB decoded
    with pytest.raises(UnreadableFile, match="65535 x 65535"):
        read_header(huge / "IM0001")
    rc, peak = _peak_rss_mb(["run", str(huge), "--json"])
    rc_plain, reference = _peak_rss_mb(["run", str(plain), "--json"])
    assert rc == 0 and rc_plain == 0
    print(f"\npeak RSS: {peak:.0f} MB on the lying file, {reference:.0f} MB on a junk file")
    # the same process with a junk file instead: what start-up and the model take
    assert peak <= reference + 64, (peak, reference)
