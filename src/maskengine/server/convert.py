"""ORM records -> public schemas."""

from __future__ import annotations

import base64
import json
from pathlib import Path

from ..engine.models import Image, Mask
from ..engine.segmenter import Candidate
from .schemas import CandidateOut, ImagePublic, MaskPublic


def image_public(image: Image, n_masks: int | None = None,
                 n_pending: int | None = None) -> ImagePublic:
    return ImagePublic(id=image.id, file_name=Path(image.path).name, width=image.width,
                       height=image.height, split=image.split, status=image.status,
                       n_masks=n_masks, n_pending=n_pending)


def mask_public(mask: Mask) -> MaskPublic:
    return MaskPublic(
        id=mask.id, image_id=mask.image_id, counts=mask.rle_counts,
        size=[mask.image.height, mask.image.width],
        bbox=[mask.bbox_x, mask.bbox_y, mask.bbox_w, mask.bbox_h], area=mask.area,
        source=mask.source, model_version_id=mask.model_version_id,
        predicted_iou=mask.predicted_iou, stability_score=mask.stability_score,
        author_id=mask.author_id,
        updated_by_id=mask.updated_by_id,
        review_state=mask.review_state, category_id=mask.category_id, version=mask.version,
        prefill_state=mask.prefill_state,
        meta=json.loads(mask.meta_json or "{}"),
        created_at=mask.created_at,
        updated_at=mask.updated_at, deleted=mask.deleted_at is not None,
    )


def candidate_public(c: Candidate) -> CandidateOut:
    low = base64.b64encode(c.low_res.astype("<f2").tobytes()).decode("ascii")
    return CandidateOut(counts=c.counts, bbox=list(c.bbox), area=c.area, score=c.score,
                        low_res=low)
