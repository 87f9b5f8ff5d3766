"""Where do the bundled model's masks lose their edges? Continue the bundled `tiny` from the
same weights along the resolution axis, side by side at equal CPU time.

    python benchmarks/resolution_study.py train  --runs /tmp/res --weights W   # resumable
    python benchmarks/resolution_study.py report --runs /tmp/res
    python benchmarks/resolution_study.py final  --runs /tmp/res [--only p8]  # 20 clicks
    python benchmarks/resolution_study.py plot     # the PNG again from the saved JSON

Arms (all from the same starting weights, the same recipe and scenes):

- `p16`: today's model and loss: 16 x 16 tokens, 64 x 64 mask logits, loss at 64 x 64
  (the true masks area-averaged down: soft targets);
- `p16L`: the same network, loss at 256 x 256 (the logits bilinearly upsampled to the
  image, binary targets): the model is asked for sharp edges between its logit pixels;
- `p8`: the same weights as a TinyViT of stride 8 (the last merge does not downsample):
  32 x 32 tokens, 128 x 128 logits, loss at 128 x 128; 3x the CPU per step.

`train` starts one `maskengine train` per arm (one torch thread each, `nice`), all at once;
a checkpoint every 40 steps is kept. `report` evaluates checkpoints about every `--every`
CPU minutes on 50 unseen scenes (data seed 1000, one click; model_study's evaluation),
reads the training curve from metrics.jsonl and writes
benchmarks/results/resolution_study.{json,png}.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

from maskengine.config import MODEL_CONFIGS, SamConfig

sys.path.insert(0, str(Path(__file__).parent))
from common import RESULTS, write_results  # noqa: E402
from model_study import _cumulative, evaluate, plot  # noqa: E402

# Phase 4's recipe (docs/results/tiny_train_cmd_tvit.sh) on new scenes (data seed 7).
RECIPE = ["--no-freeze-batchnorm", "--data", "synthetic", "--data-seed", "7",
          "--num-images", "1000000", "--scene-size", "256", "--seed", "7",
          "--batch-size", "4", "--masks-per-image", "8", "--points", "8", "--mask-only", "2",
          "--box-prob", "0.3", "--grad-iterations", "2", "--lr", "0.0005",
          "--warmup-steps", "30", "--first-decay", "0.7", "--second-decay", "0.9"]


@dataclass(frozen=True)
class Arm:
    name: str
    what: str
    model: SamConfig
    loss_size: int
    # Steps chosen so that each schedule (and its lr steps) ends in ~15 CPU minutes.
    steps: int
    extra: list[str] = field(default_factory=list)


# The bundled tiny's TinyViT at the stride it had when the study ran (16).
_TINY = replace(MODEL_CONFIGS["tiny"], patch_size=16)
ARMS = [
    Arm("p16", "16x16 tokens, 64x64 logits, loss at 64 (today)", _TINY, 64, 600),
    Arm("p16L", "16x16 tokens, 64x64 logits, loss at 256", _TINY, 256, 390),
    Arm("p8", "stride 8: 32x32 tokens, 128x128 logits, loss at 128",
        replace(_TINY, patch_size=8), 128, 200),
]


def train_command(arm: Arm, runs: Path, weights: Path, minutes: float) -> list[str]:
    cfg = runs / f"{arm.name}.json"
    cfg.write_text(json.dumps(arm.model.to_dict(), indent=1))
    exe = Path(sys.executable).with_name("maskengine")
    return ["nice", "-n", "19", str(exe), "train", "--out", str(runs / arm.name),
            "--model", str(cfg), "--checkpoint", str(weights), *RECIPE,
            "--steps", str(arm.steps), "--loss-size", str(arm.loss_size), *arm.extra,
            "--threads", "1", "--max-cpu-minutes", str(minutes),
            "--checkpoint-every", "40", "--keep-checkpoints", "1000"]


def train(runs: Path, weights: Path, minutes: float, only: list[str]) -> None:
    runs.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = []
    for arm in ARMS:
        if only and arm.name not in only:
            continue
        log = (runs / f"{arm.name}.log").open("a")
        procs.append(subprocess.Popen(train_command(arm, runs, weights, minutes), env=env,
                                      stdout=log, stderr=subprocess.STDOUT))
        print("started", arm.name, "->", runs / arm.name)
    codes = [p.wait() for p in procs]
    if any(codes):
        raise SystemExit(f"an arm failed (exit codes {codes}); see {runs}/*.log")


def _checkpoints(run: Path) -> dict[int, Path]:
    """Saved weights by step: the run's checkpoints/ and snapshots/ (copies kept by hand)."""
    found = {int(p.stem.split("_")[1]): p for p in (run / "checkpoints").glob("step_*.pt")}
    found.update({int(p.stem): p for p in (run / "snapshots").glob("*.pt")})
    return found


def report(runs: Path, weights: Path, every: float, images: int) -> dict:
    out: dict = {"weights": str(weights), "every": every, "images": images,
                 "recipe": RECIPE, "candidates": {}}
    for arm in ARMS:
        run = runs / arm.name
        if not (run / "metrics.jsonl").is_file():
            continue
        steps, mins, iou = _cumulative(run)
        ckpts = _checkpoints(run)
        cfg = runs / f"{arm.name}.json"
        cfg.write_text(json.dumps(arm.model.to_dict(), indent=1))
        start = evaluate(cfg, weights, images)
        points = [{"cpu_minutes": 0.0, "step": 0, **start}]
        mark = every
        while mark <= mins[-1] + every:
            reached = [s for s, m in zip(steps, mins, strict=True) if m <= mark and s in ckpts]
            if reached and max(reached) != points[-1]["step"]:
                s = max(reached)
                i = steps.index(s)
                points.append({"cpu_minutes": round(mins[i], 2), "step": s,
                               "train_iou_first": round(iou[i], 4),
                               **evaluate(cfg, ckpts[s], images)})
                print(arm.name, points[-1], flush=True)
            mark += every
        # Training IoU is measured at each arm's loss size: compare it within an arm only.
        curve = [[round(m, 2), round(v, 4)] for k, (m, v) in enumerate(zip(mins, iou,
                                                                         strict=True))
                 if k % 10 == 0]
        out["candidates"][arm.name] = {
            "what": arm.what, "model": arm.model.to_dict(), "loss_size": arm.loss_size,
            "command": train_command(arm, runs, weights, 50.0),
            "cpu_minutes": round(mins[-1], 2), "steps": steps[-1],
            "cpu_s_per_step": round(mins[-1] * 60 / steps[-1], 2), "train_curve": curve,
            "points": points}
    return out


def final(runs: Path, images: int, only: list[str]) -> dict:
    """The full protocol (`maskengine eval`: 20 clicks, NoC, sizes, IoU head) on each arm's
    last weights, added to the saved JSON."""
    from maskengine.evaluation_job import EvalConfig, run_evaluation

    result = json.loads((RESULTS / "resolution_study.json").read_text())
    for arm in ARMS:
        if (only and arm.name not in only) or arm.name not in result["candidates"]:
            continue
        cfg = runs / f"{arm.name}.json"
        cfg.write_text(json.dumps(arm.model.to_dict(), indent=1))
        res = run_evaluation(EvalConfig(model=str(cfg), checkpoint=str(runs / arm.name /
                                                                       "model.pt"),
                                        num_images=images, data_seed=1000, threads=1),
                             progress=False)
        result["candidates"][arm.name]["final_eval"] = {
            k: res[k] for k in ("objects", "default", "oracle", "iou_head", "by_size")}
        print(arm.name, {k: round(v, 3) for k, v in res["default"].items()}, flush=True)
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("job", choices=["train", "report", "final", "plot"])
    ap.add_argument("--runs", type=Path, default=Path("runs/resolution"))
    ap.add_argument("--weights", type=Path, default=Path("src/maskengine/weights/tiny.pt"),
                    help="starting weights of every arm")
    ap.add_argument("--minutes", type=float, default=50.0, help="train: CPU minutes cap")
    ap.add_argument("--every", type=float, default=5.0, help="report: minutes between marks")
    ap.add_argument("--images", type=int, default=50, help="report: unseen scenes")
    ap.add_argument("--only", nargs="*", default=[], help="train, final: these arms only")
    args = ap.parse_args()
    png = RESULTS / "resolution_study.png"
    if args.job == "train":
        train(args.runs, args.weights, args.minutes, args.only)
        return
    if args.job == "final":
        write_results("resolution_study", final(args.runs, args.images, args.only))
        return
    if args.job == "plot":
        plot(json.loads((RESULTS / "resolution_study.json").read_text()), png)
        return
    result = report(args.runs, args.weights, args.every, args.images)
    write_results("resolution_study", result)
    plot(result, png)
    print("wrote", RESULTS / "resolution_study.json", "and .png")


if __name__ == "__main__":
    main()
