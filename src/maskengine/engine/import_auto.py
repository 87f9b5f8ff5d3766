"""Automatic masks into a project: the SA-1B folder of `maskengine auto` -> the store.

Each mask enters with source `automatic`, review state `pending`, its predicted IoU and
stability score, the model version that made it (registered from the folder's run.json
under the same key the server uses for those weights) and its provenance (generator
settings, model, SA-1B file and annotation id, prompt point, crop box) in `meta_json`.

A mask whose mask IoU with a mask the image already has (live or deleted, any source and
state: a mask someone deleted or rejected is not proposed again) is above `dedupe_iou` is
not added, so a rerun adds nothing and an automatic mask never doubles a person's.

Images are matched by their path relative to the project's images folder (the JSON's
folder plus its `file_name`), then by a unique file name; the size must agree. One
transaction per JSON file: a killed import is finished by running it again.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np
from pycocotools import mask as mask_utils
from sqlalchemy import select

from . import rle
from .auto import ERRORS, RUN, SUMMARY
from .models import Image, Mask, MaskSource, Role, User
from .services import create_mask
from .store import Project, hash_token
from .versions import register_model_version

AUTO_USER = "maskengine-auto"  # the author of automatic masks (no person made them)


@dataclass(frozen=True)
class ImportConfig:
    # The same threshold `maskengine check` calls two masks duplicates at.
    dedupe_iou: float = 0.85

    def __post_init__(self) -> None:
        if not 0.0 < self.dedupe_iou <= 1.0:
            raise ValueError(f"dedupe_iou must be in (0, 1], got {self.dedupe_iou}")


@dataclass
class ImportResult:
    files: int = 0
    images: int = 0
    added: int = 0
    duplicates: int = 0
    model_version_id: int | None = None
    skipped: list[str] = field(default_factory=list)  # "file: reason"


def _key(path: str | os.PathLike) -> str:
    return PurePosixPath(Path(path).as_posix()).as_posix()


class _ImageIndex:
    """The project's images by path relative to its images folder and by file name."""

    def __init__(self, project: Project) -> None:
        with project.session() as s:
            rows = s.execute(select(Image.id, Image.path, Image.width, Image.height)).all()
        root = project.images_dir
        self.by_rel: dict[str, tuple[int, int, int]] = {}
        self.by_name: dict[str, list[tuple[int, int, int]]] = {}
        for iid, path, w, h in rows:
            p = Path(path)
            if p.is_absolute():
                try:
                    p = p.relative_to(root)
                except ValueError:
                    pass
            self.by_rel[_key(p)] = (iid, w, h)
            self.by_name.setdefault(p.name, []).append((iid, w, h))

    def find(self, rel_json: PurePosixPath, file_name: str, w: int, h: int) -> int | str:
        """The image id, or why none."""
        folder = rel_json.parent
        candidates = [folder / file_name]
        if folder.parts:  # a run over several folders prefixes each folder's name
            candidates.append(PurePosixPath(*folder.parts[1:], file_name))
        for c in candidates:
            hit = self.by_rel.get(c.as_posix())
            if hit is not None:
                return hit[0] if hit[1:] == (w, h) else (
                    f"image {c} is {hit[1]}x{hit[2]} in the project, {w}x{h} in the JSON")
        same = [x for x in self.by_name.get(file_name, []) if x[1:] == (w, h)]
        if len(same) == 1:
            return same[0][0]
        if same:
            return f"{len(same)} project images are named {file_name}: cannot tell which"
        return f"no project image {candidates[0]}"


def _auto_user(project: Project) -> int:
    with project.session() as s:
        user = s.scalar(select(User).where(User.name == AUTO_USER))
        if user is None:  # its token is never shown: nobody logs in as it
            user = User(name=AUTO_USER, role=Role.annotator.value,
                        token_hash=hash_token(secrets.token_urlsafe(24)))
            s.add(user)
            s.flush()
        return user.id


def _register(project: Project, run: dict | None) -> int | None:
    if run is None:
        return None
    m = run["model"]
    with project.session() as s:
        mv = register_model_version(s, key=m["key"], name=m["name"], config=m["config"],
                                    checkpoint=m.get("checkpoint"),
                                    checkpoint_sha256=m.get("checkpoint_sha256"))
        return mv.id


def _read_run(folder: Path) -> dict | None:
    path = folder / RUN
    if not path.is_file():
        return None
    try:
        run = json.loads(path.read_text())
        run["model"]["key"], run["model"]["config"]  # noqa: B018 - the fields import needs
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path} is not a run record of `maskengine auto`: {exc}") from exc
    return run


def sa1b_files(folder: Path) -> list[Path]:
    """The SA-1B JSON files under `folder` (not the run's own summary, errors, run record)."""
    own = {SUMMARY, RUN, ERRORS}
    return sorted(p for p in folder.rglob("*.json")
                  if not (p.parent == folder and p.name in own) and not p.name.startswith("."))


def import_auto(project: Project, folder: str | os.PathLike,
                cfg: ImportConfig | None = None) -> ImportResult:
    """Add the automatic masks of an SA-1B folder to `project` (see the module docstring)."""
    cfg = cfg or ImportConfig()
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"{folder} is not a folder of SA-1B JSON files")
    run = _read_run(folder)
    res = ImportResult(model_version_id=_register(project, run))
    provenance = ({"generator": run["generator"],
                   "model": {k: run["model"].get(k) for k in ("name", "checkpoint_sha256")}}
                  if run else {"generator": None, "model": None})
    index = _ImageIndex(project)
    author_id = _auto_user(project)
    for path in sa1b_files(folder):
        rel = PurePosixPath(path.relative_to(folder).as_posix())
        try:
            data = json.loads(path.read_text())
            info, anns = data["image"], data["annotations"]
            w, h, name = int(info["width"]), int(info["height"]), str(info["file_name"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            res.skipped.append(f"{rel}: not an SA-1B file ({type(exc).__name__}: {exc})")
            continue
        res.files += 1
        found = index.find(rel, name, w, h)
        if isinstance(found, str):
            res.skipped.append(f"{rel}: {found}")
            continue
        try:
            added, dups = _import_file(project, found, anns, author_id, res.model_version_id,
                                       {**provenance, "sa1b_file": rel.as_posix()}, cfg)
        except ValueError as exc:
            res.skipped.append(f"{rel}: {exc}")
            continue
        res.images += 1
        res.added += added
        res.duplicates += dups
    return res


def _import_file(project: Project, image_id: int, anns: list, author_id: int,
                 model_version_id: int | None, provenance: dict,
                 cfg: ImportConfig) -> tuple[int, int]:
    added = dups = 0
    with project.session() as s:
        image = s.get(Image, image_id)
        author = s.get(User, author_id)
        size = [image.height, image.width]
        existing = [{"size": size, "counts": c.encode("ascii")} for c in
                    s.scalars(select(Mask.rle_counts).where(Mask.image_id == image_id))]
        for k, ann in enumerate(anns):
            try:
                seg = ann["segmentation"]
                if list(seg["size"]) != size:
                    raise ValueError(f"size {seg['size']}, the image is {size}")
                enc = rle.normalise(seg["counts"], image.height, image.width)
            except (KeyError, TypeError, ValueError) as exc:
                raise ValueError(f"annotation {k}: bad segmentation: {exc}") from exc
            if enc.area == 0:
                continue
            new = {"size": size, "counts": enc.counts.encode("ascii")}
            if existing and float(np.max(mask_utils.iou([new], existing, [0] * len(existing)))
                                  ) > cfg.dedupe_iou:
                dups += 1
                continue
            meta = {**provenance, "sa1b_id": ann.get("id"),
                    "point_coords": ann.get("point_coords"), "crop_box": ann.get("crop_box")}
            create_mask(s, image_id=image_id, counts=enc.counts, author=author,
                        source=MaskSource.automatic, model_version_id=model_version_id,
                        predicted_iou=_float(ann.get("predicted_iou")),
                        stability_score=_float(ann.get("stability_score")), meta=meta)
            existing.append(new)
            added += 1
    return added, dups


def _float(v: object) -> float | None:
    return None if v is None else float(v)
