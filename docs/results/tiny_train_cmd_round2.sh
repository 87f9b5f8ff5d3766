#!/bin/sh
# --checkpoint bundled here meant the first run's weights (commit 3a700ef), not the ones this command made.
# Continuation of the bundled tiny model (session 2): resumed with --points 8 --mask-only 2 at step 1500 (from --points 2 --mask-only 1), --steps 2700 (was 4000, then 3000).
cd /work/main
exec env OMP_NUM_THREADS=1 .venv/bin/maskengine train --out /work/runs/tiny2 --model tiny \
  --checkpoint bundled --data synthetic --data-seed 1 --num-images 1000000 --scene-size 256 --seed 1 \
  --steps 2700 --batch-size 6 --masks-per-image 4 --points 8 --mask-only 2 \
  --grad-iterations 2 --loss-size 128 --lr 0.001 --warmup-steps 100 \
  --threads 1 --checkpoint-every 100 --keep-checkpoints 3
