"""A second, zoomed-in pass for small objects (the "focus" pass).

A model with a small input (the bundled `tiny` sees 256 x 256, a 32 x 32 embedding) spends
only a few embedding cells on a small object, and its masks of such objects are coarse:
two thirds of the evaluation objects are COCO-small, and they need about three times the
clicks of medium ones. The focus pass answers a prompt as usual, and when the chosen mask
is small it answers the same prompt again on a crop around that mask, resized to the model's
input, and pastes the result back (the idea of FocalClick's focus view; SAM's generator
crops for the same reason).

Per prompt k, after the ordinary pass:
  - the box around the chosen mask (highest predicted IoU) and the positive clicks; when
    its longest side is at most `max_fraction` of the image's longest side,
  - a square crop `context` times that side (at least `min_crop` of the longest side),
    snapped to a grid of 1/32 of the longest side so that nearby prompts share a crop
    (each crop's embedding is computed once per image and kept),
  - the prompt again in the crop (points shifted; boxes shifted; mask_input resampled from
    the full-image grid to the crop's), its masks pasted into the full frame (nothing
    outside the crop), its IoU predictions, and its low-res logits resampled into the crop's
    part of the full-image grid (so feeding them back in the next call works as usual).
Large objects keep the ordinary answer unchanged, and so does a prompt whose crop answer
is empty.

`FocusPredictor` has the `Predictor` methods the interactive tools use (`set_image`,
`predict`, `predict_batch`); it needs the image's pixels (not only a cached embedding).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .masks import stability_score
from .modeling import Sam
from .predictor import Predictor


@dataclass(frozen=True)
class FocusConfig:
    """When and how the focus pass zooms in."""

    max_fraction: float = 0.19  # masks whose box is at most this share of the longest side
    context: float = 2.0  # the crop's side over the box's longest side
    min_crop: float = 0.25  # the crop's side at least this share of the longest side

    def __post_init__(self) -> None:
        if not 0 < self.max_fraction <= 1 or self.context < 1 or not 0 < self.min_crop <= 1:
            raise ValueError(f"focus settings out of range: {self}")


def focus_default(model: Sam) -> bool:
    """Whether a model gets the focus pass when nobody says: models with an input under
    1024 (made for CPUs, like the bundled `tiny`); the released ones keep the official
    single pass."""
    return model.config.image_size < 1024


def focus_crop(box: tuple[float, float, float, float], points: np.ndarray,
               size: tuple[int, int], cfg: FocusConfig) -> tuple[int, int, int] | None:
    """(x0, y0, side) of the square crop the focus pass answers on, for a mask whose box is
    `box` (x0, y0, x1, y1 pixels) with its positive clicks (N x 2) in an image of `size`
    (H, W); None when the mask is not small."""
    h, w = size
    longest = max(h, w)
    px, py = (points[:, 0], points[:, 1]) if len(points) else (box[:1], box[1:2])
    x_lo, x_hi = min(box[0], np.min(px)), max(box[2], np.max(px) + 1)
    y_lo, y_hi = min(box[1], np.min(py)), max(box[3], np.max(py) + 1)
    side = max(x_hi - x_lo, y_hi - y_lo)
    if side > cfg.max_fraction * longest:
        return None
    q = max(1, longest // 32)
    want = max(cfg.context * side, cfg.min_crop * longest)
    side = int(min(math.ceil(want / q) * q, h, w))
    cx, cy = (x_lo + x_hi) / 2, (y_lo + y_hi) / 2
    x0 = int(round(min(max(cx - side / 2, 0), w - side) / q) * q)
    y0 = int(round(min(max(cy - side / 2, 0), h - side) / q) * q)
    return min(max(x0, 0), w - side), min(max(y0, 0), h - side), side


def resample_logits(logits: np.ndarray, src: tuple[int, int, int, int],
                    dst: tuple[int, int, int, int], fill: float = -20.0) -> np.ndarray:
    """C x L x L low-res logits made on the frame `src` -> the same on the frame `dst`
    (frames x0, y0, x1, y1 in image pixels: the whole image or a crop of it; a frame's grid
    covers the square of its longest side from its top-left corner, as the model's padded
    input does). Cells of `dst` outside `src`'s grid get `fill` (surely background)."""
    n = logits.shape[-1]
    s_side = max(src[2] - src[0], src[3] - src[1])
    d_side = max(dst[2] - dst[0], dst[3] - dst[1])
    centres = (torch.arange(n, dtype=torch.float64) + 0.5) / n * d_side
    xs = (dst[0] + centres - src[0]) / s_side * 2 - 1
    ys = (dst[1] + centres - src[1]) / s_side * 2 - 1
    grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), -1)[None].float()
    t = torch.as_tensor(logits, dtype=torch.float32)[None] - fill
    out = F.grid_sample(t, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return (out[0] + fill).numpy()


def logits_in_crop(logits: np.ndarray, crop: tuple[int, int, int],
                   size: tuple[int, int]) -> np.ndarray:
    """C x L x L low-res logits of a whole image of `size` (H, W) -> the part the square
    crop (x0, y0, side) covers, resampled to C x L x L (the crop's own grid)."""
    x0, y0, side = crop
    return resample_logits(logits, (0, 0, size[1], size[0]), (x0, y0, x0 + side, y0 + side))


@dataclass(frozen=True)
class Refined:
    """A mask the focus pass made again on its crop, with the crop answer's scores."""

    mask: np.ndarray  # H x W bool, the whole image's frame (nothing outside the crop)
    predicted_iou: float
    stability_score: float  # at the full resolution of the crop


class FocusPredictor:
    """A `Predictor` with the focus pass for small masks (see the module docstring)."""

    def __init__(self, model: Sam, config: FocusConfig | None = None) -> None:
        self.cfg = config or FocusConfig()
        self.full = Predictor(model)
        self.crop = Predictor(model)
        self.low_res = model.config.low_res_size
        self.image: np.ndarray | None = None
        self._crops: dict[tuple[int, int, int], torch.Tensor] = {}
        self.crops_encoded = 0  # crops whose embedding was computed (for benchmarks)

    def set_image(self, image: np.ndarray, image_format: str = "RGB",
                  encode: bool = True) -> None:
        """The image prompts refer to; `encode=False` keeps only its pixels, for
        `refine_mask` alone (no whole-image embedding is computed)."""
        if encode:
            self.full.set_image(image, image_format)
        else:
            self.full.reset_image()  # no stale embedding of an earlier image
        rgb = np.asarray(image)
        self.image = rgb if image_format == "RGB" else rgb[..., ::-1]
        self._crops = {}

    def reset_image(self) -> None:
        """Forget the image and every embedding made for it."""
        self.full.reset_image()
        self.crop.reset_image()
        self.image = None
        self._crops = {}

    # -- the crop ----------------------------------------------------------------------
    def crop_box(self, mask: np.ndarray, points: np.ndarray) -> tuple[int, int, int] | None:
        """(x0, y0, side) of the crop for a mask (H x W bool) and its positive clicks
        (N x 2), or None when the mask is empty or not small."""
        ys, xs = np.nonzero(mask)
        if len(ys) == 0:
            return None
        box = (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
        return focus_crop(box, points, mask.shape, self.cfg)

    def _set_crop(self, box: tuple[int, int, int]) -> None:
        x0, y0, side = box
        if box not in self._crops:
            self.crop.set_image(np.ascontiguousarray(self.image[y0:y0 + side, x0:x0 + side]))
            self._crops[box] = self.crop.features
            self.crops_encoded += 1
        self.crop.set_embedding(self._crops[box], (side, side))

    def _grid_region(self, box: tuple[int, int, int]) -> tuple[float, float, float]:
        """The crop's (x, y, side) in cells of the full image's low-res logit grid."""
        h, w = self.image.shape[:2]
        r = self.low_res / max(h, w)
        return box[0] * r, box[1] * r, box[2] * r

    def _paste_logits(self, out: np.ndarray, crop_logits: np.ndarray,
                      box: tuple[int, int, int]) -> None:
        """Write C x L x L crop logits into their part of `out` (C x L x L, full image)."""
        gx, gy, gs = self._grid_region(box)
        a, b, n = int(round(gy)), int(round(gx)), max(1, int(round(gs)))
        small = F.interpolate(torch.as_tensor(crop_logits)[None], size=(n, n),
                              mode="bilinear", antialias=True, align_corners=False)[0]
        rows, cols = min(n, out.shape[1] - a), min(n, out.shape[2] - b)
        out[:, a:a + rows, b:b + cols] = small[:, :rows, :cols].numpy()

    # -- prompts -----------------------------------------------------------------------
    def predict(self, point_coords: np.ndarray | None = None,
                point_labels: np.ndarray | None = None, box: np.ndarray | None = None,
                mask_input: np.ndarray | None = None, multimask_output: bool = True,
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One prompt, as `Predictor.predict` (masks C x H x W, IoU C, logits C x L x L)."""
        def batch(a: np.ndarray | None) -> np.ndarray | None:
            return None if a is None else np.asarray(a)[None]
        m, s, lg = self.predict_batch(batch(point_coords), batch(point_labels), batch(box),
                                      batch(mask_input), multimask_output)
        return m[0], s[0], lg[0]

    def predict_batch(self, point_coords: np.ndarray | None = None,
                      point_labels: np.ndarray | None = None, boxes: np.ndarray | None = None,
                      mask_input: np.ndarray | None = None, multimask_output: bool = True,
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """K prompts, as `Predictor.predict_batch`; small masks answered on their crop."""
        if self.image is None:
            raise ValueError("no image set: call set_image(image) before predicting")
        masks, scores, logits = self.full.predict_batch(point_coords, point_labels, boxes,
                                                        mask_input, multimask_output)
        masks, scores, logits = masks.copy(), scores.copy(), logits.copy()
        for k in range(len(masks)):
            pts = np.zeros((0, 2))
            if point_coords is not None:
                pts = np.asarray(point_coords[k])[np.asarray(point_labels[k]) > 0]
            crop = self.crop_box(masks[k, int(scores[k].argmax())], pts)
            if crop is None:
                continue
            self._set_crop(crop)
            x0, y0, side = crop
            shift = np.array([x0, y0], dtype=np.float64)
            cm, cs, cl = self.crop.predict(
                None if point_coords is None else np.asarray(point_coords[k]) - shift,
                None if point_labels is None else np.asarray(point_labels[k]),
                None if boxes is None else np.asarray(boxes[k]) - np.tile(shift, 2),
                None if mask_input is None
                else logits_in_crop(mask_input[k], crop, self.image.shape[:2]),
                multimask_output=multimask_output)
            if not cm[int(cs.argmax())].any():
                continue  # an empty crop answer helps nobody: keep the plain one
            masks[k] = False
            masks[k, :, y0:y0 + side, x0:x0 + side] = cm
            scores[k] = cs
            self._paste_logits(logits[k], cl, crop)
        return masks, scores, logits


    def refine_mask(self, mask: np.ndarray, point: np.ndarray, min_match: float = 0.5,
                    stability_offset: float = 1.0) -> Refined | None:
        """The focus pass for a mask found by a single positive `point` (x, y) elsewhere
        (the automatic generator's grid): when `mask` (H x W bool) is small, the point is
        asked again on the crop around it, and of the crop's candidates the one closest to
        `mask` (IoU, within the crop) replaces it when that IoU is at least `min_match`.
        Returns it with its own scores (`Refined`; never empty, as it overlaps `mask`), or
        None (mask not small or not inside its crop, or no close candidate)."""
        if self.image is None:
            raise ValueError("no image set: call set_image(image) before refining")
        pt = np.asarray(point, dtype=np.float64).reshape(1, 2)
        crop = self.crop_box(mask, pt)
        if crop is None:
            return None
        x0, y0, side = crop
        part = mask[y0:y0 + side, x0:x0 + side]
        if np.count_nonzero(part) != np.count_nonzero(mask):
            return None  # the crop (at most the image's short side) cannot hold it whole
        self._set_crop(crop)
        logits, scores, _ = self.crop.predict(pt - [x0, y0], np.ones(1),
                                              multimask_output=True, return_logits=True)
        thr = self.crop.model.mask_threshold
        cand = logits > thr
        inter = (cand & part).sum(axis=(1, 2))
        union = (cand | part).sum(axis=(1, 2))
        match = inter / np.maximum(union, 1)
        k = int(match.argmax())
        if match[k] < min_match or not cand[k].any():
            return None
        out = np.zeros_like(mask)
        out[y0:y0 + side, x0:x0 + side] = cand[k]
        stability = stability_score(torch.as_tensor(logits[k]), thr, stability_offset)
        return Refined(out, float(scores[k]), float(stability))


def click_predictor(model: Sam, focus: bool | None = None,
                    config: FocusConfig | None = None) -> Predictor | FocusPredictor:
    """The predictor the interactive tools use: with the focus pass when `focus` (None:
    `focus_default(model)`)."""
    use = focus_default(model) if focus is None else focus
    return FocusPredictor(model, config) if use else Predictor(model)
