"""Runtime assets shipped with the package: the bundled model, its card and the default settings.

In the repository they live in ``models/`` and ``configs/``; ``lvo_triage/models`` and
``lvo_triage/configs`` are symbolic links to those folders, and ``pyproject.toml``'s package-data
copies the three files below into a wheel. The same ``importlib.resources`` lookup therefore
finds them in a checkout (editable install) and in an installed wheel, outside the repository.
Only these three files are shipped: other models dropped in ``models/`` are not.
"""

from __future__ import annotations

import atexit
from contextlib import ExitStack
from importlib.resources import as_file, files
from pathlib import Path

PACKAGE = "lvo_triage"
MODEL = ("models", "lvo-detector.onnx")
MODEL_CARD = ("models", "lvo-detector.json")
DEFAULT_CONFIG = ("configs", "default.yaml")

_extracted = ExitStack()  # files copied out of a zipped install, removed at exit
atexit.register(_extracted.close)


def asset_path(*parts: str) -> Path:
    """The resolved file-system path of the package resource ``parts`` (relative to the package).

    A package installed as files (pip's way, editable or not) gives the file itself, whether or
    not it exists (whoever opens it says what is missing); a zipped one gives a temporary copy
    that lives until the interpreter exits.
    """
    resource = files(PACKAGE)
    for part in parts:
        resource = resource / part
    if isinstance(resource, Path):
        return resource.resolve()
    return _extracted.enter_context(as_file(resource))


def bundled_model() -> Path:
    """The bundled ONNX detector (trained on synthetic phantoms, NOT FOR CLINICAL USE)."""
    return asset_path(*MODEL)


def bundled_model_card() -> Path:
    """The bundled detector's model card (the JSON file beside the model)."""
    return asset_path(*MODEL_CARD)


def default_config() -> Path:
    """The default settings file (the same values as :class:`lvo_triage.config.Settings`)."""
    return asset_path(*DEFAULT_CONFIG)
