"""Named dataset versions: frozen manifests of a project's accepted masks.

`snapshot` writes PROJECT/versions/NAME.json, once (a name is never overwritten):

    {"name", "created_at", "format": 1,
     "images": [{"id", "path", "sha256", "width", "height", "split",
                 "masks": [{"id", "sha256", "review_state", "source", "annotation"}]}]}

where a mask's `sha256` hashes its size and COCO RLE counts (its content) and
`annotation` is the SA-1B record the export writes. Versions are files rather than
tables: they are immutable, need no schema migration, can be copied or committed beside
the data, and hold the masks themselves: the store edits a mask in place, so a manifest
of ids and hashes alone could not give back a mask that was edited later. `diff` compares
two versions (or a version and the current masks) by mask id and content hash;
`export_version` writes a version with the export's own writer, byte for byte what an
export of the same masks gave when the snapshot was taken.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..atomic import write_atomic
from ..data.sa1b_write import SA1BAnnotation
from ..engine.export import (
    ExportConfig,
    ExportImage,
    ExportMask,
    ExportResult,
    ExportRows,
    current_rows,
    write_export,
)
from ..engine.store import Project

CURRENT = "current"  # the name `diff` gives the live masks
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


class VersionError(ValueError):
    """A version that is missing, exists already, has a bad name or a damaged file."""


def mask_hash(height: int, width: int, counts: str) -> str:
    return hashlib.sha256(f"{height}x{width}:{counts}".encode()).hexdigest()


def check_name(name: str, what: str = "version") -> str:
    """`name` if it may name a version (or an evaluation set, ...): a file name, not CURRENT."""
    if not _NAME.fullmatch(name) or name == CURRENT:
        raise VersionError(f"{what} name {name!r} is not allowed: use letters, digits, '.', "
                           f"'_' and '-' (up to 100, not starting with . _ -), not {CURRENT!r}")
    return name


def version_file(project: Project, name: str) -> Path:
    return project.root / "versions" / f"{check_name(name)}.json"


def list_versions(project: Project) -> list[str]:
    folder = project.root / "versions"
    return sorted(p.stem for p in folder.glob("*.json")) if folder.is_dir() else []


def manifest(name: str, rows: ExportRows) -> dict:
    images = []
    for im, masks in rows:
        entries = []
        for m in masks:
            a = m.annotation
            entries.append({
                "id": a.id,
                "sha256": mask_hash(im.height, im.width, a.segmentation["counts"]),
                "review_state": m.review_state,
                "category_id": m.category_id,
                "annotation": {k: getattr(a, k) for k in a.__dataclass_fields__},
            })
        images.append({"id": im.id, "path": im.path, "sha256": im.sha256, "width": im.width,
                       "height": im.height, "split": im.split, "masks": entries})
    return {"name": name, "format": 1,
            "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "images": images}


def snapshot(project: Project, name: str) -> Path:
    """Freeze the current accepted masks (live, not rejected) as version `name`."""
    file = version_file(project, name)
    if file.exists():
        raise VersionError(f"version {name!r} exists already ({file}); versions are never "
                           f"overwritten: pick another name")
    write_atomic(file, (json.dumps(manifest(name, current_rows(project)), indent=1)
                        + "\n").encode())
    return file


def load_manifest(project: Project, name: str) -> dict:
    file = version_file(project, name)
    if not file.is_file():
        known = ", ".join(list_versions(project)) or "none yet"
        raise VersionError(f"version {name!r} does not exist (versions: {known})")
    try:
        data = json.loads(file.read_text())
        if data.get("format") != 1:
            raise VersionError(f"{file}: unknown manifest format {data.get('format')!r}")
        return data
    except (json.JSONDecodeError, OSError) as exc:
        raise VersionError(f"{file} cannot be read: {exc}") from exc


def version_rows(manifest: dict) -> ExportRows:
    rows = []
    for im in manifest["images"]:
        image = ExportImage(id=im["id"], path=im["path"], width=im["width"],
                            height=im["height"], split=im["split"], sha256=im["sha256"])
        rows.append((image, [ExportMask(SA1BAnnotation(**m["annotation"]), m["review_state"],
                                        m.get("category_id"))
                             for m in im["masks"]]))
    return rows


def export_version(project: Project, out: str | os.PathLike,
                   cfg: ExportConfig) -> ExportResult:
    """Export version `cfg.version` as `export_project` exported the masks it froze."""
    if not cfg.version:
        raise VersionError("give the version to export")
    return write_export(project, version_rows(load_manifest(project, cfg.version)), out, cfg)


@dataclass
class VersionDiff:
    """What changed from version `a` to version `b` (mask and image ids)."""

    a: str
    b: str
    added: list[int] = field(default_factory=list)
    removed: list[int] = field(default_factory=list)
    edited: list[int] = field(default_factory=list)
    unchanged: int = 0
    images_added: list[int] = field(default_factory=list)
    images_removed: list[int] = field(default_factory=list)
    images_changed: list[int] = field(default_factory=list)  # file content or split changed

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def _index(manifest: dict) -> tuple[dict[int, str], dict[int, tuple[str, str]]]:
    masks = {m["id"]: m["sha256"] for im in manifest["images"] for m in im["masks"]}
    images = {im["id"]: (im["sha256"], im["split"]) for im in manifest["images"]}
    return masks, images


def diff(project: Project, a: str, b: str = CURRENT) -> VersionDiff:
    """Compare version `a` with version `b` (CURRENT: the masks as they are now)."""
    def load(name: str) -> dict:
        return manifest(CURRENT, current_rows(project)) if name == CURRENT else \
            load_manifest(project, name)
    (ma, ia), (mb, ib) = _index(load(a)), _index(load(b))
    return VersionDiff(
        a=a, b=b,
        added=sorted(mb.keys() - ma.keys()), removed=sorted(ma.keys() - mb.keys()),
        edited=sorted(k for k in ma.keys() & mb.keys() if ma[k] != mb[k]),
        unchanged=sum(1 for k in ma.keys() & mb.keys() if ma[k] == mb[k]),
        images_added=sorted(ib.keys() - ia.keys()), images_removed=sorted(ia.keys() - ib.keys()),
        images_changed=sorted(k for k in ia.keys() & ib.keys() if ia[k] != ib[k]),
    )
