"""The review queue (reviewers and admins): masks waiting for review, suspect ones first."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from ...engine import services
from ...engine.models import Role
from ...quality.queue import load_scores, review_queue
from ..deps import SessionDep, StateDep, UserDep

router = APIRouter(prefix="/review", tags=["review"])


class QueueItemOut(BaseModel):
    mask_id: int
    image_id: int
    version: int
    score: float | None = Field(description="from the last `maskengine check`; None: unchecked")
    flags: list[str]
    suspect: bool


class QueueOut(BaseModel):
    items: list[QueueItemOut]
    pending: int
    reviewed: int
    total: int


@router.get("/queue", response_model=QueueOut)
def queue(state: StateDep, session: SessionDep, user: UserDep,
          limit: Annotated[int, Query(ge=1, le=1000)] = 50) -> QueueOut:
    """Pending masks, those the last check scored as suspect first; progress counts."""
    services.require_role(user, Role.reviewer)
    q = review_queue(session, load_scores(state.project), limit=limit)
    return QueueOut(items=[QueueItemOut(mask_id=i.mask_id, image_id=i.image_id,
                                        version=i.version, score=i.score, flags=i.flags,
                                        suspect=i.suspect) for i in q.items],
                    pending=q.pending, reviewed=q.reviewed, total=q.total)
