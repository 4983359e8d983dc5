#!/usr/bin/env bash
# Reproduce the shipped default model from nothing but FER+ (about 1-2 h on 2 CPU cores: ~55 min on a
# Xeon with native bf16, ~2 h in FP32 on an AVX2-only EPYC, where `--amp auto` picks FP32):
# train simam_resnet (edge) on 48x48 gray faces with the FER+ vote distributions as targets,
# build the FP32 (float16-stored weights) and INT8 ONNX packages, measure both on all of FER+
# valid (strict-majority protocol and the FER+ authors' protocol) and record the numbers in their sidecars.
# Usage: tools/make_default_model.sh [RUN_DIR]   (re-running resumes training from RUN_DIR/last.pt)
set -euo pipefail
cd "$(dirname "$0")/.."
FERPLUS=${FER_EDGE_FERPLUS:-../shared/data/ferplus}
RUN=${1:-runs/default_simam48}
OUT=fer_edge/data/models

fer-edge train --model simam_resnet --variant edge --data "$FERPLUS" --in-size 48 --epochs 30 \
  --batch-size 64 --recipe fast --soft-labels --amp auto --threads 2 --seed 0 --out "$RUN" --resume
fer-edge build --model "$RUN/best.pt" --target onnxruntime --fp16-weights -o "$OUT/fer_default.onnx"
fer-edge build --model "$RUN/best.pt" --int8 --target onnxruntime --calib calibration/fer_default.json \
  --method entropy -o "$OUT/fer_default_int8.onnx"
for package in fer_default fer_default_int8; do
  fer-edge eval --model "$OUT/$package.json" --data "$FERPLUS" --split val --backend onnxruntime \
    --occlusion --record --out "runs/eval_$package"
  fer-edge eval --model "$OUT/$package.json" --data "$FERPLUS" --split val --backend onnxruntime \
    --protocol authors --record --out "runs/eval_${package}_authors"
done
