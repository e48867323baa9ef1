#!/usr/bin/env bash
# A wheel built from this checkout works outside the repository: it is installed (no extras) in a
# new virtual environment in a temporary folder, and from there `lvo-triage synth` writes a study
# and `lvo-triage run` triages it with the bundled model, which must come from the installed
# package (package data), not from the checkout. Fails unless OUT holds a result.json with
# status ok. About 2 minutes on 2 cores (most of it installing torch and the dependencies).
#
#   bash scripts/check_wheel.sh            # PYTHON=python3.11 bash scripts/check_wheel.sh
#
# torch is installed first with the same pin as `make setup` (torch==2.13.0): where pip finds the
# CPU build (a local wheel, or --index-url https://download.pytorch.org/whl/cpu), that is what
# it takes; see docs/install.md. Needs git and tar.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
python="${PYTHON:-$(command -v python3.11 || command -v python3)}"
work="$(mktemp -d "${TMPDIR:-/tmp}/lvo-wheel.XXXXXX")"
trap 'rm -rf "$work"' EXIT
start=$SECONDS
say() { echo "check_wheel: $* ($((SECONDS - start)) s)"; }

# The checkout's files (tracked and new, not ignored; links kept as links) in a copy, so that the
# build leaves no build/ or *.egg-info in the repository and reads no stale one.
mkdir "$work/src" "$work/dist" "$work/run"
git -C "$repo" ls-files -z --cached --others --exclude-standard \
  | while IFS= read -r -d '' f; do
      if [[ -e "$repo/$f" || -L "$repo/$f" ]]; then printf '%s\0' "$f"; fi
    done \
  | tar -C "$repo" --null -T - -cf - | tar -C "$work/src" -xf -
"$python" -m pip wheel --quiet --no-deps --wheel-dir "$work/dist" "$work/src"
wheel=("$work"/dist/lvo_triage-*.whl)
say "built $(basename "${wheel[0]}")"
"$python" - "${wheel[0]}" <<'EOF'
import sys, zipfile
names = set(zipfile.ZipFile(sys.argv[1]).namelist())
assets = {"lvo_triage/models/lvo-detector.onnx", "lvo_triage/models/lvo-detector.json",
          "lvo_triage/configs/default.yaml"}
missing = sorted(assets - names)
extra = sorted(n for n in names if n.startswith(("lvo_triage/models/", "lvo_triage/configs/"))
               and n not in assets)
if missing or extra:
    sys.exit(f"wheel assets wrong: missing {missing}, unexpected {extra}")
EOF

"$python" -m venv "$work/venv"
pip=("$work/venv/bin/python" -m pip install --quiet)
"${pip[@]}" torch==2.13.0
"${pip[@]}" "${wheel[0]}"
say "installed in a new venv"

cd "$work/run"
unset PYTHONPATH
"$work/venv/bin/python" - "$repo" <<'EOF'
import sys
from pathlib import Path

import lvo_triage
from lvo_triage.config import DEFAULT_CONFIG, DEFAULT_MODEL, Settings, load_settings

repo = Path(sys.argv[1]).resolve()
package = Path(lvo_triage.__file__).resolve().parent
for path in (package, DEFAULT_MODEL, DEFAULT_CONFIG):
    if path.is_relative_to(repo) or not path.is_relative_to(package.parent):
        sys.exit(f"{path} is not inside the installed package {package}")
if not DEFAULT_MODEL.is_file() or not DEFAULT_MODEL.with_suffix(".json").is_file():
    sys.exit(f"bundled model or card missing beside {DEFAULT_MODEL}")
if load_settings(DEFAULT_CONFIG) != Settings():
    sys.exit(f"{DEFAULT_CONFIG} differs from the built-in defaults")
EOF
"$work/venv/bin/lvo-triage" synth studies --n 1 --fast
"$work/venv/bin/lvo-triage" run studies --out out
"$work/venv/bin/python" - out <<'EOF'
import json, sys
from pathlib import Path

results = sorted(Path(sys.argv[1]).rglob("result.json"))
if not results:
    sys.exit("no result.json under OUT")
for path in results:
    status = json.loads(path.read_text())["status"]
    if status != "ok":
        sys.exit(f"{path}: status {status!r}, expected 'ok'")
EOF
say "ok: synth and run from $work/run with the installed wheel"
