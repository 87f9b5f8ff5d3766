"""Named, frozen evaluation sets: the validation images of a dataset version and their
masks, kept so that every round and every `maskengine eval` measures on the same objects.

`create_evalset` writes PROJECT/evalsets/NAME.json once (a name is never overwritten):

    {"name", "format": 1, "created_at", "source": "version v1" | "current masks",
     "sha256": hash of "images",
     "images": [{"id", "path", "sha256", "width", "height",
                 "masks": [{"id", "sha256", "counts"}]}]}

from a snapshot (`versions.snapshot`) or from the accepted masks as they are now; only
validation-split images with masks go in. `sha256` hashes the images list (file hashes
and COCO RLE counts), so a set edited by hand is refused when loaded, and each image
file is checked against its hash when read. PROJECT/evalsets/DEFAULT names the set that
rounds validate on when none is given (without it they use the validation split as it is).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

import numpy as np
from PIL import Image as PILImage

from ..atomic import write_atomic
from ..data.types import Sample
from ..engine import rle
from ..engine.export import current_rows
from ..engine.store import Project, file_sha256
from .versions import CURRENT, VersionError, check_name, load_manifest, manifest

FOLDER = "evalsets"
DEFAULT_FILE = "DEFAULT"


class EvalSetError(VersionError):
    """An evaluation set that is missing, exists already, is empty, or is damaged."""


def evalset_file(project: Project, name: str) -> Path:
    try:
        return project.root / FOLDER / f"{check_name(name, 'evaluation set')}.json"
    except VersionError as exc:
        raise EvalSetError(str(exc)) from exc


def list_evalsets(project: Project) -> list[str]:
    folder = project.root / FOLDER
    return sorted(p.stem for p in folder.glob("*.json")) if folder.is_dir() else []


def _content_hash(images: list[dict]) -> str:
    return hashlib.sha256(json.dumps(images, sort_keys=True).encode()).hexdigest()


def create_evalset(project: Project, name: str, *, version: str | None = None,
                   default: bool = False) -> dict:
    """Freeze the validation images with masks of `version` (None: the accepted masks now)
    as evaluation set `name`; with `default`, rounds validate on it from now on."""
    file = evalset_file(project, name)
    if file.exists():
        raise EvalSetError(f"evaluation set {name!r} exists already ({file}); sets are never "
                           "overwritten: pick another name")
    source = manifest(CURRENT, current_rows(project)) if version is None else \
        load_manifest(project, version)
    images = [{"id": im["id"], "path": im["path"], "sha256": im["sha256"],
               "width": im["width"], "height": im["height"],
               "masks": [{"id": m["id"], "sha256": m["sha256"],
                          "counts": m["annotation"]["segmentation"]["counts"]}
                         for m in im["masks"]]}
              for im in source["images"] if im["split"] == "val" and im["masks"]]
    where = "current masks" if version is None else f"version {version}"
    if not images:
        raise EvalSetError(f"no validation images with accepted masks in the {where}: "
                           "annotate some validation images first")
    data = {"name": name, "format": 1, "source": where,
            "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "sha256": _content_hash(images), "images": images}
    write_atomic(file, json.dumps(data, indent=1) + "\n")
    if default:
        set_default(project, name)
    return data


def load_evalset(project: Project, name: str) -> dict:
    """The set's content, its hash verified."""
    file = evalset_file(project, name)
    if not file.is_file():
        known = ", ".join(list_evalsets(project)) or "none yet"
        raise EvalSetError(f"evaluation set {name!r} does not exist (sets: {known}); create "
                           f"it with `maskengine evalset {project.root} create {name}`")
    try:
        data = json.loads(file.read_text())
    except (json.JSONDecodeError, OSError) as exc:
        raise EvalSetError(f"{file} cannot be read: {exc}") from exc
    if data.get("format") != 1 or data.get("sha256") != _content_hash(data.get("images", [])):
        raise EvalSetError(f"{file} is damaged or was edited: its content does not match its "
                           "hash (sets are frozen; create a new one)")
    return data


def set_default(project: Project, name: str) -> None:
    load_evalset(project, name)  # it must exist
    write_atomic(project.root / FOLDER / DEFAULT_FILE, name + "\n")


def default_evalset(project: Project) -> str | None:
    """The set rounds validate on when none is given (None: the validation split)."""
    file = project.root / FOLDER / DEFAULT_FILE
    return (file.read_text().strip() or None) if file.is_file() else None


def summary(data: dict) -> dict:
    return {"name": data["name"], "source": data["source"], "created_at": data["created_at"],
            "images": len(data["images"]),
            "masks": sum(len(im["masks"]) for im in data["images"]), "sha256": data["sha256"]}


class EvalSetDataset:
    """An evaluation set as `Sample`s (image H x W x 3 uint8, masks N x H x W bool), like
    `ProjectDataset`; an image file whose content changed since the set was frozen is
    refused."""

    def __init__(self, project: Project, name: str) -> None:
        self.name = name
        self.project = project
        self.images = load_evalset(project, name)["images"]
        self.split = f"evalset:{name}"

    def __len__(self) -> int:
        return len(self.images)

    @property
    def num_masks(self) -> int:
        return sum(len(im["masks"]) for im in self.images)

    def __getitem__(self, index: int) -> Sample:
        im = self.images[index]
        p = Path(im["path"])
        path = p if p.is_absolute() else self.project.images_dir / p
        if not path.is_file() or file_sha256(path) != im["sha256"]:
            raise EvalSetError(f"image {im['id']} ({path}) of evaluation set {self.name!r} is "
                               "missing or its content changed since the set was frozen")
        with PILImage.open(path) as f:
            image = np.asarray(f.convert("RGB"))
        masks = np.stack([rle.decode(m["counts"], im["height"], im["width"])
                          for m in im["masks"]])
        return Sample(image=image, masks=masks, name=path.stem)
