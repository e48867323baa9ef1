"""The Ray engine (``--engine ray``) against the local one: the same benchmark figures, the same
``run`` outputs, the same training arrays; a worker that dies costs one study, not the job.

Ray runs on this machine (two CPUs, no dashboard), started once for the module. Without Ray the
tests skip, unless ``LVO_REQUIRE_RAY=1`` (set by CI, whose ``make setup`` installs the extra)
makes that a failure.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lvo_triage.cli import EXIT_INTERNAL, EXIT_OK, EXIT_USAGE, main
from lvo_triage.engines import RAY_EXTRA_HINT, EngineOptions
from lvo_triage.labels import read_labels
from lvo_triage.model_card import DEFAULT_INPUT
from lvo_triage.train.labelled import build_labelled_arrays

N_CASES = 11  # with the junk case: 12
JUNK = "junk_case"
CRASH = "crash_me"  # a case or study whose path holds this makes the worker process exit
ACCURACY_FIELDS = ("schema", "dataset", "model", "threshold", "cases", "not_analysable")
ACCURACY_FIELDS += ("accuracy", "bootstrap", "not_for_clinical_use")


def _crash_on_marker() -> None:
    """Ray's worker set-up hook: a case or study under a path holding ``CRASH`` kills the
    worker process (as a segfaulting decoder would), everything else runs as usual."""
    from lvo_triage import pipeline
    from lvo_triage.bench import cases

    real_path, real_examine = cases.triage_path, pipeline.examine

    def path_or_crash(runtime: Any, path: Path, **kwargs: Any) -> Any:
        if CRASH in str(path):
            os._exit(3)
        return real_path(runtime, path, **kwargs)

    def examine_or_crash(runtime: Any, study: Any, timer: Any) -> Any:
        paths = [i.path for s in study.series.values() for i in s.instances]
        if any(CRASH in str(p) for p in paths):
            os._exit(3)
        return real_examine(runtime, study, timer)

    cases.triage_path = path_or_crash  # type: ignore[assignment]
    pipeline.examine = examine_or_crash  # type: ignore[assignment]


def _require_ray() -> Any:
    try:
        import ray
    except ImportError:
        if os.environ.get("LVO_REQUIRE_RAY") == "1":
            pytest.fail("Ray is not installed, and LVO_REQUIRE_RAY=1 says it must be")
        pytest.skip(f"Ray is not installed ({RAY_EXTRA_HINT}; `make setup` does)")
    return ray


@pytest.fixture(scope="module")
def ray_here() -> Iterator[None]:
    ray = _require_ray()
    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the hook, for the workers
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        logging_level=logging.WARNING,
        runtime_env={"worker_process_setup_hook": _crash_on_marker},
    )
    try:
        yield
    finally:
        ray.shutdown()
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


def _write_labels(root: Path, rows: list[dict[str, str]]) -> None:
    with (root / "labels.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["case_id", "lvo", "side", "site"])
        writer.writeheader()
        writer.writerows(rows)


def _phantoms(root: Path, n: int, seed: int) -> Path:
    """``lvo-triage synth --fast`` with a junk case (a folder holding a text file) third."""
    assert main(["synth", str(root), "--n", str(n), "--seed", str(seed), "--fast"]) == EXIT_OK
    with (root / "labels.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    (root / JUNK).mkdir()
    (root / JUNK / "notes.txt").write_text("not an image\n")
    rows.insert(2, {"case_id": JUNK, "lvo": "0", "side": "", "site": ""})
    _write_labels(root, rows)
    return root


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _phantoms(tmp_path_factory.mktemp("ray") / "phantoms", N_CASES, seed=8)


def _metrics(out: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((out / "metrics.json").read_text())
    return doc


def _cases(out: Path) -> dict[str, dict[str, str]]:
    with (out / "cases.csv").open(newline="") as fh:
        return {row["case_id"]: row for row in csv.DictReader(fh)}


def _bench_both(dataset: Path, tmp: Path, *ray_args: str) -> tuple[Path, Path]:
    local, on_ray = tmp / "local", tmp / "ray"
    assert main(["bench", str(dataset), "--out", str(local)]) == EXIT_OK
    assert main(["bench", str(dataset), "--out", str(on_ray), "--engine", "ray", *ray_args]) == 0
    return local, on_ray


def _assert_same_bench(local: Path, on_ray: Path, n: int, workers: int) -> None:
    a, b = _metrics(local), _metrics(on_ray)
    for key in ACCURACY_FIELDS:
        assert a[key] == b[key], key
    assert a["cases"]["n"] == n
    assert set(a["latency_ms"]["stages"]) == set(b["latency_ms"]["stages"])
    assert (a["throughput"]["engine"], a["throughput"]["workers"]) == ("local", 1)
    assert (b["throughput"]["engine"], b["throughput"]["workers"]) == ("ray", workers)
    for m in (a, b):
        through = m["throughput"]
        assert through["studies"] == n and through["studies_per_s"] > 0
    rows_a, rows_b = _cases(local), _cases(on_ray)
    assert list(rows_a) == list(rows_b)  # the order of labels.csv
    for case_id, row in rows_a.items():
        other = rows_b[case_id]
        for column in ("status", "reason", "lvo_suspected", "side_predicted"):
            assert row[column] == other[column], (case_id, column)
        if row["probability"]:
            assert float(row["probability"]) == pytest.approx(float(other["probability"]), abs=1e-6)
    assert rows_a[JUNK]["status"] == rows_b[JUNK]["status"] == "not_analyzable"
    report = (on_ray / "report.md").read_text()
    assert f"| Engine | ray, {workers} workers |" in report


def test_bench_on_ray_gives_the_local_figures(
    ray_here: None, dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    local, on_ray = _bench_both(dataset, tmp_path, "--workers", "2")
    _assert_same_bench(local, on_ray, N_CASES + 1, workers=2)
    err = capsys.readouterr().err
    assert "bench: 100%" in err  # the Ray engine's progress bar too


def test_run_on_ray_writes_what_the_local_engine_writes(
    ray_here: None, dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The whole dataset folder as one PATH: several studies, a junk file and labels.csv."""
    outs = {}
    for engine in ("local", "ray"):
        out = tmp_path / engine
        assert main(["run", str(dataset), "--out", str(out), "--json", "--engine", engine]) == 0
        printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert len(printed) == N_CASES
        outs[engine] = (out, {doc["study_instance_uid"]: doc for doc in printed})
    (local, printed_local), (on_ray, printed_ray) = outs["local"], outs["ray"]
    assert set(printed_local) == set(printed_ray)
    volatile = ("timings_ms", "started_at", "finished_at")
    for uid, doc in printed_local.items():
        written_local = json.loads((local / uid / "result.json").read_text())
        written_ray = json.loads((on_ray / uid / "result.json").read_text())
        for a, b in ((doc, printed_ray[uid]), (written_local, written_ray)):
            assert {k: v for k, v in a.items() if k not in volatile} == {
                k: v for k, v in b.items() if k not in volatile
            }
            assert set(a["timings_ms"]) == set(b["timings_ms"])
        assert any("junk_case" in w for w in written_ray["warnings"])  # discovery's, shared
        images = [(out / uid / "key_image.png").read_bytes() for out in (local, on_ray)]
        assert images[0] == images[1]
    lines = {
        out: [json.loads(line) for line in (out / "timing.jsonl").read_text().splitlines()]
        for out in (local, on_ray)
    }
    assert sorted(r["study_instance_uid"] for r in lines[local]) == sorted(
        r["study_instance_uid"] for r in lines[on_ray]
    )
    assert {frozenset(r) for r in lines[local]} == {frozenset(r) for r in lines[on_ray]}


def test_a_crashing_worker_costs_its_case_only(
    ray_here: None, dataset: Path, tmp_path: Path
) -> None:
    """One worker; it dies on the crashing case, Ray starts it again, the rest are triaged."""
    root = tmp_path / "crashy"
    root.mkdir()
    labels = {r["case_id"]: r for r in csv.DictReader((dataset / "labels.csv").open())}
    rows = []
    for case_id, source in (
        ("case0000", "case0000"),
        (CRASH, "case0001"),
        ("case0003", "case0003"),
    ):
        shutil.copytree(dataset / source, root / case_id)
        rows.append({**labels[source], "case_id": case_id})
    _write_labels(root, rows)
    out = tmp_path / "report"
    code = main(["bench", str(root), "--out", str(out), "--engine", "ray", "--workers", "1"])
    assert code == EXIT_INTERNAL  # an internal failure is reported, after the whole job
    m = _metrics(out)
    assert m["cases"]["n"] == 3 and m["cases"]["n_analysable"] == 2
    assert m["not_analysable"]["by_status"] == {"not_analyzable": 0, "error": 1}
    rows_out = _cases(out)
    assert rows_out[CRASH]["status"] == "error" and "Ray worker lost" in rows_out[CRASH]["reason"]
    assert [rows_out[c]["status"] for c in ("case0000", "case0003")] == ["ok", "ok"]

    run_out = tmp_path / "run"
    code = main(["run", str(root), "--out", str(run_out), "--engine", "ray", "--workers", "2"])
    assert code == EXIT_INTERNAL
    results = [json.loads(p.read_text()) for p in run_out.glob("*/result.json")]
    assert sorted(r["status"] for r in results) == ["error", "ok", "ok"]
    (lost,) = [r for r in results if r["status"] == "error"]
    assert "Ray worker lost" in lost["reason"] and lost["priority"] == "unknown"
    assert len((run_out / "timing.jsonl").read_text().splitlines()) == 3  # the lost one too


def test_training_arrays_on_ray_equal_the_local_ones(
    ray_here: None, dataset: Path, tmp_path: Path
) -> None:
    from lvo_triage.train.ray_labelled import RayPreprocess

    cases = read_labels(dataset)
    local = build_labelled_arrays(
        cases, spec=DEFAULT_INPUT, cache_dir=tmp_path / "local", progress=False
    )
    mapper = RayPreprocess(spec=DEFAULT_INPUT, cache_dir=tmp_path / "ray")
    on_ray = build_labelled_arrays(
        cases, spec=DEFAULT_INPUT, cache_dir=tmp_path / "ray", progress=False, mapper=mapper
    )
    assert len(local.x) == N_CASES  # the junk case skipped by both
    for name in ("x", "lvo", "left", "site", "seeds"):
        np.testing.assert_array_equal(getattr(local, name), getattr(on_ray, name), err_msg=name)
    names = {p.name for p in (tmp_path / "local").iterdir()}
    assert names and names == {p.name for p in (tmp_path / "ray").iterdir()}  # the same cache
    again = build_labelled_arrays(  # the local path reads what the Ray workers cached
        cases, spec=DEFAULT_INPUT, cache_dir=tmp_path / "ray", progress=False
    )
    np.testing.assert_array_equal(again.x, local.x)


def test_worker_plan() -> None:
    _require_ray()
    from lvo_triage.engines.ray_cluster import plan_workers

    plan = plan_workers(node_cpus=[2.0], requested=None, items=40)
    assert (plan.workers, plan.cpus_each, plan.threads) == (2, 1.0, 1)
    plan = plan_workers(node_cpus=[2.0], requested=1, items=40)
    assert (plan.workers, plan.cpus_each, plan.threads) == (1, 2.0, 2)
    plan = plan_workers(node_cpus=[2.0], requested=4, items=40)
    assert (plan.workers, plan.cpus_each, plan.threads) == (4, 0.5, 1)
    plan = plan_workers(node_cpus=[8.0, 8.0], requested=2, items=40)
    assert (plan.workers, plan.cpus_each, plan.threads) == (2, 8.0, 8)
    assert plan_workers(node_cpus=[16.0], requested=None, items=3).workers == 3


def test_without_ray_the_ray_engine_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch, dataset: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` fails as if not installed
    for command in ("bench", "run"):
        assert main([command, str(dataset), "--engine", "ray"]) == EXIT_USAGE
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"lvo-triage {command}: error: ") and "\n" not in err
        assert "install the ray extra: pip install 'lvo-triage[ray]'" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--workers", "2"), "--workers is for the ray engine only"),
        (("--address", "10.0.0.1:6379"), "--address is for the ray engine only"),
        (("--engine", "ray", "--workers", "0"), "--workers=0 must be at least 1"),
    ],
)
def test_engine_options_are_checked(
    dataset: Path, capsys: pytest.CaptureFixture[str], args: tuple[str, ...], message: str
) -> None:
    if "ray" in args:
        _require_ray()
    assert main(["bench", str(dataset), *args]) == EXIT_USAGE
    assert message in capsys.readouterr().err
    with pytest.raises(ValueError, match="must be at least 1"):
        EngineOptions(workers=0)


@pytest.mark.slow
def test_bench_on_ray_matches_local_on_40_studies(
    ray_here: None, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The issue's bar: the same metrics.json accuracy fields on at least 40 studies."""
    root = _phantoms(tmp_path_factory.mktemp("ray40") / "phantoms", 40, seed=40)
    local, on_ray = _bench_both(root, tmp_path_factory.mktemp("ray40_out"))
    _assert_same_bench(local, on_ray, 41, workers=2)
