#!/usr/bin/env bash
# Train the zoo's shipped edge models on FER+ train (48x48 gray, vote distributions as targets,
# the `fast` recipe), choosing checkpoints on 10 % held out of FER+ train (FER+ valid stays for
# the final numbers). One thread per run, so two runs share the 2-core machine.
# Usage: tools/train_zoo_edge.sh [MODEL:EPOCHS ...]   (default: all four at the card's epochs;
#        re-running resumes each run from runs/zoo_<id>/last.pt)
# FER_EDGE_TEACHER="PACKAGE [PACKAGE ...]" distils from a trained model or the mean of several (soft
# targets mixed 50/50 with the votes); FER_EDGE_TEACHER_ONCE=1 scores each face once (--teacher-once).
# FER_EDGE_FINETUNE_LR=LR fine-tunes the shipped weights of each model (--init ID --lr LR) into
# runs/zoo_<id>_finetune instead of training from random weights (runs/zoo_<id>_NAME with FER_EDGE_RUN=NAME,
# e.g. a second fine-tune of weights that came from the first).
set -euo pipefail
cd "$(dirname "$0")/.."
FERPLUS=${FER_EDGE_FERPLUS:-../shared/data/ferplus}
RUNS=${*:-han_pff:20 simam_resnet:20 local_joint:25 faer:18}
TEACHER=()
for package in ${FER_EDGE_TEACHER:-}; do TEACHER+=(--teacher "$package"); done
[ -n "${FER_EDGE_TEACHER_ONCE:-}" ] && TEACHER+=(--teacher-once)
for run in $RUNS; do
  model=${run%%:*} epochs=${run##*:} out=runs/zoo_$model start=()
  if [ -n "${FER_EDGE_FINETUNE_LR:-}" ]; then
    out=runs/zoo_${model}_${FER_EDGE_RUN:-finetune} start=(--init "$model" --lr "$FER_EDGE_FINETUNE_LR")
  fi
  fer-edge train --model "$model" --variant edge --data "$FERPLUS" --in-size 48 --epochs "$epochs" \
    --batch-size 64 --recipe fast --soft-labels --amp auto --threads 1 --seed 0 --holdout 0.1 \
    --out "$out" --resume --no-progress "${TEACHER[@]}" "${start[@]}"
done
