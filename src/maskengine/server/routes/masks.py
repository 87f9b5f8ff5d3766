"""Masks: list and accept on an image; read, edit, delete and review one mask."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status

from ...engine import services
from ...engine.services import InteractionData
from .. import shapes
from ..convert import mask_public
from ..deps import ImageId, MaskId, SessionDep, StateDep, UserDep
from ..schemas import MAX_INT, InteractionIn, MaskCreate, MaskPublic, MaskUpdate, ReviewIn

router = APIRouter(tags=["masks"])


def _interaction(body: InteractionIn | None) -> InteractionData | None:
    if body is None:
        return None
    return InteractionData(events=[e.model_dump(exclude_none=True) for e in body.events],
                           n_clicks=body.n_clicks, seconds=body.seconds)


@router.get("/images/{image_id}/masks", response_model=list[MaskPublic])
def list_masks(
    image_id: ImageId, session: SessionDep, _user: UserDep, include_deleted: bool = False
) -> list[MaskPublic]:
    masks = services.list_masks(session, image_id=image_id, include_deleted=include_deleted)
    return [mask_public(m) for m in masks]


@router.post("/images/{image_id}/masks", response_model=MaskPublic,
             status_code=status.HTTP_201_CREATED)
def accept_mask(
    image_id: ImageId, body: MaskCreate, state: StateDep, session: SessionDep, user: UserDep
) -> MaskPublic:
    """Save an accepted mask with the interaction that made it. Committed before the answer.
    With `shape`, the server makes the full-resolution mask (from the candidate's logits and
    the strokes)."""
    counts = body.counts
    if body.shape is not None:
        image = services.get_image(session, image_id=image_id)
        counts = shapes.shape_mask(state, session, image, body.shape)
    mask = services.create_mask(
        session, image_id=image_id, counts=counts, author=user, source=body.source,
        model_version_id=body.model_version_id, predicted_iou=body.predicted_iou,
        interaction=_interaction(body.interaction), category_id=body.category_id,
    )
    return mask_public(mask)


@router.get("/masks/{mask_id}", response_model=MaskPublic)
def get_mask(mask_id: MaskId, session: SessionDep, _user: UserDep) -> MaskPublic:
    return mask_public(services.get_mask(session, mask_id=mask_id))


@router.put("/masks/{mask_id}", response_model=MaskPublic,
            responses={409: {"description": "the mask changed since `version`"}})
def edit_mask(
    mask_id: MaskId, body: MaskUpdate, state: StateDep, session: SessionDep, user: UserDep
) -> MaskPublic:
    """Change a mask's shape (`counts`, or `shape` for the server to make: strokes apply to
    the saved mask unless it has logits) and/or its class."""
    counts = body.counts
    if body.shape is not None:
        old = services.get_mask(session, mask_id=mask_id)
        counts = shapes.shape_mask(state, session, old.image, body.shape, base=old.rle_counts)
    mask = services.update_mask(
        session, mask_id=mask_id, expected_version=body.version, user=user,
        counts=counts, interaction=_interaction(body.interaction),
        set_category="category_id" in body.model_fields_set, category_id=body.category_id,
    )
    return mask_public(mask)


@router.delete("/masks/{mask_id}", response_model=MaskPublic,
               responses={409: {"description": "the mask changed since `version`"}})
def delete_mask(
    mask_id: MaskId, version: Annotated[int, Query(ge=0, le=MAX_INT)], session: SessionDep,
    user: UserDep,
) -> MaskPublic:
    """Soft delete (kept for statistics); `version` as for an edit."""
    return mask_public(services.delete_mask(session, mask_id=mask_id, expected_version=version,
                                            user=user))


@router.post("/masks/{mask_id}/review", response_model=MaskPublic)
def review_mask(mask_id: MaskId, body: ReviewIn, session: SessionDep, user: UserDep) -> MaskPublic:
    """Approve or reject a mask (reviewers and admins)."""
    return mask_public(services.review_mask(session, mask_id=mask_id,
                                            expected_version=body.version, state=body.state,
                                            reviewer=user))
