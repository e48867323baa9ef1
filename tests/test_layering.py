"""The runtime (``run``, ``watch``, ``listen``, ``serve``, ``bench``) needs no training code: it
never imports ``lvo_triage.train``, and none of its own modules imports nibabel (MONAI's
``Orientation`` transform uses nibabel's orientation code, so nibabel itself stays a runtime
dependency, through MONAI only)."""

from __future__ import annotations

import ast
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

RUNTIME_MODULES = (
    "lvo_triage.cli",
    "lvo_triage.pipeline",
    "lvo_triage.service.watch",
    "lvo_triage.service.scp",
    "lvo_triage.service.serve",
    "lvo_triage.bench",
    "lvo_triage.bench.suite",
    "lvo_triage.engines.ray_run",
    "lvo_triage.bench.ray",
)

# Runs in a fresh interpreter: imports every runtime module, triages one study through the CLI's
# run command and a bench of one case, and prints which lvo_triage modules got imported.
PROBE = """
import importlib, json, sys

study, out, dataset, bench_out = sys.argv[1:5]
for name in {modules!r}:
    try:
        importlib.import_module(name)
    except ImportError as exc:
        if "ray" not in str(exc):  # Ray is an optional extra
            raise
from lvo_triage.cli import main
rc_run = main(["run", study, "--out", out])
rc_bench = main(["bench", dataset, "--out", bench_out])
loaded = sorted(m for m in sys.modules if m.startswith("lvo_triage"))
print(json.dumps({{"rc_run": rc_run, "rc_bench": rc_bench, "loaded": loaded}}))
"""


def _imports_nibabel(module: str) -> bool:
    spec = importlib.util.find_spec(module)
    assert spec is not None and spec.origin is not None
    tree = ast.parse(Path(spec.origin).read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import) and any(a.name.startswith("nibabel") for a in node.names):
            return True
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("nibabel"):
            return True
    return False


def test_the_runtime_imports_no_training_code_and_no_nibabel_of_its_own(
    fast_study: Path, tmp_path: Path, bundled_model: Path
) -> None:
    dataset = tmp_path / "dataset"
    dataset.mkdir()
    (dataset / "case1").symlink_to(fast_study, target_is_directory=True)
    (dataset / "labels.csv").write_text("case_id,lvo,side,site\ncase1,1,,\n")
    probe = PROBE.format(modules=RUNTIME_MODULES)
    args = [str(fast_study), str(tmp_path / "out"), str(dataset), str(tmp_path / "bench")]
    done = subprocess.run(
        [sys.executable, "-c", probe, *args], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["rc_run"] == 0 and report["rc_bench"] == 0, done.stderr[-3000:]
    loaded = report["loaded"]
    assert "lvo_triage.pipeline" in loaded and "lvo_triage.bench.suite" in loaded
    assert [m for m in loaded if m.startswith("lvo_triage.train")] == []
    assert [m for m in loaded if _imports_nibabel(m)] == []
    assert len(list((tmp_path / "out").glob("*/result.json"))) == 1
    assert (tmp_path / "bench" / "metrics.json").is_file()
