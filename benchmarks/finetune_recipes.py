"""Which fine-tuning recipe should a project round use? Candidates measured side by side.

A round fine-tunes the served model on the masks accepted so far: a few dozen images of a
domain it never saw. This study stands in for one round: the bundled `tiny` model, the
"organic" synthetic family (other shapes, textures and sizes than the "shapes" family it
was trained on), `--train-images` scenes with all their masks as the accepted masks (the
simulated annotator's accepted masks are the ground truth, or within IoU 0.9 of it), and
`--val-images` other scenes of that family for the round's validation protocol (1-point
mIoU, NoC@85/90 with up to 20 clicks, the figures that decide promotion).

Candidates (each from the same starting weights, same data, same seed, one thread):
  none           the starting model, not fine-tuned
  whole          the whole model, lr 2e-4, 300 steps (the round default before this study)
  whole_replay   as whole, half of the samples replayed from the "shapes" family
  whole_low_lr   as whole_replay with lr 5e-5
  frozen         image encoder frozen, its embeddings cached (computed once per image), so a
                 step costs only the prompt encoder + decoder: 300 steps, lr 5e-4
  frozen_long    as frozen with 1,500 steps: more steps per new mask at about the CPU time
                 of 300 whole-model steps
  frozen_replay  as frozen_long with the replayed half
  anchor         as whole_replay (lr 2e-4) pulled toward the starting weights (L2-SP,
                 --anchor-weight 0.1): learn the new domain without forgetting the old
  loss256        as whole_low_lr with the loss at 256 x 256 (logits upsampled to the image)
                 instead of 64 x 64 (benchmarks/resolution_study.py)
  anchor_loss256 anchor with the loss at 256 x 256
  focus_views    as whole_low_lr with half of the samples shown as the focus pass sees them
                 (a zoomed crop around one small mask, --focus-views 0.5): the served
                 `tiny` answers small objects on such crops, so train on what it is shown
                 (the round default since the phase-9 run, results/finetune_recipes_phase9.json)
  focus_views_lr focus_views with lr 1e-4

Reports CPU seconds of training and the validation figures; writes results/<name>.json.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/finetune_recipes.py  # ~13 min a candidate
    .venv/bin/python benchmarks/finetune_recipes.py --train-images 2 --val-images 1 \
        --steps-scale 0.02 --only none,frozen --name finetune_smoke                 # smoke
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, bundled_sha256, environment, parse_config, write_results  # noqa: E402
from maskengine.data import SceneConfig, generate_scene  # noqa: E402
from maskengine.data.mix import MixedDataset  # noqa: E402
from maskengine.data.synthetic import SyntheticDataset  # noqa: E402
from maskengine.engine.promotion import validate  # noqa: E402
from maskengine.engine.rounds import round_training_config  # noqa: E402
from maskengine.modeling import create_model  # noqa: E402
from maskengine.modeling.registry import bundled_weights_path  # noqa: E402
from maskengine.training.trainer import train  # noqa: E402

# name -> (TrainingConfig overrides on top of the round defaults, replay fraction)
CANDIDATES: dict[str, tuple[dict, float] | None] = {
    "none": None,
    "whole": ({"lr": 2e-4, "steps": 300}, 0.0),
    "whole_replay": ({"lr": 2e-4, "steps": 300}, 0.5),
    "whole_low_lr": ({"lr": 5e-5, "steps": 300}, 0.5),
    "frozen": ({"lr": 5e-4, "steps": 300, "freeze_image_encoder": True}, 0.0),
    "frozen_long": ({"lr": 5e-4, "steps": 1500, "freeze_image_encoder": True}, 0.0),
    "frozen_replay": ({"lr": 5e-4, "steps": 1500, "freeze_image_encoder": True}, 0.5),
    "anchor": ({"lr": 2e-4, "steps": 300, "anchor_weight": 0.1}, 0.5),
    "loss256": ({"lr": 5e-5, "steps": 300, "loss_size": 256}, 0.5),
    "anchor_loss256": ({"lr": 2e-4, "steps": 300, "anchor_weight": 0.1, "loss_size": 256},
                       0.5),
    "focus_views": ({"lr": 5e-5, "steps": 300, "focus_views": 0.5}, 0.5),
    "focus_views_lr": ({"lr": 1e-4, "steps": 300, "focus_views": 0.5}, 0.5),
}


@dataclass(frozen=True)
class StudyConfig:
    train_images: int = 20
    val_images: int = 8
    scene_size: int = 256
    max_clicks: int = 20
    steps_scale: float = 1.0  # multiply every candidate's steps (a quick look: 0.1)
    seed: int = 0
    threads: int = 1
    only: str = ""  # comma-separated candidate names (default: all)
    name: str = "finetune_recipes"


def parse_args() -> StudyConfig:
    return parse_config(StudyConfig, __doc__.split("\n\n")[0])  # type: ignore[return-value]


def run_candidate(name: str, cfg: StudyConfig, train_set: list, val_set: list,
                  workdir: Path) -> dict:
    recipe = CANDIDATES[name]
    cpu = 0.0
    if recipe is None:
        model = create_model("tiny", checkpoint=bundled_weights_path("tiny"))
        row: dict = {"recipe": None}
    else:
        overrides, replay = recipe
        # Focus views only where a candidate names them (they are the round default now).
        overrides = {"focus_views": 0.0, **overrides, "seed": cfg.seed, "threads": cfg.threads,
                     "steps": max(1, round(overrides["steps"] * cfg.steps_scale))}
        tcfg = round_training_config(overrides)
        tcfg = type(tcfg)(**{**tcfg.to_dict(), "out": str(workdir / name), "model": "tiny",
                             "checkpoint": "bundled"})
        data = train_set
        if replay:
            shapes = SyntheticDataset(100_000, seed=7000 + cfg.seed, config=SceneConfig(
                height=cfg.scene_size, width=cfg.scene_size))
            data = MixedDataset(train_set, shapes, replay)
        c0 = time.process_time()
        weights = train(tcfg, progress=False, dataset=data)
        cpu = time.process_time() - c0
        model = create_model("tiny", checkpoint=weights)
        row = {"recipe": {**tcfg.to_dict(), "replay_fraction": replay}}
    summary = validate(model.eval(), val_set, cfg.max_clicks)
    d = summary["default"]
    row.update(train_cpu_seconds=round(cpu, 1), miou1=d["miou@1"], miou5=d.get("miou@5"),
               noc85=d["noc@85"], noc90=d["noc@90"], oracle_miou1=summary["oracle"]["miou@1"],
               objects=summary["objects"])
    return row


def main() -> None:
    cfg = parse_args()
    torch.set_num_threads(cfg.threads)
    names = [n for n in (cfg.only.split(",") if cfg.only else CANDIDATES) if n]
    unknown = sorted(set(names) - set(CANDIDATES))
    if unknown:
        raise SystemExit(f"unknown candidates {unknown}; choose from {sorted(CANDIDATES)}")
    organic = SceneConfig(height=cfg.scene_size, width=cfg.scene_size, family="organic")
    # The data engine benchmark's streams: train 5000 + seed, validation 6000 + seed.
    train_set = [generate_scene(organic, 5000 + cfg.seed, i) for i in range(cfg.train_images)]
    val_set = [generate_scene(organic, 6000 + cfg.seed, i) for i in range(cfg.val_images)]
    masks = sum(len(s.masks) for s in train_set)
    print(f"{len(train_set)} train images ({masks} masks), {len(val_set)} validation images")
    # Written after every candidate; a rerun with the same settings skips the ones done.
    prev = RESULTS / f"{cfg.name}.json"
    start_sha = bundled_sha256()
    rows: dict[str, dict] = {}
    if prev.is_file():
        old = json.loads(prev.read_text())
        same = {k: v for k, v in old.get("config", {}).items() if k != "only"}
        if (same == {k: v for k, v in asdict(cfg).items() if k != "only"}
                and old.get("start_weights_sha256") == start_sha):
            rows = {n: r for n, r in old.get("candidates", {}).items() if n in CANDIDATES}
    out = prev
    with tempfile.TemporaryDirectory(prefix="maskengine-recipes-") as tmp:
        for name in names:
            if name in rows:
                print(f"{name:>14}: done in an earlier run")
                continue
            rows[name] = run_candidate(name, cfg, train_set, val_set, Path(tmp))
            r = rows[name]
            print(f"{name:>14}: train {r['train_cpu_seconds']:7.1f} CPU s  mIoU@1 "
                  f"{r['miou1']:.3f}  NoC@85 {r['noc85']:.2f}  NoC@90 {r['noc90']:.2f}",
                  flush=True)
            out = _write(cfg, masks, rows, start_sha)
    print(f"best: {_best(rows)}; {out}")


def _best(rows: dict[str, dict]) -> str | None:
    tuned = [n for n, r in rows.items() if r["recipe"] is not None]
    return max(tuned, key=lambda n: rows[n]["miou1"] - rows[n]["noc90"] / 20) if tuned else None


def _write(cfg: StudyConfig, masks: int, rows: dict[str, dict], start_sha: str) -> Path:
    return write_results(cfg.name, {"config": asdict(cfg), "environment": environment(),
                                    "start_weights_sha256": start_sha,
                                    "train_masks": masks, "candidates": rows,
                                    "best": _best(rows), "best_by": "mIoU@1 - NoC@90 / 20"})


if __name__ == "__main__":
    main()
