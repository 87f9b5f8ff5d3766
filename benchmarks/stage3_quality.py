"""Quality of stage 3 (fully automatic masks), measured on synthetic scenes with ground truth.

For each generator setting (the official thresholds, the two pairs the docs recommend for
the bundled model, "recall" and "precise", and a small grid between): the share of
automatic masks whose IoU with some true mask is above 0.9 and above 0.75 (the paper: 94%
and 97% against professionally corrected masks), recall of the true masks (the share with
an automatic mask above 0.5 / 0.75 / 0.9), and masks per image. The scenes (seed 4000) are
neither the ones the thresholds were chosen on (3000) nor the demo's (2024). One
unfiltered generator pass per scene; the filters, box NMS and the focus pass (the
generator's default for `tiny`) are replayed per setting (benchmarks/replay.py; checked
equal to the generator itself on the first scene). Writes
benchmarks/results/stage3_quality.json.

    make bench-stage3
    python benchmarks/stage3_quality.py [--images 8] [--model tiny] [--seed 4000]
"""

from __future__ import annotations

import shlex
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from common import environment, parse_config, write_results  # noqa: E402
from maskengine import MaskGenerator, create_model  # noqa: E402
from maskengine.config import GeneratorConfig  # noqa: E402
from maskengine.data import SceneConfig, generate_scene  # noqa: E402
from maskengine.threads import set_process_threads  # noqa: E402
from replay import FocusReplay, check_replay, iou_matrix, replay  # noqa: E402

# (name, predicted-IoU threshold, stability threshold)
# Chosen for the bundled model on seed 3000 (benchmarks/generator_thresholds.py): "recall"
# (the demo's: the best AR@100 with at most 2 masks per true mask) and "precise" (what the
# docs recommend for stage 3 into a project: of the pairs with >= 90% of the masks above IoU
# 0.9 there, the one with the most such masks).
SETTINGS = (("official", 0.88, 0.95), ("recall", 0.0, 0.8), ("precise", 0.5, 0.9))
# More (predicted IoU, stability) pairs: how precision trades against recall.
GRID = ((0.0, 0.85), (0.0, 0.9), (0.5, 0.85), (0.5, 0.9), (0.7, 0.9), (0.0, 0.95), (0.8, 0.95))
PAPER = {"share_iou_above_0.9": 0.94, "share_iou_above_0.75": 0.97, "masks_per_image": 100}


@dataclass(frozen=True)
class Stage3Config:
    model: str = "tiny"
    checkpoint: str = ""
    seed: int = 4000
    images: int = 8
    height: int = 384
    width: int = 512
    points_per_side: int = 32
    threads: int = 2
    out: str = "stage3_quality"


def _share(x: np.ndarray, threshold: float) -> float:
    return float((x > threshold).mean()) if len(x) else 0.0


def summarise(best_per_mask: list[float], best_per_true: list[float], images: int) -> dict:
    m, t = np.asarray(best_per_mask), np.asarray(best_per_true)
    return {
        "masks": len(m), "masks_per_image": len(m) / images, "true_masks": len(t),
        "share_iou_above_0.9": _share(m, 0.9), "share_iou_above_0.75": _share(m, 0.75),
        "median_best_iou": float(np.median(m)) if len(m) else None,
        "recall@0.5": _share(t, 0.5), "recall@0.75": _share(t, 0.75), "recall@0.9": _share(t, 0.9),
    }


def main() -> None:
    cfg = parse_config(Stage3Config, __doc__.split("\n")[0])
    set_process_threads(cfg.threads)
    model = create_model(cfg.model, checkpoint=cfg.checkpoint or None)
    scenes = [generate_scene(SceneConfig(height=cfg.height, width=cfg.width), cfg.seed, i)
              for i in range(cfg.images)]
    base = GeneratorConfig(points_per_side=cfg.points_per_side, output_mode="binary_mask")
    raw_gen = MaskGenerator(model, replace(base, pred_iou_thresh=0.0, focus=False,
                                           stability_score_thresh=0.0, box_nms_thresh=1.0))
    t0 = time.perf_counter()
    raw = []
    for s in scenes:
        raw.append(raw_gen.generate(s.image))
        print(f"{s.name}: {len(raw[-1])} candidates, {len(s.masks)} true masks", flush=True)
    seconds = time.perf_counter() - t0
    focus = FocusReplay(model)  # the generator's focus pass, where it is the default
    # The replay is the generator: same masks on the first scene for the named settings.
    for _, iou_t, stab_t in SETTINGS:
        check_replay(model, base, scenes[0].image, raw[0], iou_t, stab_t, focus)
    named = {(i, st): n for n, i, st in SETTINGS}
    results = []
    for iou_t, stab_t in [(i, st) for _, i, st in SETTINGS] + [p for p in GRID if p not in named]:
        per_mask: list[float] = []
        per_true: list[float] = []
        for s, recs in zip(scenes, raw, strict=True):
            kept = focus(s.name, s.image, replay(recs, iou_t, stab_t, base.box_nms_thresh),
                         max(base.box_nms_thresh, base.crop_nms_thresh))
            pred = (np.stack([r.segmentation for r in kept]) if kept
                    else np.zeros((0, *s.masks.shape[1:]), bool))
            iou = iou_matrix(pred, s.masks)
            per_mask += (iou.max(1) if iou.shape[1] else np.zeros(len(pred))).tolist()
            per_true += (iou.max(0) if iou.shape[0] else np.zeros(len(s.masks))).tolist()
        r = {"setting": named.get((iou_t, stab_t), "grid"), "pred_iou_thresh": iou_t,
             "stability_score_thresh": stab_t,
             **summarise(per_mask, per_true, len(scenes))}
        results.append(r)
        print(f"{r['setting']:12s} pred IoU > {iou_t}, stability >= {stab_t}: "
              f"{r['masks_per_image']:.1f} masks/image, {r['share_iou_above_0.9']:.1%} > 0.9, "
              f"{r['share_iou_above_0.75']:.1%} > 0.75, recall@0.9 {r['recall@0.9']:.1%}, "
              f"recall@0.5 {r['recall@0.5']:.1%}", flush=True)
    rec = next(r for r in results if r["setting"] == "precise")
    goal = rec["share_iou_above_0.9"] >= 0.9
    path = write_results(cfg.out, {
        "command": "python benchmarks/stage3_quality.py " + shlex.join(sys.argv[1:]),
        "config": asdict(cfg), "environment": environment(), "paper": PAPER,
        "goal": "at least 90% of automatic masks above IoU 0.9 at the recommended thresholds "
                "(for stage 3: the precise pair)",
        "goal_met": goal, "generator_seconds_per_image": seconds / len(scenes),
        "focus": focus.on, "settings": results,
        "note": ("IoU against the scene's true masks (objects, parts, sub-parts); the paper "
                 "compared each automatic mask with a professionally corrected copy of it. "
                 "One unfiltered generator pass per scene, the filters, box NMS and the focus "
                 "pass (where the model's default) replayed per setting (checked equal to the "
                 "generator on the first scene)."),
    })
    print(f"goal (>= 90% above 0.9 at the recommended 'precise' thresholds) met: {goal}; {path}")


if __name__ == "__main__":
    main()
