"""Automatic-generator thresholds for a model, chosen on scenes that are not the demo's.

Runs the generator once per image with the filters off (predicted IoU 0, stability 0, NMS
off), then replays the filters and the box NMS offline for every (predicted IoU, stability)
pair of a grid: on a single crop, filter-then-NMS over the kept records is what the
generator does. For each pair: AR@100 (COCO-style, IoU 0.50:0.95) and masks per true
object. Writes benchmarks/results/generator_thresholds.json.

    python benchmarks/generator_thresholds.py [--model tiny] [--seed 3000] [--images 6]
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import environment, write_results  # noqa: E402
from maskengine import MaskGenerator, create_model  # noqa: E402
from maskengine.data import SceneConfig, generate_scene  # noqa: E402
from maskengine.evaluation import RecallCounter  # noqa: E402
from maskengine.masks import nms  # noqa: E402
from maskengine.threads import set_process_threads  # noqa: E402

IOU_GRID = (0.0, 0.5, 0.6, 0.7, 0.8, 0.88)
STABILITY_GRID = (0.0, 0.6, 0.7, 0.8, 0.9, 0.95)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="tiny")
    ap.add_argument("--checkpoint", default=None)
    ap.add_argument("--seed", type=int, default=3000, help="scene seed (the demo uses 2024)")
    ap.add_argument("--images", type=int, default=6)
    ap.add_argument("--points-per-side", type=int, default=32)
    ap.add_argument("--box-nms-thresh", type=float, default=0.7)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--max-per-object", type=float, default=2.0)
    args = ap.parse_args()
    set_process_threads(args.threads)
    model = create_model(args.model, checkpoint=args.checkpoint)
    gen = MaskGenerator(model, points_per_side=args.points_per_side, pred_iou_thresh=0.0,
                        stability_score_thresh=0.0, box_nms_thresh=1.0,
                        output_mode="binary_mask")
    scenes = [generate_scene(SceneConfig(height=384, width=512), args.seed, i)
              for i in range(args.images)]
    raw = []
    for s in scenes:
        recs = gen.generate(s.image)
        raw.append((s.masks, recs))
        print(f"{s.name}: {len(recs)} candidates, {len(s.masks)} true masks", flush=True)
    objects = sum(len(m) for m, _ in raw)
    rows = []
    for iou_t, stab_t in itertools.product(IOU_GRID, STABILITY_GRID):
        counter, kept = RecallCounter(ks=(100, 1000)), 0
        for gt, recs in raw:
            sel = [r for r in recs if r.predicted_iou > iou_t and r.stability_score >= stab_t]
            if sel:
                boxes = torch.tensor([[r.bbox[0], r.bbox[1], r.bbox[0] + r.bbox[2],
                                       r.bbox[1] + r.bbox[3]] for r in sel], dtype=torch.float)
                scores = torch.tensor([r.predicted_iou for r in sel])
                sel = [sel[i] for i in nms(boxes, scores, args.box_nms_thresh).tolist()]
            props = (np.stack([r.segmentation for r in sel]) if sel
                     else np.zeros((0, *gt.shape[1:]), bool))
            counter.add(props, np.array([r.predicted_iou for r in sel]), gt)
            kept += len(sel)
        summary = counter.summary()
        rows.append({"pred_iou_thresh": iou_t, "stability_score_thresh": stab_t,
                     "ar@100": summary["ar@100"], "masks": kept,
                     "masks_per_object": kept / max(objects, 1)})
    ok = [r for r in rows if r["masks_per_object"] <= args.max_per_object]
    best = max(ok, key=lambda r: r["ar@100"]) if ok else None
    official = next(r for r in rows if r["pred_iou_thresh"] == 0.88
                    and r["stability_score_thresh"] == 0.95)
    out = {"environment": environment(), "args": vars(args), "objects": objects,
           "official_defaults": official, "best_within_limit": best, "grid": rows}
    path = write_results("generator_thresholds", out)
    print("official defaults:", official)
    print(f"best with <= {args.max_per_object} masks per object:", best)
    print("wrote", path)


if __name__ == "__main__":
    main()
