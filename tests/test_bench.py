"""`lvo-triage bench`: the validators' suite over a labelled synthetic dataset, through the CLI."""

from __future__ import annotations

import csv
import dataclasses
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from lvo_triage.bench.cases import CaseOutcome, run_case
from lvo_triage.bench.figures import NOT_FOR_CLINICAL_USE, RunInfo, bench_metrics
from lvo_triage.cli import EXIT_USAGE, main
from lvo_triage.labels import CaseKind, LabelledCase
from lvo_triage.result import ModelInfo

N_CASES = 10  # synthetic, alternating LVO / no LVO
JUNK = "junk_case"  # a case folder holding one text file: not analysable
FILES = ("metrics.json", "cases.csv", "roc.png", "latency.png", "report.md", "report.html")
RATES = {"AUC": "auc", "Sensitivity": "sensitivity", "Specificity": "specificity", "PPV": "ppv"}
RATES["NPV"] = "npv"


def lvo_triage(*args: str | Path) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "lvo_triage.cli", *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``lvo-triage synth --fast`` output, plus a junk case listed third in labels.csv."""
    root = tmp_path_factory.mktemp("bench") / "phantoms"
    assert main(["synth", str(root), "--n", str(N_CASES), "--seed", "6", "--fast"]) == 0
    with (root / "labels.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["case_id"] for r in rows] == [f"case{i:04d}" for i in range(N_CASES)]
    assert {r["lvo"] for r in rows} == {"0", "1"}
    assert all((root / r["case_id"]).is_dir() for r in rows)  # the docs/contract.md layout
    (root / JUNK).mkdir()
    (root / JUNK / "notes.txt").write_text("not an image\n")
    rows.insert(2, {"case_id": JUNK, "lvo": "1", "side": "left", "site": "M1"})
    with (root / "labels.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["case_id", "lvo", "side", "site"])
        writer.writeheader()
        writer.writerows(rows)
    return root


@pytest.fixture(scope="module")
def report(dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report") / "bench-report"
    proc = lvo_triage("bench", dataset, "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert "NOT FOR CLINICAL USE" in proc.stdout
    assert "bench:" in proc.stderr and "100%" in proc.stderr  # the progress bar, on stderr
    return out


def metrics_of(report: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((report / "metrics.json").read_text())
    return doc


def test_writes_every_file_and_valid_pngs(report: Path) -> None:
    for name in FILES:
        assert (report / name).is_file(), name
        assert (report / name).stat().st_size > 0, name
    for name in ("roc.png", "latency.png"):
        with Image.open(report / name) as image:
            assert image.format == "PNG"
            image.verify()
        with Image.open(report / name) as image:
            assert image.width >= 400 and image.height >= 300


def test_metrics_are_consistent(report: Path) -> None:
    m = metrics_of(report)
    cases, acc = m["cases"], m["accuracy"]
    assert m["not_for_clinical_use"] == NOT_FOR_CLINICAL_USE
    assert m["dataset"] == "phantoms"  # the folder's name, not its path
    assert set(m["model"]) == {"name", "version", "sha256", "provider"}
    assert len(m["model"]["sha256"]) == 64
    assert cases["n"] == N_CASES + 1
    assert cases["n_analysable"] + cases["n_not_analysable"] == cases["n"]
    cm = acc["confusion_matrix"]
    assert sum(cm.values()) == cases["n_analysable"] == acc["n"]
    assert cm["tp"] + cm["fn"] == acc["n_lvo"] and cm["fp"] + cm["tn"] == acc["n_no_lvo"]
    expected = {
        "sensitivity": (cm["tp"], cm["tp"] + cm["fn"]),
        "specificity": (cm["tn"], cm["tn"] + cm["fp"]),
        "ppv": (cm["tp"], cm["tp"] + cm["fp"]),
        "npv": (cm["tn"], cm["tn"] + cm["fn"]),
    }
    for key, (hits, total) in expected.items():
        entry = acc[key]
        assert (entry["numerator"], entry["denominator"]) == (hits, total), key
        if total:
            assert entry["value"] == pytest.approx(hits / total, abs=1e-4), key
            lo, hi = entry["ci95"]
            assert 0.0 <= lo <= hi <= 1.0, key
        else:
            assert entry["value"] is None, key
    assert 0.0 <= acc["auc"]["value"] <= 1.0
    assert acc["auc"]["value"] >= 0.8  # the bundled model separates these phantoms
    curve = acc["roc_curve"]
    assert curve["fpr"][0] == curve["tpr"][0] == 0.0 and curve["fpr"][-1] == curve["tpr"][-1] == 1.0
    site_n = sum(entry["n"] for entry in acc["sensitivity_by_site"].values())
    side_n = sum(entry["n"] for entry in acc["sensitivity_by_side"].values())
    assert site_n == side_n == acc["n_lvo"]  # every synthetic LVO has a site and a side
    flagged = sum(entry["detected"] for entry in acc["sensitivity_by_site"].values())
    assert flagged == cm["tp"]
    assert acc["side_accuracy_true_positives"]["n"] == cm["tp"]
    stages = m["latency_ms"]["stages"]
    assert {"discover", "load", "preprocess", "inference", "total"} <= set(stages)
    for name, entry in stages.items():
        assert entry["n"] == cases["n_analysable"], name
        assert 0.0 <= entry["p50"] <= entry["p95"] <= entry["max"], name
    assert stages["total"]["p50"] >= stages["preprocess"]["p50"]
    through = m["throughput"]
    assert through["studies"] == cases["n"]
    assert through["studies_per_s"] == pytest.approx(cases["n"] / through["wall_s"], rel=1e-2)
    assert m["memory"]["peak_rss_mb"] > 50.0


def test_broken_case_is_counted_with_its_reason_and_the_run_goes_on(report: Path) -> None:
    m = metrics_of(report)
    failed = m["not_analysable"]
    assert failed["n"] == 1 and failed["by_status"] == {"not_analyzable": 1, "error": 0}
    assert failed["rate"] == pytest.approx(1 / (N_CASES + 1), abs=1e-4)
    ((reason, count),) = failed["by_reason"].items()
    assert count == 1 and "no DICOM study found" in reason
    assert m["cases"]["n_analysable"] == N_CASES  # the cases after the junk one ran too
    with (report / "cases.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == N_CASES + 1 and rows[2]["case_id"] == JUNK
    assert rows[2]["status"] == "not_analyzable" and rows[2]["reason"] == reason
    assert rows[2]["probability"] == "" and rows[2]["lvo_suspected"] == ""
    ok = [r for r in rows if r["status"] == "ok"]
    assert len(ok) == N_CASES
    threshold = m["threshold"]
    for row in ok:
        assert (float(row["probability"]) >= threshold) == (row["lvo_suspected"] == "1")
        assert float(row["total_ms"]) > 0
    tp = sum(r["lvo"] == "1" and r["lvo_suspected"] == "1" for r in ok)
    assert tp == m["accuracy"]["confusion_matrix"]["tp"]


def _md_rows(text: str) -> dict[str, list[str]]:
    """Markdown table rows by their first cell (the later of two rows with the same one)."""
    rows = {}
    for line in text.splitlines():
        if line.startswith("| ") and not line.startswith("| ---"):
            cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
            rows[cells[0]] = cells[1:]
    return rows


def _num(value: float | None, digits: int = 4) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def test_report_md_numbers_equal_metrics_json(report: Path) -> None:
    m = metrics_of(report)
    text = (report / "report.md").read_text()
    assert NOT_FOR_CLINICAL_USE in text.splitlines()[2]  # the banner under the title
    rows = _md_rows(text)
    acc = m["accuracy"]
    for label, key in RATES.items():
        entry = acc[key]
        value, lo, hi = rows[label][:3]
        assert value == _num(entry["value"]), label
        assert [lo, hi] == [_num(v) for v in entry["ci95"]], label
        if key != "auc":
            assert rows[label][3] == f"{entry['numerator']} / {entry['denominator']}", label
    cm = acc["confusion_matrix"]
    assert rows["Labelled LVO"] == [f"TP {cm['tp']}", f"FN {cm['fn']}"]
    assert rows["Labelled no LVO"] == [f"FP {cm['fp']}", f"TN {cm['tn']}"]
    for name, entry in m["latency_ms"]["stages"].items():
        assert rows[name] == [str(entry["n"])] + [_num(entry[k], 1) for k in ("p50", "p95", "max")]
    for site, entry in acc["sensitivity_by_site"].items():
        assert rows[site] == [str(entry["n"]), str(entry["detected"]), _num(entry["sensitivity"])]
    assert rows["Studies"] == [str(m["cases"]["n"])]
    assert rows["Analysable studies"] == [str(m["cases"]["n_analysable"])]
    assert rows["Throughput (studies/s)"] == [_num(m["throughput"]["studies_per_s"])]
    assert rows["Peak RSS (MB)"] == [_num(m["memory"]["peak_rss_mb"], 1)]
    assert rows["Model sha256"] == [m["model"]["sha256"]]
    for reason, count in m["not_analysable"]["by_reason"].items():
        assert rows[reason] == [str(count)]
    assert "![ROC curve with the operating point](roc.png)" in text
    base = m["baseline"]
    assert rows["AUC, the baseline"][:3] == [
        _num(base["auc"]["value"]),
        *(_num(v) for v in base["auc"]["ci95"]),
    ]
    assert rows["the model's AUC minus the baseline's"][0] == _num(
        base["model_auc_minus_baseline"]["value"]
    )


def test_report_html_has_the_banner_tables_and_plots(report: Path) -> None:
    m = metrics_of(report)
    page = (report / "report.html").read_text()
    assert f'<p class="banner">{NOT_FOR_CLINICAL_USE}</p>' in page
    assert '<img src="roc.png"' in page and '<img src="latency.png"' in page
    sens = m["accuracy"]["sensitivity"]
    assert f"<td>Sensitivity</td><td>{_num(sens['value'])}</td>" in page
    total = m["latency_ms"]["stages"]["total"]
    assert f"<td>total</td><td>{total['n']}</td><td>{_num(total['p50'], 1)}</td>" in page


def test_json_and_limit(dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "r"
    proc = lvo_triage("bench", dataset, "--out", out, "--json", "--limit", "3")
    assert proc.returncode == 0, proc.stderr
    (line,) = proc.stdout.splitlines()  # stdout: one JSON line, nothing else
    printed = json.loads(line)
    assert printed == metrics_of(out)
    assert printed["cases"]["n"] == 3 and printed["not_analysable"]["n"] == 1


def _write_labels(root: Path, text: str, folders: tuple[str, ...] = ("a", "b")) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name in folders:
        (root / name).mkdir(exist_ok=True)
    (root / "labels.csv").write_text(text)
    return root


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        ("case_id,lvo\na,1\nb,yes\n", "labels.csv line 3: lvo must be 0 or 1, got 'yes'"),
        ("case_id,lvo,side\na,1,up\nb,0,\n", "side must be left, right or empty, got 'up'"),
        ("case_id,label\na,1\n", "has no column 'lvo'"),
        ("case_id,lvo\na,1\nmissing,0\n", "case 'missing' has neither a folder missing/"),
        ("case_id,lvo\na,2\nb,x\n", "2 problems in"),
    ],
)
def test_bad_labels_exit_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], labels: str, message: str
) -> None:
    root = _write_labels(tmp_path / "ds", labels)
    code = main(["bench", str(root), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert code == EXIT_USAGE
    assert err.startswith("lvo-triage bench: error: ") and "\n" not in err
    assert message in err
    assert not (tmp_path / "out").exists()  # nothing ran


def test_missing_labels_csv_and_missing_dataset_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "empty").mkdir()
    assert main(["bench", str(tmp_path / "empty")]) == EXIT_USAGE
    assert "no labels.csv in" in capsys.readouterr().err
    assert main(["bench", str(tmp_path / "nowhere")]) == EXIT_USAGE
    assert "is not a folder" in capsys.readouterr().err
    root = _write_labels(tmp_path / "ds", "case_id,lvo\na,1\n")
    assert main(["bench", str(root), "--limit", "0"]) == EXIT_USAGE
    assert "--limit 0 must be at least 1" in capsys.readouterr().err


def _case(tmp_path: Path) -> LabelledCase:
    return LabelledCase(
        case_id="c1", lvo=True, side="left", site="M1", path=tmp_path, kind=CaseKind.DICOM
    )


def test_run_case_turns_an_internal_failure_into_an_error_outcome(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(engine: object, path: Path) -> list[object]:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr("lvo_triage.bench.cases.triage_path", boom)
    outcome = run_case(object(), _case(tmp_path))  # type: ignore[arg-type]
    assert outcome.status == "error" and not outcome.analysable
    assert outcome.reason == "internal error (RuntimeError): disk on fire"
    assert (outcome.case_id, outcome.lvo, outcome.site_label) == ("c1", True, "M1")


def _outcome(case_id: str, lvo: bool, p: float | None, side: str | None = None) -> CaseOutcome:
    if p is None:
        return CaseOutcome(case_id, lvo, None, None, "not_analyzable", reason="no contrast")
    return CaseOutcome(
        case_id,
        lvo,
        "left" if lvo else None,
        "M1" if lvo else None,
        "ok",
        probability=p,
        lvo_suspected=p >= 0.5,
        side=side if p >= 0.5 else None,
        timings_ms={"load": 10.0, "total": 100.0 + 10 * len(case_id)},
    )


def test_figures_on_known_outcomes() -> None:
    outcomes = [
        _outcome("a", True, 0.9, "left"),
        _outcome("b", True, 0.7, "right"),
        _outcome("c", True, 0.2),
        _outcome("d", False, 0.6),
        _outcome("e", False, 0.1),
        _outcome("f", False, 0.3),
        _outcome("g", False, 0.05),
        _outcome("h", True, None),
    ]
    info = RunInfo(
        dataset_name="x",
        model=ModelInfo(name="m", version="1", sha256="0" * 64, provider="CPU"),
        threshold=0.5,
        wall_s=2.0,
        startup_s=0.1,
        peak_rss_mb=100.0,
    )
    m = bench_metrics(outcomes, info, rounds=200)
    acc = m["accuracy"]
    assert acc["confusion_matrix"] == {"tp": 2, "fn": 1, "fp": 1, "tn": 3}
    assert acc["sensitivity"]["value"] == pytest.approx(2 / 3, abs=1e-4)
    assert acc["specificity"]["value"] == 0.75
    assert acc["ppv"]["value"] == pytest.approx(2 / 3, abs=1e-4)
    assert acc["npv"]["value"] == 0.75
    assert acc["auc"]["value"] == pytest.approx(10 / 12, abs=1e-4)  # 10 of 12 pairs ordered
    assert acc["side_accuracy_true_positives"] == {"n": 2, "correct": 1, "accuracy": 0.5}
    assert acc["sensitivity_by_site"] == {"M1": {"n": 3, "detected": 2, "sensitivity": 0.6667}}
    assert m["not_analysable"]["by_reason"] == {"no contrast": 1}
    assert m["not_analysable"]["rate"] == 0.125
    assert m["throughput"]["studies_per_s"] == 4.0
    assert m["latency_ms"]["stages"]["total"] == {"n": 7, "p50": 110.0, "p95": 110.0, "max": 110.0}
    one_class = bench_metrics(outcomes[:3], info, rounds=50)["accuracy"]
    assert one_class["auc"] == {"value": None, "ci95": None} and one_class["roc_curve"] is None
    assert one_class["specificity"] == {
        "value": None,
        "ci95": None,
        "numerator": 0,
        "denominator": 0,
    }


def test_the_baseline_beside_the_model_on_known_outcomes() -> None:
    outcomes = [
        dataclasses.replace(_outcome("a", True, 0.9, "left"), asymmetry=0.4, asymmetry_side="left"),
        dataclasses.replace(_outcome("b", True, 0.7), asymmetry=0.1, asymmetry_side="right"),
        dataclasses.replace(_outcome("c", False, 0.2), asymmetry=0.2, asymmetry_side="left"),
        dataclasses.replace(_outcome("d", False, 0.1), asymmetry=0.05, asymmetry_side="left"),
        _outcome("e", True, None),
    ]
    info = RunInfo(
        dataset_name="x",
        model=ModelInfo(name="m", version="1", sha256="0" * 64, provider="CPU"),
        threshold=0.5,
        wall_s=1.0,
        startup_s=0.1,
        peak_rss_mb=100.0,
    )
    base = bench_metrics(outcomes, info, rounds=100)["baseline"]
    assert base["n"] == 4
    assert base["auc"]["value"] == 0.75  # 3 of the 4 LVO / no-LVO pairs in order
    assert base["model_auc_minus_baseline"]["value"] == 0.25  # the model orders all 4
    assert base["side_accuracy_lvo"] == {"n": 2, "correct": 1, "accuracy": 0.5}
    lo, hi = base["auc"]["ci95"]
    assert 0.0 <= lo <= 0.75 <= hi <= 1.0
