"""Per-stage latency of `run` on one full-resolution phantom (512x512, ~300 slices).

    python scripts/bench_latency.py [--repeats 3] [--slices 300]

Writes one synthetic study to a temporary folder, warms the engine once (as a service would),
then triages the study --repeats times in this process and prints each stage's median, with the
time to read the raw bytes of the files (the floor) for comparison.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from lvo_triage.config import Settings
from lvo_triage.pipeline import Engine, triage_path
from lvo_triage.synth import acquisition_grid, sample_spec, write_study
from lvo_triage.train.seeds import TEST_BASE


def study_with_slices(target: int) -> int:
    """The first evaluation-range seed whose acquisition has within 5% of ``target`` slices."""
    for seed in range(TEST_BASE + 500_000, TEST_BASE + 501_000):
        shape, _ = acquisition_grid(sample_spec(seed, case_id="bench", lvo=True))
        if abs(shape[2] - target) <= 0.05 * target:
            return seed
    raise SystemExit(f"no phantom with ~{target} slices in the first 1000 seeds")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--slices", type=int, default=300)
    args = parser.parse_args()
    seed = study_with_slices(args.slices)
    spec = sample_spec(seed, case_id="bench", lvo=True)
    with tempfile.TemporaryDirectory(prefix="lvo-bench-") as tmp:
        folder = write_study(spec, Path(tmp))
        files = sorted(folder.iterdir())
        size_mb = sum(f.stat().st_size for f in files) / 1e6
        engine = Engine.create(Settings())
        t = time.perf_counter()
        for f in files:
            f.read_bytes()
        floor_ms = (time.perf_counter() - t) * 1000
        runs = [triage_path(engine, folder)[0].timings_ms for _ in range(args.repeats)]
    shape, _ = acquisition_grid(spec)
    print(
        f"phantom seed {seed}: {shape[0]}x{shape[1]}x{shape[2]}, "
        f"{len(files)} files, {size_mb:.0f} MB"
    )
    print(f"read raw bytes (floor, page cache warm): {floor_ms:8.1f} ms")
    for stage in runs[0]:
        values = [r.get(stage, 0.0) for r in runs]
        print(
            f"{stage:>12}: median {statistics.median(values):8.1f} ms  (runs: "
            + ", ".join(f"{v:.0f}" for v in values)
            + ")"
        )
    total = statistics.median(r["total"] for r in runs)
    print(f"total / floor = {total / floor_ms:.1f}x")


if __name__ == "__main__":
    main()
