#!/usr/bin/env bash
# Short CPU training of the other three zoo models' edge variants, for the model card's
# per-architecture numbers: same data, input size and recipe as the default, far fewer epochs
# (what fitted the session that made the card: local_joint 3, faer 3 epochs; its han_pff run
# stopped after epoch 2 of 6, and re-running this script completes it).
# Usage: tools/train_zoo_edge.sh   (re-running resumes each run from runs/zoo_<id>/last.pt)
set -euo pipefail
cd "$(dirname "$0")/.."
FERPLUS=${FER_EDGE_FERPLUS:-../shared/data/ferplus}
for run in han_pff:6 local_joint:3 faer:3; do
  model=${run%%:*} epochs=${run##*:}
  fer-edge train --model "$model" --variant edge --data "$FERPLUS" --in-size 48 --epochs "$epochs" \
    --batch-size 64 --recipe fast --soft-labels --amp bf16 --threads 1 --seed 0 --out "runs/zoo_$model" --resume \
    --no-progress
  fer-edge eval --model "runs/zoo_$model/best.pt" --data "$FERPLUS" --split val --occlusion --out "runs/eval_$model"
done
