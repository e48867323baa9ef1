"""Ctrl-C during `lvo-triage run`: the study in hand is finished, every finished result is kept
(printed and written under --out), and the command exits 130 without a traceback."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

STUDIES = 6
WAIT_S = 600  # only a bound on a hung command; nothing here is timed


@pytest.fixture(scope="module")
def six_studies(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from lvo_triage.synth import write_dataset

    return write_dataset(
        tmp_path_factory.mktemp("six"), n=STUDIES, seed=7, fast=True, progress=False
    )


def _comparable(doc: dict[str, Any]) -> dict[str, Any]:
    """A result without its timings: result.json is written before the emit stage ends."""
    return {k: v for k, v in doc.items() if k != "timings_ms"}


def test_ctrl_c_keeps_the_finished_results_and_exits_130(
    six_studies: Path, tmp_path: Path, bundled_model: Path
) -> None:
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "lvo_triage.cli", "run", str(six_studies), "--out", str(out)]
    with (tmp_path / "stderr.txt").open("w+") as stderr:
        proc = subprocess.Popen([*cmd, "--json"], stdout=subprocess.PIPE, stderr=stderr, text=True)
        watchdog = threading.Timer(WAIT_S, proc.kill)
        watchdog.start()
        try:
            assert proc.stdout is not None
            first = proc.stdout.readline()  # the first study is finished and printed
            assert first, "run ended before printing a result"
            proc.send_signal(signal.SIGINT)
            rest = proc.stdout.read()
            code = proc.wait()
        finally:
            watchdog.cancel()
        stderr.seek(0)
        err = stderr.read()
    assert code == 130, err
    assert "Traceback" not in err, err
    stopped = re.search(r"interrupted after (\d+) of (\d+) studies", err)
    assert stopped is not None, err
    done, found = int(stopped[1]), int(stopped[2])
    assert found == STUDIES
    assert 1 <= done < found
    printed = [json.loads(line) for line in (first + rest).splitlines()]
    assert len(printed) == done
    saved = [json.loads(p.read_text()) for p in sorted(out.glob("*/result.json"))]
    by_uid = {doc["study_instance_uid"]: _comparable(doc) for doc in saved}
    assert by_uid == {doc["study_instance_uid"]: _comparable(doc) for doc in printed}
    assert len((out / "timing.jsonl").read_text().splitlines()) == done
