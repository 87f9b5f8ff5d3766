"""Writing SA-1B files: one JSON per image, written atomically.

{"image": {image_id, width, height, file_name}, "annotations": [{id, segmentation (COCO RLE,
counts as a string), bbox (XYWH), area, predicted_iou, stability_score, crop_box (XYWH),
point_coords [[x, y]]}]}. Reading is `maskengine.data.sa1b`.

Two box conventions meet here, each kept where it came from:
- `maskengine auto` writes the official automatic mask generator's bbox: the inclusive box
  of the mask (first and last column and row) as x0, y0, x1 - x0, y1 - y0, one pixel less
  than the mask spans. Its records then match the official generator's and the SA-1B
  release's, which the parity tests compare against.
- `maskengine export` writes the bbox of the stored mask as pycocotools (`toBbox`) gives
  it: the columns and rows the mask spans (x1 - x0 + 1), the COCO convention that COCO
  tools and the store's own records use.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..atomic import write_atomic
from ..masks import compress_rle, encode_rle


@dataclass(frozen=True)
class SA1BImage:
    image_id: int
    width: int
    height: int
    file_name: str


@dataclass(frozen=True)
class SA1BAnnotation:
    """One mask. segmentation: {"size": [H, W], "counts": str}; boxes XYWH pixels."""

    id: int
    segmentation: dict
    bbox: list[int]
    area: int
    predicted_iou: float
    stability_score: float
    crop_box: list[int]
    point_coords: list[list[float]]

    @classmethod
    def from_record(cls, record: Any, ann_id: int) -> SA1BAnnotation:
        """A generator record (any output mode) -> annotation with COCO RLE."""
        seg = record.segmentation
        seg = encode_rle(seg) if not isinstance(seg, dict) else compress_rle(seg)
        return cls(
            id=ann_id, segmentation=seg, bbox=[int(v) for v in record.bbox],
            area=int(record.area), predicted_iou=float(record.predicted_iou),
            stability_score=float(record.stability_score),
            crop_box=[int(v) for v in record.crop_box],
            point_coords=[[float(x), float(y)] for x, y in record.point_coords],
        )


@dataclass(frozen=True)
class SA1BFile:
    image: SA1BImage
    annotations: list[SA1BAnnotation]

    def to_dict(self) -> dict:
        return {"image": asdict(self.image), "annotations": [asdict(a) for a in self.annotations]}


def write_sa1b(path: str | os.PathLike, file: SA1BFile) -> None:
    """Write one image's SA-1B JSON atomically."""
    write_atomic(path, json.dumps(file.to_dict(), separators=(",", ":")).encode())


def is_complete_sa1b(path: str | os.PathLike) -> bool:
    """Whether `path` holds a whole SA-1B JSON (what a finished write leaves)."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return False
    return (isinstance(data, dict) and isinstance(data.get("image"), dict)
            and isinstance(data.get("annotations"), list))
