#!/bin/sh
# Session 3 continuation of the bundled tiny model (from the session-2 weights).
# --checkpoint bundled here meant the session-2 weights (commit 2e20bbe), not the ones this command made. Ran once, uninterrupted, 3000 steps (~60 min on 2 threads of a shared machine).
cd "$(dirname "$0")/../.."
exec env OMP_NUM_THREADS=2 .venv/bin/maskengine train --out runs/tiny3 --model tiny \
  --checkpoint bundled --data synthetic --data-seed 2 --num-images 1000000 --scene-size 256 --seed 2 \
  --steps 3000 --batch-size 6 --masks-per-image 4 --points 8 --mask-only 2 --box-prob 0.3 \
  --grad-iterations 2 --loss-size 128 --lr 0.0007 --warmup-steps 100 \
  --threads 2 --checkpoint-every 100 --keep-checkpoints 3
