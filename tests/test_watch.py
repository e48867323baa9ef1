"""The watched folder: arrival, readiness, claim, archive, quarantine, duplicates, restart,
studies that grow after their triage, and SIGTERM. A fake clock drives the timing rules."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pydicom
import pytest

from lvo_triage.config import Settings, WatchSettings
from lvo_triage.pipeline import Runtime
from lvo_triage.result import Status
from lvo_triage.service.inbox import safe_name
from lvo_triage.service.watch import Watcher


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def engine(bundled_model: Path) -> Runtime:
    return Runtime.create(Settings())


def _watcher(tmp_path: Path, engine: Runtime, **watch: object) -> tuple[Watcher, Clock]:
    clock = Clock()
    if watch:
        engine = Runtime(
            Settings(selection=engine.settings.selection, watch=WatchSettings(**watch)),  # type: ignore[arg-type]
            engine.detector,
            engine.preprocessor,
        )
    return Watcher(tmp_path / "inbox", tmp_path / "out", engine, clock=clock), clock


def _drop(files: list[Path], inbox: Path, sub: str = "") -> None:
    target = inbox / sub
    target.mkdir(parents=True, exist_ok=True)
    for f in files:
        shutil.copy(f, target / f"in-{f.name}")


def _run_until(watcher: Watcher, clock: Clock, seconds: float, step: float = 0.25) -> list:  # type: ignore[type-arg]
    results = []
    end = clock.now + seconds
    while clock.now < end:
        results += watcher.step()
        clock.now += step
    return results


def _timing(out: Path) -> list[dict[str, object]]:
    return [json.loads(x) for x in (out / "timing.jsonl").read_text().splitlines()]


def test_a_complete_series_is_triaged_before_the_quiet_period(
    fast_study: Path, tmp_path: Path, engine: Runtime
) -> None:
    watcher, clock = _watcher(tmp_path, engine)
    _drop(sorted(fast_study.iterdir()), watcher.inbox.root, "any/nesting")
    results = _run_until(watcher, clock, 2.0)  # stable_s 1 s < quiet_period_s 5 s
    assert [r.status for r in results] == [Status.OK]
    uid = results[0].study_instance_uid
    assert uid is not None
    assert (tmp_path / "out" / uid / "result.json").exists()
    archived = list((watcher.inbox.archive / safe_name(uid)).iterdir())
    assert len(archived) == len(list(fast_study.iterdir()))
    assert watcher.inbox.arrivals() == []  # nothing left behind in INBOX
    (line,) = _timing(tmp_path / "out")
    assert line["arrival_to_result_ms"] >= line["total_ms"]  # type: ignore[operator]
    assert "wait_ms" in line


def test_junk_is_quarantined_with_a_reason_and_duplicates_are_ignored(
    fast_study: Path, tmp_path: Path, engine: Runtime
) -> None:
    watcher, clock = _watcher(tmp_path, engine)
    files = sorted(fast_study.iterdir())
    _drop(files, watcher.inbox.root)
    _drop(files[:3], watcher.inbox.root, "again")  # the PACS sent three images twice
    (watcher.inbox.root / "notes.txt").write_text("not an image")
    results = _run_until(watcher, clock, 12.0)
    assert len(results) == 1 and results[0].status is Status.OK
    quarantined = sorted(p.name for p in watcher.inbox.quarantine.iterdir())
    assert quarantined == ["notes.txt", "notes.txt.reason.txt"]
    reason = (watcher.inbox.quarantine / "notes.txt.reason.txt").read_text()
    assert "not readable as DICOM" in reason
    uid = results[0].study_instance_uid
    assert len(list((watcher.inbox.archive / safe_name(str(uid))).iterdir())) == len(files)


def test_a_study_claimed_before_a_crash_is_triaged_on_restart(
    fast_study: Path, tmp_path: Path, engine: Runtime
) -> None:
    watcher, _ = _watcher(tmp_path, engine)
    uid = str(pydicom.dcmread(next(fast_study.iterdir()), stop_before_pixels=True).StudyInstanceUID)
    claimed = watcher.inbox.processing / safe_name(uid)
    shutil.copytree(fast_study, claimed)  # as a kill -9 after the claim leaves it
    restarted, _ = _watcher(tmp_path, engine)
    results = restarted.resume()
    assert [r.status for r in results] == [Status.OK]
    assert not claimed.exists() and (restarted.inbox.archive / safe_name(uid)).is_dir()


def test_images_arriving_after_the_triage_supersede_its_result(
    fast_study: Path, tmp_path: Path, engine: Runtime
) -> None:
    watcher, clock = _watcher(tmp_path, engine)
    files = sorted(
        fast_study.iterdir(),
        key=lambda p: float(pydicom.dcmread(p, stop_before_pixels=True).ImagePositionPatient[2]),
    )
    first, rest = files[: len(files) // 2], files[len(files) // 2 :]
    _drop(first, watcher.inbox.root)
    early = _run_until(watcher, clock, 6.0)  # half a head: waits for the quiet period
    assert len(early) == 1
    _drop(rest, watcher.inbox.root)
    late = _run_until(watcher, clock, 6.0)
    assert len(late) == 1 and late[0].status is Status.OK
    assert late[0].supersedes == early[0].finished_at
    assert any("supersedes" in w for w in late[0].warnings)
    lines = _timing(tmp_path / "out")
    assert len(lines) == 2 and lines[1]["supersedes"] == early[0].finished_at
    uid = str(late[0].study_instance_uid)
    saved = json.loads((tmp_path / "out" / uid / "result.json").read_text())
    assert saved["supersedes"] == early[0].finished_at
    assert len(list((watcher.inbox.archive / safe_name(uid)).iterdir())) == len(files)


def test_sigterm_stops_the_watch_command_cleanly(tmp_path: Path, bundled_model: Path) -> None:
    cmd = [sys.executable, "-m", "lvo_triage.cli", "watch", str(tmp_path / "in"), "--out",
           str(tmp_path / "out")]  # fmt: skip
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not (tmp_path / "in" / ".processing").is_dir() and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "stopped" in err


def test_names_from_received_data_never_make_paths() -> None:
    assert safe_name("1.2.840.113619.2.55") == "1.2.840.113619.2.55"
    for evil in ("../../etc/passwd", "..", "a/b", "x" * 200, "1.2\x00.3"):
        name = safe_name(evil)
        assert "/" not in name and name not in (".", "..") and len(name) <= 64


def test_an_unwritable_outbox_keeps_the_input_and_retries(
    fast_study: Path, tmp_path: Path, engine: Runtime
) -> None:
    watcher, clock = _watcher(tmp_path, engine)
    uid = str(pydicom.dcmread(next(fast_study.iterdir()), stop_before_pixels=True).StudyInstanceUID)
    blocker = tmp_path / "out" / uid
    blocker.write_text("a file where the study's folder must go")  # mkdir fails: like a full disk
    _drop(sorted(fast_study.iterdir()), watcher.inbox.root)
    assert _run_until(watcher, clock, 3.0) == []
    claimed = watcher.inbox.processing / safe_name(uid)
    assert len(list(claimed.iterdir())) == len(list(fast_study.iterdir()))  # input kept
    blocker.unlink()
    results = _run_until(watcher, clock, 12.0)
    assert [r.status for r in results] == [Status.OK]
    assert (tmp_path / "out" / uid / "result.json").exists() and not claimed.exists()


def _start_watch(inbox: Path, out: Path) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "lvo_triage.cli", "watch", str(inbox), "--out", str(out)]
    return subprocess.Popen(cmd, stderr=subprocess.DEVNULL, text=True)


def _wait_for(condition: object, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(0.02)
    return False


def test_kill_9_during_a_study_loses_nothing_and_gives_one_answer(
    fast_study: Path, tmp_path: Path, bundled_model: Path
) -> None:
    inbox, out = tmp_path / "in", tmp_path / "out"
    uid = str(pydicom.dcmread(next(fast_study.iterdir()), stop_before_pixels=True).StudyInstanceUID)
    proc = _start_watch(inbox, out)
    assert _wait_for(lambda: (inbox / ".processing").is_dir(), 60)
    _drop(sorted(fast_study.iterdir()), inbox)
    claimed = inbox / ".processing" / safe_name(uid)
    assert _wait_for(claimed.exists, 60), "the study was never claimed"
    proc.kill()  # SIGKILL: no chance to clean up
    proc.wait(timeout=30)
    restarted = _start_watch(inbox, out)
    try:
        archived = inbox / ".archive" / safe_name(uid)
        n = len(list(fast_study.iterdir()))

        def all_archived() -> bool:
            return archived.is_dir() and len(list(archived.iterdir())) == n

        assert _wait_for(lambda: all_archived() and not claimed.exists(), 120)
    finally:
        restarted.send_signal(signal.SIGTERM)
        restarted.wait(timeout=30)
    assert not list((inbox / ".processing").iterdir())  # nothing left half-done
    result = json.loads((out / uid / "result.json").read_text())
    assert result["status"] == "ok"
    answers = {line["status"] for line in _timing(out)}
    assert answers == {"ok"}  # triaged once, or again after the kill: the same answer, and no
    # spurious result for an empty claim


def test_an_empty_claim_left_by_a_crash_is_dropped(tmp_path: Path) -> None:
    from lvo_triage.service.inbox import Inbox

    inbox = Inbox(tmp_path / "in")
    inbox.create()
    (inbox.processing / "1.2.3").mkdir()  # a crash before anything was moved
    assert inbox.claimed() == [] and not (inbox.processing / "1.2.3").exists()


def test_a_claim_cut_short_by_a_crash_is_completed_on_restart(tmp_path: Path) -> None:
    import os

    from lvo_triage.outputs.files import write_atomic
    from lvo_triage.service.inbox import Inbox

    inbox = Inbox(tmp_path / "in")
    inbox.create()
    files = []
    for n in range(6):
        files.append(inbox.root / f"f{n}")
        files[-1].write_text(str(n))
    folder = inbox.processing / "1.2.3"
    moves = [(str(f), str(folder / f"{n}.dcm")) for n, f in enumerate(files)]
    plan = {"folder": str(folder), "moves": moves, "remove": str(inbox.archive / "1.2.3")}
    write_atomic(inbox.processing / "1.2.3.claim.json", json.dumps(plan))
    folder.mkdir()
    for src, dst in moves[:3]:  # the crash came after three of six moves
        os.replace(src, dst)
    assert inbox.claimed() == [folder]
    assert sorted(p.name for p in folder.iterdir()) == [f"{n}.dcm" for n in range(6)]
    assert inbox.arrivals() == [] and not list(inbox.processing.glob("*.json"))


@pytest.mark.slow
def test_two_hundred_studies_dropped_at_once_are_all_processed(
    fast_study: Path, tmp_path: Path, engine: Runtime
) -> None:
    """200 small studies (25 slices each, too short to analyse: each gets not_analyzable)."""
    from pydicom.uid import generate_uid

    watcher, clock = _watcher(tmp_path, engine)
    slices = sorted(fast_study.iterdir())[40:65]
    templates = [pydicom.dcmread(f) for f in slices]
    uids = []
    for n in range(200):
        study, series = generate_uid(), generate_uid()
        uids.append(study)
        folder = watcher.inbox.root / f"s{n:03d}"
        folder.mkdir()
        for k, ds in enumerate(templates):
            ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
            ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
            ds.save_as(folder / f"{k}.dcm", enforce_file_format=True)
    results = _run_until(watcher, clock, 8.0, step=1.0)
    assert sorted(str(r.study_instance_uid) for r in results) == sorted(uids)
    assert all(r.status is Status.NOT_ANALYZABLE for r in results)
    assert len(_timing(tmp_path / "out")) == 200
    assert watcher.inbox.arrivals() == []
