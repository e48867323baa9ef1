#!/usr/bin/env bash
# The latency benchmark with ONNX Runtime's CUDA provider, on a machine with an NVIDIA GPU.
#
#   bash scripts/bench_gpu.sh [WHEELS_DIR] [-- bench_latency.py options]
#
# Makes its own virtual environment (.venv-gpu, or $VENV) with the 'gpu' extra (onnxruntime-gpu in
# place of onnxruntime), checks that ONNX Runtime sees CUDA, then runs scripts/bench_latency.py
# --provider cuda (the memory run included). Only inference moves to the GPU; reading, decoding
# and preprocessing stay on the CPU. With WHEELS_DIR it installs from there alone and needs no
# network: fill it beforehand on a connected machine of the same platform with
#   pip download -d WHEELS_DIR torch==2.13.0 -e ".[gpu]" onnxruntime-gpu
# NOT FOR CLINICAL USE: the figures time a research model trained on synthetic phantoms.
set -euo pipefail
cd "$(dirname "$0")/.."
wheels=""
if [ $# -gt 0 ] && [ "$1" != "--" ]; then
  wheels="$1"
  shift
fi
[ "${1:-}" = "--" ] && shift
if ! nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader; then
  echo "no NVIDIA GPU here (nvidia-smi failed): run this on the GPU machine" >&2
  exit 1
fi
venv="${VENV:-.venv-gpu}"
pip_from=()
if [ -n "$wheels" ]; then
  [ -d "$wheels" ] || { echo "wheel folder $wheels not found" >&2; exit 1; }
  pip_from=(--no-index --find-links "$wheels")
fi
python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet "${pip_from[@]}" torch==2.13.0
"$venv/bin/python" -m pip install --quiet "${pip_from[@]}" -e ".[gpu]"
# onnxruntime (CPU) and onnxruntime-gpu install the same module: keep only the GPU build
"$venv/bin/python" -m pip uninstall --quiet -y onnxruntime
"$venv/bin/python" -m pip install --quiet "${pip_from[@]}" --force-reinstall --no-deps \
  onnxruntime-gpu
"$venv/bin/python" - <<'PY'
import onnxruntime as ort

if hasattr(ort, "preload_dlls"):
    ort.preload_dlls()
providers = ort.get_available_providers()
print("onnxruntime", ort.__version__, providers)
if "CUDAExecutionProvider" not in providers:
    raise SystemExit("this onnxruntime has no CUDAExecutionProvider: check onnxruntime-gpu")
PY
"$venv/bin/python" scripts/bench_latency.py --provider cuda "$@"
