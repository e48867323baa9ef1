"""``lvo-triage bench``: read the labelled dataset, run every case through the real pipeline with
one warm engine, and write ``metrics.json``, ``cases.csv``, the plots and the reports into OUT."""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lvo_triage.bench.cases import CaseOutcome, read_dataset, run_local
from lvo_triage.bench.figures import RunInfo, bench_metrics, stage_names
from lvo_triage.bench.plots import latency_png, roc_png
from lvo_triage.bench.report import (
    CASES_CSV,
    LATENCY_PNG,
    METRICS_JSON,
    ROC_PNG,
    render_html,
    render_markdown,
)
from lvo_triage.config import Settings
from lvo_triage.engines.options import EngineKind, EngineOptions
from lvo_triage.outputs.files import write_atomic
from lvo_triage.pipeline import Runtime
from lvo_triage.timing import peak_rss_mb

REPORT_MD = "report.md"
REPORT_HTML = "report.html"
MODE = 0o644  # reports are for reading by others
CASE_COLUMNS = (
    "case_id",
    "lvo",
    "side",
    "site",
    "status",
    "reason",
    "probability",
    "lvo_suspected",
    "side_predicted",
    "asymmetry",
    "asymmetry_side",
)


def run_bench(
    dataset: Path,
    out: Path,
    settings: Settings,
    *,
    limit: int | None = None,
    progress: bool = True,
    rounds: int = 2000,
    engine: EngineOptions | None = None,
) -> dict[str, Any]:
    """Benchmark ``dataset`` into the folder ``out``; returns the ``metrics.json`` document.

    ``engine``: the local engine (default: one warm model in this process) or the Ray workers;
    both give the same outcomes, so the same accuracy figures. ``DatasetError`` before anything
    runs when the dataset is malformed; a case that fails later is counted (not analysable, with
    its reason) and the run goes on."""
    cases = read_dataset(dataset, limit=limit)
    engine = engine or EngineOptions()
    if engine.is_ray:
        from lvo_triage.bench.ray import run_ray

        ray_run = run_ray(cases, settings, engine, progress=progress)
        loop = ray_run.loop
        info = RunInfo(
            dataset_name=Path(dataset).resolve().name,
            model=ray_run.worker.model,
            threshold=ray_run.worker.threshold,
            wall_s=loop.wall_s,
            startup_s=ray_run.startup_s,
            peak_rss_mb=ray_run.peak_rss_mb or peak_rss_mb(),
            engine=EngineKind.RAY.value,
            workers=ray_run.workers,
        )
    else:
        start = time.perf_counter()
        local = Runtime.create(settings)
        startup_s = time.perf_counter() - start
        loop = run_local(local, cases, progress=progress)
        info = RunInfo(
            dataset_name=Path(dataset).resolve().name,
            model=local.detector.info,
            threshold=local.detector.threshold,
            wall_s=loop.wall_s,
            startup_s=startup_s,
            peak_rss_mb=peak_rss_mb(),
        )
    return write_outputs(out, bench_metrics(loop.outcomes, info, rounds=rounds), loop.outcomes)


def write_outputs(
    out: Path, metrics: dict[str, Any], outcomes: Sequence[CaseOutcome]
) -> dict[str, Any]:
    """Write every file into ``out``; the plots and reports are drawn from what ``metrics.json``
    holds (read back), so that they agree with it. Returns that document."""
    out.mkdir(parents=True, exist_ok=True)
    text = json.dumps(metrics, indent=2) + "\n"
    write_atomic(out / METRICS_JSON, text, mode=MODE)
    stored: dict[str, Any] = json.loads(text)
    write_atomic(out / CASES_CSV, cases_csv(outcomes), mode=MODE)
    roc_png(stored, out / ROC_PNG)
    totals = [o.timings_ms["total"] for o in outcomes if o.analysable and "total" in o.timings_ms]
    latency_png(stored, totals, out / LATENCY_PNG)
    write_atomic(out / REPORT_MD, render_markdown(stored), mode=MODE)
    write_atomic(out / REPORT_HTML, render_html(stored), mode=MODE)
    return stored


def _flag(value: bool | None) -> str:
    return "" if value is None else str(int(value))


def cases_csv(outcomes: Sequence[CaseOutcome]) -> str:
    """One row per case: labels, status and reason, the answer, and each stage's milliseconds."""
    stages = stage_names(outcomes)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([*CASE_COLUMNS, *(f"{name}_ms" for name in stages)])
    for o in outcomes:
        writer.writerow(
            [
                o.case_id,
                int(o.lvo),
                o.side_label or "",
                o.site_label or "",
                o.status,
                o.reason or "",
                "" if o.probability is None else f"{o.probability:.6f}",
                _flag(o.lvo_suspected),
                o.side or "",
                "" if o.asymmetry is None else f"{o.asymmetry:.4f}",
                o.asymmetry_side or "",
                *(f"{o.timings_ms[name]:.3f}" if name in o.timings_ms else "" for name in stages),
            ]
        )
    return buffer.getvalue()
