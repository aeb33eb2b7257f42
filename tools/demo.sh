#!/usr/bin/env bash
# The main job (`make demo`): build the synthetic world, train tiny GLaMM on
# 2 CPU cores, test it on GCG and on referring segmentation, and print the
# metrics next to the heuristic baselines a learned model has to beat.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
DATA=data/synthetic
CFG=configs/glamm/glamm_llama-tiny_clip-tiny_sam-tiny_1000it_synthetic.py
RES_CFG=configs/glamm/glamm_llama-tiny_clip-tiny_sam-tiny_1000it_synthetic-refseg-test.py
WORK=${WORK:-work_dirs/glamm_tiny_demo}
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false

step() { printf '\n==== %s ====\n' "$*"; }

step "1/5 synthetic world -> $DATA (deterministic, seed 0)"
$PY tools/dataset_converters/make_synthetic.py --out "$DATA" --seed 0 --preview 4

step "2/5 train tiny GLaMM ($CFG)"
start=$(date +%s)
$PY tools/train.py "$CFG" --work-dir "$WORK"
echo "training took $(( $(date +%s) - start )) s"
CKPT=$(cat "$WORK/last_checkpoint")

step "3/5 test: grounded conversation generation on synthetic val"
$PY tools/test.py "$CFG" "$CKPT" --work-dir "$WORK/test_gcg" \
    --out "$WORK/gcg_predictions.pkl" --show-dir vis

step "4/5 test: referring segmentation on synthetic val (every expression)"
$PY tools/test.py "$RES_CFG" "$CKPT" --work-dir "$WORK/test_refseg"

step "5/5 heuristic baselines on the same expressions (gIoU/cIoU x 100 above)"
$PY tools/analysis_tools/synthetic_baselines.py "$DATA" --split val
echo
echo "preview of the world: $DATA/preview.png"
echo "visualised predictions: $(ls -d "$WORK"/test_gcg/*/vis 2>/dev/null | tail -1)"
