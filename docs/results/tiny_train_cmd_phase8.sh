#!/bin/bash
# RUN: the same prefix as docs/results/tiny_train_cmd_tvit.sh (its phase 7 must exist).
set -euo pipefail
RUN=${RUN:-runs/tiny}
# Phase 8 (an experiment, not shipped unless docs/training.md says so): the phase-7 model
# grown deeper (stages 2 and 3: 4 -> 12 and 2 -> 6 blocks, the new ones starting as the
# identity; python -m maskengine.modeling.grow), batch-norm statistics fixed, 300 steps.
.venv/bin/python -m maskengine.modeling.grow --model tiny --checkpoint "$RUN-phase7/model.pt" \
  --depths 2,2,12,6 --out "$RUN-grown"
OMP_NUM_THREADS=1 .venv/bin/maskengine train --out "$RUN-phase8" --model "$RUN-grown.json" \
  --checkpoint "$RUN-grown.pt" --freeze-batchnorm --data synthetic --data-seed 11 \
  --num-images 1000000 --scene-size 256 --seed 11 --steps 300 --batch-size 4 --accumulate 2 \
  --masks-per-image 8 --points 8 --mask-only 2 --box-prob 0.3 --grad-iterations 2 \
  --loss-size 256 --lr 0.0003 --warmup-steps 10 --first-decay 0.6 --second-decay 0.85 \
  --threads 1 --checkpoint-every 20 --keep-checkpoints 3 --max-cpu-minutes 115
