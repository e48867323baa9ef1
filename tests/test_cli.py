"""End to end through the installed command line, as a PACS integrator would call it."""

from __future__ import annotations

import json
import os
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


def _one_error_line(proc: subprocess.CompletedProcess[str], command: str = "run") -> str:
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith(f"lvo-triage {command}: error: ")
    return line


def test_a_wrong_type_in_the_config_exits_2_naming_the_key(tmp_path: Path) -> None:
    cfg = tmp_path / "site.yaml"
    cfg.write_text('model:\n  threshold: "0.5"\n')
    line = _one_error_line(lvo_triage("run", tmp_path, "--config", cfg))
    assert 'model.threshold must be a number or null, got "0.5" (a string)' in line


def test_a_missing_model_file_exits_2_naming_the_path(tmp_path: Path) -> None:
    cfg = tmp_path / "site.yaml"
    cfg.write_text("model:\n  path: models/not-there.onnx\n")
    out = tmp_path / "out"
    line = _one_error_line(lvo_triage("run", tmp_path, "--config", cfg, "--out", out))
    assert repr(str(tmp_path / "models" / "not-there.onnx")) in line
    assert "not found" in line and "model.path" in line


def test_an_unloadable_model_file_exits_2(tmp_path: Path) -> None:
    model = tmp_path / "m.onnx"
    model.write_bytes(b"not an onnx model")
    cfg = tmp_path / "site.yaml"
    cfg.write_text("model:\n  path: m.onnx\n")
    line = _one_error_line(lvo_triage("run", tmp_path, "--config", cfg))
    assert str(model.with_suffix(".json")) in line  # where its missing model card belongs


def _one_case_dataset(root: Path) -> None:
    """A labelled dataset bench accepts (one case, its folder empty) and run reads as a folder."""
    (root / "labels.csv").write_text("case_id,lvo\na,1\n")
    (root / "a").mkdir()


@pytest.mark.parametrize("command", ["run", "bench"])
def test_out_naming_a_file_exits_2_before_any_work(tmp_path: Path, command: str) -> None:
    _one_case_dataset(tmp_path)
    taken = tmp_path / "taken.txt"
    taken.write_text("a file")
    line = _one_error_line(lvo_triage(command, tmp_path, "--out", taken), command)
    assert f"--out {str(taken)!r} is a file" in line
    under_a_file = taken / "out"
    line = _one_error_line(lvo_triage(command, tmp_path, "--out", under_a_file), command)
    assert f"--out {str(under_a_file)!r} cannot be created" in line


@pytest.mark.parametrize("command", ["run", "bench"])
def test_out_that_is_not_writable_exits_2_before_any_work(tmp_path: Path, command: str) -> None:
    if os.geteuid() == 0:  # root writes through a folder's mode: take one the kernel refuses
        out = Path("/proc")
        if not out.is_dir():
            pytest.skip("running as root without /proc: no folder root cannot write into")
    else:
        out = tmp_path / "read-only"
        out.mkdir()
        out.chmod(0o500)
    _one_case_dataset(tmp_path)
    try:
        line = _one_error_line(lvo_triage(command, tmp_path, "--out", out), command)
    finally:
        if out != Path("/proc"):
            out.chmod(0o700)
    assert f"--out {str(out)!r} is not writable" in line
    if out != Path("/proc"):
        assert not list(out.iterdir())  # the write probe left nothing behind


def test_run_prints_no_third_party_warnings(fast_study: Path, bundled_model: Path) -> None:
    """MONAI's, torch's and Ray's notes (deprecations, an absent nvImageCodec) are not the
    user's to act on: `run` keeps them off stderr, even under PYTHONWARNINGS=always."""
    env = {**os.environ, "PYTHONWARNINGS": "always"}
    cmd = [sys.executable, "-m", "lvo_triage.cli", "run", str(fast_study)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env, check=False)
    assert proc.returncode == 0, proc.stderr
    noisy = [x for x in proc.stderr.splitlines() if "Warning" in x or "nvImageCodec" in x]
    assert not noisy, proc.stderr


NOISE = """
import logging, warnings
from lvo_triage.cli import silence_third_party
if QUIET:
    silence_third_party()
from monai.data.nvimgcodec_pydicom_plugin import register_as_decoder_plugin
register_as_decoder_plugin()  # logs "nvImageCodec is not available" where it is absent
warnings.warn_explicit("old_arg is deprecated", FutureWarning, "x.py", 1, module="monai.x")
warnings.warn_explicit("from a caller", DeprecationWarning, "y.py", 1, module="lvo_triage.y")
warnings.warn_explicit("a note", UserWarning, "z.py", 1, module="torch.z")
warnings.warn_explicit("ours", UserWarning, "w.py", 1, module="lvo_triage.w")
"""


def test_silence_third_party_drops_their_warnings_and_keeps_ours() -> None:
    def stderr(quiet: bool) -> str:
        code = f"QUIET = {quiet}\n{NOISE}"
        env = {**os.environ, "PYTHONWARNINGS": "always"}
        cmd = [sys.executable, "-c", code]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
        return proc.stderr

    loud = stderr(False)
    assert "FutureWarning" in loud and "DeprecationWarning" in loud and "a note" in loud
    quiet = stderr(True)
    assert "nvImageCodec" not in quiet
    assert "FutureWarning" not in quiet and "DeprecationWarning" not in quiet
    assert "a note" not in quiet
    assert "ours" in quiet  # lvo-triage's own warnings still show
