"""Several ``watch`` workers on one INBOX: a study is claimed by one worker only, a claim whose
worker died is taken over by one other, and real worker processes triage every study once."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from functools import partial
from pathlib import Path

import pydicom
import pytest

from lvo_triage.config import WatchSettings
from lvo_triage.errors import ConfigError
from lvo_triage.service.inbox import Inbox, Owner, safe_name

HEADLINE = "[NOT FOR CLINICAL USE]"  # the end of the line a worker logs per triage
CONFIG = """\
watch:
  quiet_period_s: 2.0
  stable_s: 0.5
  poll_interval_s: 0.1
model:
  intra_op_threads: 1
"""


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _files(inbox: Inbox, uid: str, numbers: range) -> dict[Path, str]:
    """Stand-in image files of study ``uid`` in INBOX: path → SOPInstanceUID."""
    files = {}
    for k in numbers:
        path = inbox.root / f"{uid}-{k}.img"
        path.write_text(str(k))
        files[path] = f"{uid}.{k}"
    return files


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _in_parallel(*calls: object) -> list[object]:
    """Run the calls in threads released at the same moment; their return values."""
    barrier = threading.Barrier(len(calls))
    out: list[object] = [None] * len(calls)

    def run(k: int) -> None:
        barrier.wait()
        out[k] = calls[k]()  # type: ignore[operator]

    threads = [threading.Thread(target=run, args=(k,)) for k in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return out


def test_of_two_workers_claiming_one_study_exactly_one_wins(tmp_path: Path) -> None:
    a, b = Inbox(tmp_path), Inbox(tmp_path)
    a.create()
    for n in range(25):
        uid = f"1.2.{n}"
        files = _files(a, uid, range(8))
        got = _in_parallel(partial(a.claim, uid, files), partial(b.claim, uid, files))
        winners = [(inbox, f) for inbox, f in zip((a, b), got, strict=True) if f is not None]
        assert len(winners) == 1, got
        holder, folder = winners[0]
        assert isinstance(folder, Path)
        assert sorted(p.name for p in folder.iterdir()) == sorted(
            f"{s}.dcm" for s in files.values()
        )
        loser = b if holder is a else a
        assert loser.claim(uid, files) is None  # held, and its files are gone
        assert holder.finish(folder, keep="archive")
        assert loser.claim(uid, files) is None  # finished: nothing to claim, no second round
    assert not list(a.processing.iterdir()) and a.arrivals() == []


def test_late_images_wait_while_another_worker_holds_the_study(tmp_path: Path) -> None:
    a, b = Inbox(tmp_path), Inbox(tmp_path)
    a.create()
    first = a.claim("1.2.3", _files(a, "1.2.3", range(4)))
    assert first is not None
    late = _files(b, "1.2.3", range(4, 6))
    assert b.claim("1.2.3", late) is None and all(p.exists() for p in late)  # kept for later
    assert a.finish(first, keep="archive")
    second = b.claim("1.2.3", late)  # the new round: the whole study
    assert second is not None and len(list(second.iterdir())) == 6
    assert b.finish(second, keep="archive") and len(list((a.archive / "1.2.3").iterdir())) == 6


def test_a_claim_whose_worker_died_is_taken_over(tmp_path: Path) -> None:
    dead = Owner.this_process()
    dead = dataclasses.replace(dead, pid=_dead_pid(), started=None)
    crashed = Inbox(tmp_path, owner=dead)
    crashed.create()
    folder = crashed.claim("1.2.3", _files(crashed, "1.2.3", range(3)))
    assert folder is not None
    owner_files = list(crashed.processing.glob("1.2.3.owner.*"))
    assert [json.loads(p.read_text())["worker"] for p in owner_files] == [dead.worker]
    b, c = Inbox(tmp_path), Inbox(tmp_path)
    got = _in_parallel(b.claimed, c.claimed)  # two workers start at once: one takes it
    assert [] in got and [folder] in got
    heir = b if got[0] else c
    assert heir.holds(folder) and not crashed.holds(folder)
    assert b.claimed() == [] and c.claimed() == []  # held by a live worker now
    assert heir.finish(folder, keep="archive")
    assert not list(b.processing.iterdir())


def test_a_live_worker_keeps_its_claim_until_its_lease_runs_out(tmp_path: Path) -> None:
    a = Inbox(tmp_path)  # this process: alive
    a.create()
    folder = a.claim("1.2.3", _files(a, "1.2.3", range(3)))
    assert folder is not None
    clock = Clock()
    b = Inbox(tmp_path, lease_s=30.0, clock=clock)
    assert b.claimed() == []
    clock.now += 20.0
    time.sleep(0.05)  # a new modification time, even where timestamps are coarse
    a.renew()
    assert b.claimed() == []
    clock.now += 25.0  # 45 s since b first looked, 25 s since the renewal
    assert b.claimed() == []
    clock.now += 6.0  # silent for 31 s: a hung worker
    assert b.claimed() == [folder]
    assert not a.finish(folder, keep="archive")  # it lost the claim: leaves the study alone
    assert b.finish(folder, keep="archive")
    assert sorted(p.name for p in (a.archive / "1.2.3").iterdir()) == [
        f"1.2.3.{k}.dcm" for k in range(3)
    ]


def test_a_claim_from_another_machine_is_judged_by_its_lease_only(tmp_path: Path) -> None:
    elsewhere = dataclasses.replace(Owner.this_process(), machine="another", pid=_dead_pid())
    remote = Inbox(tmp_path, owner=elsewhere)
    remote.create()
    folder = remote.claim("1.2.3", _files(remote, "1.2.3", range(2)))
    clock = Clock()
    b = Inbox(tmp_path, lease_s=30.0, clock=clock)
    assert b.claimed() == []  # that pid means nothing here
    clock.now += 30.0
    assert b.claimed() == [folder]


def test_claim_lease_is_validated() -> None:
    with pytest.raises(ConfigError, match=r"watch\.claim_lease_s=1 must be in \[2, 3600\]"):
        WatchSettings(claim_lease_s=1)


# Real worker processes ---------------------------------------------------------------------


def _command() -> list[str]:
    script = Path(sys.executable).with_name("lvo-triage")
    return [str(script)] if script.exists() else [sys.executable, "-m", "lvo_triage.cli"]


def _synth(folder: Path, n: int, seed: int) -> dict[str, set[str]]:
    """``n`` fast phantom studies under ``folder``: StudyInstanceUID → its SOPInstanceUIDs."""
    cmd = [*_command(), "synth", str(folder), "--n", str(n), "--fast", "--seed", str(seed)]
    subprocess.run(cmd, check=True, capture_output=True, timeout=1200)
    (folder / "labels.csv").unlink()  # not an image: it would go to the quarantine
    studies: dict[str, set[str]] = {}
    for case in sorted(folder.iterdir()):
        for f in case.iterdir():
            ds = pydicom.dcmread(f, stop_before_pixels=True)
            studies.setdefault(str(ds.StudyInstanceUID), set()).add(str(ds.SOPInstanceUID))
    return studies


@pytest.fixture(scope="module")
def twelve(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, set[str]]]:
    folder = tmp_path_factory.mktemp("twelve") / "studies"
    return folder, _synth(folder, 12, seed=707)


@pytest.fixture(scope="module")
def hundred(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, set[str]]]:
    folder = tmp_path_factory.mktemp("hundred") / "studies"
    return folder, _synth(folder, 100, seed=7100)


def _wait_for(condition: object, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(0.2)
    return False


def _run_workers(
    studies: Path, expected: dict[str, set[str]], tmp_path: Path, *, workers: int, limit_s: float
) -> tuple[float, list[int]]:
    """Start ``workers`` watchers on one INBOX, drop the studies (half at once, the rest one by
    one while they work), wait until every study is done, stop them: the seconds from the first
    drop to the last result, and the studies each worker triaged."""
    inbox, out = tmp_path / "in", tmp_path / "out"
    staging = tmp_path / "staging"  # beside INBOX: a rename into it is atomic
    shutil.copytree(studies, staging)
    config = tmp_path / "watch.yaml"
    config.write_text(CONFIG)
    logs = [tmp_path / f"worker{k}.log" for k in range(workers)]
    cmd = [*_command(), "watch", str(inbox), "--out", str(out), "--config", str(config)]
    procs = []
    for log in logs:
        with log.open("w") as stderr:
            procs.append(subprocess.Popen(cmd, stderr=stderr, stdin=subprocess.DEVNULL))
    try:
        assert _wait_for(lambda: all("watching" in log.read_text() for log in logs), 120), [
            log.read_text()[-2000:] for log in logs
        ]
        cases = sorted(staging.iterdir())
        started = time.monotonic()
        for k, case in enumerate(cases):
            os.rename(case, inbox / case.name)  # a whole study appears at once
            if k >= len(cases) // 2:
                time.sleep(0.1)

        def done() -> bool:
            results = len(list(out.glob("*/result.json")))
            return results == len(expected) and not any(Inbox(inbox).processing.iterdir())

        finished = _wait_for(done, limit_s)
        elapsed = time.monotonic() - started
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        codes = [proc.wait(timeout=60) for proc in procs]
    texts = [log.read_text() for log in logs]
    assert finished, f"not done after {limit_s} s: " + "\n".join(t[-3000:] for t in texts)
    assert codes == [0] * workers and all("stopped" in t for t in texts), codes
    errors = [
        line for t in texts for line in t.splitlines() if "Traceback" in line or " ERROR " in line
    ]
    assert not errors, errors  # no file that another worker took was an error
    return elapsed, [t.count(HEADLINE) for t in texts]


def _check_outputs(tmp_path: Path, expected: dict[str, set[str]], per_worker: list[int]) -> None:
    inbox, out = Inbox(tmp_path / "in"), tmp_path / "out"
    with_result = {p.parent.name for p in out.glob("*/result.json")}
    assert with_result == {safe_name(uid) for uid in expected}
    lines = [json.loads(line) for line in (out / "timing.jsonl").read_text().splitlines()]
    assert sorted(line["study_instance_uid"] for line in lines) == sorted(expected)
    assert not any("supersedes" in line for line in lines)
    for uid, sops in expected.items():
        archived = sorted(p.name for p in (inbox.archive / safe_name(uid)).iterdir())
        assert archived == sorted(f"{safe_name(sop)}.dcm" for sop in sops), uid
    assert sorted(p.name for p in inbox.archive.iterdir()) == sorted(map(safe_name, expected))
    assert not list(inbox.quarantine.iterdir())
    assert not list(inbox.processing.iterdir())
    assert inbox.arrivals() == []
    assert sum(per_worker) == len(expected), per_worker  # one triage per study, in all
    assert sum(n > 0 for n in per_worker) > 1, per_worker  # the workers shared the work


def test_three_workers_triage_twelve_studies_once_each(
    twelve: tuple[Path, dict[str, set[str]]], tmp_path: Path, bundled_model: Path
) -> None:
    studies, expected = twelve
    elapsed, per_worker = _run_workers(studies, expected, tmp_path, workers=3, limit_s=240)
    print(f"\n12 studies, 3 workers: {elapsed:.1f} s, studies per worker {per_worker}")
    _check_outputs(tmp_path, expected, per_worker)


@pytest.mark.slow
def test_three_workers_triage_a_hundred_studies_once_each(
    hundred: tuple[Path, dict[str, set[str]]], tmp_path: Path, bundled_model: Path
) -> None:
    studies, expected = hundred
    elapsed, per_worker = _run_workers(studies, expected, tmp_path, workers=3, limit_s=900)
    print(f"\n100 studies, 3 workers: {elapsed:.1f} s, studies per worker {per_worker}")
    _check_outputs(tmp_path, expected, per_worker)
