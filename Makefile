# One entry point for every job. `make test` sets up a fresh machine and runs the suite.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TORCH_PIN := torch==2.13.0

.PHONY: setup system-packages test lint bench bench-reference bench-generator bench-data-engine demo clean \
	bench-mobile-sam train-bundled train-bundled-gpu bench-finetune-recipes bench-stage3 bench-prompts \
	bench-auto-ray bench-stage2

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# The CPU build on local disk; an unpinned torch would pull a multi-GB CUDA build.
	$(BIN)/pip install --quiet $(TORCH_PIN)
	$(BIN)/pip install --quiet -e '.[dev,server,report,ray]'
	touch $(STAMP)

# Browser tests drive Debian's Chromium; Playwright's own browser download does not work here.
# Store tests on PostgreSQL start a throwaway cluster from Debian's postgresql package.
system-packages:
	test -x /usr/bin/chromium || (apt-get update -q && apt-get install -y -q chromium)
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || \
		(apt-get update -q && apt-get install -y -q postgresql)

setup: $(STAMP) system-packages

lint: setup
	$(BIN)/ruff check src tests benchmarks

test: setup lint
	OMP_NUM_THREADS=2 $(BIN)/python -m pytest -q

bench: setup
	$(BIN)/python benchmarks/encoder.py

# A separate environment with the official implementation, to run it side by side.
.venv-ref/.installed:
	test -x .venv-ref/bin/python || $(PY) -m venv .venv-ref
	.venv-ref/bin/pip install --quiet --upgrade pip
	.venv-ref/bin/pip install --quiet torch==2.14.1 torchvision==0.29.1 segment-anything
	.venv-ref/bin/pip install --quiet -e '.'
	touch .venv-ref/.installed

bench-reference: .venv-ref/.installed
	.venv-ref/bin/python benchmarks/encoder.py

# Automatic mask generation against the official generator (same weights, images, params).
bench-generator: .venv-ref/.installed
	.venv-ref/bin/python benchmarks/generator.py

# Model-in-the-loop rounds on a domain the bundled model never saw (simulated annotator).
bench-data-engine: setup
	$(BIN)/pip install --quiet -e '.[server,bench]'
	OMP_NUM_THREADS=2 $(BIN)/python benchmarks/data_engine.py

# Stage 2 (pre-fill) against stage 1 alone on the same images, simulated annotator; a few minutes.
bench-stage2: setup
	$(BIN)/pip install --quiet -e '.[server,bench]'
	OMP_NUM_THREADS=2 $(BIN)/python benchmarks/stage2.py

# Which fine-tuning recipe a round uses: candidates on an unseen family, one thread each.
bench-finetune-recipes: setup
	OMP_NUM_THREADS=1 $(BIN)/python benchmarks/finetune_recipes.py

# Stage 3's quality on synthetic scenes with ground truth: automatic masks above IoU 0.9 / 0.75
# with a true mask, recall, masks per image; official and recommended thresholds.
bench-stage3: setup
	OMP_NUM_THREADS=2 $(BIN)/python benchmarks/stage3_quality.py --images 6

# `maskengine auto`: the local runner against the Ray runner with 1 and 2 workers.
bench-auto-ray: setup
	$(BIN)/python benchmarks/auto_ray.py --images 16

# Sample images -> automatic masks with the bundled tiny model -> SA-1B JSON + overlays.
demo: setup
	OMP_NUM_THREADS=2 $(BIN)/python scripts/demo.py --out demo-output

# CPU encoder time of vit_t against vit_b (and the official MobileSAM code when importable).
bench-mobile-sam: setup
	$(BIN)/python benchmarks/mobile_sam.py

# The bundled model's training as it was run here (2 CPU cores; docs/results/tiny_train_cmd_tvit.sh).
train-bundled: setup
	RUN=runs/tiny docs/results/tiny_train_cmd_tvit.sh

# The same model (stride 8) and recipe (loss at 256, as phases 5-6) on one CUDA GPU in bf16
# (autocast), from scratch: bigger batches, built ahead by 8 worker processes. For a machine
# whose python3 has a CUDA torch (the dev .venv pins the CPU build). --max-minutes stops it
# (saved) at 9 wall-clock minutes whatever the GPU; rerun to go on. Then the evaluation on
# 50 unseen scenes. Not yet run on a GPU: the step count is a guess.
GPU_RUN ?= runs/tiny-gpu
train-bundled-gpu:
	$(PY) -m pip install --quiet --no-deps -e .
	$(PY) -m pip install --quiet numpy pillow pycocotools opencv-python-headless typer rich
	$(PY) -m maskengine.cli train --out $(GPU_RUN) --model tiny --device cuda --amp \
		--data synthetic --data-seed 0 --num-images 1000000 --scene-size 256 --seed 0 \
		--steps 6000 --batch-size 16 --masks-per-image 8 --points 8 --mask-only 2 \
		--box-prob 0.3 --grad-iterations 3 --loss-size 256 --lr 0.002 --warmup-steps 200 \
		--first-decay 0.75 --second-decay 0.92 --workers 8 --checkpoint-every 500 \
		--max-minutes 9
	$(PY) -m maskengine.cli eval --model tiny --checkpoint $(GPU_RUN)/model.pt --device cuda \
		--data-seed 1000 --num-images 50 --out $(GPU_RUN)/eval.json

# The paper's prompt comparison for the bundled tiny model on 50 unseen scenes (~2 min, 1 core).
bench-prompts: setup
	OMP_NUM_THREADS=1 $(BIN)/maskengine prompts --data-seed 1000 --num-images 50 --threads 1 \
		--out benchmarks/results/prompt_study.json

clean:
	rm -rf $(VENV) .venv-ref build *.egg-info
