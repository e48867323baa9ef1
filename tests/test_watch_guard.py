"""The watcher's process-level guard (issue 13, item 4): a study whose triage raises, ends in
``error`` or keeps killing the process is set aside in the quarantine with an ``error`` result and
its reason, and the watcher goes on; a crash loop on the same input cannot happen, because the
attempts begun on a claim are counted on disk before each triage."""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from lvo_triage.config import Settings
from lvo_triage.pipeline import Runtime
from lvo_triage.result import Status
from lvo_triage.service import watch
from lvo_triage.service.inbox import safe_name
from lvo_triage.service.watch import MAX_CRASHES
from tests.fuzz_dicom import Template, write_study
from tests.test_watch import _run_until, _wait_for, _watcher


@pytest.fixture(scope="module")
def engine(bundled_model: Path) -> Runtime:
    return Runtime.create(Settings())


@pytest.fixture(scope="module")
def template(fast_study: Path) -> Template:
    return Template.from_folder(fast_study)


def _result(out: Path, uid: str) -> dict[str, object]:
    return json.loads((out / uid / "result.json").read_text())  # type: ignore[no-any-return]


def test_a_study_the_process_died_in_twice_is_set_aside_not_triaged(
    template: Template, tmp_path: Path, engine: Runtime
) -> None:
    watcher, clock = _watcher(tmp_path, engine)
    uid = template.uid(template.study_uid, 1)
    claimed = watcher.inbox.processing / safe_name(uid)
    write_study(claimed, template.copy(1))  # as two deaths in its triage leave it
    (watcher.inbox.processing / f"{claimed.name}.attempts").write_text(f"{MAX_CRASHES}\n")
    (result,) = watcher.resume()
    assert result.status is Status.ERROR and result.study_instance_uid == uid
    assert "stopped 2 times" in str(result.reason) and "look at them yourself" in str(result.reason)
    assert _result(tmp_path / "out", uid)["status"] == "error"
    kept = watcher.inbox.quarantine / claimed.name
    assert len(list(kept.iterdir())) == len(template.files)  # nothing lost
    assert "stopped 2 times" in kept.with_name(kept.name + ".reason.txt").read_text()
    assert not list(watcher.inbox.processing.iterdir())  # claim, attempts: all gone
    write_study(watcher.inbox.root / "next", template.copy(2))  # the watcher goes on
    (following,) = _run_until(watcher, clock, 3.0)
    assert following.status is Status.OK


def test_a_triage_that_raises_sets_the_study_aside_and_the_watch_goes_on(
    template: Template, tmp_path: Path, engine: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    watcher, clock = _watcher(tmp_path, engine)
    real, victim = watch.triage_path, template.uid(template.study_uid, 1).encode()

    def broken(engine: Runtime, path: Path, **kwargs: object) -> object:
        if victim in next(path.iterdir()).read_bytes():
            raise RuntimeError("a bug the pipeline did not catch")
        return real(engine, path, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(watch, "triage_path", broken)
    write_study(watcher.inbox.root / "a", template.copy(1))
    write_study(watcher.inbox.root / "b", template.copy(2))
    results = _run_until(watcher, clock, 3.0)
    by_uid = {r.study_instance_uid: r for r in results}
    failed = by_uid[template.uid(template.study_uid, 1)]
    assert failed.status is Status.ERROR and "RuntimeError" in str(failed.reason)
    assert by_uid[template.uid(template.study_uid, 2)].status is Status.OK
    names = sorted(p.name for p in watcher.inbox.quarantine.iterdir())
    assert names == [safe_name(str(failed.study_instance_uid)) + s for s in ("", ".reason.txt")]
    assert not list(watcher.inbox.processing.iterdir())


def test_an_error_result_sets_the_files_aside_instead_of_archiving_them(
    template: Template, tmp_path: Path, engine: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lvo_triage import pipeline

    def broken(*args: object) -> None:
        raise ZeroDivisionError("a bug in a stage")

    monkeypatch.setattr(pipeline, "examine", broken)
    watcher, clock = _watcher(tmp_path, engine)
    write_study(watcher.inbox.root / "a", template.copy(1))
    (result,) = _run_until(watcher, clock, 3.0)
    assert result.status is Status.ERROR
    folder = watcher.inbox.quarantine / template.uid(template.study_uid, 1)
    assert len(list(folder.iterdir())) == len(template.files)
    assert not list(watcher.inbox.archive.iterdir())


def test_a_poll_that_raises_is_logged_and_the_loop_goes_on(
    template: Template,
    tmp_path: Path,
    engine: Runtime,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    watcher, clock = _watcher(tmp_path, engine)
    real, calls = watcher.arrivals.poll, []

    def flaky() -> None:
        calls.append(1)
        if len(calls) <= 3:
            raise PermissionError("the inbox is not readable for a moment")
        real()

    monkeypatch.setattr(watcher.arrivals, "poll", flaky)
    write_study(watcher.inbox.root / "a", template.copy(1))
    with caplog.at_level(logging.ERROR):
        for _ in range(12):
            watcher.guarded(watcher.step)
            clock.now += 0.25
    assert len(calls) == 12
    assert sum(r.exc_info is not None for r in caplog.records) == 1  # one traceback a minute
    assert (tmp_path / "out" / template.uid(template.study_uid, 1) / "result.json").exists()


# A watcher whose triage of one study (argv[1]) kills its own process, as a segfaulting codec or
# the OOM killer would; every other study is triaged normally.
DYING = """\
import os, signal, sys
from lvo_triage import pipeline
real = pipeline.examine
def dying(runtime, study, timer):
    if study.uid == sys.argv[1]:
        os.kill(os.getpid(), signal.SIGKILL)
    return real(runtime, study, timer)
pipeline.examine = dying
from lvo_triage.cli import main
sys.exit(main(sys.argv[2:]))
"""


def test_a_study_that_kills_the_watcher_cannot_make_it_loop(
    template: Template, tmp_path: Path, bundled_model: Path
) -> None:
    inbox, out = tmp_path / "in", tmp_path / "out"
    poison, clean = template.uid(template.study_uid, 1), template.uid(template.study_uid, 2)
    write_study(inbox / "poison", template.copy(1))
    command = [sys.executable, "-c", DYING, poison, "watch", str(inbox), "--out", str(out)]
    root = Path(__file__).resolve().parents[1]
    for _ in range(MAX_CRASHES):  # a service manager restarts it after each death
        died = subprocess.run(command, cwd=root, stderr=subprocess.DEVNULL, timeout=120)
        assert died.returncode == -signal.SIGKILL
    assert not (out / poison).exists()
    proc = subprocess.Popen(command, cwd=root, stderr=subprocess.DEVNULL)
    try:
        assert _wait_for((out / poison / "result.json").exists, 60), "the study was not set aside"
        write_study(tmp_path / "staging", template.copy(2))
        (tmp_path / "staging").rename(inbox / "clean")
        assert _wait_for((out / clean / "result.json").exists, 60), "the watcher did not go on"
        assert proc.poll() is None
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    assert _result(out, poison)["status"] == "error"
    assert "stopped 2 times" in str(_result(out, poison)["reason"])
    assert _result(out, clean)["status"] == "ok"
    kept = inbox / ".quarantine" / safe_name(poison)
    assert len(list(kept.iterdir())) == len(template.files)
