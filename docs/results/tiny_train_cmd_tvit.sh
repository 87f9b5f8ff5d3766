#!/bin/sh
# The bundled `tiny` model (TinyViT encoder, 16 x 16 embedding; config in
# maskengine.modeling.registry), trained from scratch on the default synthetic scenes.
#
# Resolved config of the run: docs/results/tiny_train_config_tvit.json; its training curve
# (every 20th step): docs/results/tiny_train_metrics_every20.jsonl.
# Phase 1 -- the model study's "tvit16" candidate (benchmarks/model_study.py, one thread,
# 30 CPU minutes, constant lr 1.5e-3 after 50 warmup steps, 4 images x 8 masks per step,
# first prompt + 4 corrective points + 1 mask-only iteration, 2 of them differentiated).
# Phase 2 -- the same run folder continued by two data-parallel processes (one thread each,
# torchrun): every step now takes 2 x 4 images; lr 1.5e-3, /10 at 75% and 92% of --steps.
# Phase 2 stopped at step 3440 (the end of that session).
# Phase 3 -- from the phase-2 weights (step 3440) with the longer interaction of the paper's
# recipe (8 corrective points + 2 mask-only iterations), batch norm trained, new scenes (data
# seed 5), lr 1e-3 after 50 warmup steps, /10 at 75% and 92% of --steps; two processes.
# As run: started with --steps 3200, restarted at step 240 with 4000 and at step 360 with
# 1800 (before any learning-rate step; the schedule is that of 1800), 72 CPU minutes.
# Config: docs/results/tiny_train_config_phase3.json; curve:
# docs/results/tiny_train_metrics_phase3_every20.jsonl.
# Phase 4 -- from the phase-3 weights, the same recipe on new scenes (data seed 6), lr 5e-4
# after 30 warmup steps, /10 at 60% and 85% of 900 steps, 37 CPU minutes (254 in all).
# Config docs/results/tiny_train_config_phase4.json, curve
# docs/results/tiny_train_metrics_phase4_every20.jsonl. The shipped weights are its step 900.
# Phase 5 -- stride 8 (32 x 32 embedding, 128 x 128 logits; `tiny` is registered at stride 8
# since then, and the stride-16 weights load into it unchanged). First the resolution study's
# p8 arm from the phase-4 weights (benchmarks/resolution_study.py, one thread, 200 steps, data
# seed 7, loss at 128), then two processes from its weights with the loss at 256 x 256, new
# scenes (data seed 8), lr 5e-4 after 20 warmup steps, /10 at 60% and 85% of 240 steps; 70
# CPU minutes (about 340 in all). As run: started with --steps 360 and restarted at step 20
# with 240 (before any learning-rate step). Config docs/results/tiny_train_config_phase5.json,
# curve docs/results/tiny_train_metrics_phase5_every20.jsonl.
# Phase 6 -- from the phase-5 weights, the same on new scenes (data seed 9), lr 3e-4 after 10
# warmup steps, /10 at 60% and 85% of 160 steps; 45 CPU minutes (about 385 in all). Config
# docs/results/tiny_train_config_phase6.json, curve
# docs/results/tiny_train_metrics_phase6_every20.jsonl. The shipped weights are its step 160.
# As run here: phase 2 started with --steps 4400 and was restarted at step 1840 (from its
# saved state, before any learning-rate step) with --steps 3700, so its schedule is that of 3700.
# Seeds: data stream 0 (scenes are a function of (seed, index)), prompts seed 0.
set -e
cd "$(dirname "$0")/../.."
RUN=${RUN:-runs/tiny}
# Phases 1-4 ran at stride 16: `tiny` at that stride (the registered `tiny` is stride 8 now).
S16=docs/results/tiny_s16_config.json
.venv/bin/python benchmarks/model_study.py train --runs "$(dirname "$RUN")/study" --minutes 30 \
  --only tvit16
mkdir -p "$RUN" && cp -r "$(dirname "$RUN")/study/tvit16/." "$RUN/"
OMP_NUM_THREADS=1 .venv/bin/python -m torch.distributed.run --standalone --nproc-per-node 2 \
  .venv/bin/maskengine train --out "$RUN" --model "$S16" \
  --data synthetic --data-seed 0 --num-images 1000000 --scene-size 256 --seed 0 \
  --steps ${STEPS:-3700} --batch-size 4 --masks-per-image 8 --points 4 --mask-only 1 \
  --box-prob 0.3 --grad-iterations 2 --loss-size 64 --lr 0.0015 --warmup-steps 50 \
  --first-decay 0.75 --second-decay 0.92 \
  --threads 1 --checkpoint-every 40 --keep-checkpoints 5
# Phase 3 (PHASE2 = the weights phase 2 ended with: its $RUN/model.pt).
PHASE2=${PHASE2:-$RUN/model.pt}
OMP_NUM_THREADS=1 .venv/bin/python -m torch.distributed.run --standalone --nproc-per-node 2 \
  .venv/bin/maskengine train --out "$RUN-phase3" --model "$S16" --checkpoint "$PHASE2" \
  --no-freeze-batchnorm --data synthetic --data-seed 5 --num-images 1000000 --scene-size 256 \
  --seed 5 --steps 1800 --batch-size 4 --masks-per-image 8 --points 8 --mask-only 2 \
  --box-prob 0.3 --grad-iterations 2 --loss-size 64 --lr 0.001 --warmup-steps 50 \
  --first-decay 0.75 --second-decay 0.92 --threads 1 --checkpoint-every 40 --keep-checkpoints 5
# Phase 4.
OMP_NUM_THREADS=1 .venv/bin/python -m torch.distributed.run --standalone --nproc-per-node 2 \
  .venv/bin/maskengine train --out "$RUN-phase4" --model "$S16" --checkpoint "$RUN-phase3/model.pt" \
  --no-freeze-batchnorm --data synthetic --data-seed 6 --num-images 1000000 --scene-size 256 \
  --seed 6 --steps 900 --batch-size 4 --masks-per-image 8 --points 8 --mask-only 2 \
  --box-prob 0.3 --grad-iterations 2 --loss-size 64 --lr 0.0005 --warmup-steps 30 \
  --first-decay 0.6 --second-decay 0.85 --threads 1 --checkpoint-every 40 --keep-checkpoints 3
# Phase 5 (stride 8).
.venv/bin/python benchmarks/resolution_study.py train --runs "$RUN-resolution" \
  --weights "$RUN-phase4/model.pt" --only p8
OMP_NUM_THREADS=1 .venv/bin/python -m torch.distributed.run --standalone --nproc-per-node 2 \
  .venv/bin/maskengine train --out "$RUN-phase5" --model tiny \
  --checkpoint "$RUN-resolution/p8/model.pt" --no-freeze-batchnorm --data synthetic \
  --data-seed 8 --num-images 1000000 --scene-size 256 --seed 8 --steps 240 --batch-size 4 \
  --masks-per-image 8 --points 8 --mask-only 2 --box-prob 0.3 --grad-iterations 2 \
  --loss-size 256 --lr 0.0005 --warmup-steps 20 --first-decay 0.6 --second-decay 0.85 \
  --threads 1 --checkpoint-every 20 --keep-checkpoints 3
# Phase 6.
OMP_NUM_THREADS=1 .venv/bin/python -m torch.distributed.run --standalone --nproc-per-node 2 \
  .venv/bin/maskengine train --out "$RUN-phase6" --model tiny --checkpoint "$RUN-phase5/model.pt" \
  --no-freeze-batchnorm --data synthetic --data-seed 9 --num-images 1000000 --scene-size 256 \
  --seed 9 --steps 160 --batch-size 4 --masks-per-image 8 --points 8 --mask-only 2 \
  --box-prob 0.3 --grad-iterations 2 --loss-size 256 --lr 0.0003 --warmup-steps 10 \
  --first-decay 0.6 --second-decay 0.85 --threads 1 --checkpoint-every 20 --keep-checkpoints 3
# Phase 7: one process with 2 accumulated micro-batches (the other core ran benchmarks).
OMP_NUM_THREADS=1 .venv/bin/maskengine train --out "$RUN-phase7" --model tiny \
  --checkpoint "$RUN-phase6/model.pt" --no-freeze-batchnorm --data synthetic --data-seed 10 \
  --num-images 1000000 --scene-size 256 --seed 10 --steps 300 --batch-size 4 --accumulate 2 \
  --masks-per-image 8 --points 8 --mask-only 2 --box-prob 0.3 --grad-iterations 2 \
  --loss-size 256 --lr 0.0003 --warmup-steps 10 --first-decay 0.6 --second-decay 0.85 \
  --threads 1 --checkpoint-every 20 --keep-checkpoints 3
# Phase 9: the IoU head alone fitted again on whole-image and focus-crop first-click answers
# (maskengine.training.iou_head; masks unchanged). 600 scenes of seed 7000, stopped on 100 of
# seed 3000; about 20 CPU minutes on one thread. Report: docs/results/tiny_iouhead.json.
OMP_NUM_THREADS=1 .venv/bin/python -m maskengine.training.iou_head \
  --checkpoint "$RUN-phase7/model.pt" --threads 1 --out "$RUN-phase9"
cp "$RUN-phase9.pt" src/maskengine/weights/tiny.pt
