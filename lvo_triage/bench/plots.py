"""The benchmark's plots as small PNG files, drawn from the ``metrics.json`` document (and the
per-case totals for the histogram) with matplotlib's Agg canvas: no display, no global state."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from lvo_triage.bench.figures import NOT_FOR_CLINICAL_USE

DPI = 100
FOOTER = NOT_FOR_CLINICAL_USE.split(":")[0]


def _save(figure: Figure, path: Path) -> None:
    figure.suptitle(FOOTER, x=0.99, ha="right", fontsize=8, color="firebrick")
    FigureCanvasAgg(figure)
    figure.savefig(path, dpi=DPI, format="png")


def roc_png(metrics: Mapping[str, Any], path: Path) -> None:
    """The ROC curve of the analysable cases with the operating point (the model's threshold)."""
    accuracy = metrics["accuracy"]
    figure = Figure(figsize=(5.0, 4.6), layout="constrained")
    ax = figure.add_subplot()
    ax.plot([0, 1], [0, 1], linestyle=":", color="grey", linewidth=1, label="chance")
    curve = accuracy["roc_curve"]
    if curve is None:
        ax.text(0.5, 0.5, accuracy["note"], ha="center", va="center", wrap=True, fontsize=9)
        title = "ROC curve: not available"
    else:
        auc = accuracy["auc"]
        ci = auc["ci95"]
        ci_text = f" (95% CI {ci[0]:.3f}-{ci[1]:.3f})" if ci else ""
        ax.step(curve["fpr"], curve["tpr"], where="post", color="tab:blue", linewidth=2)
        title = f"ROC curve, AUC {auc['value']:.3f}{ci_text}"
    sens, spec = accuracy["sensitivity"]["value"], accuracy["specificity"]["value"]
    if sens is not None and spec is not None:
        ax.plot(
            [1.0 - spec],
            [sens],
            marker="o",
            markersize=9,
            color="tab:red",
            linestyle="none",
            label=f"operating point (threshold {metrics['threshold']:.3g})",
        )
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(-0.02, 1.02)
    ax.set_aspect("equal")
    ax.set_xlabel("1 - specificity (false positive rate)")
    ax.set_ylabel("sensitivity (true positive rate)")
    ax.set_title(f"{title}\n{accuracy['n_lvo']} LVO, {accuracy['n_no_lvo']} no LVO", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    _save(figure, path)


def latency_png(metrics: Mapping[str, Any], totals_ms: Sequence[float], path: Path) -> None:
    """Histogram of the total latency per analysable study, and each stage's median."""
    stages = metrics["latency_ms"]["stages"]
    figure = Figure(figsize=(9.0, 3.8), layout="constrained")
    hist, bars = figure.subplots(1, 2, width_ratios=(1.2, 1.0))
    if totals_ms:
        hist.hist(totals_ms, bins=min(30, max(5, len(totals_ms) // 2)), color="tab:blue")
        total = stages["total"]
        for key, style in (("p50", "-"), ("p95", "--")):
            hist.axvline(
                total[key], color="tab:red", linestyle=style, label=f"{key} {total[key]:.0f} ms"
            )
        hist.legend(fontsize=8)
    else:
        hist.text(0.5, 0.5, "no analysable study", ha="center", va="center")
    hist.set_xlabel("total latency per study (ms)")
    hist.set_ylabel("studies")
    hist.yaxis.set_major_locator(MaxNLocator(integer=True))
    hist.set_title(f"Total latency, {len(totals_ms)} analysable studies", fontsize=10)
    names = [name for name in stages if name != "total"]
    medians = [stages[name]["p50"] for name in names]
    bars.barh(names[::-1], medians[::-1], color="tab:green")
    bars.set_xlabel("median (p50) latency (ms)")
    bars.set_title("Per stage, p50", fontsize=10)
    bars.grid(axis="x", alpha=0.3)
    _save(figure, path)
