#!/usr/bin/env bash
# The bundled detector from nothing, in one command (`make model`), then its held-out and
# out-of-range evaluations written into its model card. NOT FOR CLINICAL USE.
#
#   bash scripts/make_model.sh [OUT]        (default OUT: runs/make-model)
#
# About 4-5 hours on 2 CPU cores, most of it rendering phantoms. Every stage keeps its cache and
# checkpoints in OUT and is skipped when its best.pt exists, so an interrupted run continues.
#   1. the first detector (0.1.0), with the phantom generator and trainer of commit FIRST, in a git
#      worktree: 20 epochs from scratch on 2,000 phantoms, then 10 epochs of fine-tuning;
#   2. today's generator (artefacts, M2 over-sampled), mid-sagittally aligned inputs, 12 epochs
#      from stage 1 on 2,400 phantoms (configs/finetune.yaml);
#   3. the same with max downsampling (--downsample max), 12 epochs from stage 2 on 1,500;
#   4. export (parity-checked) to models/lvo-detector.onnx with its card, and evaluation.
# Training on CPU is not bit-for-bit repeatable across machines: expect figures within the
# card's confidence intervals, not the same digits.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY=${PYTHON:-$ROOT/.venv/bin/python}
OUT=$(mkdir -p "${1:-$ROOT/runs/make-model}" && cd "${1:-$ROOT/runs/make-model}" && pwd)
FIRST=21af825
MODEL=$ROOT/models/lvo-detector.onnx
cd "$ROOT"

if [ ! -f "$OUT/stage1-ft/best.pt" ]; then
  [ -d "$OUT/src-$FIRST" ] || git worktree add --detach "$OUT/src-$FIRST" "$FIRST"
  (
    cd "$OUT/src-$FIRST"
    [ -f "$OUT/stage1/best.pt" ] || PYTHONPATH=. "$PY" scripts/train.py --out "$OUT/stage1" \
      --n-train 2000 --n-val 200 --epochs 20
    PYTHONPATH=. "$PY" scripts/train.py --out "$OUT/stage1-ft" --cache "$OUT/stage1/cache" \
      --n-train 2000 --n-val 200 --epochs 10 --lr 6e-4 --seed 1 --init "$OUT/stage1/best.pt"
  )
fi
[ -f "$OUT/stage2/best.pt" ] || "$PY" scripts/train.py --out "$OUT/stage2" --align-midline \
  --n-train 2400 --n-val 300 --config configs/finetune.yaml --init "$OUT/stage1-ft/best.pt"
[ -f "$OUT/stage3/best.pt" ] || "$PY" scripts/train.py --out "$OUT/stage3" --align-midline \
  --downsample max --n-train 1500 --n-val 300 --config configs/finetune.yaml \
  --init "$OUT/stage2/best.pt"
"$PY" scripts/export_onnx.py "$OUT/stage3" --out "$MODEL" --version 0.2.0 \
  --made-by "make model (scripts/make_model.sh)"
"$PY" scripts/evaluate.py --model "$MODEL" --n 100 --update-card
"$PY" scripts/evaluate.py --model "$MODEL" --out-of-range --n 100 --update-card
"$PY" scripts/evaluate.py --model "$MODEL" --site M2 --n 100 --update-card
echo "make_model: wrote $MODEL and its card; runs in $OUT"
