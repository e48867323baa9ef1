"""The validators' benchmark suite (``lvo-triage bench``): accuracy and latency of the real
pipeline over a labelled dataset, with a report. NOT FOR CLINICAL USE.

    cases.py    the dataset read for bench, one case through the pipeline, the local loop
    figures.py  metrics.json from the cases' outcomes
    plots.py    roc.png, latency.png
    ray.py      the cases on Ray workers (bench --engine ray)
    report.py   report.md, report.html (from metrics.json)
    suite.py    all of it, into one folder
"""

from __future__ import annotations

from lvo_triage.bench.cases import CaseOutcome, read_dataset, run_case, run_local
from lvo_triage.bench.suite import run_bench

__all__ = ["CaseOutcome", "read_dataset", "run_bench", "run_case", "run_local"]
