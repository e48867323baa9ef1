"""The model card: what a model expects as input, its operating point and its held-out figures."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lvo_triage.errors import ModelError

NOT_FOR_CLINICAL_USE = (
    "NOT FOR CLINICAL USE: research model trained on synthetic CTA phantoms only; "
    "it has never been validated on patient data."
)


DOWNSAMPLE_MODES = ("area", "max")


@dataclass(frozen=True, kw_only=True)
class InputSpec:
    """The model grid: RAS-oriented, head-centred box of ``shape`` voxels of ``spacing_mm``."""

    shape: tuple[int, int, int]
    spacing_mm: float
    window_hu: tuple[float, float]
    foreground_hu: float = -500.0
    align_midline: bool = False  # the head's mid-sagittal plane moved to the grid's centre plane
    # How the acquisition shrinks to the grid: "area" averages; "max" averages to half the
    # spacing, then keeps the brightest of each 2x2x2 (thin arteries keep their contrast).
    downsample: str = "area"

    def __post_init__(self) -> None:
        if self.downsample not in DOWNSAMPLE_MODES:
            msg = f"downsample {self.downsample!r} must be one of {DOWNSAMPLE_MODES}"
            raise ValueError(msg)
        lo, hi = self.window_hu
        if not lo < hi:
            msg = f"window ({lo}, {hi}) must have lo < hi"
            raise ValueError(msg)
        if self.spacing_mm <= 0 or min(self.shape) < 8:
            msg = f"input grid {self.shape} at {self.spacing_mm} mm is not a usable model grid"
            raise ValueError(msg)

    def to_dict(self) -> dict[str, Any]:
        return {
            "shape": list(self.shape),
            "spacing_mm": self.spacing_mm,
            "window_hu": list(self.window_hu),
            "foreground_hu": self.foreground_hu,
            "align_midline": self.align_midline,
            "downsample": self.downsample,
            "axcodes": "RAS",
            "layout": "NCXYZ, float32 in [0, 1]",
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> InputSpec:
        return cls(
            shape=tuple(int(v) for v in d["shape"]),  # type: ignore[arg-type]
            spacing_mm=float(d["spacing_mm"]),
            window_hu=(float(d["window_hu"][0]), float(d["window_hu"][1])),
            foreground_hu=float(d.get("foreground_hu", -500.0)),
            align_midline=bool(d.get("align_midline", False)),
            downsample=str(d.get("downsample", "area")),
        )


DEFAULT_INPUT = InputSpec(shape=(88, 104, 72), spacing_mm=2.0, window_hu=(-100.0, 600.0))


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def card_path(model_path: Path) -> Path:
    return model_path.with_suffix(".json")


@dataclass(frozen=True)
class ModelCard:
    name: str
    version: str
    sha256: str
    threshold: float
    input: InputSpec
    raw: dict[str, Any]

    @property
    def input_ranges(self) -> dict[str, tuple[float, float]]:
        """What the model's training studies measured (``input_ranges.py``): name: (low, high);
        empty for a card written before the ranges were measured."""
        ranges = self.raw.get("input_ranges") or {}
        return {
            name: (float(v[0]), float(v[1]))
            for name, v in ranges.get("ranges", {}).items()
            if isinstance(v, list | tuple) and len(v) == 2
        }

    @classmethod
    def load(cls, model_path: Path) -> ModelCard:
        path = card_path(model_path)
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            msg = (
                f"model card {str(path)!r} not found; export the model with "
                "scripts/export_onnx.py, which writes it beside the ONNX file"
            )
            raise ModelError(msg) from exc
        except json.JSONDecodeError as exc:
            msg = f"model card {str(path)!r} is not valid JSON: {exc}"
            raise ModelError(msg) from exc
        try:
            return cls(
                name=str(raw["name"]),
                version=str(raw["version"]),
                sha256=str(raw["sha256"]),
                threshold=float(raw["threshold"]),
                input=InputSpec.from_dict(raw["input"]),
                raw=raw,
            )
        except (KeyError, TypeError, ValueError) as exc:
            msg = f"model card {str(path)!r} lacks or garbles a field ({exc}); re-export the model"
            raise ModelError(msg) from exc
