"""Export a project's masks: SA-1B (one JSON per image) or COCO (one JSON).

Deleted and rejected masks are left out; `approved_only` keeps only reviewed-and-approved
ones. Files are written atomically. Masks are COCO RLE with string counts, boxes XYWH.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from .models import Image, Mask, ReviewState
from .store import Project


@dataclass(frozen=True)
class ExportConfig:
    format: Literal["sa1b", "coco"] = field(
        default="sa1b", metadata={"help": "sa1b: one JSON per image; coco: one JSON"})
    split: Literal["all", "train", "val"] = field(
        default="all", metadata={"help": "which images to export"})
    approved_only: bool = field(
        default=False, metadata={"help": "only masks a reviewer approved"})

    def __post_init__(self) -> None:
        if self.format not in ("sa1b", "coco"):
            raise ValueError(f"format must be sa1b or coco, got {self.format!r}")
        if self.split not in ("all", "train", "val"):
            raise ValueError(f"split must be all, train or val, got {self.split!r}")


@dataclass(frozen=True)
class ExportResult:
    images: int
    masks: int
    files: list[Path]


def _write_json(path: Path, obj: object) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj))
    os.replace(tmp, path)


def _points(mask: Mask) -> list[list[float]]:
    """Positive clicks of the interaction that created the mask (SA-1B's point_coords)."""
    if not mask.interactions:
        return []
    events = json.loads(mask.interactions[0].events_json)
    return [[e["x"], e["y"]] for e in events if e.get("type") == "point" and e.get("label") == 1]


def _annotation(mask: Mask, image: Image) -> dict:
    return {
        "id": mask.id,
        "segmentation": {"size": [image.height, image.width], "counts": mask.rle_counts},
        "bbox": [mask.bbox_x, mask.bbox_y, mask.bbox_w, mask.bbox_h],
        "area": mask.area,
        "predicted_iou": mask.predicted_iou,
        "point_coords": _points(mask),
        "crop_box": [0, 0, image.width, image.height],
        "source": mask.source,
    }


def _rows(project: Project, cfg: ExportConfig) -> list[tuple[Image, list[Mask]]]:
    with project.session() as s:
        q = select(Image).order_by(Image.id)
        if cfg.split != "all":
            q = q.where(Image.split == cfg.split)
        out = []
        for image in s.scalars(q):
            mq = (select(Mask).where(Mask.image_id == image.id, Mask.deleted_at.is_(None))
                  .options(selectinload(Mask.interactions)).order_by(Mask.id))
            if cfg.approved_only:
                mq = mq.where(Mask.review_state == ReviewState.approved.value)
            else:
                mq = mq.where(Mask.review_state != ReviewState.rejected.value)
            out.append((image, list(s.scalars(mq))))
        return out


def export_project(project: Project, out: str | os.PathLike, cfg: ExportConfig) -> ExportResult:
    """Write the export under `out` (a folder for sa1b, a .json file or folder for coco)."""
    rows = _rows(project, cfg)
    out = Path(out)
    n_masks = sum(len(m) for _, m in rows)
    if cfg.format == "sa1b":
        out.mkdir(parents=True, exist_ok=True)
        files = []
        for image, masks in rows:
            file = out / f"{Path(image.path).stem}_{image.id}.json"
            _write_json(file, {
                "image": {"image_id": image.id, "width": image.width, "height": image.height,
                          "file_name": Path(image.path).name},
                "annotations": [_annotation(m, image) for m in masks],
            })
            files.append(file)
        return ExportResult(images=len(rows), masks=n_masks, files=files)
    file = out / "annotations.json" if out.suffix != ".json" else out
    file.parent.mkdir(parents=True, exist_ok=True)
    coco = {
        "info": {"description": f"maskengine export of {project.root.name}"},
        "images": [{"id": im.id, "file_name": im.path, "width": im.width, "height": im.height}
                   for im, _ in rows],
        "annotations": [{**_annotation(m, im), "image_id": im.id, "category_id": 1,
                         "iscrowd": 0} for im, masks in rows for m in masks],
        "categories": [{"id": 1, "name": "object", "supercategory": "object"}],
    }
    _write_json(file, coco)
    return ExportResult(images=len(rows), masks=n_masks, files=[file])
