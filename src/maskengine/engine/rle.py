"""COCO RLE for the store and the server: the few conversions they need.

Counts are COCO's: column-major (Fortran order) run lengths starting with a run of zeros,
compressed to a string. Thin wrappers over pycocotools; to be replaced by the shared helpers
of `maskengine.masks` once those exist, so there is one RLE implementation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from pycocotools import mask as mask_utils


@dataclass(frozen=True)
class Encoded:
    counts: str
    bbox: tuple[float, float, float, float]  # XYWH, original-image pixels
    area: int


def encode(mask: np.ndarray) -> Encoded:
    """mask: H x W bool/uint8 -> compressed RLE with its box and area."""
    r = mask_utils.encode(np.asfortranarray(mask, dtype=np.uint8))
    bbox = tuple(float(v) for v in mask_utils.toBbox(r))
    return Encoded(counts=r["counts"].decode("ascii"), bbox=bbox, area=int(mask_utils.area(r)))


def decode(counts: str, height: int, width: int) -> np.ndarray:
    """Compressed counts of an H x W mask -> H x W bool."""
    return mask_utils.decode({"size": [height, width], "counts": counts.encode("ascii")}) > 0


def normalise(counts: str | Sequence[int], height: int, width: int) -> Encoded:
    """Compressed (string) or uncompressed (list of run lengths) counts of an H x W mask ->
    compressed, with box and area. Raises ValueError when the runs do not add up to H*W."""
    if isinstance(counts, str):
        try:
            r = {"size": [height, width], "counts": counts.encode("ascii")}
            m = mask_utils.decode(r)
        except Exception as exc:  # pycocotools raises bare Exceptions on bad strings
            raise ValueError(f"counts is not a valid COCO RLE string: {exc}") from exc
        if m.shape != (height, width):
            raise ValueError("counts does not describe a mask of the image's size")
        return encode(m)
    runs = [int(c) for c in counts]
    if any(c < 0 for c in runs):
        raise ValueError("counts must not be negative")
    if sum(runs) != height * width:
        raise ValueError(
            f"counts add up to {sum(runs)} pixels, the image has {height}x{width}={height * width}"
        )
    r = mask_utils.frPyObjects({"size": [height, width], "counts": runs}, height, width)
    return encode(mask_utils.decode(r))
