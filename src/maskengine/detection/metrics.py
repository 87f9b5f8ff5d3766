"""Detection quality: AP at IoU 0.5 (all-point interpolated, as PASCAL VOC 2010+) and
recall at IoU 0.5 over the detections of each image, against the boxes of accepted masks."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from .head import Detection


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """N x 4 and M x 4 XYXY -> N x M IoU."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(-1)
    area_a = np.clip(a[:, 2:] - a[:, :2], 0, None).prod(-1)
    area_b = np.clip(b[:, 2:] - b[:, :2], 0, None).prod(-1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


@dataclass(frozen=True)
class DetectionReport:
    images: int
    boxes: int  # ground-truth boxes
    detections: int
    ap50: float
    recall50: float  # share of true boxes matched at IoU >= 0.5 by some detection

    def to_dict(self) -> dict:
        return asdict(self)


def evaluate_detections(detections: Sequence[Sequence[Detection]],
                        truths: Sequence[np.ndarray], iou: float = 0.5) -> DetectionReport:
    """Per image: detections (any order) and true boxes K x 4 (same frame). Each true box
    is matched at most once, detections taken by descending score (greedy)."""
    if len(detections) != len(truths):
        raise ValueError(f"{len(detections)} detection lists for {len(truths)} images")
    scored: list[tuple[float, bool]] = []
    n_true = 0
    for dets, gt in zip(detections, truths, strict=True):
        gt = np.asarray(gt, dtype=np.float64).reshape(-1, 4)
        n_true += len(gt)
        order = sorted(dets, key=lambda d: -d.score)
        taken = np.zeros(len(gt), dtype=bool)
        ious = box_iou(np.array([d.box for d in order]).reshape(-1, 4), gt)
        for k, d in enumerate(order):
            hit = False
            if len(gt):
                cand = np.where(taken, -1.0, ious[k])
                j = int(cand.argmax())
                if cand[j] >= iou:
                    taken[j] = hit = True
            scored.append((d.score, hit))
    if not n_true:
        return DetectionReport(len(truths), 0, len(scored), float("nan"), float("nan"))
    scored.sort(key=lambda t: -t[0])
    hits = np.array([h for _, h in scored], dtype=bool)
    tp = np.cumsum(hits)
    fp = np.cumsum(~hits)
    recall = tp / n_true
    precision = tp / np.maximum(tp + fp, 1)
    # All-point interpolation: the precision envelope integrated over recall.
    r = np.concatenate([[0.0], recall, [recall[-1] if len(recall) else 0.0]])
    p = np.concatenate([[1.0], precision, [0.0]])
    p = np.maximum.accumulate(p[::-1])[::-1]
    ap = float(np.sum((r[1:] - r[:-1]) * p[1:]))
    return DetectionReport(images=len(truths), boxes=n_true, detections=len(scored),
                           ap50=round(ap, 4), recall50=round(float(tp[-1] / n_true)
                                                             if len(tp) else 0.0, 4))
