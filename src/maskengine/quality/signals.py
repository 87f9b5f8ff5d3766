"""Per-mask evidence that a mask is wrong, each a number in [0, 1] (1: surely wrong).

- model: the served model re-asked with the mask's own box, and with the clicks stored
  when it was made; 1 - the better mask IoU of the two answers;
- clicks: share of the stored clicks the mask contradicts (a positive click outside it, a
  negative click inside);
- edges: 1 - how strongly the image changes along the mask's outline, relative to the
  image's own strong edges (a shifted, eroded or dilated outline runs through flat
  regions);
- shape: connected components, used by the shape checks.

All masks are H x W bool in the original image frame; clicks are (x, y, label) pixels.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import cv2
import numpy as np

from ..engine import rle
from ..engine.models import Interaction
from ..engine.prompts import ImageRef, make_prompt
from ..engine.segmenter import Segmenter

Click = tuple[float, float, int]


def stored_clicks(interactions: list[Interaction]) -> list[Click]:
    """The clicks of the last interaction that had any (an edit's clicks replace the
    creation's); [] when the mask was painted or imported."""
    for inter in reversed(interactions):
        events = json.loads(inter.events_json or "[]")
        pts = [(float(e["x"]), float(e["y"]), int(e.get("label", 1))) for e in events
               if e.get("type") == "point" and e.get("x") is not None and e.get("y") is not None]
        if pts:
            return pts
    return []


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


@dataclass(frozen=True)
class ModelAnswer:
    iou_box: float  # mask IoU of the model's answer to the mask's box
    iou_clicks: float | None  # ... to the stored clicks (None: no clicks stored)

    @property
    def disagreement(self) -> float:
        best = max(self.iou_box, self.iou_clicks or 0.0)
        return 1.0 - best


def ask_model(segmenter: Segmenter, ref: ImageRef, mask: np.ndarray,
              clicks: list[Click]) -> ModelAnswer:
    """Re-ask the model for `mask` (H x W bool) with its box and with its clicks. With one
    click the model answers three candidates; the closest counts (as in the page, where
    the annotator picks one)."""
    ys, xs = np.nonzero(mask.any(1))[0], np.nonzero(mask.any(0))[0]
    box = (float(xs[0]), float(ys[0]), float(xs[-1] + 1), float(ys[-1] + 1))
    low = segmenter.low_res_size
    cands = segmenter.predict(ref, make_prompt(ref, points=[], box=box, mask_input=None,
                                               low_res_size=low, multimask=False))
    iou_box = iou(rle.decode(cands[0].counts, ref.height, ref.width), mask)
    iou_clicks = None
    inside = [c for c in clicks if 0 <= c[0] <= ref.width and 0 <= c[1] <= ref.height]
    if inside:
        cands = segmenter.predict(ref, make_prompt(ref, points=inside, box=None,
                                                   mask_input=None, low_res_size=low,
                                                   multimask=len(inside) == 1))
        iou_clicks = max(iou(rle.decode(c.counts, ref.height, ref.width), mask)
                         for c in cands)
    return ModelAnswer(iou_box=iou_box, iou_clicks=iou_clicks)


def click_errors(mask: np.ndarray, clicks: list[Click]) -> int:
    """How many stored clicks the mask contradicts."""
    h, w = mask.shape
    bad = 0
    for x, y, label in clicks:
        r, c = min(int(y), h - 1), min(int(x), w - 1)
        if r < 0 or c < 0:
            continue
        bad += int(bool(mask[r, c]) != bool(label))
    return bad


def edge_map(image: np.ndarray) -> tuple[np.ndarray, float]:
    """Gradient magnitude of an H x W x 3 uint8 image (largest over channels, after a 3 x 3
    blur against pixel noise) and its scale: the mean of the strongest 5 % of pixels."""
    blur = cv2.GaussianBlur(image, (3, 3), 0).astype(np.float32)
    gx = cv2.Sobel(blur, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(blur, cv2.CV_32F, 0, 1, ksize=3)
    mag = np.sqrt(gx * gx + gy * gy).max(axis=2)
    flat = mag.ravel()
    k = max(1, flat.size // 20)
    scale = float(np.partition(flat, flat.size - k)[-k:].mean())
    return mag, max(scale, 1e-6)


_KERNEL = np.ones((3, 3), np.uint8)


def edge_weakness(edges: tuple[np.ndarray, float], mask: np.ndarray) -> float | None:
    """1 - (mean gradient on the 2-pixel band around the outline / the image's edge
    scale), clipped to [0, 1]. None when the outline lies on the image border only."""
    mag, scale = edges
    m = mask.astype(np.uint8)
    band = (cv2.dilate(m, _KERNEL) != cv2.erode(m, _KERNEL))
    if not band.any():
        return None
    return float(np.clip(1.0 - mag[band].mean() / scale, 0.0, 1.0))


def components(mask: np.ndarray) -> int:
    """Number of 8-connected pieces of the mask."""
    n, _ = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
    return n - 1
