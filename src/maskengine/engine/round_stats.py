"""Per-round statistics of a project: for each model version, the annotation it served
(masks, seconds and clicks per mask, masks per image) and its validation figures."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from .models import Interaction, Mask, MaskSource, ModelVersion
from .project_dataset import accepted
from .versions import served_version


@dataclass(frozen=True)
class RoundStats:
    """One model version and the annotation it served. Masks are counted for the version
    that served when they were made (accepted: live, not rejected); seconds and clicks
    add up every interaction of a mask (creation and later edits). Automatic masks (stage
    3, no person's effort) are not counted."""

    version_id: int
    round: int
    name: str
    promoted: bool
    serving: bool
    note: str
    masks: int
    images: int
    seconds_per_mask: float | None
    clicks_per_mask: float | None
    val_miou1: float | None
    val_noc90: float | None
    train_seconds: float | None
    det_ap50: float | None = None  # the detector retrained after this round (stage 2)
    det_recall: float | None = None

    @property
    def masks_per_image(self) -> float | None:
        return self.masks / self.images if self.images else None

    def to_dict(self) -> dict:
        return {**asdict(self), "masks_per_image": self.masks_per_image}


def _annotated(q):  # noqa: ANN001, ANN202 - a select over Mask
    return accepted(q).where(Mask.source != MaskSource.automatic.value)


def round_stats(s: Session) -> list[RoundStats]:
    """Every model version in round order, with the annotation statistics of its masks."""
    counts = {v: (n, im) for v, n, im in s.execute(_annotated(
        select(Mask.model_version_id, func.count(Mask.id), func.count(Mask.image_id.distinct()))
        .where(Mask.model_version_id.is_not(None)).group_by(Mask.model_version_id)))}
    effort = {v: (sec, clicks) for v, sec, clicks in s.execute(_annotated(
        select(Mask.model_version_id, func.sum(Interaction.seconds),
               func.sum(Interaction.n_clicks))
        .join(Interaction, Interaction.mask_id == Mask.id)
        .where(Mask.model_version_id.is_not(None)).group_by(Mask.model_version_id)))}
    serving = served_version(s)
    out = []
    for mv in s.scalars(select(ModelVersion).order_by(ModelVersion.round, ModelVersion.id)):
        n, images = counts.get(mv.id, (0, 0))
        sec, clicks = effort.get(mv.id, (None, None))
        metrics = json.loads(mv.metrics_json or "{}")
        val = metrics.get("val", {}).get("default", {})
        out.append(RoundStats(
            version_id=mv.id, round=mv.round, name=mv.name,
            promoted=mv.promoted_at is not None,
            serving=serving is not None and serving.id == mv.id, note=mv.note,
            masks=n, images=images,
            seconds_per_mask=float(sec) / n if n and sec is not None else None,
            clicks_per_mask=float(clicks) / n if n and clicks is not None else None,
            val_miou1=val.get("miou@1"), val_noc90=val.get("noc@90"),
            train_seconds=metrics.get("train", {}).get("seconds"),
            det_ap50=metrics.get("detector", {}).get("val", {}).get("ap50"),
            det_recall=metrics.get("detector", {}).get("val", {}).get("recall50"),
        ))
    return out
