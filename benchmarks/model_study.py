"""Which model design learns fastest per CPU-minute? Train candidates side by side from
scratch on the default synthetic scenes, then measure each at equal CPU time.

    python benchmarks/model_study.py train  --runs /tmp/study --minutes 30   # resumable
    python benchmarks/model_study.py report --runs /tmp/study --minutes 30
    python benchmarks/model_study.py plot     # the PNG again from the saved JSON

`train` starts one `maskengine train` per candidate (one torch thread each, `nice`), all at
once; each stops by itself when its steps have used `--minutes` of CPU time
(`--max-cpu-minutes`), and a rerun resumes the unfinished ones. CPU time, not wall time, is
the clock, so candidates that share the cores are compared fairly.

`report` evaluates, for each candidate, the checkpoint reached at every `--every` CPU
minutes on 50 unseen scenes (data seed 1000, one click at the point farthest from the
boundary: the most confident mask and the best of three), reads the training IoU of the
first prompt from metrics.jsonl, and writes benchmarks/results/model_study.{json,png}.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from maskengine.config import SamConfig, TinyViTConfig

sys.path.insert(0, str(Path(__file__).parent))
from common import RESULTS, write_results  # noqa: E402

# The decoder side of today's `tiny`: prompt dim 128, decoder MLP 512, IoU head 128.
_SMALL = dict(image_size=256, prompt_embed_dim=128, decoder_mlp_dim=512, iou_head_hidden_dim=128)
_VIT = dict(encoder_embed_dim=160, encoder_depth=6, encoder_num_heads=4,
            encoder_global_attn_indexes=(2, 5), encoder_window_size=8, **_SMALL)
# A TinyViT of about the ViT's encoder size (1.8M parameters against 1.9M).
_TVIT = TinyViTConfig(embed_dims=(32, 64, 128, 160), depths=(2, 2, 4, 2),
                      num_heads=(1, 2, 4, 5), window_sizes=(7, 8, 8, 8), num_classes=0)

# One recipe for all: 4 images x 8 masks per step, first prompt + 4 corrective points + 1
# mask-only iteration (2 of them differentiated), boxes for 30% of first prompts.
RECIPE = ["--batch-size", "4", "--masks-per-image", "8", "--points", "4", "--mask-only", "1",
          "--box-prob", "0.3", "--grad-iterations", "2", "--lr", "0.0015",
          "--warmup-steps", "50"]


@dataclass(frozen=True)
class Candidate:
    name: str
    what: str
    model: SamConfig
    extra: list[str] = field(default_factory=list)


CANDIDATES = [
    Candidate("vit16", "ViT (today's tiny), 16x16 tokens", SamConfig(patch_size=16, **_VIT)),
    Candidate("vit32", "ViT, patch 8: 32x32 tokens", SamConfig(patch_size=8, **_VIT)),
    Candidate("tvit16", "TinyViT, stride 16: 16x16 tokens",
              SamConfig(patch_size=16, tiny_vit=_TVIT, **_SMALL)),
    Candidate("tvit32", "TinyViT, stride 8: 32x32 tokens",
              SamConfig(patch_size=8, tiny_vit=_TVIT, **_SMALL)),
    # The recipe axis: twice the prompts per image embedding, fewer corrective points.
    Candidate("tvit16_p16", "TinyViT 16x16, 16 prompts/image, 2 points",
              SamConfig(patch_size=16, tiny_vit=_TVIT, **_SMALL),
              ["--masks-per-image", "16", "--points", "2"]),
]


def train_command(c: Candidate, runs: Path, minutes: float) -> list[str]:
    cfg = runs / f"{c.name}.json"
    cfg.write_text(json.dumps(c.model.to_dict(), indent=1))
    exe = Path(sys.executable).with_name("maskengine")
    return ["nice", "-n", "5", str(exe), "train", "--out", str(runs / c.name),
            "--model", str(cfg), "--data", "synthetic", "--data-seed", "0",
            "--num-images", "1000000", "--scene-size", "256", "--seed", "0",
            "--steps", "100000", "--loss-size", str(c.model.low_res_size), *RECIPE, *c.extra,
            "--threads", "1", "--max-cpu-minutes", str(minutes),
            "--checkpoint-every", "40", "--keep-checkpoints", "1000"]


def train(runs: Path, minutes: float, only: list[str]) -> None:
    runs.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = []
    for c in CANDIDATES:
        if only and c.name not in only:
            continue
        log = (runs / f"{c.name}.log").open("a")
        procs.append(subprocess.Popen(train_command(c, runs, minutes), env=env, stdout=log,
                                      stderr=subprocess.STDOUT))
        print("started", c.name, "->", runs / c.name)
    codes = [p.wait() for p in procs]
    if any(codes):
        raise SystemExit(f"a candidate failed (exit codes {codes}); see {runs}/*.log")


def _cumulative(run: Path) -> tuple[list[int], list[float], list[float]]:
    """steps, cumulative CPU minutes, first-prompt training IoU (mean of the last 50 steps)."""
    logs = [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines() if ln]
    steps, minutes, iou, total = [], [], [], 0.0
    for i, d in enumerate(logs):
        total += d.get("cpu_seconds", d["seconds"]) / 60.0
        window = logs[max(0, i - 49): i + 1]
        steps.append(d["step"])
        minutes.append(total)
        iou.append(sum(w["iou_first"] for w in window) / len(window))
    return steps, minutes, iou


def evaluate(cfg_path: Path, ckpt: Path, images: int) -> dict:
    from maskengine.evaluation_job import EvalConfig, run_evaluation

    res = run_evaluation(EvalConfig(model=str(cfg_path), checkpoint=str(ckpt), max_clicks=1,
                                    num_images=images, data_seed=1000, threads=1),
                         progress=False)
    small = res.get("by_size", {}).get("small", {})
    return {"miou@1": res["default"]["miou@1"], "oracle_miou@1": res["oracle"]["miou@1"],
            "small_miou@1": small.get("default", {}).get("miou@1")}


def report(runs: Path, minutes: float, every: float, images: int) -> dict:
    out: dict = {"minutes": minutes, "every": every, "images": images, "recipe": RECIPE,
                 "candidates": {}}
    for c in CANDIDATES:
        run = runs / c.name
        if not (run / "metrics.jsonl").is_file():
            continue
        steps, mins, iou = _cumulative(run)
        ckpts = {int(p.stem.split("_")[1]): p for p in (run / "checkpoints").glob("step_*.pt")}
        points = []
        mark = every
        while mark <= minutes + 1e-9:
            reached = [s for s, m in zip(steps, mins, strict=True) if m <= mark and s in ckpts]
            if reached and (not points or max(reached) != points[-1]["step"]):
                s = max(reached)
                i = steps.index(s)
                fig = evaluate(runs / f"{c.name}.json", ckpts[s], images)
                points.append({"cpu_minutes": round(mins[i], 2), "step": s,
                               "train_iou_first": round(iou[i], 4), **fig})
                print(c.name, points[-1], flush=True)
            mark += every
        # The smoothed training curve, one point per half CPU-minute.
        curve, next_mark = [], 0.0
        for m, v in zip(mins, iou, strict=True):
            if m >= next_mark and m <= minutes + 1e-9:
                curve.append([round(m, 2), round(v, 4)])
                next_mark = m + 0.5
        out["candidates"][c.name] = {
            "what": c.what, "model": c.model.to_dict(), "command": train_command(c, runs, minutes),
            "cpu_minutes": round(min(mins[-1], minutes), 2),
            "cpu_s_per_step": round(mins[-1] * 60 / steps[-1], 2), "train_curve": curve,
            "points": points}
    return out


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for c in result["candidates"].values():
        curve = c["train_curve"]
        line, = axes[0].plot([p[0] for p in curve], [p[1] for p in curve], label=c["what"])
        x = [p["cpu_minutes"] for p in c["points"]]
        axes[1].plot(x, [p["miou@1"] for p in c["points"]], "o-", color=line.get_color(),
                     label=c["what"])
    axes[0].set_title("training IoU after the first prompt (mean of 50 steps)")
    axes[1].set_title(f"1-click mIoU, {result['images']} unseen scenes")
    for ax in axes:
        ax.set_xlabel("CPU minutes (one thread)")
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("job", choices=["train", "report", "plot"])
    ap.add_argument("--runs", type=Path, default=Path("runs/study"))
    ap.add_argument("--minutes", type=float, default=30.0, help="CPU minutes per candidate")
    ap.add_argument("--every", type=float, default=5.0, help="report: minutes between marks")
    ap.add_argument("--images", type=int, default=50, help="report: unseen scenes")
    ap.add_argument("--only", nargs="*", default=[], help="train: these candidates only")
    args = ap.parse_args()
    if args.job == "train":
        train(args.runs, args.minutes, args.only)
        return
    if args.job == "plot":  # again from the saved figures
        plot(json.loads((RESULTS / "model_study.json").read_text()), RESULTS / "model_study.png")
        return
    result = report(args.runs, args.minutes, args.every, args.images)
    write_results("model_study", result)
    plot(result, RESULTS / "model_study.png")
    print("wrote", RESULTS / "model_study.json", "and .png")


if __name__ == "__main__":
    main()
