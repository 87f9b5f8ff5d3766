"""Service functions of the project store: users, images, masks and their interactions.

Each takes an open `Session` and keyword-only arguments and raises `errors.*` for requests
it refuses; the caller owns the transaction (the server commits once per request).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from . import rle
from .categories import check_category
from .errors import Conflict, Forbidden, InvalidField, NotFound
from .models import (
    Image,
    ImageStatus,
    Interaction,
    Mask,
    MaskChange,
    MaskSource,
    ModelVersion,
    PrefillState,
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


# -- images ------------------------------------------------------------------------------
def get_image(s: Session, *, image_id: int) -> Image:
    image = s.get(Image, image_id)
    if image is None:
        raise NotFound(f"image {image_id} does not exist")
    return image


IMAGE_FILTERS = ("all", "todo", "done", "review")


def _filtered(q, which: str, category_id: int | None = None):  # noqa: ANN001, ANN202
    """Restrict a select over Image: 'todo' / 'done' by status, 'review': images with a live
    mask waiting for review (pending), 'all': no restriction; with `category_id`, also only
    images with a live mask of that class."""
    if which not in IMAGE_FILTERS:
        raise ValueError(f"unknown image filter {which!r}; use one of {', '.join(IMAGE_FILTERS)}")
    if category_id is not None:
        q = q.where(select(Mask.id).where(Mask.image_id == Image.id, Mask.deleted_at.is_(None),
                                          Mask.category_id == category_id).exists())
    if which in ("todo", "done"):
        return q.where(Image.status == which)
    if which == "review":
        pending = (select(Mask.id).where(Mask.image_id == Image.id, Mask.deleted_at.is_(None),
                                         Mask.review_state == ReviewState.pending.value,
                                         Mask.prefill_state != PrefillState.proposed.value))
        return q.where(pending.exists())
    return q


def count_images(s: Session, which: str = "all", category_id: int | None = None) -> int:
    return s.scalar(_filtered(select(func.count(Image.id)), which, category_id)) or 0


def image_position(s: Session, image_id: int) -> int:
    """The image's 1-based place in queue order (by id) among all images."""
    return s.scalar(select(func.count(Image.id)).where(Image.id <= image_id)) or 0


def list_images(s: Session, *, offset: int = 0, limit: int = 100,
                which: str = "all", category_id: int | None = None,
                ) -> list[tuple[Image, int, int]]:
    """Images in queue order (by id), restricted by `which` (IMAGE_FILTERS) and
    `category_id`, with their numbers of live masks and of live masks waiting for review."""
    live = (select(Mask.image_id, func.count(Mask.id).label("n"),
                   func.sum(case(((Mask.review_state == ReviewState.pending.value)
                                  & (Mask.prefill_state != PrefillState.proposed.value), 1),
                                 else_=0))
                   .label("pending"))
            .where(Mask.deleted_at.is_(None)).group_by(Mask.image_id).subquery())
    rows = s.execute(_filtered(
        select(Image, func.coalesce(live.c.n, 0), func.coalesce(live.c.pending, 0))
        .outerjoin(live, live.c.image_id == Image.id), which, category_id)
        .order_by(Image.id).offset(offset).limit(limit)
    )
    return [(im, int(n), int(p)) for im, n, p in rows]


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


def _encoded(counts: str | Sequence[int] | rle.Encoded, image: Image) -> rle.Encoded:
    """Client counts checked against the image, or a mask the server made (as it is)."""
    if isinstance(counts, rle.Encoded):
        return counts
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


def _log(mask: Mask, kind: str, user: User, detail: str = "") -> None:
    """Record who made this change; `version` is the one the change gives the mask."""
    mask.updated_by_id = user.id
    version = 1 if kind == "create" else mask.version + 1
    mask.changes.append(MaskChange(version=version, kind=kind, user_id=user.id, detail=detail))


def create_mask(
    s: Session, *, image_id: int, counts: str | Sequence[int] | rle.Encoded, author: User,
    source: MaskSource = MaskSource.manual, model_version_id: int | None = None,
    predicted_iou: float | None = None, interaction: InteractionData | None = None,
    category_id: int | None = None, stability_score: float | None = None,
    meta: dict | None = None, proposed: bool = False,
) -> Mask:
    """A new mask of image `image_id`. `meta`: the provenance of a proposed (pre-filled or
    automatic) mask, stored as JSON with its `stability_score`. With `proposed` (a pre-filled
    mask, stage 2) it waits for a person's decision (`decide_prefill`): it has no author yet
    and is not an accepted mask; `author` is logged as the one who ran the pre-fill."""
    image = get_image(s, image_id=image_id)
    check_category(s, category_id)
    if model_version_id is not None and s.get(ModelVersion, model_version_id) is None:
        raise InvalidField(("body", "model_version_id"),
                           f"model version {model_version_id} does not exist")
    mask = Mask(image_id=image.id, source=MaskSource(source).value,
                author_id=None if proposed else author.id,
                model_version_id=model_version_id, predicted_iou=predicted_iou,
                stability_score=stability_score, meta_json=json.dumps(meta or {}),
                prefill_state=PrefillState.proposed.value if proposed else "",
                category_id=category_id)
    _set_shape(mask, _encoded(counts, image))
    s.add(mask)
    _record(mask, "create", interaction, author, model_version_id)
    _log(mask, "create", author, detail="prefill" if proposed else "")
    s.flush()
    return mask


def may_change(mask: Mask, user: User) -> None:
    """Raise Forbidden unless `user` may edit or delete `mask`: reviewers and admins any
    mask; an annotator only the masks they made, and only while no reviewer has approved
    or rejected them."""
    if user.role in (Role.reviewer.value, Role.admin.value):
        return
    if mask.prefill_state == PrefillState.proposed.value:
        return  # a pre-filled mask waits for whichever annotator opens the image
    if mask.author_id != user.id:
        raise Forbidden(f"mask {mask.id} was made by another user; an annotator changes only "
                        "their own masks (a reviewer or an admin may change any)")
    if mask.review_state != ReviewState.pending.value:
        raise Forbidden(f"mask {mask.id} is {mask.review_state} by a reviewer; only a reviewer "
                        "or an admin may change it now")


def _check_version(mask: Mask, expected: int) -> None:
    if mask.version != expected:
        raise Conflict(
            f"mask {mask.id} was changed by someone else (now version {mask.version}, your "
            f"copy is version {expected}); reload it and redo your change"
        )


def _flush(s: Session, mask_id: int) -> None:
    try:
        s.flush()
    except StaleDataError as exc:  # a concurrent writer bumped the version under us
        # The failed flush expired the session's objects; nothing may read them now.
        s.rollback()
        raise Conflict(f"mask {mask_id} was changed by someone else while you saved; "
                       "reload it and redo your change") from exc


def update_mask(
    s: Session, *, mask_id: int, expected_version: int, user: User,
    counts: str | Sequence[int] | rle.Encoded | None = None,
    interaction: InteractionData | None = None,
    model_version_id: int | None = None, set_category: bool = False,
    category_id: int | None = None,
) -> Mask:
    """Replace a mask's shape (and, with set_category, its category: None clears it).
    Refused with Forbidden when `user` may not change it (see `may_change`) and with
    Conflict when `expected_version` is stale."""
    mask = get_mask(s, mask_id=mask_id)
    may_change(mask, user)
    _check_version(mask, expected_version)
    if mask.prefill_state == PrefillState.proposed.value and counts is not None:
        # Changing a proposed pre-fill's shape is the "edit" decision.
        return decide_prefill(s, mask_id=mask_id, expected_version=expected_version,
                              user=user, decision="edit", counts=counts,
                              interaction=interaction, model_version_id=model_version_id)
    # No flush before ours: one in the middle (a lazy load) would meet a concurrent
    # writer's version outside `_flush` and end the request with a 500.
    with s.no_autoflush:
        if counts is not None:
            _set_shape(mask, _encoded(counts, mask.image))
            mask.review_state = ReviewState.pending.value  # a changed mask needs a new review
        if set_category and category_id != mask.category_id:
            check_category(s, category_id)
            mask.category_id = category_id
            mask.review_state = ReviewState.pending.value
        mask.updated_at = utcnow()
        _record(mask, "edit", interaction, user, model_version_id)
        _log(mask, "edit", user)
    _flush(s, mask_id)
    return mask


def delete_mask(s: Session, *, mask_id: int, expected_version: int, user: User) -> Mask:
    """Soft delete: the row stays (with its interactions) for statistics and undo. The same
    rules as `update_mask`."""
    mask = get_mask(s, mask_id=mask_id)
    may_change(mask, user)
    _check_version(mask, expected_version)
    if mask.prefill_state == PrefillState.proposed.value:
        # Deleting a proposed pre-fill is rejecting it (kept as the detector's negative).
        return decide_prefill(s, mask_id=mask_id, expected_version=expected_version,
                              user=user, decision="reject")
    with s.no_autoflush:
        mask.deleted_at = mask.updated_at = utcnow()
        _log(mask, "delete", user)
    _flush(s, mask_id)
    return mask


def review_mask(
    s: Session, *, mask_id: int, expected_version: int, state: ReviewState, reviewer: User
) -> Mask:
    require_role(reviewer, Role.reviewer)
    mask = get_mask(s, mask_id=mask_id)
    _check_version(mask, expected_version)
    with s.no_autoflush:
        mask.review_state = ReviewState(state).value
        mask.reviewer_id = reviewer.id
        mask.updated_at = utcnow()
        _log(mask, "review", reviewer, detail=mask.review_state)
    _flush(s, mask_id)
    return mask


# -- pre-filled masks (stage 2) ------------------------------------------------------------
PREFILL_DECISIONS = {"confirm": PrefillState.confirmed, "edit": PrefillState.edited,
                     "reject": PrefillState.rejected}


def decide_prefill(
    s: Session, *, mask_id: int, expected_version: int, user: User, decision: str,
    counts: str | Sequence[int] | None = None, interaction: InteractionData | None = None,
    model_version_id: int | None = None,
) -> Mask:
    """A person's decision on a proposed pre-filled mask: "confirm" it as it is, "edit" it
    (new `counts`), or "reject" it. Confirmed and edited masks become the person's accepted
    masks (pending review like any other); a rejected one is soft-deleted and stays a
    negative example for the detector. The interaction (seconds, clicks) is recorded with
    kind "confirm", "edit" or "reject". Conflict when the mask is no longer proposed (someone
    decided first) or `expected_version` is stale."""
    if decision not in PREFILL_DECISIONS:
        raise InvalidField(("body", "decision"), f"decision must be one of "
                           f"{', '.join(PREFILL_DECISIONS)}, got {decision!r}")
    if (decision == "edit") != (counts is not None):
        raise InvalidField(("body", "counts"), "an edit needs the new counts; confirm and "
                           "reject take none")
    mask = get_mask(s, mask_id=mask_id)
    if mask.prefill_state != PrefillState.proposed.value:
        what = f"is {mask.prefill_state}" if mask.prefill_state else "was not pre-filled"
        raise Conflict(f"mask {mask_id} {what}; only a proposed pre-filled mask can be "
                       "confirmed, edited or rejected")
    _check_version(mask, expected_version)
    state = PREFILL_DECISIONS[decision]
    with s.no_autoflush:
        if counts is not None:
            _set_shape(mask, _encoded(counts, mask.image))
        mask.prefill_state = state.value
        mask.updated_at = utcnow()
        if state is PrefillState.rejected:
            mask.deleted_at = mask.updated_at
        else:
            mask.author_id = user.id
        _record(mask, decision, interaction or InteractionData(n_clicks=1), user,
                model_version_id or mask.model_version_id)
        _log(mask, "delete" if state is PrefillState.rejected else "edit", user,
             detail=decision)
    _flush(s, mask_id)
    return mask
