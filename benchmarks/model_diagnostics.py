"""What limits a model on synthetic scenes: resolution, use of the image, size priors, IoU head.

Four measurements on unseen scenes (seed 1000), each a minute or less on a CPU:

1. resolution bound: free low-res logits (the model's low-res size) fitted to each true
   mask, upsampled and thresholded like the model's output: the IoU a perfect decoder of
   this size would reach;
2. use of the image: the masks for the first click of each object with the real image,
   with flat grey and with another scene (mean IoU between the answers; a model that reads
   the image answers differently);
3. size prior: box prompts, IoU and predicted / true area per mask-area class;
4. IoU head: which of the 3 masks it picks, and its correlation with the true IoU.

    .venv/bin/python benchmarks/model_diagnostics.py                 # bundled tiny
    .venv/bin/python benchmarks/model_diagnostics.py --checkpoint runs/x/model.pt

Writes results/model_diagnostics.json.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import environment, write_results  # noqa: E402
from maskengine import Predictor, create_model  # noqa: E402
from maskengine.data import SceneConfig, drop_large, generate_scene  # noqa: E402
from maskengine.evaluation import SIZE_CLASSES, _farthest, mask_iou  # noqa: E402
from maskengine.masks import mask_to_box  # noqa: E402
from maskengine.threads import set_process_threads  # noqa: E402


def resolution_bound(masks: np.ndarray, low: int, steps: int = 300) -> np.ndarray:
    """Per mask: IoU of the best low x low logits (fitted by Adam), upsampled bilinearly."""
    m = torch.tensor(masks, dtype=torch.float32)[:, None]
    size = masks.shape[-2:]
    logits = (F.adaptive_avg_pool2d(m, low) * 8 - 4).requires_grad_(True)
    opt = torch.optim.Adam([logits], lr=0.3)
    for _ in range(steps):
        up = F.interpolate(logits, size, mode="bilinear", align_corners=False)
        loss = F.binary_cross_entropy_with_logits(up * 3, m)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        pred = F.interpolate(logits, size, mode="bilinear", align_corners=False)[:, 0] > 0
    return mask_iou(pred.numpy(), masks)


def size_class(area: float) -> str:
    return next(name for name, lo, hi in SIZE_CLASSES if lo <= area < hi)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="tiny")
    ap.add_argument("--checkpoint", default=None)
    ap.add_argument("--images", type=int, default=12)
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()
    if args.threads:
        set_process_threads(args.threads)
    model = create_model(args.model, checkpoint=args.checkpoint)
    pred = Predictor(model)
    rows = []  # per mask: area, bound, same-answer IoU (grey, other), box IoU, box area ratio
    ious, scores = [], []  # first click on the real image: K x 3 true and predicted IoU
    for i in range(args.images):
        scene = generate_scene(SceneConfig(), 1000, i)
        masks = drop_large(scene.masks, 0.9)
        areas = masks.reshape(len(masks), -1).sum(1)
        bound = resolution_bound(masks, model.config.low_res_size)
        points = np.array([[_farthest(m)[1:]] for m in masks], float)
        ones = np.ones((len(masks), 1))
        pred.set_image(scene.image)
        real, s, _ = pred.predict_batch(points, ones, multimask_output=True)
        ious.append(mask_iou(real, masks[:, None]))
        scores.append(np.asarray(s))
        boxes = mask_to_box(torch.from_numpy(masks)).numpy().astype(float)
        bm, _, _ = pred.predict_batch(boxes=boxes, multimask_output=False)
        box_iou = mask_iou(bm[:, 0], masks)
        box_ratio = bm[:, 0].reshape(len(masks), -1).sum(1) / areas
        same = []  # the same clicks on an image without the scene: how much the answer moves
        for image in (np.full_like(scene.image, 128),
                      generate_scene(SceneConfig(), 1000, i + 10_000).image):
            pred.set_image(image)
            m, _, _ = pred.predict_batch(points, ones, multimask_output=True)
            same.append(mask_iou(real, m).mean(1))
        rows += zip(areas.astype(float), bound, same[0], same[1], box_iou, box_ratio,
                    strict=True)
    r = np.array(rows)
    classes = np.array([size_class(a) for a in r[:, 0]])
    by_size = {}
    for name, _lo, _hi in SIZE_CLASSES:
        sel = classes == name
        if sel.any():
            by_size[name] = {"masks": int(sel.sum()), "resolution_bound": float(r[sel, 1].mean()),
                             "box_iou": float(r[sel, 4].mean()),
                             "box_area_ratio_median": float(np.median(r[sel, 5]))}
    true, sc = np.concatenate(ious), np.concatenate(scores)
    pk = sc.argmax(1)
    result = {
        "model": args.model, "checkpoint": args.checkpoint, "images": args.images,
        "masks": len(r), "environment": environment(),
        "resolution_bound": {"mean_iou": float(r[:, 1].mean()),
                             "share_at_0.85": float((r[:, 1] >= 0.85).mean()),
                             "share_at_0.90": float((r[:, 1] >= 0.90).mean())},
        "same_answer_iou": {"grey_image": float(r[:, 2].mean()),
                            "other_scene": float(r[:, 3].mean())},
        "box_prompt": {"mean_iou": float(r[:, 4].mean()), "by_size": by_size},
        "iou_head": {"picked_slot_counts": np.bincount(pk, minlength=3).tolist(),
                     "true_iou_per_slot": true.mean(0).tolist(),
                     "predicted_iou_per_slot": sc.mean(0).tolist(),
                     "correlation_per_slot": [float(np.corrcoef(true[:, k], sc[:, k])[0, 1])
                                              for k in range(3)]},
    }
    path = write_results("model_diagnostics", result)
    for key in ("resolution_bound", "same_answer_iou", "box_prompt", "iou_head"):
        print(key, result[key])
    print(f"written {path}")


if __name__ == "__main__":
    main()
