"""Slow: a full-resolution phantom (512x512, ~300 slices) through the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lvo_triage.synth import sample_spec, write_study
from tests.test_cli import STAGES, lvo_triage


@pytest.mark.slow
def test_full_resolution_left_m1_is_flagged(tmp_path: Path, bundled_model: Path) -> None:
    spec = sample_spec(9_500_001, case_id="full", lvo=True, side="left", site="M1")
    folder = write_study(spec, tmp_path / "study")
    proc = lvo_triage("run", folder, "--json", "--out", tmp_path / "out")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["status"] == "ok"
    assert doc["series_considered"][0]["instances"] >= 150
    assert set(doc["timings_ms"]) >= STAGES
    assert (doc["priority"], doc["side"]) == ("high", "left")
