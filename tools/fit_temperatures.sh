#!/usr/bin/env bash
# Calibrate the shipped zoo packages' probabilities: fit a softmax temperature on the 10 % of FER+
# train that `tools/train_zoo_edge.sh` held out (--holdout 0.1 --seed 0; never trained on, never
# FER+ valid), store it in each sidecar, then re-measure FER+ valid under both protocols so the
# recorded ECE is the calibrated one (`ece_uncalibrated` keeps T = 1's).
# The default (fer_default) was trained on all of FER+ train, so it has no held-out faces to fit on.
# Usage: tools/fit_temperatures.sh [MODEL ...]   (default: the four zoo models)
#        FER_EDGE_INT8_ONLY=1 fits only the INT8 packages (after make_zoo_models.sh rebuilt them).
set -euo pipefail
cd "$(dirname "$0")/.."
FERPLUS=${FER_EDGE_FERPLUS:-../shared/data/ferplus}
OUT=fer_edge/data/models
for model in ${*:-simam_resnet han_pff local_joint faer}; do
  packages=("${model}_int8")
  [ -z "${FER_EDGE_INT8_ONLY:-}" ] && packages=("$model" "${model}_int8")
  for package in "${packages[@]}"; do
    fer-edge eval --model "$OUT/$package.json" --data "$FERPLUS" --split holdout --holdout-fraction 0.1 --seed 0 \
      --fit-temperature --record --out "runs/temperature_$package" | tail -2
    for protocol in majority authors; do
      fer-edge eval --model "$OUT/$package.json" --data "$FERPLUS" --split val --protocol "$protocol" --record \
        --out "runs/eval_${package}_${protocol}_calibrated" | grep "calibration error"
    done
  done
done
