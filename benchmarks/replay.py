"""The automatic generator's filters, box NMS and focus pass, replayed over one unfiltered
generator pass, so that a study can try many thresholds for the price of one run.

On a single crop (crop_n_layers 0), filter-then-NMS over the unfiltered records is what the
generator does; with the focus pass (the generator's default for models with an input under
1024) the kept masks are then refined on their crops and box NMS runs again, as in
`MaskGenerator._records`. The studies check the
replay against the generator itself.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from maskengine.focus import FocusPredictor, focus_default
from maskengine.masks import nms


def nms_order(recs: list, thresh: float) -> list[int]:
    """Indices of `recs` that box NMS (by predicted IoU) keeps, in the generator's order."""
    if not recs:
        return []
    boxes = torch.tensor([[r.bbox[0], r.bbox[1], r.bbox[0] + r.bbox[2], r.bbox[1] + r.bbox[3]]
                          for r in recs], dtype=torch.float)
    return nms(boxes, torch.tensor([r.predicted_iou for r in recs]), thresh).tolist()


def passes(r, iou_t: float, stab_t: float) -> bool:
    """The generator's filters on a record (a threshold of 0 is no filter at all, even for
    a negative predicted IoU)."""
    return ((iou_t <= 0 or r.predicted_iou > iou_t)
            and (stab_t <= 0 or r.stability_score >= stab_t))


def replay(recs: list, iou_t: float, stab_t: float, nms_t: float) -> list:
    """The records the generator keeps at these thresholds, before any focus pass."""
    sel = [r for r in recs if passes(r, iou_t, stab_t)]
    return [sel[i] for i in nms_order(sel, nms_t)]


def iou_matrix(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """P x H x W and G x H x W bool -> P x G mask IoU."""
    if len(pred) == 0 or len(gt) == 0:
        return np.zeros((len(pred), len(gt)))
    p = pred.reshape(len(pred), -1).astype(np.float32)
    g = gt.reshape(len(gt), -1).astype(np.float32)
    inter = p @ g.T
    union = p.sum(1)[:, None] + g.sum(1)[None] - inter
    return inter / np.maximum(union, 1)


def mask_bbox(mask: np.ndarray) -> list[int]:
    """XYWH (inclusive, as the records) of a non-empty H x W mask."""
    ys, xs = np.nonzero(mask)
    return [int(xs.min()), int(ys.min()), int(xs.max() - xs.min()), int(ys.max() - ys.min())]


class FocusReplay:
    """The generator's focus pass over kept records, each record refined once (cached)."""

    def __init__(self, model, focus: bool | None = None) -> None:
        use = focus_default(model) if focus is None else focus
        self.predictor = FocusPredictor(model) if use else None
        self._image_key: object = None
        self._cache: dict[object, dict[int, object]] = {}  # image key -> id(record) -> refined

    @property
    def on(self) -> bool:
        return self.predictor is not None

    def __call__(self, key: object, image: np.ndarray, kept: list, nms_t: float) -> list:
        """`kept` (records of the image named `key`) after the focus pass (refined masks,
        the first pass's scores) and NMS again at `nms_t` (the generator's:
        max(box_nms_thresh, crop_nms_thresh)); unchanged when the focus pass is off."""
        if self.predictor is None:
            return kept
        cache = self._cache.setdefault(key, {})
        out = []
        for r in kept:
            if id(r) not in cache:
                if key != self._image_key:
                    self.predictor.set_image(image, encode=False)
                    self._image_key = key
                ref = (self.predictor.refine_mask(r.segmentation, np.array(r.point_coords[0]))
                       if r.segmentation.any() else None)
                cache[id(r)] = r if ref is None else replace(
                    r, segmentation=ref.mask, area=int(ref.mask.sum()), bbox=mask_bbox(ref.mask))
            out.append(cache[id(r)])
        return [out[i] for i in nms_order(out, nms_t)]


def check_replay(model, base, image: np.ndarray, raw: list, iou_t: float, stab_t: float,
                 focus: FocusReplay) -> None:
    """Raise unless the replay at these thresholds keeps the masks that the generator
    itself (config `base` with these thresholds, its default focus pass) makes on `image`,
    whose unfiltered records are `raw`."""
    from maskengine import MaskGenerator

    got = MaskGenerator(model, replace(base, pred_iou_thresh=iou_t,
                                       stability_score_thresh=stab_t,
                                       focus=focus.on)).generate(image)
    again = focus("check", image, replay(raw, iou_t, stab_t, base.box_nms_thresh),
                  max(base.box_nms_thresh, base.crop_nms_thresh))
    same = len(got) == len(again) and all(
        np.array_equal(a.segmentation, b.segmentation) for a, b in zip(
            sorted(got, key=lambda r: -r.predicted_iou),
            sorted(again, key=lambda r: -r.predicted_iou), strict=True))
    if not same:
        raise AssertionError(f"the replay differs from the generator at pred IoU > {iou_t}, "
                             f"stability >= {stab_t}: {len(again)} masks against {len(got)}")
