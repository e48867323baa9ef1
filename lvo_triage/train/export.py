"""Export a training run to ONNX with its model card, and check ONNX against torch."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import torch

from lvo_triage.model_card import NOT_FOR_CLINICAL_USE, InputSpec, card_path, sha256_of
from lvo_triage.train.network import SLAB, SLAB_STEP, ExportWrapper, LvoNet

log = logging.getLogger(__name__)
OPSET = 18

PHANTOM_MODULES = {"a": "lvo_triage.synth", "b": "lvo_triage.synth_b, phantom family B"}


def load_run(run: Path) -> tuple[ExportWrapper, dict[str, Any]]:
    summary = json.loads((run / "training.json").read_text())
    ckpt = torch.load(run / "best.pt")
    net = LvoNet(
        depth=int(ckpt["depth"]),
        width=int(ckpt["width"]),
        slab=int(ckpt.get("slab", SLAB)),  # runs before the slab setting: the first geometry
        slab_step=int(ckpt.get("slab_step", SLAB_STEP)),
    )
    net.load_state_dict(ckpt["state_dict"])  # a run without a site head fails here: retrain
    wrapper = ExportWrapper(net, temperature=float(summary["temperature"]))
    wrapper.eval()
    return wrapper, summary


def export_onnx(wrapper: ExportWrapper, spec: InputSpec, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    example = torch.zeros((1, 1, *spec.shape), dtype=torch.float32)
    program = torch.onnx.export(
        wrapper,
        (example,),
        input_names=["image"],
        output_names=["p_lvo", "p_left", "p_site"],
        opset_version=OPSET,
        dynamo=True,
        external_data=False,
    )
    assert program is not None
    program.save(str(path), external_data=False)


def parity(wrapper: ExportWrapper, path: Path, inputs: np.ndarray) -> float:
    """Largest absolute difference between torch and ONNX Runtime outputs over ``inputs``."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    worst = 0.0
    with torch.no_grad():
        for x in inputs:
            batch = x[None].astype(np.float32)
            ref = [t.numpy() for t in wrapper(torch.from_numpy(batch))]
            got = session.run(None, {"image": batch})
            worst = max(worst, *(float(np.abs(r - g).max()) for r, g in zip(ref, got, strict=True)))
    return worst


CARD_KEY = "lvo_triage_model_card"


def embed_metadata(path: Path, card: dict[str, Any]) -> None:
    """Store the model card (all but the fields that describe the file itself) in the ONNX file's
    metadata, so that a copy without its JSON still says what it is and that it is not for
    clinical use."""
    import onnx

    model = onnx.load(str(path))
    own = {k: v for k, v in card.items() if k not in ("sha256", "size_bytes", "metrics")}
    entries = {
        CARD_KEY: json.dumps(own, sort_keys=True),
        "intended_use": NOT_FOR_CLINICAL_USE,
        "name": str(card["name"]),
        "version": str(card["version"]),
    }
    del model.metadata_props[:]
    for key, value in entries.items():
        prop = model.metadata_props.add()
        prop.key, prop.value = key, value
    model.doc_string = f"{card['name']} {card['version']}: {NOT_FOR_CLINICAL_USE}"
    onnx.save(model, str(path))


def read_metadata(path: Path) -> dict[str, str]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return dict(session.get_modelmeta().custom_metadata_map)


def card_fields(summary: dict[str, Any], *, name: str, version: str) -> dict[str, Any]:
    """The model card of a training run, without the fields of the exported file."""
    at = summary.get("validation_at_threshold") or {}
    return {
        "name": name,
        "version": version,
        "intended_use": NOT_FOR_CLINICAL_USE,
        "exported_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "input": summary["input"],
        "outputs": {
            "p_lvo": "calibrated probability of an ICA-T/M1/M2 occlusion (temperature scaled)",
            "p_left": "probability that the occlusion is on the patient's left, given one",
            "p_site": "probabilities of the sites ICA-T, M1, M2 (in that order), given an LVO",
        },
        "threshold": summary["threshold"],
        "operating_point": {
            "chosen_for": f"sensitivity >= {summary['target_sensitivity']} on validation data",
            "validation_sensitivity": at.get("sensitivity"),
            "expected_specificity": at.get("specificity"),
        },
        "temperature": summary["temperature"],
        "training_data": {
            "description": (
                f"synthetic CTA phantoms ({PHANTOM_MODULES[summary.get('phantom_family', 'a')]}), "
                "rendered at 1 mm and preprocessed by the inference transforms; balanced LVO / "
                "no LVO; sites ICA-T, M1, M2"
            ),
            "n_train": summary["n_train"],
            "n_val": summary["n_val"],
            "train_seeds": summary["train_seeds"],
            "val_seeds": summary["val_seeds"],
            "training": summary["config"],
            "validation_auc": summary["best_val_auc"],
            "made_by": summary.get("made_by"),
        },
        "metrics": {},
    }


def write_card(path: Path, summary: dict[str, Any], *, name: str, version: str) -> dict[str, Any]:
    """Embed the card in ``path``'s metadata, then write it beside the file with the file's
    sha256 and size (taken after embedding)."""
    card = card_fields(summary, name=name, version=version)
    card["file"] = path.name
    embed_metadata(path, card)
    card.update(sha256=sha256_of(path), size_bytes=path.stat().st_size)
    card_path(path).write_text(json.dumps(card, indent=2) + "\n")
    return card


def quantize_int8(src: Path, dst: Path, calibration: np.ndarray) -> None:
    """Static int8 quantisation (QDQ, per-channel weights) calibrated on ``calibration`` inputs
    (N, 1, X, Y, Z); the caller measures what it costs in accuracy."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class _Reader(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self) -> None:
            self._items = iter(calibration)

        def get_next(self) -> dict[str, np.ndarray] | None:
            x = next(self._items, None)
            return None if x is None else {"image": x[None].astype(np.float32)}

    quantize_static(
        str(src),
        str(dst),
        _Reader(),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        weight_type=QuantType.QInt8,
        activation_type=QuantType.QUInt8,
    )


def onnx_outputs(path: Path, inputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``p_lvo`` and ``p_left`` of an ONNX model over ``inputs`` (N, 1, X, Y, Z)."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    rows = [session.run(None, {"image": x[None].astype(np.float32)}) for x in inputs]
    return (
        np.array([float(np.ravel(r[0])[0]) for r in rows]),
        np.array([float(np.ravel(r[1])[0]) for r in rows]),
    )
