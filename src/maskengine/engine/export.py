"""Export a project's masks: SA-1B (one JSON per image) or COCO (one JSON).

Deleted and rejected masks are left out; `approved_only` keeps only reviewed-and-approved
ones. Files are written atomically (SA-1B files by `maskengine.data.sa1b_write`). Masks
are COCO RLE with string counts, boxes XYWH.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from ..atomic import atomic_open, remove_stale_temps, write_atomic
from ..data.sa1b_write import SA1BAnnotation, SA1BFile, SA1BImage, write_sa1b
from .export_config import ExportConfig
from .models import Image, Mask, ReviewState
from .store import Project


@dataclass(frozen=True)
class ExportResult:
    images: int
    masks: int
    files: list[Path]


def _points(mask: Mask) -> list[list[float]]:
    """Positive clicks of the interaction that created the mask (SA-1B's point_coords)."""
    if not mask.interactions:
        return []
    events = json.loads(mask.interactions[0].events_json)
    return [[e["x"], e["y"]] for e in events if e.get("type") == "point" and e.get("label") == 1]


def _annotation(mask: Mask, image: Image) -> SA1BAnnotation:
    """A stored mask as an SA-1B annotation. Manual masks have no stability score, and a
    painted one no predicted IoU: those are null."""
    return SA1BAnnotation(
        id=mask.id,
        segmentation={"size": [image.height, image.width], "counts": mask.rle_counts},
        bbox=[int(mask.bbox_x), int(mask.bbox_y), int(mask.bbox_w), int(mask.bbox_h)],
        area=mask.area,
        predicted_iou=mask.predicted_iou,  # type: ignore[arg-type]
        stability_score=None,  # type: ignore[arg-type]
        crop_box=[0, 0, image.width, image.height],
        point_coords=_points(mask),
    )


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
        remove_stale_temps(out)
        files = []
        for image, masks in rows:
            name = f"{Path(image.path).stem}_{image.id}"
            file = out / f"{name}.json"
            file_name = Path(image.path).name
            if cfg.with_images:
                file_name = name + Path(image.path).suffix.lower()
                if not (out / file_name).is_file():
                    with open(project.image_path(image), "rb") as src, \
                            atomic_open(out / file_name) as dst:
                        shutil.copyfileobj(src, dst)
            head = SA1BImage(image_id=image.id, width=image.width, height=image.height,
                             file_name=file_name)
            write_sa1b(file, SA1BFile(head, [_annotation(m, image) for m in masks]))
            files.append(file)
        return ExportResult(images=len(rows), masks=n_masks, files=files)
    file = out / "annotations.json" if out.suffix != ".json" else out
    file.parent.mkdir(parents=True, exist_ok=True)
    coco = {
        "info": {"description": f"maskengine export of {project.root.name}"},
        "images": [{"id": im.id, "file_name": im.path, "width": im.width, "height": im.height}
                   for im, _ in rows],
        "annotations": [{**asdict(_annotation(m, im)), "image_id": im.id, "category_id": 1,
                         "iscrowd": 0} for im, masks in rows for m in masks],
        "categories": [{"id": 1, "name": "object", "supercategory": "object"}],
    }
    write_atomic(file, json.dumps(coco).encode())
    return ExportResult(images=len(rows), masks=n_masks, files=[file])
