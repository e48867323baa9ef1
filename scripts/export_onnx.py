"""Export a training run to ONNX, write the model card beside it, and check ONNX against torch.

python scripts/export_onnx.py runs/NAME --out models/lvo-detector.onnx
"""

from __future__ import annotations

import argparse
from pathlib import Path

from lvo_triage.model_card import InputSpec
from lvo_triage.train.dataset import CaseArrays
from lvo_triage.train.export import export_onnx, load_run, parity, write_card


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("run", type=Path, help="run folder written by scripts/train.py")
    parser.add_argument("--out", type=Path, default=Path("models/lvo-detector.onnx"))
    parser.add_argument("--name", default="lvo-detector")
    parser.add_argument("--version", default="0.1.0")
    args = parser.parse_args()
    wrapper, summary = load_run(args.run)
    spec = InputSpec.from_dict(summary["input"])
    export_onnx(wrapper, spec, args.out)
    cache = Path(summary.get("cache") or args.run / "cache")
    val = next(iter(sorted(cache.glob("val-*.npz"))), None)
    if val is not None:
        inputs = CaseArrays.load(val).x[:16].astype("float32") / 255.0
    else:
        import numpy as np

        inputs = np.random.default_rng(0).random((4, 1, *spec.shape), dtype=np.float32)
    worst = parity(wrapper, args.out, inputs)
    print(f"torch vs ONNX Runtime: max |difference| = {worst:.2e} over {len(inputs)} inputs")
    if worst > 1e-4:
        raise SystemExit(f"parity check failed: {worst:.2e} > 1e-4")
    card = write_card(args.out, summary, name=args.name, version=args.version)
    print(f"wrote {args.out} ({card['size_bytes'] / 1e6:.2f} MB) and its model card")


if __name__ == "__main__":
    main()
