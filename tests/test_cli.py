"""End to end through the installed command line, as a PACS integrator would call it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from lvo_triage.result import SCHEMA

STAGES = {"discover", "load", "preprocess", "inference", "postprocess", "emit", "total"}
FIELDS = {
    "schema", "status", "reason", "study_instance_uid", "series_instance_uid", "accession_number",
    "lvo_suspected", "priority", "probability", "threshold", "side", "model", "timings_ms",
    "series_considered", "warnings", "started_at", "finished_at", "vessel_asymmetry",
}  # fmt: skip
EXTENSIONS = {"site", "key_image", "supersedes"}  # additive to the v1 document (docs/contract.md)


def lvo_triage(*args: str | Path) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "lvo_triage.cli", *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)


def test_run_json_is_contract_conformant(
    fast_study: Path, tmp_path: Path, bundled_model: Path
) -> None:
    out = tmp_path / "out"
    proc = lvo_triage("run", fast_study, "--out", out, "--json")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1
    doc = json.loads(lines[0])
    assert set(doc) == FIELDS | EXTENSIONS
    assert doc["schema"] == SCHEMA
    assert doc["status"] == "ok", doc["reason"]
    assert doc["priority"] in {"high", "routine"}
    assert 0.0 <= doc["probability"] <= 1.0
    assert doc["lvo_suspected"] == (doc["probability"] >= doc["threshold"])
    assert doc["side"] in ({"left", "right"} if doc["lvo_suspected"] else {None})
    assert set(doc["timings_ms"]) >= STAGES
    assert doc["model"]["provider"] == "CPUExecutionProvider"
    assert "NOT FOR CLINICAL USE" in doc["model"]["intended_use"]
    assert [s["selected"] for s in doc["series_considered"]] == [True]
    saved = json.loads((out / doc["study_instance_uid"] / "result.json").read_text())
    assert saved["probability"] == doc["probability"]
    assert doc["key_image"] == "key_image.png"  # beside result.json, for a phone
    from PIL import Image

    with Image.open(out / doc["study_instance_uid"] / doc["key_image"]) as image:
        assert image.format == "PNG" and image.mode == "RGB"
    timing = [json.loads(x) for x in (out / "timing.jsonl").read_text().splitlines()]
    assert timing[0]["study_instance_uid"] == doc["study_instance_uid"]
    assert set(timing[0]["timings_ms"]) >= STAGES
    second = doc["vessel_asymmetry"]  # the non-learned second opinion: left M1 occluded
    assert second["hemisphere"] == "left" and 0.0 < second["score"] <= 1.0
    assert second["left_ml"] < second["right_ml"]
    log_text = proc.stderr + (out / "timing.jsonl").read_text()
    assert "PHANTOM" not in log_text  # no patient name in logs or the timing log


def test_folder_without_dicom_gives_one_not_analyzable(tmp_path: Path, bundled_model: Path) -> None:
    (tmp_path / "junk.txt").write_text("hello")
    proc = lvo_triage("run", tmp_path, "--json")
    assert proc.returncode == 0, proc.stderr
    (line,) = proc.stdout.strip().splitlines()
    doc = json.loads(line)
    assert doc["status"] == "not_analyzable"
    assert doc["priority"] == "unknown"
    assert doc["lvo_suspected"] is None and doc["probability"] is None
    assert "no DICOM study" in doc["reason"]


def test_human_output_says_not_for_clinical_use(fast_study: Path, bundled_model: Path) -> None:
    proc = lvo_triage("run", fast_study)
    assert proc.returncode == 0, proc.stderr
    assert "NOT FOR CLINICAL USE" in proc.stdout
    assert "priority" in proc.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("run", "/no/such/folder"), "does not exist"),
        (("run", ".", "--config", "/no.yaml"), "not found"),
    ],
)
def test_usage_errors_exit_2(args: tuple[str, ...], message: str) -> None:
    proc = lvo_triage(*args)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert proc.stdout == ""
