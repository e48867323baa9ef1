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


WRONG_TYPES = [
    ('model:\n  threshold: "0.5"\n', 'model.threshold must be a number or null, got "0.5"'),
    ("listen:\n  port: '104'\n", 'listen.port must be a whole number, got "104" (a string)'),
    ("listen:\n  port: 104.5\n", "listen.port must be a whole number, got 104.5"),
    ("selection:\n  min_arterial_hu: on\n", "selection.min_arterial_hu must be a number, got true"),
    ("model:\n  path: 5\n", "model.path must be a file path (a string), got 5 (a whole number)"),
    ("serve:\n  webhook_url: [a]\n", 'serve.webhook_url must be a string or null, got ["a"]'),
    ("watch:\n  events: 'no'\n", 'watch.events must be true or false, got "no" (a string)'),
    ("listen:\n  allowed_ae_titles: PACS\n", 'listen.allowed_ae_titles must be a list (of'),
    ("model: [1, 2]\n", "model must be a mapping of settings (key: value lines), got [1, 2]"),
    ("- 1\n", "the config file must be a mapping of settings"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "message"), WRONG_TYPES)
def test_a_wrong_type_names_the_key_the_value_and_what_is_expected(
    tmp_path: Path, text: str, message: str
) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_settings(cfg)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_partial_config_keeps_the_defaults_of_every_other_key(tmp_path: Path) -> None:
    """A site copies a few lines of configs/default.yaml and changes them: enough."""
    cfg = tmp_path / "site.yaml"
    cfg.write_text(
        "model:\n  threshold: 0.3\n"
        "listen:\n  port: 4242\n"
        "watch:\n  # every key commented out: the section's defaults\n"
    )
    settings = load_settings(cfg)
    defaults = Settings()
    assert settings.model.threshold == 0.3
    assert settings.model.path == defaults.model.path  # not made relative to the site file
    assert settings.listen.port == 4242
    assert settings.listen.ae_title == defaults.listen.ae_title
    assert settings.watch == defaults.watch
    assert (settings.selection, settings.limits, settings.serve) == (
        defaults.selection,
        defaults.limits,
        defaults.serve,
    )


def test_whole_numbers_are_taken_for_numbers_and_as_ports(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("model:\n  threshold: 1\nlisten:\n  port: 104.0\n")
    settings = load_settings(cfg)
    assert settings.model.threshold == 1.0 and isinstance(settings.model.threshold, float)
    assert settings.listen.port == 104 and isinstance(settings.listen.port, int)
