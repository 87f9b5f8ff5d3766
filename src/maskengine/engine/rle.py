"""The store's view of a mask: COCO RLE counts with its box and area.

RLE itself is `maskengine.masks` (one implementation for the whole package); this adds the
COCO box (XYWH, exact width: `toBbox`) and the checks a mask sent by a client needs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from pycocotools import mask as mask_utils

from .. import masks


@dataclass(frozen=True)
class Encoded:
    counts: str  # compressed COCO counts of the whole image
    bbox: tuple[float, float, float, float]  # XYWH, original-image pixels
    area: int


def _finish(rle: dict) -> Encoded:
    coco = {"size": rle["size"], "counts": rle["counts"].encode("ascii")}
    bbox = tuple(float(v) for v in mask_utils.toBbox(coco))
    return Encoded(counts=rle["counts"], bbox=bbox, area=masks.rle_area(rle))


def encode(mask: np.ndarray) -> Encoded:
    """mask: H x W bool/uint8 -> compressed RLE with its box and area."""
    return _finish(masks.encode_rle(mask))


def decode(counts: str, height: int, width: int) -> np.ndarray:
    """Compressed counts of an H x W mask -> H x W bool."""
    return masks.decode_rle({"size": [height, width], "counts": counts})


def normalise(counts: str | Sequence[int], height: int, width: int) -> Encoded:
    """Compressed (string) or uncompressed (list of run lengths) counts of an H x W mask ->
    compressed, with box and area. Raises ValueError for counts that do not describe an
    H x W mask."""
    if isinstance(counts, str):
        try:
            m = decode(counts, height, width)
        except Exception as exc:  # pycocotools raises bare Exceptions on bad strings
            raise ValueError(f"counts is not a valid COCO RLE string: {exc}") from exc
        # Re-encoding gives the canonical string (a client's may differ in form).
        return encode(m)
    runs = [int(c) for c in counts]
    if any(c < 0 for c in runs):
        raise ValueError("counts must not be negative")
    if sum(runs) != height * width:
        raise ValueError(
            f"counts add up to {sum(runs)} pixels, the image has {height}x{width}={height * width}"
        )
    return _finish(masks.compress_rle({"size": [height, width], "counts": runs}))
