"""The review queue: masks waiting for review, the likeliest wrong first.

Scores come from the last `maskengine check` (PROJECT/quality/check.json): pending masks
it scored at `SUSPECT_SCORE` or more come first, highest score first, then every other
pending mask in the order it was made. A mask edited after the check keeps its old score
until the next check. Reviewing is `services.review_mask` (state, reviewer and, as
`updated_at`, the time; any later edit of the shape puts the mask back to pending).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..engine.models import Mask, PrefillState, ReviewState
from ..engine.store import Project

SUSPECT_SCORE = 0.5


@dataclass(frozen=True)
class QueueItem:
    mask_id: int
    image_id: int
    version: int
    score: float | None  # None: not checked yet
    flags: list[str]

    @property
    def suspect(self) -> bool:
        return self.score is not None and self.score >= SUSPECT_SCORE


@dataclass(frozen=True)
class ReviewQueue:
    items: list[QueueItem]  # the first `limit` of the queue
    pending: int
    reviewed: int  # live masks approved or rejected
    total: int  # live masks


def check_file(project: Project):  # noqa: ANN201 - a Path
    return project.root / "quality" / "check.json"


def load_scores(project: Project) -> dict[int, tuple[float, list[str]]]:
    """mask id -> (score, flags) of the last saved check; {} when there is none."""
    file = check_file(project)
    try:
        data = json.loads(file.read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    return {m["mask_id"]: (float(m["score"]), list(m.get("flags", [])))
            for m in data.get("masks", [])}


def review_queue(s: Session, scores: dict[int, tuple[float, list[str]]],
                 limit: int = 50) -> ReviewQueue:
    # A pre-filled mask waiting for an annotator's decision is not up for review yet.
    live = Mask.deleted_at.is_(None) & (Mask.prefill_state != PrefillState.proposed.value)
    pending = list(s.execute(select(Mask.id, Mask.image_id, Mask.version).where(
        live, Mask.review_state == ReviewState.pending.value).order_by(Mask.id)))
    items = [QueueItem(mid, iid, ver, *scores.get(mid, (None, []))) for mid, iid, ver in pending]
    items.sort(key=lambda q: (not q.suspect, -(q.score or 0.0) if q.suspect else 0.0,
                              q.mask_id))
    total = s.scalar(select(func.count(Mask.id)).where(live)) or 0
    return ReviewQueue(items=items[:limit], pending=len(items), reviewed=total - len(items),
                       total=total)
