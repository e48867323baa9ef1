"""``report.md`` and ``report.html``: the ``metrics.json`` document as tables and plots, for people.

Both are rendered from one list of :class:`Section` built from the metrics document only, so the
two reports say the same and every number in them is the number in ``metrics.json`` (printed with
the digits it is stored with).
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from lvo_triage.bench.figures import DIGITS, MS_DIGITS, NOT_FOR_CLINICAL_USE

ROC_PNG = "roc.png"
LATENCY_PNG = "latency.png"
CASES_CSV = "cases.csv"
METRICS_JSON = "metrics.json"
RATE_ROWS = (
    ("AUC", "auc", None),
    ("Sensitivity", "sensitivity", "TP / (TP + FN)"),
    ("Specificity", "specificity", "TN / (TN + FP)"),
    ("PPV", "ppv", "TP / (TP + FP)"),
    ("NPV", "npv", "TN / (TN + FN)"),
)
MEANINGS = (
    "**Sensitivity**: of the analysable studies labelled LVO, the share flagged (priority high).",
    "**Specificity**: of the analysable studies labelled without LVO, the share not flagged.",
    "**PPV / NPV**: of the flagged (not flagged) studies, the share that truly has (has no) LVO; "
    "they depend on how common LVO is in the dataset.",
    "**AUC**: the probability that a random LVO study scores above a random study without LVO "
    "(1 is perfect, 0.5 is chance); independent of the threshold.",
    "**95% CI**: percentile bootstrap over the analysable studies; wide intervals mean too few "
    "studies to be sure.",
    "**Not analysable**: studies the pipeline refused to judge (priority unknown, a person must "
    "look), with the reason; they are left out of the accuracy figures above.",
    "**Latency**: milliseconds per stage of the analysable studies, from discovering the files to "
    "writing the result, in this process with the model already loaded.",
)


@dataclass(frozen=True)
class Table:
    header: tuple[str, ...]
    rows: Sequence[Sequence[str]]


@dataclass(frozen=True)
class Section:
    title: str
    text: list[str] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    images: list[tuple[str, str]] = field(default_factory=list)  # (description, file name)
    items: list[str] = field(default_factory=list)  # a bullet list after the tables


def number(value: float | None, digits: int = DIGITS) -> str:
    """How the reports print a figure: fixed digits, ``n/a`` when it is undefined."""
    return "n/a" if value is None else f"{value:.{digits}f}"


def _ci(ci: Sequence[float] | None) -> tuple[str, str]:
    return ("n/a", "n/a") if ci is None else (number(ci[0]), number(ci[1]))


def sections(metrics: Mapping[str, Any]) -> list[Section]:
    """The report's content, from the metrics document alone."""
    return [
        _run_section(metrics),
        _accuracy_section(metrics),
        _baseline_section(metrics),
        _subgroup_section(metrics),
        _not_analysable_section(metrics),
        _latency_section(metrics),
        Section(title="What the figures mean", items=list(MEANINGS)),
    ]


def _run_section(metrics: Mapping[str, Any]) -> Section:
    model, cases = metrics["model"], metrics["cases"]
    boot = metrics["bootstrap"]
    rows = [
        ("Dataset", metrics["dataset"]),
        ("Studies", str(cases["n"])),
        ("Studies labelled LVO", str(cases["n_lvo"])),
        ("Analysable studies", str(cases["n_analysable"])),
        ("Not analysable studies", str(cases["n_not_analysable"])),
        ("Model", f"{model['name']} {model['version']}"),
        ("Model sha256", model["sha256"]),
        ("Execution provider", model["provider"]),
        ("Operating point (threshold)", f"{metrics['threshold']}"),
        ("Bootstrap", f"{boot['rounds']} resamples, seed {boot['seed']}, {boot['level']:.0%}"),
        ("lvo-triage version", metrics["lvo_triage_version"]),
        ("Created", metrics["created_at"]),
    ]
    text = [f"Per-case results: `{CASES_CSV}`; every figure below: `{METRICS_JSON}`."]
    return Section(title="Run", text=text, tables=[Table(("Item", "Value"), rows)])


def _accuracy_section(metrics: Mapping[str, Any]) -> Section:
    acc = metrics["accuracy"]
    rows = []
    for label, key, formula in RATE_ROWS:
        entry = acc[key]
        count = "" if formula is None else f"{entry['numerator']} / {entry['denominator']}"
        rows.append(
            (label, number(entry["value"]), *_ci(entry["ci95"]), count or "", formula or "")
        )
    cm = acc["confusion_matrix"]
    confusion = Table(
        ("", "Flagged (LVO suspected)", "Not flagged"),
        [
            ("Labelled LVO", f"TP {cm['tp']}", f"FN {cm['fn']}"),
            ("Labelled no LVO", f"FP {cm['fp']}", f"TN {cm['tn']}"),
        ],
    )
    text = [
        f"{acc['n']} analysable studies ({acc['n_lvo']} labelled LVO, {acc['n_no_lvo']} without), "
        f"flagged when the probability is at least the model's threshold {metrics['threshold']}."
    ]
    if acc["note"]:
        text.append(f"Note: {acc['note']}.")
    return Section(
        title="Accuracy at the operating point",
        text=text,
        tables=[
            Table(("Figure", "Value", "95% CI low", "95% CI high", "Count", "Definition"), rows),
            confusion,
        ],
        images=[("ROC curve with the operating point", ROC_PNG)],
    )


def _baseline_section(metrics: Mapping[str, Any]) -> Section:
    base, acc = metrics["baseline"], metrics["accuracy"]
    side = base["side_accuracy_lvo"]
    rows = [
        ("AUC, the model", number(acc["auc"]["value"]), *_ci(acc["auc"]["ci95"])),
        ("AUC, the baseline", number(base["auc"]["value"]), *_ci(base["auc"]["ci95"])),
        (
            "the model's AUC minus the baseline's",
            number(base["model_auc_minus_baseline"]["value"]),
            *_ci(base["model_auc_minus_baseline"]["ci95"]),
        ),
    ]
    text = [
        f"The non-learned second opinion, {base['name']}, on the same {base['n']} analysable "
        "studies: it counts the contrast-filled vessel voxels of each hemisphere's MCA territory "
        "and scores their asymmetry (`vessel_asymmetry` in each result). A model that does not "
        "beat it has learned its training data rather than the disease.",
        f"Its hemisphere with fewer vessels is the labelled side in {side['correct']} of "
        f"{side['n']} LVO studies ({number(side['accuracy'])}).",
    ]
    return Section(
        title="Beside a non-learned baseline",
        text=text,
        tables=[Table(("Figure", "Value", "95% CI low", "95% CI high"), rows)],
    )


def _subgroup_section(metrics: Mapping[str, Any]) -> Section:
    acc = metrics["accuracy"]
    tables = []
    for title, key in (("Site", "sensitivity_by_site"), ("Side", "sensitivity_by_side")):
        rows = [
            (label, str(entry["n"]), str(entry["detected"]), number(entry["sensitivity"]))
            for label, entry in acc[key].items()
        ]
        tables.append(Table((title, "LVO studies", "Flagged", "Sensitivity"), rows))
    side = acc["side_accuracy_true_positives"]
    tables.append(
        Table(
            ("Side among true positives", "Studies", "Side correct", "Accuracy"),
            [("with a side label", str(side["n"]), str(side["correct"]), number(side["accuracy"]))],
        )
    )
    return Section(title="Sensitivity by occlusion site and side", tables=tables)


def _not_analysable_section(metrics: Mapping[str, Any]) -> Section:
    failed = metrics["not_analysable"]
    rate = failed["rate"]
    shown = "n/a" if rate is None else f"{number(rate)} ({rate:.1%})"
    text = [
        f"Not analysable: {failed['n']} of {metrics['cases']['n']} studies, rate {shown}; "
        + ", ".join(f"status {status}: {count}" for status, count in failed["by_status"].items())
        + "."
    ]
    rows = [(reason, str(count)) for reason, count in failed["by_reason"].items()]
    tables = [Table(("Reason", "Studies"), rows)] if rows else []
    return Section(title="Not analysable", text=text, tables=tables)


def _latency_section(metrics: Mapping[str, Any]) -> Section:
    latency, through = metrics["latency_ms"], metrics["throughput"]
    rows = [
        (
            name,
            str(entry["n"]),
            number(entry["p50"], MS_DIGITS),
            number(entry["p95"], MS_DIGITS),
            number(entry["max"], MS_DIGITS),
        )
        for name, entry in latency["stages"].items()
    ]
    speed = [
        ("Studies", str(through["studies"])),
        ("Wall time (s)", number(through["wall_s"], 3)),
        ("Throughput (studies/s)", number(through["studies_per_s"])),
        ("Engine start-up, model load and warm-up (s)", number(through["engine_startup_s"], 3)),
        ("Peak RSS (MB)", number(metrics["memory"]["peak_rss_mb"], MS_DIGITS)),
    ]
    engine, workers = through.get("engine", "local"), through.get("workers", 1)
    if engine == "local":
        how = "one after the other in one process with one warm model"
        rss = "the process's peak resident memory"
    else:
        plural = "" if workers == 1 else "s at once"
        how = f"on {workers} {engine} worker{plural}, each with its own warm model"
        rss = "the largest worker's peak resident memory"
    speed.insert(0, ("Engine", f"{engine}, {workers} worker{'' if workers == 1 else 's'}"))
    text = [
        f"Over the {latency['over']}: {latency['n']} studies, {how}. Throughput is all studies "
        f"over the loop's wall time; peak RSS is {rss}."
    ]
    return Section(
        title="Latency, throughput and memory",
        text=text,
        tables=[
            Table(("Stage", "n", "p50 (ms)", "p95 (ms)", "max (ms)"), rows),
            Table(("Item", "Value"), speed),
        ],
        images=[("Total latency histogram and per-stage medians", LATENCY_PNG)],
    )


# ---------------------------------------------------------------------------------- markdown


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _md_table(table: Table) -> list[str]:
    lines = ["| " + " | ".join(_md_cell(h) for h in table.header) + " |"]
    lines.append("| " + " | ".join("---" for _ in table.header) + " |")
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in table.rows]
    return [*lines, ""]


def render_markdown(metrics: Mapping[str, Any]) -> str:
    lines = [
        f"# lvo-triage benchmark: {metrics['dataset']}",
        "",
        f"> **{NOT_FOR_CLINICAL_USE}**",
        "",
    ]
    for section in sections(metrics):
        lines += [f"## {section.title}", ""]
        for paragraph in section.text:
            lines += [paragraph, ""]
        for table in section.tables:
            lines += _md_table(table)
        for description, name in section.images:
            lines += [f"![{description}]({name})", ""]
        lines += [f"- {item}" for item in section.items]
        if section.items:
            lines.append("")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------- html

STYLE = """
body { font-family: sans-serif; max-width: 60em; margin: 2em auto; padding: 0 1em; }
.banner { background: #b00020; color: white; font-weight: bold; padding: 0.8em 1em; }
table { border-collapse: collapse; margin: 0.8em 0; }
th, td { border: 1px solid #bbb; padding: 0.25em 0.6em; text-align: left; }
th { background: #eee; }
img { max-width: 100%; }
"""


def _inline(text: str) -> str:
    """Escape, then the two markdown marks the sections use: **bold** and `code`."""
    parts = html.escape(text).split("**")
    text = "".join(f"<strong>{p}</strong>" if i % 2 else p for i, p in enumerate(parts))
    parts = text.split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))


def _html_table(table: Table) -> list[str]:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in table.header)
    body = [
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in table.rows
    ]
    return ["<table>", f"<tr>{head}</tr>", *body, "</table>"]


def render_html(metrics: Mapping[str, Any]) -> str:
    title = html.escape(f"lvo-triage benchmark: {metrics['dataset']}")
    lines = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        f'<head><meta charset="utf-8"><title>{title}</title><style>{STYLE}</style></head>',
        "<body>",
        f"<h1>{title}</h1>",
        f'<p class="banner">{html.escape(NOT_FOR_CLINICAL_USE)}</p>',
    ]
    for section in sections(metrics):
        lines.append(f"<h2>{html.escape(section.title)}</h2>")
        lines += [f"<p>{_inline(paragraph)}</p>" for paragraph in section.text]
        for table in section.tables:
            lines += _html_table(table)
        lines += [
            f'<p><img src="{html.escape(name)}" alt="{html.escape(description)}"></p>'
            for description, name in section.images
        ]
        if section.items:
            lines += ["<ul>", *(f"<li>{_inline(item)}</li>" for item in section.items), "</ul>"]
    lines += ["</body>", "</html>", ""]
    return "\n".join(lines)
