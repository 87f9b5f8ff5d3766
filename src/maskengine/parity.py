"""Comparing two sets of automatic-mask records, e.g. ours against the official generator's.

Records are the official generator's dicts or `MaskRecord`s (anything indexable by
"segmentation", "predicted_iou", "stability_score", "bbox", "crop_box"), with COCO RLE
segmentations (`output_mode="coco_rle"`; counts as str or bytes).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class RecordMatch:
    """How well `ours` reproduces `reference`: reference records matched one-to-one (mutual
    best mask IoU >= the threshold), and over the matched pairs the largest absolute
    differences of predicted IoU, stability score and box coordinates, and how many pairs
    come from different crop boxes."""

    reference: int
    ours: int
    matched: int
    max_abs_diff: dict[str, float] = field(default_factory=dict)
    crop_box_mismatches: int = 0

    @property
    def matched_fraction(self) -> float:
        if self.reference == 0:
            return 1.0 if self.ours == 0 else 0.0
        return self.matched / self.reference

    def to_dict(self) -> dict:
        return {"count_official": self.reference, "count_ours": self.ours,
                "matched_fraction": self.matched_fraction, "max_abs_diff": self.max_abs_diff,
                "crop_box_mismatches": self.crop_box_mismatches}


def _rles(records: Sequence[Any]) -> list[dict]:
    out = []
    for r in records:
        seg = r["segmentation"]
        counts = seg["counts"]
        out.append({"size": list(seg["size"]),
                    "counts": counts.encode() if isinstance(counts, str) else counts})
    return out


def match_records(reference: Sequence[Any], ours: Sequence[Any],
                  threshold: float = 0.98) -> RecordMatch:
    """Match `ours` to `reference` one-to-one by mask IoU (see `RecordMatch`)."""
    from pycocotools import mask as mask_utils

    worst = {"predicted_iou": 0.0, "stability_score": 0.0, "bbox": 0.0}
    if not reference or not ours:
        return RecordMatch(len(reference), len(ours), 0, worst)
    iou = np.asarray(mask_utils.iou(_rles(reference), _rles(ours), [0] * len(ours)))
    matched = crop_mismatch = 0
    for i, r in enumerate(reference):
        j = int(iou[i].argmax())
        if iou[i, j] < threshold or int(iou[:, j].argmax()) != i:
            continue
        matched += 1
        o = ours[j]
        for key in ("predicted_iou", "stability_score"):
            worst[key] = max(worst[key], abs(float(o[key]) - float(r[key])))
        worst["bbox"] = max(worst["bbox"], *(abs(float(a) - float(b))
                                             for a, b in zip(o["bbox"], r["bbox"], strict=True)))
        crop_mismatch += list(o["crop_box"]) != list(r["crop_box"])
    return RecordMatch(len(reference), len(ours), matched, worst, crop_mismatch)
