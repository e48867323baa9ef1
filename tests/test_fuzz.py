"""Damaged files never stop lvo-triage (issue 13): seeded mutations of phantom studies
(``tests/fuzz_dicom.py``: truncation, flipped bytes in the meta group, the data set and the
pixels, wrong VRs and lengths, undefined-length sequences, a transfer syntax that does not match
the pixel data, lying dimensions, NaN and degenerate geometry, junk in place of a file) through
``run`` in-process and through a live ``watch``.

Every damaged study ends with a result (``ok`` or ``not_analyzable`` with a reason), never
``error``, a traceback or an exit status other than 0; the undamaged study in the same folder
gets its normal result; the watcher stays up and triages a clean study afterwards. The fast
tests run 100 studies through ``run`` and 20 through ``watch``; the slow ones 2,000 and 200.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from lvo_triage.cli import main
from lvo_triage.config import Settings
from lvo_triage.pipeline import Runtime, triage_path
from lvo_triage.result import Status
from tests.fuzz_dicom import Template, damaged_study, write_study

PER_FOLDER = 20  # damaged studies in one folder, beside one undamaged copy
HANG_S = 600  # one folder takes about 10 s: ten minutes is a hang
FINE = {"ok", "not_analyzable"}


@pytest.fixture(autouse=True)
def _alarm_fails_the_test() -> Iterator[None]:
    def hang(signum: int, frame: object) -> None:
        raise TimeoutError(f"one folder took over {HANG_S} s: a hang")

    previous = signal.signal(signal.SIGALRM, hang)
    yield
    signal.signal(signal.SIGALRM, previous)


@pytest.fixture(scope="module")
def template(fast_study: Path) -> Template:
    return Template.from_folder(fast_study)


@pytest.fixture(scope="module")
def reference(fast_study: Path, bundled_model: Path) -> float:
    """The undamaged study's probability."""
    (result,) = triage_path(Runtime.create(Settings()), fast_study)
    assert result.status is Status.OK and result.probability is not None
    return result.probability


def _write_folder(
    template: Template, folder: Path, seed: int, n: int
) -> tuple[dict[str, list[str]], str]:
    """``n`` damaged copies of ``template`` and one undamaged copy in ``folder``; the damaged
    studies' UIDs with the mutations each got, and the undamaged one's UID."""
    rng = np.random.default_rng(seed)
    damaged: dict[str, list[str]] = {}
    for j in range(n):
        k = seed * 100 + j + 1
        files, applied = damaged_study(template, k, rng)
        write_study(folder / f"s{j:03d}", files)
        damaged[template.uid(template.study_uid, k)] = applied
    clean = seed * 100
    write_study(folder / "clean", template.copy(clean))
    return damaged, template.uid(template.study_uid, clean)


def _fuzz_run(
    template: Template,
    reference: float,
    tmp_path: Path,
    seeds: range,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> Counter[str]:
    """Each seed: a folder of damaged studies and an undamaged one through ``lvo-triage run
    --json`` in this process; the outcomes of the damaged studies."""
    outcomes: Counter[str] = Counter()
    for seed in seeds:
        folder = tmp_path / f"fuzz{seed}"
        damaged, clean = _write_folder(template, folder, seed, PER_FOLDER)
        caplog.clear()
        signal.alarm(HANG_S)  # a hang fails the test instead of stalling CI
        try:
            rc = main(["run", str(folder), "--json"])
        finally:
            signal.alarm(0)
        lines = capsys.readouterr().out.splitlines()
        results = [json.loads(line) for line in lines]
        by_uid = Counter(r["study_instance_uid"] for r in results)
        assert rc == 0, (seed, [r["reason"] for r in results if r["status"] not in FINE])
        assert {r["status"] for r in results} <= FINE, seed
        assert all(r["reason"] for r in results if r["status"] != "ok")
        for uid in [*damaged, clean]:  # every study of the folder: exactly one result
            assert by_uid[uid] == 1, (seed, damaged.get(uid, "the undamaged study"))
        (normal,) = [r for r in results if r["study_instance_uid"] == clean]
        assert normal["status"] == "ok" and normal["probability"] == pytest.approx(reference)
        raised = [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
        assert not raised, (seed, [r.getMessage() for r in raised])
        for r in results:
            if r["study_instance_uid"] in damaged:
                outcomes[r["status"]] += 1
        for path in sorted(folder.rglob("*"), reverse=True):  # keep the disk small
            path.rmdir() if path.is_dir() else path.unlink()
    return outcomes


@pytest.mark.parametrize(
    "seeds",
    [
        pytest.param(range(1, 6), id="100-studies"),
        pytest.param(range(101, 201), id="2000-studies", marks=pytest.mark.slow),
    ],
)
def test_damaged_studies_through_run(
    template: Template,
    reference: float,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    seeds: range,
) -> None:
    outcomes = _fuzz_run(template, reference, tmp_path, seeds, capsys, caplog)
    assert sum(outcomes.values()) == len(seeds) * PER_FOLDER
    with capsys.disabled():  # the figure for the README, in the test log
        print(f"\n{len(seeds) * PER_FOLDER} damaged studies through run: {dict(outcomes)}")
    # a few damaged files rarely cost the study: the rest of the series is still analysed
    assert outcomes["ok"] >= 0.8 * sum(outcomes.values()), outcomes


WATCH_CONFIG = """\
watch:
  quiet_period_s: 2.0
  stable_s: 0.5
  unreadable_after_s: 1.0
"""


def _start_watch(inbox: Path, out: Path, config: Path, log: Path) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "lvo_triage.cli", "watch", str(inbox), "--out", str(out)]
    with log.open("ab") as stderr:
        return subprocess.Popen([*cmd, "--config", str(config)], stderr=stderr)


def _wait_for(condition: object, seconds: float, proc: subprocess.Popen[bytes]) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        assert proc.poll() is None, "the watcher died"
        time.sleep(0.2)
    return False


def _fuzz_watch(
    template: Template, reference: float, tmp_path: Path, seeds: range, timeout_s: float
) -> Counter[str]:
    """Each seed's folder of damaged studies (and an undamaged one) moved into the inbox of one
    live ``lvo-triage watch``; then one more undamaged study. The outcomes of the damaged."""
    from lvo_triage.service.inbox import Inbox

    inbox, out, staging = tmp_path / "in", tmp_path / "out", tmp_path / "staging"
    config, log = tmp_path / "watch.yaml", tmp_path / "watch.log"
    config.write_text(WATCH_CONFIG)
    proc = _start_watch(inbox, out, config, log)
    damaged: dict[str, list[str]] = {}
    clean: list[str] = []
    try:
        for seed in seeds:
            more, normal = _write_folder(template, staging / f"f{seed}", seed, PER_FOLDER)
            damaged.update(more)
            clean.append(normal)
        inbox.mkdir(parents=True, exist_ok=True)
        for folder in sorted(staging.iterdir()):
            os.rename(folder, inbox / folder.name)  # each folder appears whole

        def all_done() -> bool:
            answered = all((out / uid / "result.json").exists() for uid in [*damaged, *clean])
            return answered and not Inbox(inbox).arrivals()

        assert _wait_for(all_done, timeout_s, proc), "studies left without a result"
        last = 999_999
        write_study(staging / "last", template.copy(last))
        os.rename(staging / "last", inbox / "last")
        clean.append(template.uid(template.study_uid, last))
        assert _wait_for(lambda: (out / clean[-1] / "result.json").exists(), 120, proc)
    finally:
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=60)
    assert rc == 0
    text = log.read_text(errors="replace")
    assert "Traceback" not in text and " ERROR " not in text, text[-3000:]
    outcomes: Counter[str] = Counter()
    for path in out.glob("*/result.json"):
        result = json.loads(path.read_text())
        assert result["status"] in FINE, result["reason"]
        if result["study_instance_uid"] in damaged:
            outcomes[result["status"]] += 1
    for uid in clean:
        result = json.loads((out / uid / "result.json").read_text())
        assert result["status"] == "ok" and result["probability"] == pytest.approx(reference)
    quarantined = [p for p in (inbox / ".quarantine").iterdir() if p.suffix != ".txt"]
    for path in quarantined:  # each unreadable file set aside says why
        assert path.with_name(path.name + ".reason.txt").exists()
    assert not list((inbox / ".processing").iterdir())
    return outcomes


@pytest.mark.parametrize(
    "seeds",
    [
        pytest.param(range(11, 12), id="20-studies"),
        pytest.param(range(301, 311), id="200-studies", marks=pytest.mark.slow),
    ],
)
def test_damaged_studies_through_a_live_watch(
    template: Template,
    reference: float,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    seeds: range,
) -> None:
    outcomes = _fuzz_watch(
        template, reference, tmp_path, seeds, timeout_s=max(240, 120 * len(seeds))
    )
    assert sum(outcomes.values()) == len(seeds) * PER_FOLDER
    with capsys.disabled():
        print(f"\n{len(seeds) * PER_FOLDER} damaged studies through watch: {dict(outcomes)}")
