"""COCO instances JSON: polygon and RLE segmentations, decoded per image."""

from __future__ import annotations

import json
import os
from collections import defaultdict
from pathlib import Path

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

from ..masks import decode_rle
from .types import Sample, drop_large


def decode_segmentation(seg: object, h: int, w: int) -> np.ndarray:
    """A COCO segmentation (list of polygons, uncompressed RLE with list counts, or
    compressed RLE with string counts) -> H x W bool."""
    if isinstance(seg, list):
        if not seg:
            return np.zeros((h, w), bool)
        rles = mask_utils.frPyObjects([p for p in seg if len(p) >= 6], h, w)
        return mask_utils.decode(mask_utils.merge(rles)).astype(bool) if rles else np.zeros(
            (h, w), bool)
    if isinstance(seg, dict) and "counts" in seg:
        size = seg.get("size", [h, w])
        if list(size) != [h, w]:
            raise ValueError(f"an RLE of size {size} on an image of {h} x {w}")
        counts = seg["counts"]
        if isinstance(counts, bytes):
            counts = counts.decode("ascii")
        # decode_rle checks that the runs add up to H x W (pycocotools would not).
        return decode_rle({"size": [h, w], "counts": counts})
    raise ValueError(f"unknown COCO segmentation of type {type(seg).__name__}")


class CocoDataset:
    """Images of a COCO instances file that have at least one annotation; item i yields
    the image and its instance masks (crowd regions skipped, masks over
    `max_mask_fraction` of the image dropped)."""

    def __init__(self, annotations: str | os.PathLike, images: str | os.PathLike | None = None,
                 max_mask_fraction: float = 0.9) -> None:
        path = Path(annotations)
        if not path.is_file():
            raise FileNotFoundError(f"COCO annotation file {path} does not exist")
        try:
            data = json.loads(path.read_text())
            self.images = {int(im["id"]): im for im in data["images"]}
            anns = data["annotations"]
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise ValueError(f"{path} is not a COCO instances file ({exc})") from exc
        self.by_image: dict[int, list[dict]] = defaultdict(list)
        for a in anns:
            if not a.get("iscrowd", 0):
                self.by_image[int(a["image_id"])].append(a)
        self.ids = sorted(i for i in self.by_image if i in self.images)
        self.image_dir = Path(images) if images is not None else path.parent
        self.max_mask_fraction = max_mask_fraction

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> Sample:
        info = self.images[self.ids[index]]
        img_path = self.image_dir / info["file_name"]
        if not img_path.is_file():
            raise FileNotFoundError(f"image {img_path} of the COCO file does not exist")
        image = np.asarray(Image.open(img_path).convert("RGB"))
        h, w = image.shape[:2]
        masks = [decode_segmentation(a["segmentation"], h, w) for a in self.by_image[info["id"]]]
        arr = np.stack(masks) if masks else np.zeros((0, h, w), bool)
        return Sample(image=image, masks=drop_large(arr, self.max_mask_fraction),
                      name=Path(info["file_name"]).stem)
