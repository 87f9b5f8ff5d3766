"""SA-1B folders: one image file and one JSON per image.

JSON: {"image": {image_id, width, height, file_name}, "annotations": [{id, segmentation
(COCO RLE, counts as a string), bbox (XYWH), area, predicted_iou, stability_score,
crop_box, point_coords}]}. Annotations written for ground truth (synthetic scenes) carry
predicted_iou and stability_score 1.0 and the whole image as crop box.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image

from ..atomic import write_atomic
from ..image_files import IMAGE_SUFFIXES
from ..masks import decode_rle, encode_rle
from .sa1b_write import SA1BAnnotation, SA1BFile, SA1BImage, write_sa1b
from .types import Sample, drop_large


def sample_record(sample: Sample, image_id: int, file_name: str) -> SA1BFile:
    """The SA-1B file of one sample whose masks are ground truth."""
    h, w = sample.image.shape[:2]
    anns = []
    for i, m in enumerate(sample.masks):
        ys, xs = np.nonzero(m)
        if len(xs) == 0:
            continue
        x0, y0 = int(xs.min()), int(ys.min())
        anns.append(SA1BAnnotation(
            id=i, segmentation=encode_rle(m),
            bbox=[x0, y0, int(xs.max()) - x0 + 1, int(ys.max()) - y0 + 1],
            area=int(m.sum()), predicted_iou=1.0, stability_score=1.0, crop_box=[0, 0, w, h],
            point_coords=[[float(xs.mean()), float(ys.mean())]],
        ))
    return SA1BFile(SA1BImage(image_id, w, h, file_name), anns)


def write_sa1b_folder(samples: Iterable[Sample], folder: str | os.PathLike) -> list[Path]:
    """Write samples as `<name>.png` + `<name>.json` into `folder` (created), each file
    atomically. Returns the JSON paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for image_id, sample in enumerate(samples):
        buf = io.BytesIO()
        Image.fromarray(sample.image).save(buf, format="PNG")
        write_atomic(folder / f"{sample.name}.png", buf.getvalue())
        js = folder / f"{sample.name}.json"
        write_sa1b(js, sample_record(sample, image_id, f"{sample.name}.png"))
        written.append(js)
    return written


class SA1BDataset:
    """An SA-1B folder: item i is the image of the i-th JSON (sorted by name) with its
    masks; masks covering more than `max_mask_fraction` of the image are dropped."""

    def __init__(self, folder: str | os.PathLike, max_mask_fraction: float = 0.9) -> None:
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise FileNotFoundError(f"SA-1B folder {self.folder} does not exist")
        self.files = sorted(p for p in self.folder.glob("*.json") if not p.name.startswith("."))
        if not self.files:
            raise ValueError(f"SA-1B folder {self.folder} holds no JSON files")
        self.max_mask_fraction = max_mask_fraction

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> Sample:
        path = self.files[index]
        try:
            record = json.loads(path.read_text())
            info = record["image"]
            anns = record["annotations"]
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise ValueError(f"{path} is not an SA-1B JSON file ({exc})") from exc
        img_path = self.folder / info.get("file_name", path.stem + ".jpg")
        if not img_path.is_file():
            found = [path.with_suffix(s) for s in IMAGE_SUFFIXES if path.with_suffix(s).is_file()]
            if not found:
                raise FileNotFoundError(f"image {img_path} of {path.name} does not exist")
            img_path = found[0]
        image = np.asarray(Image.open(img_path).convert("RGB"))
        h, w = image.shape[:2]
        masks = [decode_rle(a["segmentation"]) for a in anns]
        for m in masks:
            if m.shape != (h, w):
                raise ValueError(f"{path.name}: a mask is {m.shape}, the image {(h, w)}")
        arr = np.stack(masks) if masks else np.zeros((0, h, w), bool)
        return Sample(image=image, masks=drop_large(arr, self.max_mask_fraction),
                      name=path.stem)
