"""Mask utilities shared by the generator, the engine and the exporters.

- RLE: COCO run-length encoding through pycocotools. Runs are column-major (Fortran order)
  and start with a run of zeros. "Compressed" RLE has `counts` as a COCO string,
  "uncompressed" RLE as a list of ints.
- Boxes: XYXY with *inclusive* max corners (the last row/column that holds a pixel), the
  official generator's convention; `xyxy_to_xywh` gives COCO/SA-1B boxes.
- NMS in plain torch with torchvision's semantics (IoU strictly above the threshold
  suppresses, scores sorted descending with ties kept in input order).
- Stability score, and small-region cleanup (fill holes, remove islands) with OpenCV's
  8-connected components.
"""

from __future__ import annotations

import warnings
from typing import Literal

import cv2
import numpy as np
import torch
from pycocotools import mask as mask_utils

# -- RLE --------------------------------------------------------------------------------


def encode_rle(mask: np.ndarray) -> dict:
    """H x W bool -> compressed COCO RLE {"size": [H, W], "counts": str}."""
    if mask.ndim != 2:
        raise ValueError(f"mask must be H x W, got shape {mask.shape}")
    rle = mask_utils.encode(np.asfortranarray(mask, dtype=np.uint8))
    return {"size": [int(mask.shape[0]), int(mask.shape[1])],
            "counts": rle["counts"].decode("ascii")}


def uncompressed_rle(mask: np.ndarray) -> dict:
    """H x W bool -> uncompressed RLE {"size": [H, W], "counts": [int, ...]} (column-major
    runs, first run counts zeros and may be 0)."""
    if mask.ndim != 2:
        raise ValueError(f"mask must be H x W, got shape {mask.shape}")
    flat = np.asarray(mask, dtype=bool).ravel(order="F")
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    edges = np.concatenate([[0], change, [flat.size]])
    counts = np.diff(edges).tolist()
    if flat.size and flat[0]:
        counts = [0, *counts]
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "counts": counts}


def rle_runs(counts: str) -> np.ndarray:
    """Compressed COCO counts -> the run lengths they encode (int64), without decoding the
    mask. The string holds one signed number per run, 5 bits per character (offset 48,
    bit 0x20: more characters follow, bit 0x10 of the last one: negative); from the fourth
    run on, a number is the difference to the run two places before (pycocotools' rule).
    Raises ValueError for a string that is not such counts or gives a negative run."""
    try:
        raw = np.frombuffer(counts.encode("ascii"), dtype=np.uint8)
    except UnicodeEncodeError as exc:
        raise ValueError("counts must be ASCII (COCO RLE characters '0'..'o')") from exc
    if raw.size == 0:
        return np.zeros(0, dtype=np.int64)
    c = raw.astype(np.int64) - 48
    if (c < 0).any() or (c > 63).any():
        raise ValueError("counts hold a character outside the COCO RLE alphabet ('0'..'o')")
    last = np.flatnonzero((c & 0x20) == 0)  # the character that ends each number
    if last.size == 0 or last[-1] != c.size - 1:
        raise ValueError("counts end in the middle of a number")
    first = np.concatenate([[0], last[:-1] + 1])
    if (last - first).max() >= 7:  # 7 characters hold 35 bits: more than any run needs
        raise ValueError("counts hold a number longer than 7 characters")
    group = np.repeat(np.arange(last.size), last - first + 1)
    shift = 5 * (np.arange(c.size) - first[group])
    values = np.zeros(last.size, dtype=np.int64)
    np.add.at(values, group, (c & 0x1F) << shift)
    negative = (c[last] & 0x10) != 0
    values[negative] -= np.int64(1) << (5 * (last - first + 1))[negative]
    runs = values.copy()
    runs[1::2] = np.cumsum(values[1::2])  # x[m] += x[m - 2] for m > 2: running sums
    if runs.size > 2:
        runs[2::2] = np.cumsum(values[2::2])
    if (runs < 0).any():
        raise ValueError("counts give a negative run length")
    return runs


def check_rle(rle: dict) -> None:
    """Raise ValueError unless `rle` ({"size": [H, W], "counts": str | list}) describes an
    H x W mask: runs not negative and adding up to exactly H x W pixels. pycocotools
    decodes a shorter run list into uninitialised memory and a longer one past its buffer,
    so every RLE that enters from outside passes here first."""
    try:
        h, w = (int(v) for v in rle["size"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"RLE size must be [height, width], got {rle.get('size')!r}") from exc
    if h < 0 or w < 0:
        raise ValueError(f"RLE size must not be negative, got {[h, w]}")
    counts = rle.get("counts")
    if isinstance(counts, str):
        runs = rle_runs(counts)
    elif isinstance(counts, (list, tuple, np.ndarray)):
        runs = np.asarray(counts, dtype=np.int64)
        if runs.ndim != 1 or (runs < 0).any():
            raise ValueError("RLE counts must be a flat list of non-negative run lengths")
    else:
        raise ValueError(f"RLE counts must be a string or a list, got {type(counts).__name__}")
    total = int(runs.sum())
    if total != h * w:
        raise ValueError(f"RLE runs add up to {total} pixels, expected {h * w} (= {h} x {w})")


def compress_rle(rle: dict) -> dict:
    """Uncompressed RLE (list counts) -> compressed RLE (string counts); compressed passes."""
    if isinstance(rle["counts"], str):
        return rle
    check_rle(rle)
    h, w = rle["size"]
    out = mask_utils.frPyObjects(rle, h, w)
    return {"size": [int(h), int(w)], "counts": out["counts"].decode("ascii")}


def decode_rle(rle: dict) -> np.ndarray:
    """Compressed or uncompressed RLE -> H x W bool. ValueError (see `check_rle`) for runs
    that do not add up to H x W."""
    check_rle(rle)
    h, w = rle["size"]
    counts = rle["counts"]
    if isinstance(counts, str):
        with warnings.catch_warnings():
            # pycocotools' decoder trips numpy 2's __array__(copy=...) deprecation.
            warnings.simplefilter("ignore", DeprecationWarning)
            out = mask_utils.decode([{"size": [h, w], "counts": counts.encode("ascii")}])
        return out[:, :, 0] > 0
    runs = np.asarray(counts, dtype=np.int64)
    values = np.zeros(len(runs), dtype=bool)
    values[1::2] = True
    return np.repeat(values, runs).reshape(w, h).T


def rle_area(rle: dict) -> int:
    """Number of foreground pixels of an RLE (checked as by `check_rle`)."""
    check_rle(rle)
    counts = rle["counts"]
    if isinstance(counts, str):
        return int(rle_runs(counts)[1::2].sum())
    return int(sum(counts[1::2]))


# -- boxes ------------------------------------------------------------------------------


def mask_to_box(masks: torch.Tensor) -> torch.Tensor:
    """... x H x W bool -> ... x 4 int64 XYXY, inclusive max corners; [0, 0, 0, 0] for an
    empty mask."""
    h, w = masks.shape[-2:]
    if masks.numel() == 0:
        return torch.zeros(*masks.shape[:-2], 4, dtype=torch.int64, device=masks.device)
    rows = masks.any(-1)  # ... x H
    cols = masks.any(-2)  # ... x W
    ys = torch.arange(h, device=masks.device)
    xs = torch.arange(w, device=masks.device)
    big = max(h, w)
    y0 = torch.where(rows, ys, big).amin(-1)
    y1 = torch.where(rows, ys, -1).amax(-1)
    x0 = torch.where(cols, xs, big).amin(-1)
    x1 = torch.where(cols, xs, -1).amax(-1)
    box = torch.stack([x0, y0, x1, y1], dim=-1)
    return box * (y1 >= 0).unsqueeze(-1)


def xyxy_to_xywh(box: list[int] | tuple[int, ...]) -> list[int]:
    """[x0, y0, x1, y1] -> [x0, y0, x1 - x0, y1 - y0]."""
    x0, y0, x1, y1 = (v.item() if hasattr(v, "item") else v for v in box)
    return [x0, y0, x1 - x0, y1 - y0]


def box_area(boxes: torch.Tensor) -> torch.Tensor:
    """N x 4 XYXY -> N, (x1 - x0) * (y1 - y0) in the boxes' dtype."""
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Greedy non-maximum suppression.

    boxes: N x 4 float XYXY, scores: N. Returns the kept indices (int64), highest score
    first; equal scores keep their input order. A box is dropped when its IoU (area
    (x1 - x0) * (y1 - y0)) with a kept, higher-ranked box is strictly above the threshold.
    Memory is O(N): IoUs are computed one kept box at a time.
    """
    if boxes.ndim != 2 or boxes.shape[-1] != 4 or scores.shape != boxes.shape[:1]:
        raise ValueError(
            f"nms needs boxes N x 4 and scores N, got {tuple(boxes.shape)}, "
            f"{tuple(scores.shape)}"
        )
    order = torch.sort(scores, descending=True, stable=True).indices
    b = boxes[order]
    areas = box_area(b)
    n = len(order)
    suppressed = torch.zeros(n, dtype=torch.bool)
    flags = suppressed.numpy()  # a view: cheap per-element reads in the loop
    keep = []
    thr = torch.tensor(iou_threshold, dtype=b.dtype)
    for i in range(n):
        if flags[i]:
            continue
        keep.append(i)
        if i + 1 == n:
            break
        rest = b[i + 1:]
        w = (torch.minimum(rest[:, 2], b[i, 2]) - torch.maximum(rest[:, 0], b[i, 0])).clamp(min=0)
        h = (torch.minimum(rest[:, 3], b[i, 3]) - torch.maximum(rest[:, 1], b[i, 1])).clamp(min=0)
        inter = w * h
        iou = inter / (areas[i] + areas[i + 1:] - inter)
        suppressed[i + 1:] |= iou > thr
    return order[torch.tensor(keep, dtype=torch.int64)]


# -- scores and cleanup -----------------------------------------------------------------


def stability_score(logits: torch.Tensor, threshold: float, offset: float) -> torch.Tensor:
    """... x H x W logits -> ..., float32: |logits > t + offset| / |logits > t - offset|,
    the IoU of the masks at two thresholds (NaN when both are empty)."""
    inter = (logits > threshold + offset).sum((-1, -2), dtype=torch.int64)
    union = (logits > threshold - offset).sum((-1, -2), dtype=torch.int64)
    return inter.float() / union.float()


def remove_small_regions(
    mask: np.ndarray, min_area: int, mode: Literal["holes", "islands"]
) -> tuple[np.ndarray, bool]:
    """Fill holes or remove islands smaller than `min_area` pixels (8-connected).

    mask: H x W bool. "holes" fills connected background regions (border-touching ones
    included) smaller than `min_area`; "islands" removes foreground components smaller than
    it, keeping the largest one if all are small. Returns (mask, changed).
    """
    if mode not in ("holes", "islands"):
        raise ValueError(f"mode must be 'holes' or 'islands', got {mode!r}")
    holes = mode == "holes"
    work = (np.asarray(mask, dtype=bool) ^ holes).astype(np.uint8)
    n_labels, labels, stats, _ = cv2.connectedComponentsWithStats(work, connectivity=8)
    sizes = stats[1:, cv2.CC_STAT_AREA]
    small = np.flatnonzero(sizes < min_area) + 1
    if len(small) == 0:
        return np.asarray(mask, dtype=bool), False
    if holes:
        fill = np.concatenate([[0], small])
    else:
        fill = np.setdiff1d(np.arange(1, n_labels), small)
        if len(fill) == 0:
            fill = np.array([int(np.argmax(sizes)) + 1])
    return np.isin(labels, fill), True


def fill_holes_and_remove_islands(mask: np.ndarray, min_area: int) -> tuple[np.ndarray, bool]:
    """Holes first, then islands (the official order). Returns (mask, changed)."""
    mask, changed_h = remove_small_regions(mask, min_area, "holes")
    mask, changed_i = remove_small_regions(mask, min_area, "islands")
    return mask, changed_h or changed_i
