"""Export a project's masks: SA-1B (one JSON per image) or COCO (one JSON).

Deleted and rejected masks are left out; `approved_only` keeps only reviewed-and-approved
ones. The writer takes neutral rows (`ExportImage`, `ExportMask`), so a frozen dataset
version (`maskengine.quality.versions`) is written by the same code, byte for byte as its
masks were. Files are written atomically (SA-1B files by `maskengine.data.sa1b_write`). Masks
are COCO RLE with string counts, boxes XYWH.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from ..data.sa1b_write import SA1BAnnotation, SA1BFile, SA1BImage, write_atomic, write_sa1b
from .models import Image, Mask, ReviewState
from .store import Project, file_sha256


@dataclass(frozen=True)
class ExportConfig:
    format: Literal["sa1b", "coco"] = field(
        default="sa1b", metadata={"help": "sa1b: one JSON per image; coco: one JSON"})
    split: Literal["all", "train", "val"] = field(
        default="all", metadata={"help": "which images to export"})
    approved_only: bool = field(
        default=False, metadata={"help": "only masks a reviewer approved"})
    with_images: bool = field(
        default=False, metadata={"help": "sa1b: copy the images beside the JSON files, so "
                                 "the folder is a training set (maskengine.data.SA1BDataset)"})
    version: str = field(
        default="", metadata={"help": "export this snapshot (`maskengine snapshot`) instead "
                              "of the current masks"})

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


@dataclass(frozen=True)
class ExportImage:
    id: int
    path: str  # as the store holds it (relative to the images folder, or absolute)
    width: int
    height: int
    split: str
    sha256: str


@dataclass(frozen=True)
class ExportMask:
    annotation: SA1BAnnotation
    review_state: str


ExportRows = list[tuple[ExportImage, list[ExportMask]]]


def current_rows(project: Project) -> ExportRows:
    """Every image with its accepted masks (live, not rejected), by id."""
    with project.session() as s:
        out = []
        for image in s.scalars(select(Image).order_by(Image.id)):
            mq = (select(Mask).where(Mask.image_id == image.id, Mask.deleted_at.is_(None),
                                     Mask.review_state != ReviewState.rejected.value)
                  .options(selectinload(Mask.interactions)).order_by(Mask.id))
            entry = ExportImage(id=image.id, path=image.path, width=image.width,
                                height=image.height, split=image.split, sha256=image.sha256)
            out.append((entry, [ExportMask(_annotation(m, image), m.review_state)
                                for m in s.scalars(mq)]))
        return out


def export_project(project: Project, out: str | os.PathLike, cfg: ExportConfig) -> ExportResult:
    """Write the current masks under `out` (a folder for sa1b, a .json file or folder for
    coco). `cfg.version` is for `maskengine.quality.versions.export_version`."""
    if cfg.version:
        raise ValueError("export_project writes the current masks; export a version with "
                         "maskengine.quality.versions.export_version")
    return write_export(project, current_rows(project), out, cfg)


def write_export(project: Project, rows: ExportRows, out: str | os.PathLike,
                 cfg: ExportConfig) -> ExportResult:
    """Write `rows` (restricted by cfg.split and cfg.approved_only) as cfg.format."""
    rows = [(im, [m.annotation for m in masks
                  if not cfg.approved_only or m.review_state == ReviewState.approved.value])
            for im, masks in rows if cfg.split in ("all", im.split)]
    out = Path(out)
    n_masks = sum(len(m) for _, m in rows)
    if cfg.format == "sa1b":
        out.mkdir(parents=True, exist_ok=True)
        files = []
        for image, anns in rows:
            name = f"{Path(image.path).stem}_{image.id}"
            file = out / f"{name}.json"
            file_name = Path(image.path).name
            if cfg.with_images:
                file_name = name + Path(image.path).suffix.lower()
                if not (out / file_name).is_file():
                    _copy_image(project, image, out / file_name)
            head = SA1BImage(image_id=image.id, width=image.width, height=image.height,
                             file_name=file_name)
            write_sa1b(file, SA1BFile(head, anns))
            files.append(file)
        return ExportResult(images=len(rows), masks=n_masks, files=files)
    file = out / "annotations.json" if out.suffix != ".json" else out
    file.parent.mkdir(parents=True, exist_ok=True)
    coco = {
        "info": {"description": f"maskengine export of {project.root.name}"},
        "images": [{"id": im.id, "file_name": im.path, "width": im.width, "height": im.height}
                   for im, _ in rows],
        "annotations": [{**asdict(a), "image_id": im.id, "category_id": 1,
                         "iscrowd": 0} for im, anns in rows for a in anns],
        "categories": [{"id": 1, "name": "object", "supercategory": "object"}],
    }
    write_atomic(file, json.dumps(coco).encode())
    return ExportResult(images=len(rows), masks=n_masks, files=[file])


def _copy_image(project: Project, image: ExportImage, dest: Path) -> None:
    """Copy an image file beside the export, refusing a file whose content changed since it
    was registered (the export would not be the dataset it claims to be)."""
    src = Path(image.path)
    src = src if src.is_absolute() else project.images_dir / src
    if file_sha256(src) != image.sha256:
        raise ValueError(f"image {image.id} ({src}) changed since it was added: its sha256 "
                         f"no longer matches the store")
    tmp = dest.with_name(f".{dest.name}.tmp")
    shutil.copyfile(src, tmp)
    os.replace(tmp, dest)
