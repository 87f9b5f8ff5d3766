"""Export a project's masks: SA-1B (one JSON per image) or COCO (one JSON).

Deleted and rejected masks are left out; `approved_only` keeps only reviewed-and-approved
ones. The writer takes neutral rows (`ExportImage`, `ExportMask`), so a frozen dataset
version (`maskengine.quality.versions`) is written by the same code, byte for byte as its
masks were. The export is made beside `out` and moved into place at the end (no partial
output), and a stored row that cannot be exported is skipped and named, not fatal. Masks
are COCO RLE with string counts, boxes XYWH; COCO categories are the project's classes
(`maskengine.engine.categories`), or one "object" class.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from ..atomic import write_atomic
from ..data.sa1b_write import SA1BAnnotation, SA1BFile, SA1BImage, write_sa1b
from ..masks import check_rle
from .categories import coco_categories, list_categories
from .export_config import ExportConfig
from .models import Image, Mask, ReviewState
from .project_dataset import accepted
from .store import Project, file_sha256


@dataclass(frozen=True)
class ExportResult:
    images: int
    masks: int
    files: list[Path]
    # "mask 7 (image 3): why" for each stored row left out; the rest is exported.
    skipped: list[str] = field(default_factory=list)


def _number(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _points(mask: Mask) -> list[list[float]]:
    """Positive clicks of the interaction that created the mask (SA-1B's point_coords).
    Events are checked when they enter, but rows stored before that may lack fields: such
    events are left out rather than ending the export."""
    if not mask.interactions:
        return []
    try:
        events = json.loads(mask.interactions[0].events_json)
    except (TypeError, ValueError):
        return []
    if not isinstance(events, list):
        return []
    return [[float(e["x"]), float(e["y"])] for e in events
            if isinstance(e, dict) and e.get("type") == "point" and e.get("label") == 1
            and _number(e.get("x")) and _number(e.get("y"))]


def _annotation(mask: Mask, image: Image) -> SA1BAnnotation:
    """A stored mask as an SA-1B annotation. Manual masks have no stability score, and a
    painted one no predicted IoU: those are null. ValueError for a mask whose RLE does not
    cover the image (stored before masks were checked at the door)."""
    segmentation = {"size": [image.height, image.width], "counts": mask.rle_counts}
    check_rle(segmentation)
    return SA1BAnnotation(
        id=mask.id,
        segmentation=segmentation,
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
    category_id: int | None = None


ExportRows = list[tuple[ExportImage, list[ExportMask]]]


def current_rows(project: Project, skipped: list[str] | None = None) -> ExportRows:
    """Every image with its accepted masks (live, not rejected, not a pre-fill waiting for
    a person), by id. A stored mask that
    cannot be exported is left out and named in `skipped`."""
    skipped = [] if skipped is None else skipped
    with project.session() as s:
        out = []
        for image in s.scalars(select(Image).order_by(Image.id)):
            mq = (accepted(select(Mask).where(Mask.image_id == image.id))
                  .options(selectinload(Mask.interactions)).order_by(Mask.id))
            entry = ExportImage(id=image.id, path=image.path, width=image.width,
                                height=image.height, split=image.split, sha256=image.sha256)
            masks = []
            for m in s.scalars(mq):
                try:
                    masks.append(ExportMask(_annotation(m, image), m.review_state,
                                            m.category_id))
                except (ValueError, TypeError) as exc:
                    skipped.append(f"mask {m.id} (image {image.id}): {exc}")
            out.append((entry, masks))
        return out


def export_project(project: Project, out: str | os.PathLike, cfg: ExportConfig) -> ExportResult:
    """Write the current masks under `out` (a folder for sa1b, a .json file or folder for
    coco). `cfg.version` is for `maskengine.quality.versions.export_version`."""
    if cfg.version:
        raise ValueError("export_project writes the current masks; export a version with "
                         "maskengine.quality.versions.export_version")
    skipped: list[str] = []
    rows = current_rows(project, skipped)
    return write_export(project, rows, out, cfg, skipped)


def _publish(stage: Path, out: Path) -> None:
    """Move the finished export from `stage` to `out`: one rename when `out` is new, else
    file by file (each a rename), so `out` never holds a half-written file."""
    if not out.exists():
        os.replace(stage, out)
        return
    for f in sorted(stage.iterdir()):
        os.replace(f, out / f.name)
    stage.rmdir()


def write_export(project: Project, rows: ExportRows, out: str | os.PathLike,
                 cfg: ExportConfig, skipped: list[str] | None = None) -> ExportResult:
    """Write `rows` (restricted by cfg.split, cfg.approved_only and cfg.category) as
    cfg.format."""
    skipped = [] if skipped is None else skipped
    classes = _class_ids(project, cfg.category)
    rows = [(im, [m for m in masks
                  if (not cfg.approved_only or m.review_state == ReviewState.approved.value)
                  and (classes is None or m.category_id in classes)])
            for im, masks in rows if cfg.split in ("all", im.split)]
    out = Path(out)
    if cfg.format == "sa1b":
        out.parent.mkdir(parents=True, exist_ok=True)
        stage = out.parent / f".{out.name}.export-tmp"
        shutil.rmtree(stage, ignore_errors=True)  # what a killed export left
        stage.mkdir()
        try:
            n_images, n_masks, files = _export_sa1b(project, rows, out, stage, cfg, skipped)
            _publish(stage, out)
        finally:
            shutil.rmtree(stage, ignore_errors=True)
        return ExportResult(images=n_images, masks=n_masks, files=files, skipped=skipped)
    file = out / "annotations.json" if out.suffix != ".json" else out
    file.parent.mkdir(parents=True, exist_ok=True)
    with project.session() as s:
        categories, category = coco_categories(
            s, {m.category_id for _, masks in rows for m in masks})
    coco = {
        "info": {"description": f"maskengine export of {project.root.name}"},
        "images": [{"id": im.id, "file_name": im.path, "width": im.width, "height": im.height}
                   for im, _ in rows],
        "annotations": [{**asdict(m.annotation), "image_id": im.id,
                         "category_id": category[m.category_id], "iscrowd": 0}
                        for im, masks in rows for m in masks],
        "categories": categories,
    }
    write_atomic(file, json.dumps(coco).encode())
    return ExportResult(images=len(rows), masks=sum(len(m) for _, m in rows), files=[file],
                        skipped=skipped)


def _class_ids(project: Project, names: str) -> set[int] | None:
    """The category ids of comma-separated class names (None: no restriction); a name the
    project does not have is refused, naming the ones it has."""
    wanted = [n.strip() for n in names.split(",") if n.strip()]
    if not wanted:
        return None
    with project.session() as s:
        known = {c.name: c.id for c in list_categories(s)}
    unknown = [n for n in wanted if n not in known]
    if unknown:
        has = ", ".join(known) if known else "none (it is class-agnostic)"
        raise ValueError(f"unknown class {', '.join(map(repr, unknown))}: the project's "
                         f"classes are {has}")
    return {known[n] for n in wanted}


def _export_sa1b(project: Project, rows: ExportRows, out: Path, stage: Path,
                 cfg: ExportConfig, skipped: list[str]) -> tuple[int, int, list[Path]]:
    names, n_images, n_masks = [], 0, 0
    for image, masks in rows:
        name = f"{Path(image.path).stem}_{image.id}"
        file_name = Path(image.path).name
        if cfg.with_images:
            file_name = name + Path(image.path).suffix.lower()
            if not (out / file_name).is_file():
                try:
                    _copy_image(project, image, stage / file_name)
                except OSError as exc:
                    skipped.append(f"image {image.id}: cannot copy its file ({exc})")
                    continue
        anns = [m.annotation for m in masks]
        head = SA1BImage(image_id=image.id, width=image.width, height=image.height,
                         file_name=file_name)
        write_sa1b(stage / f"{name}.json", SA1BFile(head, anns))
        names.append(f"{name}.json")
        n_images += 1
        n_masks += len(anns)
    return n_images, n_masks, [out / n for n in names]


def _copy_image(project: Project, image: ExportImage, dest: Path) -> None:
    """Copy an image file beside the export, refusing a file whose content changed since it
    was registered (the export would not be the dataset it claims to be)."""
    src = Path(image.path)
    src = src if src.is_absolute() else project.images_dir / src
    if file_sha256(src) != image.sha256:
        raise ValueError(f"image {image.id} ({src}) changed since it was added: its sha256 "
                         f"no longer matches the store")
    shutil.copyfile(src, dest)
