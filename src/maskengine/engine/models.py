"""Tables of a project store (SQLAlchemy 2 ORM).

The schema is created and changed only by the Alembic migrations in `migrations/`; these
classes must match the latest migration (a test checks it).

Coordinates are original-image pixels; masks are COCO RLE (column-major counts, compressed
string) of the full image, `bbox` is XYWH.
"""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import (
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Role(str, enum.Enum):
    annotator = "annotator"
    reviewer = "reviewer"
    admin = "admin"


class MaskSource(str, enum.Enum):
    manual = "manual"  # made by a person with the interactive model (stage 1)
    prefill = "prefill"  # proposed by the detector, accepted by a person (stage 2)
    automatic = "automatic"  # grid prompting, no person (stage 3)


class ReviewState(str, enum.Enum):
    pending = "pending"
    approved = "approved"
    rejected = "rejected"


class PrefillState(str, enum.Enum):
    """Where a pre-filled mask (stage 2) stands. Only confirmed and edited ones are accepted
    masks (trained on, exported); proposed ones wait for a person; rejected ones are
    soft-deleted and kept as the detector's negatives. Other masks hold ""."""

    proposed = "proposed"
    confirmed = "confirmed"
    edited = "edited"
    rejected = "rejected"


class ImageStatus(str, enum.Enum):
    todo = "todo"
    done = "done"


class Base(DeclarativeBase):
    pass


# Enums are stored as plain strings (no native ENUM type) so that adding a value later
# needs no migration on PostgreSQL.


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    role: Mapped[str] = mapped_column(String(20), default=Role.annotator.value)
    # sha256 of the API token; the token itself is shown once and never stored.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ModelVersion(Base):
    """One trained model: round 0 is the starting model, round n is retrained on the masks
    collected up to round n. `key` identifies the weights (config + checkpoint hash) so the
    same model is registered once; embedding caches are keyed by `id`."""

    __tablename__ = "model_versions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    round: Mapped[int] = mapped_column(Integer, default=0)
    name: Mapped[str] = mapped_column(String(200))
    config_json: Mapped[str] = mapped_column(Text)
    checkpoint: Mapped[str | None] = mapped_column(Text, nullable=True)
    checkpoint_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"), nullable=True)
    metrics_json: Mapped[str] = mapped_column(Text, default="{}")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # The served model is the one promoted last; a round that made the validation metrics
    # worse stays unpromoted (NULL) and `note` says why.
    promoted_at: Mapped[dt.datetime | None] = mapped_column(
        DateTime(timezone=True), nullable=True)
    note: Mapped[str] = mapped_column(Text, default="", server_default="")


class Category(Base):
    """An optional class of a project's masks (`init --classes`, `maskengine classes`); a
    project without categories is class-agnostic."""

    __tablename__ = "categories"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Image(Base):
    __tablename__ = "images"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # Relative to the project's images folder when inside it, else absolute.
    path: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    split: Mapped[str] = mapped_column(String(10), default="train")
    status: Mapped[str] = mapped_column(String(10), default=ImageStatus.todo.value, index=True)
    added_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    masks: Mapped[list[Mask]] = relationship(back_populates="image")


class Mask(Base):
    __tablename__ = "masks"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id"), index=True)
    rle_counts: Mapped[str] = mapped_column(Text)  # COCO compressed counts; size = image's
    bbox_x: Mapped[float] = mapped_column(Float)
    bbox_y: Mapped[float] = mapped_column(Float)
    bbox_w: Mapped[float] = mapped_column(Float)
    bbox_h: Mapped[float] = mapped_column(Float)
    area: Mapped[int] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(String(20), default=MaskSource.manual.value)
    model_version_id: Mapped[int | None] = mapped_column(
        ForeignKey("model_versions.id"), nullable=True
    )
    predicted_iou: Mapped[float | None] = mapped_column(Float, nullable=True)
    stability_score: Mapped[float | None] = mapped_column(Float, nullable=True)
    # Provenance of a proposed mask (JSON object): generator settings of an automatic mask,
    # detector version and score of a pre-filled one; "{}" for manual masks.
    meta_json: Mapped[str] = mapped_column(Text, default="{}", server_default="{}")
    author_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    review_state: Mapped[str] = mapped_column(String(20), default=ReviewState.pending.value)
    reviewer_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    category_id: Mapped[int | None] = mapped_column(ForeignKey("categories.id"), nullable=True)
    # Who made the latest change (create, edit, delete or review); `changes` holds them all.
    updated_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    deleted_at: Mapped[dt.datetime | None] = mapped_column(
        DateTime(timezone=True), nullable=True
    )
    # "" unless the mask was pre-filled (stage 2): then a PrefillState value.
    prefill_state: Mapped[str] = mapped_column(String(20), default="", server_default="")
    # Optimistic locking: every UPDATE checks and bumps it, so a save based on a stale copy
    # fails instead of overwriting someone else's edit.
    version: Mapped[int] = mapped_column(Integer, default=1)

    image: Mapped[Image] = relationship(back_populates="masks")
    interactions: Mapped[list[Interaction]] = relationship(
        back_populates="mask", order_by="Interaction.id"
    )
    changes: Mapped[list[MaskChange]] = relationship(
        back_populates="mask", order_by="MaskChange.id"
    )

    __mapper_args__ = {"version_id_col": version}


class DetectorVersion(Base):
    """A one-class "object" detector (stage 2) trained on the accepted masks' boxes; it reads
    the image embeddings of model version `model_version_id`, so it serves that version
    only. `weights` is relative to the project when inside it; `metrics_json` holds the
    training figures and AP50 / recall on the validation images."""

    __tablename__ = "detector_versions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    config_json: Mapped[str] = mapped_column(Text)
    weights: Mapped[str] = mapped_column(Text)
    weights_sha256: Mapped[str] = mapped_column(String(64))
    metrics_json: Mapped[str] = mapped_column(Text, default="{}")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class PrefilledImage(Base):
    """An image a detector version has pre-filled (so a second run skips it): boxes
    detected, masks proposed, seconds taken."""

    __tablename__ = "prefilled_images"
    __table_args__ = (UniqueConstraint("image_id", "detector_version_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id"))
    detector_version_id: Mapped[int] = mapped_column(ForeignKey("detector_versions.id"))
    detections: Mapped[int] = mapped_column(Integer)
    proposed: Mapped[int] = mapped_column(Integer)
    seconds: Mapped[float] = mapped_column(Float)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Interaction(Base):
    """The prompts and strokes that made (kind "create") or changed (kind "edit") a mask, or a
    person's decision on a pre-filled one (kind "confirm" or "reject"; an edit of a
    pre-filled mask is an "edit").
    `events_json` is a JSON list of {"t": seconds since start, "type": ...} records."""

    __tablename__ = "interactions"
    __table_args__ = (UniqueConstraint("mask_id", "seq"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    mask_id: Mapped[int] = mapped_column(ForeignKey("masks.id"), index=True)
    seq: Mapped[int] = mapped_column(Integer, default=0)
    kind: Mapped[str] = mapped_column(String(10), default="create")
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    model_version_id: Mapped[int | None] = mapped_column(
        ForeignKey("model_versions.id"), nullable=True
    )
    events_json: Mapped[str] = mapped_column(Text, default="[]")
    n_clicks: Mapped[int] = mapped_column(Integer, default=0)
    seconds: Mapped[float] = mapped_column(Float, default=0.0)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    mask: Mapped[Mask] = relationship(back_populates="interactions")


class MaskChange(Base):
    """One change of a mask and who made it: kind "create", "edit", "delete" or "review";
    `version` is the mask's version after the change."""

    __tablename__ = "mask_changes"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    mask_id: Mapped[int] = mapped_column(ForeignKey("masks.id"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(10))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    detail: Mapped[str] = mapped_column(String(20), default="", server_default="")
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    mask: Mapped[Mask] = relationship(back_populates="changes")
