"""Service functions of the project store: images, masks, interactions, model versions.

Each takes an open `Session` and keyword-only arguments and raises `errors.*` for requests
it refuses; the caller owns the transaction (the server commits once per request).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from . import rle
from .errors import Conflict, Forbidden, InvalidField, NotFound
from .models import (
    Image,
    ImageStatus,
    Interaction,
    Mask,
    MaskSource,
    ModelVersion,
    ReviewState,
    Role,
    User,
    utcnow,
)
from .store import hash_token


@dataclass(frozen=True)
class InteractionData:
    """How a mask was made: events [{"t": s, "type": "point"|"box"|"brush"|...}, ...],
    the number of clicks and the seconds spent."""

    events: list = field(default_factory=list)
    n_clicks: int = 0
    seconds: float = 0.0


# -- users -------------------------------------------------------------------------------
def user_by_token(s: Session, *, token: str) -> User | None:
    return s.scalar(select(User).where(User.token_hash == hash_token(token)))


def require_role(user: User, role: Role, *more: Role) -> None:
    """Forbidden unless `user` has one of the roles named (an admin may do anything)."""
    if user.role != Role.admin.value and user.role not in {r.value for r in (role, *more)}:
        raise Forbidden(f"user {user.name!r} ({user.role}) may not do this")


def require_admin(user: User) -> None:
    require_role(user, Role.admin)


# -- model versions ----------------------------------------------------------------------
def register_model_version(
    s: Session, *, key: str, name: str, config: dict, checkpoint: str | None,
    checkpoint_sha256: str | None, round: int = 0, parent_id: int | None = None,
) -> ModelVersion:
    """Find the model version with `key` or create it."""
    mv = s.scalar(select(ModelVersion).where(ModelVersion.key == key))
    if mv is None:
        mv = ModelVersion(key=key, name=name, config_json=json.dumps(config),
                          checkpoint=checkpoint, checkpoint_sha256=checkpoint_sha256,
                          round=round, parent_id=parent_id)
        s.add(mv)
        s.flush()
    return mv


# -- images ------------------------------------------------------------------------------
def get_image(s: Session, *, image_id: int) -> Image:
    image = s.get(Image, image_id)
    if image is None:
        raise NotFound(f"image {image_id} does not exist")
    return image


def count_images(s: Session) -> int:
    return s.scalar(select(func.count(Image.id))) or 0


def list_images(s: Session, *, offset: int = 0, limit: int = 100) -> list[tuple[Image, int]]:
    """Images in queue order (by id) with their number of live masks."""
    live = (select(Mask.image_id, func.count(Mask.id).label("n"))
            .where(Mask.deleted_at.is_(None)).group_by(Mask.image_id).subquery())
    rows = s.execute(
        select(Image, func.coalesce(live.c.n, 0)).outerjoin(live, live.c.image_id == Image.id)
        .order_by(Image.id).offset(offset).limit(limit)
    )
    return [(im, int(n)) for im, n in rows]


def neighbor_image(
    s: Session, *, after: int | None, backwards: bool = False, todo_only: bool = True
) -> Image | None:
    """The next (or previous) image in queue order after image `after`, wrapping around;
    with `todo_only`, images marked done are skipped. None when there is none."""
    q = select(Image)
    if todo_only:
        q = q.where(Image.status == ImageStatus.todo.value)
    order = Image.id.desc() if backwards else Image.id.asc()
    if after is not None:
        beyond = Image.id < after if backwards else Image.id > after
        found = s.scalar(q.where(beyond).order_by(order).limit(1))
        if found is not None:
            return found
    if after is not None:
        q = q.where(Image.id != after)
    return s.scalar(q.order_by(order).limit(1))


def upcoming_images(s: Session, *, after: int, n: int) -> list[Image]:
    """The next `n` images to annotate after image `after` (for computing ahead)."""
    q = select(Image).where(Image.status == ImageStatus.todo.value, Image.id > after)
    return list(s.scalars(q.order_by(Image.id).limit(n)))


def set_image_split(s: Session, *, image_id: int, split: str) -> Image:
    """Move an image to the "train" or "val" split (rounds train on one, validate on the
    other)."""
    if split not in ("train", "val"):
        raise InvalidField(("body", "split"), f"split must be 'train' or 'val', got {split!r}")
    image = get_image(s, image_id=image_id)
    image.split = split
    return image


def set_image_status(s: Session, *, image_id: int, status: ImageStatus) -> Image:
    image = get_image(s, image_id=image_id)
    image.status = ImageStatus(status).value
    return image


# -- masks -------------------------------------------------------------------------------
def get_mask(s: Session, *, mask_id: int, include_deleted: bool = False) -> Mask:
    mask = s.get(Mask, mask_id)
    if mask is None or (mask.deleted_at is not None and not include_deleted):
        raise NotFound(f"mask {mask_id} does not exist")
    return mask


def list_masks(s: Session, *, image_id: int, include_deleted: bool = False) -> list[Mask]:
    get_image(s, image_id=image_id)
    q = select(Mask).where(Mask.image_id == image_id)
    if not include_deleted:
        q = q.where(Mask.deleted_at.is_(None))
    return list(s.scalars(q.order_by(Mask.id)))


def _encoded(counts: str | Sequence[int], image: Image) -> rle.Encoded:
    try:
        enc = rle.normalise(counts, image.height, image.width)
    except ValueError as exc:
        raise InvalidField(("body", "counts"), str(exc)) from exc
    if enc.area == 0:
        raise InvalidField(("body", "counts"), "the mask is empty")
    return enc


def _set_shape(mask: Mask, enc: rle.Encoded) -> None:
    mask.rle_counts = enc.counts
    mask.bbox_x, mask.bbox_y, mask.bbox_w, mask.bbox_h = enc.bbox
    mask.area = enc.area


def _record(mask: Mask, kind: str, data: InteractionData | None, user: User,
            model_version_id: int | None) -> None:
    if data is None:
        return
    mask.interactions.append(Interaction(
        seq=len(mask.interactions), kind=kind, user_id=user.id,
        model_version_id=model_version_id, events_json=json.dumps(data.events),
        n_clicks=data.n_clicks, seconds=data.seconds,
    ))


def create_mask(
    s: Session, *, image_id: int, counts: str | Sequence[int], author: User,
    source: MaskSource = MaskSource.manual, model_version_id: int | None = None,
    predicted_iou: float | None = None, interaction: InteractionData | None = None,
) -> Mask:
    image = get_image(s, image_id=image_id)
    if model_version_id is not None and s.get(ModelVersion, model_version_id) is None:
        raise InvalidField(("body", "model_version_id"),
                           f"model version {model_version_id} does not exist")
    mask = Mask(image_id=image.id, source=MaskSource(source).value, author_id=author.id,
                model_version_id=model_version_id, predicted_iou=predicted_iou)
    _set_shape(mask, _encoded(counts, image))
    s.add(mask)
    _record(mask, "create", interaction, author, model_version_id)
    s.flush()
    return mask


def _check_version(mask: Mask, expected: int) -> None:
    if mask.version != expected:
        raise Conflict(
            f"mask {mask.id} was changed by someone else (now version {mask.version}, your "
            f"copy is version {expected}); reload it and redo your change"
        )


def _flush(s: Session, mask: Mask) -> None:
    try:
        s.flush()
    except StaleDataError as exc:  # a concurrent writer bumped the version under us
        raise Conflict(f"mask {mask.id} was changed by someone else; reload it") from exc


def update_mask(
    s: Session, *, mask_id: int, expected_version: int, user: User,
    counts: str | Sequence[int] | None = None, interaction: InteractionData | None = None,
    model_version_id: int | None = None,
) -> Mask:
    """Replace a mask's shape. Refused with Conflict when `expected_version` is stale."""
    mask = get_mask(s, mask_id=mask_id)
    _check_version(mask, expected_version)
    if counts is not None:
        _set_shape(mask, _encoded(counts, mask.image))
        mask.review_state = ReviewState.pending.value  # a changed mask needs a new review
    mask.updated_at = utcnow()
    _record(mask, "edit", interaction, user, model_version_id)
    _flush(s, mask)
    return mask


def delete_mask(s: Session, *, mask_id: int, expected_version: int, user: User) -> Mask:
    """Soft delete: the row stays (with its interactions) for statistics and undo."""
    mask = get_mask(s, mask_id=mask_id)
    _check_version(mask, expected_version)
    mask.deleted_at = mask.updated_at = utcnow()
    _flush(s, mask)
    return mask


def review_mask(
    s: Session, *, mask_id: int, expected_version: int, state: ReviewState, reviewer: User
) -> Mask:
    require_role(reviewer, Role.reviewer)
    mask = get_mask(s, mask_id=mask_id)
    _check_version(mask, expected_version)
    mask.review_state = ReviewState(state).value
    mask.reviewer_id = reviewer.id
    mask.updated_at = utcnow()
    _flush(s, mask)
    return mask
