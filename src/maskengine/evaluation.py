"""The paper's evaluation protocol: interactive mIoU, clicks-to-target and proposal recall.

Interactive: each ground-truth mask is segmented by simulated clicks. The first click is
the point farthest from the object's boundary; every later click is the point farthest
from the boundary of the larger error region (missed pixels -> positive click, spurious
pixels -> negative click), with the previous low-res logits fed back as the mask prompt.
The first click asks for 3 masks, later clicks for the single mask (as in training). Two
runs per object:
  default  the model's most confident of the 3 masks after the first click;
  oracle   the best of the 3 against the ground truth (later clicks follow from it).
Reported: mIoU after 1, 2, 3, 5, 9 clicks, and NoC@85 / NoC@90, the clicks needed to
reach IoU 0.85 / 0.90 (`max_clicks` when never reached; NoF counts those objects).

Proposals: AR@k, recall averaged over IoU thresholds 0.50:0.05:0.95 with the top-k
proposals by score, one-to-one greedy matching (the COCO procedure), pooled over images.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import cv2
import numpy as np

REPORT_CLICKS = (1, 2, 3, 5, 9)
THRESHOLDS = tuple(round(0.5 + 0.05 * i, 2) for i in range(10))


class ClickPredictor(Protocol):
    """What the interactive evaluation needs: `maskengine.Predictor` fits it."""

    def set_image(self, image: np.ndarray) -> None: ...

    def predict_batch(
        self, point_coords: np.ndarray | None = None, point_labels: np.ndarray | None = None,
        boxes: np.ndarray | None = None, mask_input: np.ndarray | None = None,
        multimask_output: bool = True,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """K x N x 2 (x, y) original-frame points, K x N labels, K x 1 x L x L logits ->
        masks K x C x H x W bool, scores K x C, low-res logits K x C x L x L."""
        ...


def mask_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of ... x H x W bool arrays, pairwise over leading dims (empty vs empty = 1)."""
    inter = np.logical_and(a, b).sum((-2, -1))
    union = np.logical_or(a, b).sum((-2, -1))
    return np.where(union > 0, inter / np.maximum(union, 1), 1.0)


def _farthest(region: np.ndarray) -> tuple[float, int, int]:
    """(distance, x, y) of the pixel of `region` (H x W bool) farthest from its boundary;
    the image border counts as boundary."""
    padded = np.pad(region.astype(np.uint8), 1)
    dist = cv2.distanceTransform(padded, cv2.DIST_L2, 5)[1:-1, 1:-1]
    idx = int(np.argmax(dist))
    y, x = divmod(idx, region.shape[1])
    return float(dist[y, x]), x, y


def centre_point(mask: np.ndarray) -> tuple[int, int]:
    """(x, y) of the pixel of `mask` (H x W bool) farthest from its boundary: the paper's
    single-point prompt."""
    _, x, y = _farthest(mask)
    return x, y


def next_click(gt: np.ndarray, pred: np.ndarray) -> tuple[int, int, int] | None:
    """The next simulated click for ground truth `gt` given prediction `pred` (H x W bool):
    (x, y, label) with label 1 inside a missed region, 0 inside a spurious one; None when
    the prediction is exact."""
    missed = gt & ~pred
    spurious = pred & ~gt
    d_miss, xm, ym = _farthest(missed)
    d_spur, xs, ys = _farthest(spurious)
    if d_miss == 0 and d_spur == 0:
        return None
    return (xm, ym, 1) if d_miss >= d_spur else (xs, ys, 0)


def interactive_ious(
    predictor: ClickPredictor, image: np.ndarray, masks: np.ndarray, *, max_clicks: int = 20,
    oracle: bool = False, feed_mask: bool = True, first_click: list | None = None,
) -> np.ndarray:
    """IoU after 1..max_clicks clicks for each mask: K x max_clicks float.

    image: H x W x 3 uint8; masks: K x H x W bool in the image frame. An object whose
    prediction becomes exact keeps that IoU for the remaining clicks. first_click: when a
    list, (predicted IoU K x M, true IoU K x M) of the first click's M masks is appended."""
    k = len(masks)
    out = np.zeros((k, max_clicks))
    if k == 0:
        return out
    predictor.set_image(image)
    pred = np.zeros_like(masks)
    coords = np.zeros((k, 0, 2))
    labels = np.zeros((k, 0))
    prev: np.ndarray | None = None
    done = np.zeros(k, bool)
    rows = np.arange(k)
    for n in range(max_clicks):
        new = np.zeros((k, 1, 2))
        lab = np.zeros((k, 1))
        for i in range(k):
            click = None if done[i] else next_click(masks[i], pred[i])
            if click is None:  # exact already: repeat the last click, ignore the answer
                done[i] = True
                new[i, 0], lab[i, 0] = coords[i, -1], labels[i, -1]
            else:
                new[i, 0], lab[i, 0] = click[:2], click[2]
        coords = np.concatenate([coords, new], 1)
        labels = np.concatenate([labels, lab], 1)
        m, scores, logits = predictor.predict_batch(
            coords, labels, mask_input=prev if feed_mask else None, multimask_output=n == 0)
        if n == 0:
            true = mask_iou(m, masks[:, None])
            if first_click is not None:
                first_click.append((np.asarray(scores, dtype=np.float64), true))
            choice = true.argmax(1) if oracle else np.asarray(scores).argmax(1)
        else:
            choice = np.zeros(k, int)
        answer = m[rows, choice]
        pred = np.where(done[:, None, None], pred, answer)
        prev = logits[rows, choice][:, None]
        out[:, n] = mask_iou(pred, masks)
    return out


def clicks_to(ious: np.ndarray, threshold: float) -> np.ndarray:
    """K x C IoU curves -> clicks needed to reach `threshold` (C where never reached)."""
    hit = ious >= threshold
    return np.where(hit.any(1), hit.argmax(1) + 1, ious.shape[1])


# COCO's object-size classes, by mask area in pixels of the image as evaluated.
SIZE_CLASSES = (("small", 0, 32 ** 2), ("medium", 32 ** 2, 96 ** 2), ("large", 96 ** 2, np.inf))


def _curve_summary(curves: np.ndarray) -> dict:
    """K x C IoU curves -> mIoU after REPORT_CLICKS, NoC@85/90 and NoF@85/90."""
    c = curves.shape[1]
    res: dict = {f"miou@{n}": float(curves[:, n - 1].mean()) for n in REPORT_CLICKS if n <= c}
    for t in (0.85, 0.90):
        res[f"noc@{int(t * 100)}"] = float(clicks_to(curves, t).mean())
        res[f"nof@{int(t * 100)}"] = int((curves.max(1) < t).sum())
    return res


@dataclass(frozen=True)
class InteractiveReport:
    """Per-object IoU curves (K x C) of the default and oracle runs, the objects' mask areas
    in pixels (K; empty when not known), and their summary."""

    default: np.ndarray
    oracle: np.ndarray
    areas: np.ndarray = field(default_factory=lambda: np.zeros(0))
    # First click: predicted and true IoU of each of the M masks (K x M each).
    first_scores: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    first_true: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))

    def iou_head(self) -> dict:
        """How well the IoU head ranks: Pearson correlation of predicted and true IoU over
        all first-click masks, and how often its top mask is the truly best one."""
        pred, true = self.first_scores.ravel(), self.first_true.ravel()
        if len(pred) < 2 or pred.std() == 0 or true.std() == 0:
            return {"correlation": float("nan"), "picks_best": float("nan")}
        best = self.first_true.max(1)
        picked = self.first_true[np.arange(len(best)), self.first_scores.argmax(1)]
        return {"correlation": float(np.corrcoef(pred, true)[0, 1]),
                "picks_best": float((picked >= best).mean()),
                "mean_abs_error": float(np.abs(pred - true).mean())}

    def summary(self) -> dict:
        out: dict = {"objects": int(len(self.default)), "max_clicks": int(self.default.shape[1])}
        for name, curves in (("default", self.default), ("oracle", self.oracle)):
            out[name] = _curve_summary(curves)
        if self.first_scores.size:
            out["iou_head"] = self.iou_head()
        if len(self.areas) == len(self.default) and len(self.areas):
            # Which objects the model fails on: a model that leans on a size prior rather
            # than on the image does well on one class only.
            out["by_size"] = {}
            for name, lo, hi in SIZE_CLASSES:
                sel = (self.areas >= lo) & (self.areas < hi)
                if sel.any():
                    out["by_size"][name] = {"objects": int(sel.sum()),
                                            "default": _curve_summary(self.default[sel]),
                                            "oracle": _curve_summary(self.oracle[sel])}
        return out


def evaluate_interactive(
    predictor: ClickPredictor, samples: Iterable[tuple[np.ndarray, np.ndarray]], *,
    max_clicks: int = 20, feed_mask: bool = True, on_image: object = None,
) -> InteractiveReport:
    """Run both protocols over (image H x W x 3 uint8, masks K x H x W bool) pairs.
    on_image: optional callable(objects_in_image) for progress."""
    default, oracle, areas, first = [], [], [], []
    for image, masks in samples:
        areas.append(masks.reshape(len(masks), -1).sum(1))
        default.append(interactive_ious(predictor, image, masks, max_clicks=max_clicks,
                                        feed_mask=feed_mask, first_click=first))
        oracle.append(interactive_ious(predictor, image, masks, max_clicks=max_clicks,
                                       oracle=True, feed_mask=feed_mask))
        if callable(on_image):
            on_image(len(masks))
    empty = np.zeros((0, max_clicks))
    first = [f for f in first if len(f[0])]
    scores = np.concatenate([f[0] for f in first]) if first else np.zeros((0, 0))
    true = np.concatenate([f[1] for f in first]) if first else np.zeros((0, 0))
    return InteractiveReport(np.concatenate(default or [empty]),
                             np.concatenate(oracle or [empty]),
                             np.concatenate(areas or [np.zeros(0)]).astype(np.float64),
                             scores, true)


# -- proposals ------------------------------------------------------------------------


@dataclass
class RecallCounter:
    """Pools matches over images for AR@k: matched[k][t] GT masks found at threshold t."""

    ks: Sequence[int] = (100, 1000)
    gt_total: int = 0
    matched: dict[int, np.ndarray] = field(default_factory=dict)

    def add(self, proposals: np.ndarray, scores: np.ndarray, gt: np.ndarray) -> None:
        """proposals P x H x W bool, scores P, gt G x H x W bool (one image)."""
        self.gt_total += len(gt)
        for k in self.ks:
            self.matched.setdefault(k, np.zeros(len(THRESHOLDS)))
        if len(proposals) == 0 or len(gt) == 0:
            return
        order = np.argsort(-np.asarray(scores), kind="stable")
        flat_p = proposals[order].reshape(len(order), -1)
        flat_g = gt.reshape(len(gt), -1)
        for k in self.ks:
            counts = self.matched[k]
            top = flat_p[:k]
            inter = top.astype(np.float32) @ flat_g.T.astype(np.float32)
            union = top.sum(1)[:, None] + flat_g.sum(1)[None] - inter
            iou = inter / np.maximum(union, 1)
            for ti, t in enumerate(THRESHOLDS):
                counts[ti] += _greedy_matches(iou, t)

    def summary(self) -> dict:
        out = {"gt_masks": self.gt_total}
        for k in self.ks:
            counts = self.matched.get(k, np.zeros(len(THRESHOLDS)))
            out[f"ar@{k}"] = float((counts / max(self.gt_total, 1)).mean())
        return out


def _greedy_matches(iou: np.ndarray, threshold: float) -> int:
    """Proposals in score order (rows) each take the best still-free GT (columns) with IoU
    >= threshold; returns how many GT were taken."""
    free = np.ones(iou.shape[1], bool)
    n = 0
    for row in iou:
        cand = np.where(free & (row >= threshold), row, -1.0)
        j = int(cand.argmax())
        if cand[j] >= 0:
            free[j] = False
            n += 1
    return n
