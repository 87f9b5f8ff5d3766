"""MaskGenerator: fully automatic masks from a grid of point prompts.

The official automatic mask generator's parameters (same names, same defaults) and pipeline
order: crop boxes -> per crop, points in batches (3 masks each) -> predicted-IoU filter ->
stability filter -> crop-edge filter -> NMS in the crop -> NMS across crops -> optional
small-region cleanup -> records. One step is not official: with `focus` (by default for
models with an input under 1024, like the bundled `tiny`) each kept small mask is asked
again from its grid point on a zoomed crop (`FocusPredictor.refine_mask`), then box NMS
runs again; filters and scores stay those of the first pass.

Where it differs is *how*: the official upsamples every candidate mask to full resolution
and run-length-encodes each one before any box-level filtering. Here candidates stay as
low-resolution logits; their full-resolution stability score and box are computed exactly
from the boundary cells only (`maskengine.upsampling`), and full-resolution masks are made
for the survivors of all filters and NMS alone. Same numbers (up to float rounding), a
fraction of the time and memory.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np
import torch

from .config import GeneratorConfig
from .focus import FocusPredictor, focus_default
from .masks import (
    box_area,
    encode_rle,
    fill_holes_and_remove_islands,
    mask_to_box,
    nms,
    uncompressed_rle,
    xyxy_to_xywh,
)
from .modeling import Sam
from .predictor import Predictor
from .threads import single_threaded
from .upsampling import UpsampleMap


@dataclass(frozen=True)
class MaskRecord:
    """One generated mask, with the official record's fields.

    segmentation: H x W bool (binary_mask), or an RLE dict {"size": [H, W], "counts"}
    (list of ints for uncompressed_rle, a COCO string for coco_rle). bbox and crop_box: XYWH
    original-image pixels (bbox inclusive: w = last column - first column). point_coords:
    [[x, y]], the prompt in original-image pixels.
    """

    segmentation: np.ndarray | dict
    area: int
    bbox: list[int]
    predicted_iou: float
    point_coords: list[list[float]]
    stability_score: float
    crop_box: list[int]

    def to_dict(self) -> dict:
        """The official record dict (the segmentation is not copied)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def __getitem__(self, key: str) -> Any:
        """`record["area"]` like the official dict records, for drop-in use."""
        if key not in {f.name for f in fields(self)}:
            raise KeyError(key)
        return getattr(self, key)


def point_grid(n: int) -> np.ndarray:
    """n*n x 2 (x, y) cell centres in [0, 1], x varying fastest."""
    side = np.linspace(1 / (2 * n), 1 - 1 / (2 * n), n)
    xs = np.tile(side[None, :], (n, 1))
    ys = np.tile(side[:, None], (1, n))
    return np.stack([xs, ys], axis=-1).reshape(-1, 2)


def crop_boxes(
    height: int, width: int, n_layers: int, overlap_ratio: float
) -> list[tuple[list[int], int]]:
    """[(XYXY crop box, layer)]: layer 0 is the whole image, layer i has 2^i x 2^i crops
    overlapping by int(ratio * short side * 2 / 2^i) pixels."""
    out = [([0, 0, width, height], 0)]
    short = min(height, width)
    for layer in range(1, n_layers + 1):
        n = 2 ** layer
        overlap = int(overlap_ratio * short * (2 / n))
        cw = math.ceil((overlap * (n - 1) + width) / n)
        ch = math.ceil((overlap * (n - 1) + height) / n)
        x0s = [int((cw - overlap) * i) for i in range(n)]
        y0s = [int((ch - overlap) * i) for i in range(n)]
        for x0 in x0s:
            for y0 in y0s:
                out.append(([x0, y0, min(x0 + cw, width), min(y0 + ch, height)], layer))
    return out


@dataclass
class _Candidates:
    """Masks that passed the filters so far. N rows; boxes XYXY inclusive in the crop frame
    (`local`) and the image frame (`boxes`); points float64 in the image frame."""

    iou: torch.Tensor
    stability: torch.Tensor
    local: torch.Tensor
    boxes: torch.Tensor
    points: torch.Tensor
    crop: torch.Tensor
    windows: list[torch.Tensor | None]

    def select(self, idx: torch.Tensor) -> _Candidates:
        idx = idx.long()
        return _Candidates(
            self.iou[idx], self.stability[idx], self.local[idx], self.boxes[idx],
            self.points[idx], self.crop[idx], [self.windows[i] for i in idx.tolist()],
        )

    @staticmethod
    def cat(parts: list[_Candidates]) -> _Candidates:
        return _Candidates(
            *(torch.cat([getattr(p, n) for p in parts]) for n in
              ("iou", "stability", "local", "boxes", "points", "crop")),
            [w for p in parts for w in p.windows],
        )


@dataclass(frozen=True)
class _Crop:
    box: list[int]  # XYXY, image frame
    layer: int
    upsample_map: UpsampleMap


class MaskGenerator:
    """Automatic mask generation with a `Sam` model.

    `MaskGenerator(model, points_per_side=16, ...)` takes the official keyword arguments;
    or pass a `GeneratorConfig`. point_grids: one n_i x 2 array of (x, y) in [0, 1] per crop
    layer, instead of points_per_side.
    """

    def __init__(
        self,
        model: Sam,
        config: GeneratorConfig | None = None,
        *,
        point_grids: list[np.ndarray] | None = None,
        **overrides: Any,
    ) -> None:
        config = replace(config or GeneratorConfig(), **overrides)
        if (config.points_per_side is None) == (point_grids is None):
            raise ValueError("give exactly one of points_per_side and point_grids")
        if point_grids is None:
            point_grids = [point_grid(int(config.points_per_side / config.
                                          crop_n_points_downscale_factor ** i))
                           for i in range(config.crop_n_layers + 1)]
        elif len(point_grids) != config.crop_n_layers + 1:
            raise ValueError(f"point_grids needs {config.crop_n_layers + 1} grids (one per crop "
                             f"layer), got {len(point_grids)}")
        self.model = model
        self.config = config
        self.point_grids = [np.asarray(g, dtype=np.float64).reshape(-1, 2) for g in point_grids]
        self.predictor = Predictor(model)
        use_focus = focus_default(model) if config.focus is None else config.focus
        self.focus = FocusPredictor(model) if use_focus else None

    @torch.inference_mode()
    def generate(self, image: np.ndarray) -> list[MaskRecord]:
        """image: H x W x 3 uint8 RGB -> records, in the official order."""
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[2] != 3 or 0 in image.shape:
            raise ValueError(f"image must have shape H x W x 3, got {image.shape}")
        if image.dtype != np.uint8:
            raise ValueError(f"image must be uint8, got {image.dtype}")
        cfg = self.config
        h, w = image.shape[:2]
        crops: list[_Crop] = []
        parts = []
        for box, layer in crop_boxes(h, w, cfg.crop_n_layers, cfg.crop_overlap_ratio):
            crop, cands = self._process_crop(image, box, layer, len(crops))
            crops.append(crop)
            parts.append(cands)
        cands = _Candidates.cat(parts)
        if len(crops) > 1 and len(cands.iou):
            boxes = torch.tensor([crops[i].box for i in cands.crop.tolist()])
            scores = 1.0 / box_area(boxes).float()
            cands = cands.select(nms(cands.boxes.float(), scores, cfg.crop_nms_thresh))
        if self.focus is None:
            return self._records(cands, crops, (h, w))
        self.focus.set_image(image, encode=False)
        try:
            return self._records(cands, crops, (h, w))
        finally:
            self.focus.reset_image()  # its crop embeddings are this image's only

    # -- per crop ----------------------------------------------------------------------
    def _process_crop(
        self, image: np.ndarray, box: list[int], layer: int, index: int
    ) -> tuple[_Crop, _Candidates]:
        x0, y0, x1, y1 = box
        crop_img = image[y0:y1, x0:x1]
        ch, cw = crop_img.shape[:2]
        self.predictor.set_image(crop_img)
        mc = self.model.config
        crop = _Crop(box, layer, UpsampleMap(mc.low_res_size, mc.image_size,
                                             self.predictor.input_size, (ch, cw)))
        points = self.point_grids[layer] * np.array([[cw, ch]])
        parts = []
        for s in range(0, len(points), self.config.points_per_batch):
            parts.append(self._process_batch(points[s:s + self.config.points_per_batch], crop,
                                             (image.shape[0], image.shape[1]), index))
        self.predictor.reset_image()
        cands = _Candidates.cat(parts)
        if len(cands.iou):
            cands = cands.select(nms(cands.local.float(), cands.iou, self.config.box_nms_thresh))
        offset = torch.tensor([x0, y0, x0, y0])
        cands.boxes = cands.local + offset
        cands.points = cands.points + torch.tensor([x0, y0], dtype=torch.float64)
        return crop, cands

    def _process_batch(
        self, points: np.ndarray, crop: _Crop, image_size: tuple[int, int], index: int
    ) -> _Candidates:
        """Decode one batch of points (N x 2, crop-frame pixels), 3 masks each, and filter."""
        ch, cw = crop.upsample_map.out_size
        coords = self.predictor.transform.apply_coords(points, (ch, cw))
        coords = torch.as_tensor(coords, dtype=torch.float32, device=self.model.device)
        labels = torch.ones(len(points), 1, dtype=torch.int, device=coords.device)
        low, iou = self.model.decode(self.predictor.features, (coords[:, None], labels),
                                     multimask_output=True)
        k = low.shape[1]
        pts = torch.as_tensor(np.repeat(points, k, axis=0))
        with single_threaded():
            return self._filter(low.flatten(0, 1).float().cpu(),
                                iou.flatten(0, 1).float().cpu(), pts, crop, image_size, index)

    def _filter(
        self, low: torch.Tensor, iou: torch.Tensor, pts: torch.Tensor, crop: _Crop,
        image_size: tuple[int, int], index: int,
    ) -> _Candidates:
        """Candidates of one batch (low: N x L x L logits, iou: N, pts: N x 2 crop frame)
        through the IoU, stability and crop-edge filters."""
        cfg = self.config
        keep = torch.arange(len(iou))
        if cfg.pred_iou_thresh > 0.0:
            keep = keep[iou > cfg.pred_iou_thresh]
        thr = self.model.mask_threshold
        off = cfg.stability_score_offset
        # Full-resolution counts above thr +/- offset (stability) and above thr (box, empty).
        counts, boxes = crop.upsample_map.stats(low[keep], (thr + off, thr - off, thr), thr)
        stability = counts[:, 0] / counts[:, 1]  # int64 / int64 -> float32, as the official
        ok = torch.ones(len(keep), dtype=torch.bool)
        if cfg.stability_score_thresh > 0.0:
            ok = stability >= cfg.stability_score_thresh
        ok &= ~_near_crop_edge(boxes, crop.box, [0, 0, image_size[1], image_size[0]])
        keep, stability, boxes, filled = keep[ok], stability[ok], boxes[ok], counts[ok, 2]
        windows = [crop.upsample_map.crop_window(low[i], b) if n > 0 else None
                   for i, b, n in zip(keep.tolist(), boxes, filled.tolist(), strict=True)]
        return _Candidates(iou[keep], stability, boxes, boxes, pts[keep],
                           torch.full((len(keep),), index), windows)

    # -- output ------------------------------------------------------------------------
    def _records(
        self, cands: _Candidates, crops: list[_Crop], size: tuple[int, int]
    ) -> list[MaskRecord]:
        """Full-resolution masks of the survivors, the focus pass and the optional cleanup,
        and records. Per-mask work runs on one thread; the focus pass's crops on all."""
        cfg = self.config
        segs: list[Any] = []
        areas: list[int] = []
        boxes = cands.boxes.clone()
        unchanged = []
        for i in range(len(cands.iou)):
            with single_threaded():
                mask = self._render(cands, crops, i, size)
            if self.focus is not None and mask.any():
                # Filters and scores stay the first pass's: filtering again on the refined
                # mask's own scores was measured to cost more recall than it gains in
                # precision (docs/stage3.md).
                refined = self.focus.refine_mask(mask, cands.points[i].numpy())
                if refined is not None:
                    mask = refined.mask
                    boxes[i] = mask_to_box(torch.from_numpy(mask))
            with single_threaded():
                if cfg.min_mask_region_area > 0:
                    mask, changed = fill_holes_and_remove_islands(mask,
                                                                  cfg.min_mask_region_area)
                    unchanged.append(not changed)
                    if changed:
                        boxes[i] = mask_to_box(torch.from_numpy(mask))
                areas.append(int(np.count_nonzero(mask)))
                if cfg.output_mode == "binary_mask":
                    segs.append(mask)
                elif cfg.output_mode == "coco_rle":
                    segs.append(encode_rle(mask))
                else:
                    segs.append(uncompressed_rle(mask))
        order = torch.arange(len(segs))
        if cfg.min_mask_region_area > 0 and len(segs):
            # Cleaned masks may now overlap more; NMS again, preferring untouched masks.
            scores = torch.tensor(unchanged, dtype=torch.float32)
            order = nms(boxes.float(), scores, max(cfg.box_nms_thresh, cfg.crop_nms_thresh))
        elif self.focus is not None and len(segs):
            # Two coarse masks of one object may refine to the same one: NMS again.
            order = nms(boxes.float(), cands.iou, max(cfg.box_nms_thresh, cfg.crop_nms_thresh))
        return [
            MaskRecord(
                segmentation=segs[i],
                area=areas[i],
                bbox=xyxy_to_xywh(boxes[i].tolist()),
                predicted_iou=float(cands.iou[i]),
                point_coords=[cands.points[i].tolist()],
                stability_score=float(cands.stability[i]),
                crop_box=xyxy_to_xywh(crops[int(cands.crop[i])].box),
            )
            for i in order.tolist()
        ]

    def _render(
        self, cands: _Candidates, crops: list[_Crop], i: int, size: tuple[int, int]
    ) -> np.ndarray:
        """Full-resolution H x W bool mask of candidate i."""
        mask = np.zeros(size, dtype=bool)
        window = cands.windows[i]
        if window is None:
            return mask
        crop = crops[int(cands.crop[i])]
        lx0, ly0, lx1, ly1 = cands.local[i].tolist()
        part = crop.upsample_map.render(window, cands.local[i], self.model.mask_threshold)
        x0, y0 = crop.box[0], crop.box[1]
        mask[y0 + ly0:y0 + ly1 + 1, x0 + lx0:x0 + lx1 + 1] = part.numpy()
        return mask


def _near_crop_edge(
    boxes: torch.Tensor, crop_box: list[int], image_box: list[int], atol: float = 20.0
) -> torch.Tensor:
    """N: whether a box (XYXY, crop frame) lies within `atol` px of a crop edge that is not
    an image edge."""
    x0, y0 = crop_box[0], crop_box[1]
    b = (boxes + torch.tensor([x0, y0, x0, y0])).float()
    near_crop = (b - torch.tensor(crop_box, dtype=torch.float)).abs() <= atol
    near_image = (b - torch.tensor(image_box, dtype=torch.float)).abs() <= atol
    return (near_crop & ~near_image).any(dim=1)
