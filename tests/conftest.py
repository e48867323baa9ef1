"""Shared fixtures: synthetic DICOM studies written to tmp_path by the project's own phantom."""

from __future__ import annotations

from pathlib import Path

import pytest

from lvo_triage.config import DEFAULT_MODEL


@pytest.fixture(scope="session")
def fast_study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One small low-resolution phantom study with a left M1 occlusion."""
    from lvo_triage.synth import sample_spec, write_study

    out = tmp_path_factory.mktemp("fast_study")
    write_study(
        sample_spec(9_500_001, case_id="e2e", lvo=True, side="left", site="M1"), out, fast=True
    )
    return out


@pytest.fixture(scope="session")
def plain_study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The head of ``fast_study`` scanned without contrast (same geometry, arteries at brain HU)."""
    import dataclasses

    from lvo_triage.synth import sample_spec, write_study

    spec = sample_spec(9_500_001, case_id="e2e", lvo=True, side="left", site="M1")
    plain = dataclasses.replace(spec, artery_hu=spec.white_hu + 5.0)
    return write_study(plain, tmp_path_factory.mktemp("plain"), fast=True)


@pytest.fixture(scope="session")
def bundled_model() -> Path:
    if not DEFAULT_MODEL.is_file():
        pytest.fail(f"bundled model {DEFAULT_MODEL} missing: run scripts/train.py + export_onnx.py")
    return DEFAULT_MODEL
