"""Dataset statistics of a project: the figures `maskengine stats` reports and plots.

One row per accepted mask (live, not rejected), read from the store in three queries:
the mask with its image's size, the round of the model version that served when it was
made (`masks.model_version_id -> model_versions.round`; None for a mask made without a
model, e.g. imported ground truth) and its author; then its interactions summed (seconds
and clicks of its creation and of every later edit, as `maskengine status` counts them).

Sizes are the COCO classes of `maskengine.evaluation.SIZE_CLASSES` (area < 32², < 96²,
larger, in pixels of the stored image). A mask's centre is the centre of its box,
divided by the image's width and height: (0, 0) top left, (1, 1) bottom right.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
from sqlalchemy import func, select

from ..engine.models import Image, ImageStatus, Interaction, Mask, ModelVersion, User
from ..engine.project_dataset import accepted
from ..engine.store import Project
from ..evaluation import SIZE_CLASSES

NO_ROUND = "none"  # the group of masks made without a model version
NO_AUTHOR = "-"


@dataclass(frozen=True)
class MaskRow:
    """One accepted mask as the statistics see it."""

    mask_id: int
    image_id: int
    area: int
    cx: float  # box centre / image width, in [0, 1]
    cy: float  # box centre / image height
    source: str  # manual, prefill, automatic
    round: int | None  # round of the model version that served; None: no model
    author: str
    seconds: float | None  # all its interactions summed; None: no interaction recorded
    clicks: int | None
    created_at: dt.datetime


def size_class(area: float) -> str:
    """COCO size class of a mask of `area` pixels: small, medium or large."""
    return next(name for name, lo, hi in SIZE_CLASSES if lo <= area < hi)


@dataclass
class DatasetStats:
    """A project's images and accepted masks; `to_dict` gives every figure as JSON."""

    root: str
    images_by_split: dict[str, int]
    images_by_status: dict[str, int]
    masks_per_image: dict[int, int]  # annotated image id (done, or with masks) -> masks
    rows: list[MaskRow]  # by creation time
    centre_bins: int = 10
    effort_bins: int = 20

    @property
    def num_images(self) -> int:
        return sum(self.images_by_split.values())

    def centre_grid(self) -> np.ndarray:
        """centre_bins x centre_bins counts of mask centres, row = y (top first)."""
        n = self.centre_bins
        grid = np.zeros((n, n), dtype=np.int64)
        for r in self.rows:
            grid[min(int(r.cy * n), n - 1), min(int(r.cx * n), n - 1)] += 1
        return grid

    def effort(self) -> list[dict]:
        """Seconds and clicks per mask over time: the masks with recorded interactions in
        creation order, cut into up to `effort_bins` runs of (nearly) equal length."""
        timed = [r for r in self.rows if r.seconds is not None]
        out: list[dict] = []
        if not timed:
            return out
        for part in np.array_split(np.arange(len(timed)), min(self.effort_bins, len(timed))):
            sel = [timed[i] for i in part]
            out.append({"first": int(part[0]), "last": int(part[-1]), "masks": len(sel),
                        "start": sel[0].created_at.isoformat(timespec="seconds"),
                        "end": sel[-1].created_at.isoformat(timespec="seconds"),
                        "seconds_per_mask": float(np.mean([r.seconds for r in sel])),
                        "clicks_per_mask": float(np.mean([r.clicks for r in sel]))})
        return out

    def to_dict(self) -> dict:
        per_image = np.array(list(self.masks_per_image.values()), dtype=np.float64)
        areas = np.array([r.area for r in self.rows], dtype=np.float64)
        hist = np.bincount(per_image.astype(np.int64)) if len(per_image) else np.zeros(0)
        return {
            "project": self.root,
            "images": {"total": self.num_images, "by_split": self.images_by_split,
                       "by_status": self.images_by_status,
                       "annotated": len(self.masks_per_image),
                       "with_masks": int((per_image > 0).sum())},
            "masks": {"total": len(self.rows), **_group(self.rows)},
            "masks_per_image": {
                "mean": _mean(per_image), "median": _median(per_image),
                "max": int(per_image.max()) if len(per_image) else None,
                "histogram": {str(k): int(v) for k, v in enumerate(hist) if v}},
            "mask_area": {"mean": _mean(areas), "median": _median(areas)},
            "centres": {"bins": self.centre_bins, "grid": self.centre_grid().tolist(),
                        "mean": [_mean([r.cx for r in self.rows]),
                                 _mean([r.cy for r in self.rows])]},
            "by_source": _groups(self.rows, lambda r: r.source),
            "by_round": _groups(self.rows, lambda r: NO_ROUND if r.round is None
                                else str(r.round)),
            "by_annotator": _groups(self.rows, lambda r: r.author),
            "by_day": _groups(self.rows, lambda r: r.created_at.date().isoformat()),
            "effort": self.effort(),
        }


def _mean(values: Iterable[float]) -> float | None:
    v = np.asarray(list(values), dtype=np.float64)
    return float(v.mean()) if len(v) else None


def _median(values: np.ndarray) -> float | None:
    return float(np.median(values)) if len(values) else None


def _group(rows: list[MaskRow]) -> dict:
    """Figures of a group of masks: sizes, images, and effort of the timed ones."""
    timed = [r for r in rows if r.seconds is not None]
    by_class = {name: 0 for name, _, _ in SIZE_CLASSES}
    for r in rows:
        by_class[size_class(r.area)] += 1
    return {"images": len({r.image_id for r in rows}), "by_size": by_class,
            "timed_masks": len(timed),
            "seconds_per_mask": _mean(r.seconds for r in timed),
            "clicks_per_mask": _mean(r.clicks for r in timed)}


def _groups(rows: list[MaskRow], key: Callable[[MaskRow], str]) -> dict[str, dict]:
    groups: dict[str, list[MaskRow]] = {}
    for r in rows:
        groups.setdefault(key(r), []).append(r)
    return {k: {"masks": len(v), **_group(v)} for k, v in sorted(groups.items())}


def _aware(t: dt.datetime) -> dt.datetime:
    return t if t.tzinfo is not None else t.replace(tzinfo=dt.UTC)  # SQLite drops the zone


def collect_stats(project: Project, *, centre_bins: int = 10,
                  effort_bins: int = 20) -> DatasetStats:
    """Read the figures of `project` from its store."""
    if centre_bins < 1 or effort_bins < 1:
        raise ValueError("centre_bins and effort_bins must be >= 1")
    with project.session() as s:
        splits = dict(s.execute(select(Image.split, func.count(Image.id))
                                .group_by(Image.split)).all())
        status = dict(s.execute(select(Image.status, func.count(Image.id))
                                .group_by(Image.status)).all())
        effort = {m: (sec, n) for m, sec, n in s.execute(
            select(Interaction.mask_id, func.sum(Interaction.seconds),
                   func.sum(Interaction.n_clicks)).group_by(Interaction.mask_id))}
        q = accepted(
            select(Mask.id, Mask.image_id, Mask.area, Mask.bbox_x, Mask.bbox_y, Mask.bbox_w,
                   Mask.bbox_h, Mask.source, Mask.created_at, Image.width, Image.height,
                   ModelVersion.round, User.name)
            .join(Image, Image.id == Mask.image_id)
            .outerjoin(ModelVersion, ModelVersion.id == Mask.model_version_id)
            .outerjoin(User, User.id == Mask.author_id)
            .order_by(Mask.created_at, Mask.id))
        rows = []
        for (mid, iid, area, x, y, w, h, source, created, iw, ih, rnd,
             author) in s.execute(q):
            sec, clicks = effort.get(mid, (None, None))
            rows.append(MaskRow(
                mask_id=mid, image_id=iid, area=int(area),
                cx=float(np.clip((x + w / 2) / iw, 0, 1)),
                cy=float(np.clip((y + h / 2) / ih, 0, 1)), source=source, round=rnd,
                author=author or NO_AUTHOR, seconds=None if sec is None else float(sec),
                clicks=None if clicks is None else int(clicks), created_at=_aware(created)))
        done = s.scalars(select(Image.id).where(Image.status == ImageStatus.done.value))
        per_image = {i: 0 for i in done}
    for r in rows:
        per_image[r.image_id] = per_image.get(r.image_id, 0) + 1
    return DatasetStats(root=str(project.root), images_by_split=splits,
                        images_by_status=status, masks_per_image=dict(sorted(per_image.items())),
                        rows=rows, centre_bins=centre_bins, effort_bins=effort_bins)
