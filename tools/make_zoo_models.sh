#!/usr/bin/env bash
# Package the zoo's trained edge models for shipping (after tools/train_zoo_edge.sh): each becomes
# fer_edge/data/models/<id>.pt (+ .json; float16-stored weights, used by create_model(pretrained=True)
# and `fer-edge build --model <id>`) and <id>_int8.onnx (+ .json; ONNX Runtime INT8, what
# Recognizer(model=<id>) runs on a CPU; the float weights it keeps in FP32 stored as float16). Every
# package is measured on all of FER+ valid under both protocols (eyes/mouth occlusion under ours), and
# the numbers are recorded in its sidecar.
# Usage: tools/make_zoo_models.sh [MODEL ...]   (default: han_pff local_joint faer simam_resnet)
#        FER_EDGE_INT8_ONLY=1 rebuilds and re-measures only the INT8 packages from the shipped weights.
#        FER_EDGE_RUN=NAME ships runs/zoo_<id>_NAME/best.pt instead of runs/zoo_<id>/best.pt: `finetune`
#        (FER_EDGE_FINETUNE_LR runs of tools/train_zoo_edge.sh) or `soup` (tools/average_weights.py).
set -euo pipefail
cd "$(dirname "$0")/.."
FERPLUS=${FER_EDGE_FERPLUS:-../shared/data/ferplus}
OUT=fer_edge/data/models
for model in ${*:-han_pff local_joint faer simam_resnet}; do
  packages=("${model}_int8")
  if [ -z "${FER_EDGE_INT8_ONLY:-}" ]; then
    python tools/ship_weights.py "runs/zoo_$model${FER_EDGE_RUN:+_$FER_EDGE_RUN}/best.pt" "$OUT/$model.pt"
    packages=("$model" "${model}_int8")
  fi
  fer-edge build --model "$model" --int8 --target onnxruntime --fp16-weights --calib calibration/fer_default.json \
    --method entropy -o "$OUT/${model}_int8.onnx"
  for package in "${packages[@]}"; do
    agree=()
    [[ $package == *_int8 ]] && agree=(--agree-with "$OUT/$model.json")
    for protocol in majority authors; do
      fer-edge eval --model "$OUT/$package.json" --data "$FERPLUS" --split val --protocol "$protocol" \
        $([[ $protocol == majority ]] && echo --occlusion) --record --out "runs/eval_${package}_$protocol" "${agree[@]}"
    done
  done
  if [ -z "${FER_EDGE_INT8_ONLY:-}" ]; then
    cp "runs/eval_${model}_majority/confusion.png" "docs/model_card/${model}_confusion.png"
  fi
  cp "runs/eval_${model}_int8_majority/confusion.png" "docs/model_card/${model}_int8_confusion.png"
done
