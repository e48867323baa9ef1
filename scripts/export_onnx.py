"""Export a training run to ONNX, write the model card beside it, and check ONNX against torch.

    python scripts/export_onnx.py runs/NAME --out models/NAME.onnx [--int8]

The card is also embedded in the ONNX metadata. --int8 writes models/NAME-int8.onnx (static
quantisation calibrated on validation cases) with its own card, which records what it costs:
validation AUC and the largest probability difference against the float model.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from lvo_triage.metrics import roc_auc
from lvo_triage.model_card import InputSpec, card_path
from lvo_triage.train.dataset import CaseArrays
from lvo_triage.train.export import (
    export_onnx,
    load_run,
    onnx_outputs,
    parity,
    quantize_int8,
    write_card,
)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("run", type=Path, help="run folder written by scripts/train.py")
    parser.add_argument("--out", type=Path, default=Path("models/lvo-detector.onnx"))
    parser.add_argument("--name", default="lvo-detector")
    parser.add_argument("--version", default="0.1.0")
    parser.add_argument(
        "--made-by", help="the command that reproduces this model, stored in the card"
    )
    parser.add_argument("--int8", action="store_true", help="also write an int8 variant")
    args = parser.parse_args()
    wrapper, summary = load_run(args.run)
    spec = InputSpec.from_dict(summary["input"])
    export_onnx(wrapper, spec, args.out)
    cache = Path(summary.get("cache") or args.run / "cache")
    val_file = next(iter(sorted(cache.glob("val-*.npz"))), None)
    val = CaseArrays.load(val_file) if val_file is not None else None
    if val is not None:
        inputs = val.x[:16].astype("float32") / 255.0
    else:
        inputs = np.random.default_rng(0).random((4, 1, *spec.shape), dtype=np.float32)
    worst = parity(wrapper, args.out, inputs)
    print(f"torch vs ONNX Runtime: max |difference| = {worst:.2e} over {len(inputs)} inputs")
    if worst > 1e-4:
        raise SystemExit(f"parity check failed: {worst:.2e} > 1e-4")
    if args.made_by:
        summary["made_by"] = args.made_by
    card = write_card(args.out, summary, name=args.name, version=args.version)
    print(f"wrote {args.out} ({card['size_bytes'] / 1e6:.2f} MB) and its model card")
    if args.int8:
        if val is None:
            raise SystemExit("--int8 needs the run's validation cache (val-*.npz) to calibrate")
        int8(args.out, summary, val, name=args.name, version=args.version)


def int8(model: Path, summary: dict[str, Any], val: CaseArrays, *, name: str, version: str) -> None:
    """The int8 variant and its accuracy cost on the validation cases."""
    x = val.x.astype("float32") / 255.0
    dst = model.with_name(f"{model.stem}-int8.onnx")
    quantize_int8(model, dst, x[:64])
    p32, _ = onnx_outputs(model, x)
    p8, _ = onnx_outputs(dst, x)
    cost = {
        "validation_auc_float": round(roc_auc(val.lvo, p32), 4),
        "validation_auc_int8": round(roc_auc(val.lvo, p8), 4),
        "max_abs_probability_difference": round(float(np.abs(p32 - p8).max()), 4),
        "n_validation_cases": len(x),
    }
    card = write_card(dst, summary, name=f"{name}-int8", version=version)
    card["quantization"] = {"method": "static int8 (QDQ, per-channel), onnxruntime", **cost}
    card_path(dst).write_text(json.dumps(card, indent=2) + "\n")
    print(f"wrote {dst} ({card['size_bytes'] / 1e6:.2f} MB): {cost}")


if __name__ == "__main__":
    main()
