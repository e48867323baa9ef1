from pathlib import Path

import pytest

from lvo_triage.config import REPO_ROOT, Settings, load_settings
from lvo_triage.errors import ConfigError


def test_default_yaml_equals_built_in_defaults() -> None:
    assert load_settings(REPO_ROOT / "configs" / "default.yaml") == Settings()


def test_unknown_key_is_refused_with_its_name(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("model:\n  provder: cpu\n")
    with pytest.raises(ConfigError, match=r"model\.provder"):
        load_settings(cfg)


@pytest.mark.parametrize(
    "text",
    ["model:\n  provider: tpu\n", "selection:\n  max_slice_spacing_mm: -1\n", "model: [1, 2]\n"],
)
def test_bad_values_are_config_errors(tmp_path: Path, text: str) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(text)
    with pytest.raises(ConfigError):
        load_settings(cfg)


def test_relative_model_path_is_relative_to_the_config(tmp_path: Path) -> None:
    cfg = tmp_path / "sub" / "c.yaml"
    cfg.parent.mkdir()
    cfg.write_text("model:\n  path: ../m.onnx\n")
    assert load_settings(cfg).model.path == (tmp_path / "m.onnx").resolve()


def test_missing_config_file_says_so(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "nope.yaml")
