"""ONNX Runtime session for the detector: providers, sha256 check, warm-up."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnxruntime as ort

from lvo_triage.config import ModelSettings
from lvo_triage.errors import ModelError
from lvo_triage.model_card import ModelCard, sha256_of
from lvo_triage.result import ModelInfo

log = logging.getLogger(__name__)

SITES = ("ICA-T", "M1", "M2")  # the order of the model's p_site output
PROVIDER_NAMES = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}


@dataclass(frozen=True)
class Prediction:
    """Model outputs: probability of an LVO and, given one, probability that it is left-sided
    and the probabilities of the sites (empty for a model without a site output)."""

    p_lvo: float
    p_left: float
    p_site: dict[str, float] = field(default_factory=dict)

    @property
    def site(self) -> str | None:
        """The most likely site, when the model has a site output."""
        return max(self.p_site, key=lambda k: self.p_site[k]) if self.p_site else None


def choose_providers(requested: str) -> list[str]:
    """The ONNX Runtime providers for ``requested`` (cpu/cuda); CUDA falls back to CPU loudly."""
    available = ort.get_available_providers()
    if requested == "cuda":
        if PROVIDER_NAMES["cuda"] in available and hasattr(ort, "preload_dlls"):
            # onnxruntime-gpu >= 1.21 finds CUDA and cuDNN in torch's or NVIDIA's pip packages
            try:
                ort.preload_dlls()
            except Exception as exc:  # missing libraries are reported again by the session
                log.warning("could not preload the CUDA libraries: %s", exc)
        if PROVIDER_NAMES["cuda"] in available:
            return [PROVIDER_NAMES["cuda"], PROVIDER_NAMES["cpu"]]
        log.warning(
            "CUDA was requested but this onnxruntime has no CUDAExecutionProvider "
            "(install the 'gpu' extra on a machine with an NVIDIA GPU); running on CPU"
        )
    return [PROVIDER_NAMES["cpu"]]


class Detector:
    """Loads the ONNX model once; :meth:`predict` runs one preprocessed study."""

    def __init__(self, *, settings: ModelSettings) -> None:
        path = Path(settings.path)
        if not path.is_file():
            msg = (
                f"model file {str(path)!r} not found; set model.path in your config, or train and "
                "export one with scripts/train.py and scripts/export_onnx.py"
            )
            raise ModelError(msg)
        self.card = ModelCard.load(path)
        self.sha256 = sha256_of(path)
        if self.sha256 != self.card.sha256:
            msg = (
                f"{path.name} has sha256 {self.sha256[:12]}…, but its model card says "
                f"{self.card.sha256[:12]}…: the ONNX file and its card do not belong together"
            )
            raise ModelError(msg)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if settings.intra_op_threads:
            options.intra_op_num_threads = settings.intra_op_threads
        try:
            self.session = ort.InferenceSession(
                str(path), sess_options=options, providers=choose_providers(settings.provider)
            )
        except Exception as exc:  # onnxruntime raises its own untyped errors
            msg = f"ONNX Runtime cannot load {str(path)!r}: {exc}"
            raise ModelError(msg) from exc
        self.provider = self.session.get_providers()[0]
        self.threshold = (
            settings.threshold if settings.threshold is not None else self.card.threshold
        )
        self._input_name = self.session.get_inputs()[0].name
        self.predict(np.zeros((1, 1, *self.card.input.shape), dtype=np.float32))  # warm-up

    @property
    def info(self) -> ModelInfo:
        return ModelInfo(
            name=self.card.name,
            version=self.card.version,
            sha256=self.sha256,
            provider=self.provider,
        )

    def predict(self, batch: np.ndarray) -> Prediction:
        expected = (1, 1, *self.card.input.shape)
        if batch.shape != expected:
            msg = f"model input has shape {batch.shape}, expected {expected}"
            raise ValueError(msg)
        outputs = self.session.run(None, {self._input_name: batch})
        names = [o.name for o in self.session.get_outputs()]
        by_name = dict(zip(names, outputs, strict=True))
        sites = np.ravel(by_name["p_site"]).tolist() if "p_site" in by_name else []
        return Prediction(
            p_lvo=float(np.ravel(by_name["p_lvo"])[0]),
            p_left=float(np.ravel(by_name["p_left"])[0]),
            p_site=dict(zip(SITES, (float(v) for v in sites), strict=False)),
        )
