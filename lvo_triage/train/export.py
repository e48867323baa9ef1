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
from lvo_triage.train.network import ExportWrapper, LvoNet

log = logging.getLogger(__name__)
OPSET = 18


def load_run(run: Path) -> tuple[ExportWrapper, dict[str, Any]]:
    summary = json.loads((run / "training.json").read_text())
    ckpt = torch.load(run / "best.pt")
    net = LvoNet(depth=int(ckpt["depth"]), width=int(ckpt["width"]))
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


def write_card(path: Path, summary: dict[str, Any], *, name: str, version: str) -> dict[str, Any]:
    card = {
        "name": name,
        "version": version,
        "intended_use": NOT_FOR_CLINICAL_USE,
        "sha256": sha256_of(path),
        "file": path.name,
        "size_bytes": path.stat().st_size,
        "exported_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "input": summary["input"],
        "outputs": {
            "p_lvo": "calibrated probability of an ICA-T/M1/M2 occlusion (temperature scaled)",
            "p_left": "probability that the occlusion is on the patient's left, given one",
            "p_site": "probabilities of the sites ICA-T, M1, M2 (in that order), given an LVO",
        },
        "threshold": summary["threshold"],
        "operating_point": {
            "chosen_for": f"sensitivity >= {summary['target_sensitivity']} on validation phantoms",
        },
        "temperature": summary["temperature"],
        "training_data": {
            "description": (
                "synthetic CTA phantoms (lvo_triage.synth), rendered at 1 mm and preprocessed "
                "by the inference transforms; balanced LVO / no LVO; sites ICA-T, M1, M2"
            ),
            "n_train": summary["n_train"],
            "n_val": summary["n_val"],
            "train_seeds": summary["train_seeds"],
            "val_seeds": summary["val_seeds"],
            "training": summary["config"],
            "validation_auc": summary["best_val_auc"],
        },
        "metrics": {},
    }
    card_path(path).write_text(json.dumps(card, indent=2) + "\n")
    return card
