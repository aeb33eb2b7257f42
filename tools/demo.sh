#!/usr/bin/env bash
# The main job (`make demo`): build the synthetic world, then for each model
# (MODEL=all, the default; MODEL=glamm or MODEL=llava_g for one) train it on
# 2 CPU cores, test it, and print its metrics next to the heuristic
# baselines a learned model has to beat.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
MODEL=${MODEL:-all}
DATA=data/synthetic
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
case "$MODEL" in
  all|glamm|llava_g) ;;
  *) echo "MODEL must be all, glamm or llava_g (got '$MODEL')" >&2; exit 2 ;;
esac

step() { printf '\n==== %s ====\n' "$*"; }

step "synthetic world -> $DATA (deterministic, seed 0)"
$PY tools/dataset_converters/make_synthetic.py --out "$DATA" --seed 0 --preview 4

if [ "$MODEL" = all ] || [ "$MODEL" = glamm ]; then
  CFG=configs/glamm/glamm_llama-tiny_clip-tiny_sam-tiny_1000it_synthetic.py
  RES_CFG=configs/glamm/glamm_llama-tiny_clip-tiny_sam-tiny_1000it_synthetic-refseg-test.py
  WORK=${WORK:-work_dirs/glamm_tiny_demo}
  step "GLaMM 1/3: train tiny GLaMM ($CFG)"
  start=$(date +%s)
  $PY tools/train.py "$CFG" --work-dir "$WORK"
  echo "training took $(( $(date +%s) - start )) s"
  CKPT=$(cat "$WORK/last_checkpoint")
  step "GLaMM 2/3: grounded conversation generation on synthetic val"
  $PY tools/test.py "$CFG" "$CKPT" --work-dir "$WORK/test_gcg" \
      --out "$WORK/gcg_predictions.pkl" --show-dir vis
  step "GLaMM 3/3: referring segmentation on synthetic val (every expression)"
  $PY tools/test.py "$RES_CFG" "$CKPT" --work-dir "$WORK/test_refseg"
  echo "visualised predictions: $(ls -d "$WORK"/test_gcg/*/vis 2>/dev/null | tail -1)"
fi

if [ "$MODEL" = all ] || [ "$MODEL" = llava_g ]; then
  LCFG=configs/llava_grounding/llava-g_llama-tiny_clip-tiny_openseed-tiny_600it_synthetic.py
  GVC_CFG=configs/llava_grounding/llava-g_llama-tiny_clip-tiny_openseed-tiny_600it_synthetic-gvc-test.py
  FLICKR_CFG=configs/llava_grounding/llava-g_llama-tiny_clip-tiny_openseed-tiny_600it_synthetic-flickr-test.py
  GIVEN_CFG=configs/llava_grounding/llava-g_llama-tiny_clip-tiny_openseed-tiny_600it_synthetic-given-answer-test.py
  LWORK=${LWORK:-work_dirs/llava_g_tiny_demo}
  step "LLaVA-G 1/5: train tiny LLaVA-G ($LCFG)"
  start=$(date +%s)
  $PY tools/train.py "$LCFG" --work-dir "$LWORK"
  echo "training took $(( $(date +%s) - start )) s"
  LCKPT=$(cat "$LWORK/last_checkpoint")
  step "LLaVA-G 2/5: REC Acc@0.5 + RES gIoU/cIoU on synthetic val (every expression), expression given in the answer"
  $PY tools/test.py "$GIVEN_CFG" "$LCKPT" --work-dir "$LWORK/test_rec_res_given"
  step "LLaVA-G 3/5: the same on the model's own generated answers"
  $PY tools/test.py "$LCFG" "$LCKPT" --work-dir "$LWORK/test_rec_res" --show-dir vis
  step "LLaVA-G 4/5: grounded visual chat (Grounding-Bench grounded P/R/F1)"
  $PY tools/test.py "$GVC_CFG" "$LCKPT" --work-dir "$LWORK/test_gvc"
  step "LLaVA-G 5/5: Flickr30K Entities phrase grounding (R@1/5/10, GT phrases given)"
  $PY tools/test.py "$FLICKR_CFG" "$LCKPT" --work-dir "$LWORK/test_flickr"
fi

step "heuristic baselines on the same expressions (x 100; compare with the tables above)"
$PY tools/analysis_tools/synthetic_baselines.py "$DATA" --split val
echo
echo "preview of the world: $DATA/preview.png"
