"""ONNX inference time per study, on this machine's CPU threads (target: <= 150 ms on 2 cores).

    python scripts/bench_inference.py [--model models/lvo-detector.onnx] [--repeats 50]

Loads the model as the pipeline does (Detector: sha256 check, warm-up), then times
``Detector.predict`` on --repeats different model inputs (preprocessed phantoms when --cases
gives a cache file, else random inputs of the model's shape) and prints the median and the 95th
percentile, with the same figures for the float and, when present, the int8 variant.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from lvo_triage.config import ModelSettings
from lvo_triage.inference import Detector

TARGET_MS = 150.0


def time_model(path: Path, inputs: np.ndarray, threads: int) -> list[float]:
    detector = Detector(settings=replace(ModelSettings(), path=path, intra_op_threads=threads))
    out = []
    for x in inputs:
        t = time.perf_counter()
        detector.predict(x[None])
        out.append((time.perf_counter() - t) * 1000.0)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--model", type=Path, default=Path("models/lvo-detector.onnx"))
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--threads", type=int, default=2, help="ONNX Runtime intra-op threads")
    parser.add_argument("--cases", type=Path, help="a val-*.npz cache file of model inputs")
    args = parser.parse_args()
    if args.cases is not None:
        with np.load(args.cases) as z:
            inputs = z["x"][: args.repeats].astype(np.float32) / 255.0
    else:
        from lvo_triage.model_card import ModelCard

        shape = ModelCard.load(args.model).input.shape
        rng = np.random.default_rng(0)
        inputs = rng.random((args.repeats, 1, *shape), dtype=np.float32)
    print(f"{len(inputs)} inputs, {args.threads} threads, os.cpu_count() = {os.cpu_count()}")
    variants = [args.model, args.model.with_name(f"{args.model.stem}-int8.onnx")]
    for path in (p for p in variants if p.is_file()):
        ms = sorted(time_model(path, inputs, args.threads))
        p95 = ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))]
        median = statistics.median(ms)
        verdict = "PASS" if median <= TARGET_MS else "FAIL"
        size = path.stat().st_size / 1e6
        print(
            f"{path.name} ({size:.2f} MB): median {median:.1f} ms, p95 {p95:.1f} ms "
            f"(target <= {TARGET_MS:.0f} ms) {verdict}"
        )


if __name__ == "__main__":
    main()
