"""Triage latency per stage against the hardware floor and a MONAI-documented reference pipeline,
and the peak memory of triaging a long series.

    python scripts/bench_latency.py [--slices 400] [--repeats 5] [--reference-repeats 2]
                                    [--memory-slices 600] [--no-reference] [--no-memory]

Writes one full-resolution synthetic CTA (512x512, --slices slices, uncompressed) to a temporary
folder, creates the engine once and warms it with one triage (as a running service is), then
times --repeats rounds, each reading the raw bytes of the files (the floor: page cache warm),
triaging the study in this process, and in the first --reference-repeats rounds running the
reference on the same files with the same ONNX model: MONAI's documented chain LoadImage →
Orientation → Spacing (2 mm, bilinear) → ScaleIntensityRange → Resize → model.
Prints each stage's p50 / p95 / max, the floor, the reference and the ratios against the targets
of issue 6 (total p50 <= 800 ms, >= 5x faster than the reference).

Memory: a fresh process (so that nothing else inflates it) creates the engine and triages a
--memory-slices series once; its peak resident set size (VmHWM) is printed against 1.5 GB.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from monai.transforms import LoadImage, Orientation, Resize, ScaleIntensityRange, Spacing

from lvo_triage.config import Settings
from lvo_triage.inference import Detector
from lvo_triage.pipeline import Runtime, triage_path
from lvo_triage.synth import sample_spec, with_slices, write_study
from lvo_triage.timing import peak_rss_mb
from lvo_triage.train.seeds import TEST_BASE

SEED = TEST_BASE + 500_000
TARGET_P50_MS = 800.0
TARGET_VS_REFERENCE = 5.0
TARGET_PEAK_MB = 1536.0


def write_bench_study(slices: int, root: Path) -> tuple[Path, list[Path]]:
    spec = with_slices(sample_spec(SEED, case_id="bench", lvo=True), slices)
    folder = write_study(spec, root)
    return folder, sorted(p for p in folder.iterdir() if p.is_file())


def ms_since(t: float) -> float:
    return (time.perf_counter() - t) * 1000.0


def reference(folder: Path, detector: Detector) -> tuple[dict[str, float], float]:
    """MONAI's documented chain on ``folder`` with our model: stage milliseconds, probability."""
    spec = detector.card.input
    lo, hi = spec.window_hu
    stages = [
        ("load", LoadImage(image_only=True, ensure_channel_first=True)),
        ("orient", Orientation(axcodes="RAS")),
        ("spacing", Spacing(pixdim=(spec.spacing_mm,) * 3, mode="bilinear")),
        ("window", ScaleIntensityRange(a_min=lo, a_max=hi, b_min=0.0, b_max=1.0, clip=True)),
        ("resize", Resize(spatial_size=spec.shape, mode="area")),
    ]
    times: dict[str, float] = {}
    start = time.perf_counter()
    data: Any = str(folder)
    for name, transform in stages:
        t = time.perf_counter()
        data = transform(data)
        times[name] = ms_since(t)
    t = time.perf_counter()
    batch = np.asarray(data, dtype=np.float32)[None]
    prediction = detector.predict(batch)
    times["inference"] = ms_since(t)
    times["total"] = ms_since(start)
    return times, prediction.p_lvo


def quantiles(values: list[float]) -> str:
    p50, p95 = np.percentile(values, [50, 95])
    return f"p50 {p50:8.1f}  p95 {p95:8.1f}  max {max(values):8.1f} ms"


def verdict(label: str, ok: bool) -> str:
    return f"{label}: {'meets' if ok else 'MISSES'} the target"


def latency(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="lvo-bench-") as tmp:
        folder, files = write_bench_study(args.slices, Path(tmp))
        size_mb = sum(f.stat().st_size for f in files) / 1e6
        engine = Runtime.create(settings_for(args.provider))
        warm = triage_path(engine, folder)[0]
        print(
            f"study: {len(files)} files of 512x512, {size_mb:.0f} MB, uncompressed; "
            f"ours: p={warm.probability:.3f}, engine warmed by one triage; "
            f"model on {engine.detector.provider}"
        )
        floor: list[float] = []
        ours: list[dict[str, float]] = []
        ref: list[dict[str, float]] = []
        ref_p = None
        for r in range(args.repeats):
            t = time.perf_counter()
            for f in files:
                f.read_bytes()
            floor.append(ms_since(t))
            ours.append(triage_path(engine, folder)[0].timings_ms)
            if r < args.reference_repeats:
                times, ref_p = reference(folder, engine.detector)
                ref.append(times)
    print(f"\nlvo-triage, {args.repeats} rounds (warm engine, files in the page cache):")
    for stage in ours[0]:
        print(f"  {stage:>12}: {quantiles([o.get(stage, 0.0) for o in ours])}")
    print(f"  {'floor':>12}: {quantiles(floor)}  (reading the files' bytes)")
    p50 = float(np.median([o["total"] for o in ours]))
    floor_p50 = float(np.median(floor))
    print(f"  total / floor = {p50 / floor_p50:.1f}x")
    print(verdict(f"total p50 {p50:.0f} ms <= {TARGET_P50_MS:.0f} ms", p50 <= TARGET_P50_MS))
    if ref:
        print(
            f"\nMONAI-documented reference, {len(ref)} rounds (p={ref_p:.3f} with the same model):"
        )
        for stage in ref[0]:
            print(f"  {stage:>12}: {quantiles([x[stage] for x in ref])}")
        ratio = float(np.median([x["total"] for x in ref])) / p50
        print(verdict(f"reference / ours = {ratio:.1f}x >= {TARGET_VS_REFERENCE:.0f}x", ratio >= 5))


def settings_for(provider: str) -> Settings:
    return Settings(model=dataclasses.replace(Settings().model, provider=provider))


def memory_child(folder: Path, provider: str) -> None:
    """Run in a fresh process: the engine, one triage, and the peak RSS (printed as JSON)."""
    engine = Runtime.create(settings_for(provider))
    engine_mb = peak_rss_mb()
    result = triage_path(engine, folder)[0]
    peak_mb = peak_rss_mb()
    print(json.dumps({"engine_mb": engine_mb, "peak_mb": peak_mb, "status": result.status.value}))


def memory(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="lvo-bench-mem-") as tmp:
        folder, files = write_bench_study(args.memory_slices, Path(tmp))
        size_mb = sum(f.stat().st_size for f in files) / 1e6
        volume_mb = len(files) * 512 * 512 * 4 / 2**20
        out = subprocess.run(
            [sys.executable, __file__, "--memory-child", str(folder), "--provider", args.provider],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    figures = json.loads(out.strip().splitlines()[-1])
    peak = figures["peak_mb"]
    print(
        f"\nmemory, {len(files)} slices ({size_mb:.0f} MB of files, "
        f"{volume_mb:.0f} MB as float32), "
        f"status {figures['status']}: peak RSS {peak:.0f} MB "
        f"(after loading the engine: {figures['engine_mb']:.0f} MB)"
    )
    print(verdict(f"peak RSS {peak:.0f} MB <= {TARGET_PEAK_MB:.0f} MB", peak <= TARGET_PEAK_MB))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--slices", type=int, default=400)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--reference-repeats", type=int, default=2)
    parser.add_argument("--no-reference", action="store_true", help="leave the reference out")
    parser.add_argument("--memory-slices", type=int, default=600)
    parser.add_argument("--no-memory", action="store_true", help="leave the memory run out")
    parser.add_argument(
        "--provider", choices=["cpu", "cuda"], default="cpu", help="ONNX Runtime provider"
    )
    parser.add_argument("--memory-child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child is not None:
        memory_child(args.memory_child, args.provider)
        return
    if args.repeats < 1:
        raise SystemExit("--repeats must be >= 1")
    if args.no_reference:
        args.reference_repeats = 0
    latency(args)
    if not args.no_memory:
        memory(args)


if __name__ == "__main__":
    main()
