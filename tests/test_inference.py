"""The ONNX session: provider choice, model/card consistency, the contract's model block."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

from lvo_triage.config import ModelSettings
from lvo_triage.errors import ModelError
from lvo_triage.inference import Detector, choose_providers


def test_cuda_request_without_cuda_falls_back_loudly(caplog: pytest.LogCaptureFixture) -> None:
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this machine has CUDA")
    with caplog.at_level(logging.WARNING):
        assert choose_providers("cuda") == ["CPUExecutionProvider"]
    assert "CUDA" in caplog.text and "CPU" in caplog.text


def test_bundled_model_predicts_probabilities(bundled_model: Path) -> None:
    detector = Detector(settings=ModelSettings(path=bundled_model))
    x = np.zeros((1, 1, *detector.card.input.shape), dtype=np.float32)
    p = detector.predict(x)
    assert 0.0 <= p.p_lvo <= 1.0 and 0.0 <= p.p_left <= 1.0
    assert detector.info.sha256 == detector.card.sha256
    assert "NOT FOR CLINICAL USE" in detector.card.raw["intended_use"]
    with pytest.raises(ValueError, match="expected"):
        detector.predict(np.zeros((1, 1, 8, 8, 8), dtype=np.float32))


def test_model_and_card_that_do_not_match_are_refused(bundled_model: Path, tmp_path: Path) -> None:
    model = tmp_path / bundled_model.name
    shutil.copy(bundled_model, model)
    card = json.loads(bundled_model.with_suffix(".json").read_text())
    card["sha256"] = "0" * 64
    model.with_suffix(".json").write_text(json.dumps(card))
    with pytest.raises(ModelError, match="do not belong together"):
        Detector(settings=ModelSettings(path=model))


def test_missing_model_says_how_to_get_one(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"export_onnx\.py"):
        Detector(settings=ModelSettings(path=tmp_path / "none.onnx"))
