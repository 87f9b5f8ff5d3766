"""Request and response bodies of the annotation API (the JSON boundary).

Split as create / update / public. Coordinates are original-image pixels, (x, y) with x to
the right and y down; masks are COCO RLE of the whole image (`counts` compressed string;
uploads may also send uncompressed run lengths, column-major, starting with zeros).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..engine.display import MAX_DISPLAY
from ..engine.models import ImageStatus, MaskSource, ReviewState

Finite = Annotated[float, Field(allow_inf_nan=False)]
# Ids and counters are INTEGER columns, 32-bit on PostgreSQL: a larger number is refused at
# the door (422) rather than by the database (500).
MAX_INT = 2**31 - 1
DbInt = Annotated[int, Field(ge=0, le=MAX_INT)]
DbId = Annotated[int, Field(ge=1, le=MAX_INT)]


def _check_logits(v: str | None, name: str) -> str | None:
    """A base64 string of float16 values (the L x L low-res logits), or None."""
    if v is not None:
        try:
            raw = base64.b64decode(v, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ValueError(f"{name} must be base64") from exc
        if len(raw) % 2:
            raise ValueError(f"{name} must hold float16 values (an even byte count)")
    return v


Box4 = tuple[Finite, Finite, Finite, Finite]
ScreenSide = Annotated[int, Field(ge=1, le=MAX_DISPLAY)]


class DisplayIn(BaseModel):
    """What the page's screen shows, so masks come back at its resolution."""

    size: tuple[ScreenSide, ScreenSide] = Field(
        description="width, height in screen pixels that `view` is drawn at")
    view: Box4 | None = Field(
        None, description="x0, y0, x1, y1: the image pixels on screen (default: the whole "
        "image)")

    @field_validator("view")
    @classmethod
    def _view_order(cls, v: tuple[float, ...] | None) -> tuple[float, ...] | None:
        if v is not None and (v[2] <= v[0] or v[3] <= v[1]):
            raise ValueError("view must be x0, y0, x1, y1 with x1 > x0 and y1 > y0")
        return v


class PointIn(BaseModel):
    x: Finite
    y: Finite
    label: Literal[0, 1] = Field(description="1 positive (object), 0 negative (background)")


class PredictIn(BaseModel):
    points: list[PointIn] = Field(default_factory=list, max_length=64)
    box: tuple[Finite, Finite, Finite, Finite] | None = Field(
        None, description="x0, y0, x1, y1 in image pixels"
    )
    mask_input: str | None = Field(
        None, description="base64 of the L x L float16 low-res logits (little endian) of "
        "the candidate chosen last time, fed back to refine it",
    )
    multimask: bool = Field(True, description="3 candidates (ambiguity-aware) or 1")
    region: tuple[Finite, Finite, Finite, Finite] | None = Field(
        None, description="x0, y0, x1, y1: ask on this crop of the image (what a zoomed-in "
        "screen shows) at the model's full input resolution; prompts must lie inside it, "
        "and mask_input must come from an answer for the same region, unless "
        "`mask_region` says which frame it came from")
    mask_region: tuple[Finite, Finite, Finite, Finite] | None = Field(
        None, description="x0, y0, x1, y1: the region of the answer mask_input came from "
        "(the whole image: 0, 0, width, height) when it is not `region` (a prompt outside "
        "that answer's crop): the logits are resampled into this request's frame")
    display: DisplayIn | None = Field(None, description="masks come back covering the image "
        "pixels on screen at the screen's resolution (`mask_box`, `mask_size`; nothing "
        "outside `region`); without it, full-resolution masks of the whole image")

    @field_validator("box")
    @classmethod
    def _box_order(cls, v: tuple[float, ...] | None) -> tuple[float, ...] | None:
        if v is not None and (v[2] < v[0] or v[3] < v[1]):
            raise ValueError("box must be x0, y0, x1, y1 with x1 >= x0 and y1 >= y0")
        return v

    @field_validator("mask_input")
    @classmethod
    def _base64(cls, v: str | None) -> str | None:
        return _check_logits(v, "mask_input")

    @model_validator(mode="after")
    def _some_prompt(self) -> PredictIn:
        if not self.points and self.box is None and self.mask_input is None:
            raise ValueError("give at least one prompt: points, box or mask_input")
        return self


class CandidateOut(BaseModel):
    counts: str = Field(description="COCO RLE of the whole image, or with `display` of the "
                        "mask_size bitmap that covers mask_box")
    bbox: list[float] = Field(description="x, y, width, height in image pixels (with "
                              "`display`: estimated from the display mask)")
    area: int = Field(description="image pixels (with `display`: estimated)")
    score: float = Field(description="predicted IoU")
    low_res: str = Field(description="base64 L x L float16 logits; send back as mask_input")


class PredictOut(BaseModel):
    image_id: int
    size: list[int] = Field(description="height, width")
    model_version_id: int
    low_res_size: int
    region: list[int] | None = Field(
        None, description="the crop the model saw (x0, y0, x1, y1); null: the whole image. "
        "The request's region, or one the focus pass chose around a small mask: send it as "
        "`region` with the next prompt on this mask")
    mask_box: list[int] | None = Field(
        None, description="with `display`: the image pixels (x0, y0, x1, y1) the masks cover")
    mask_size: list[int] | None = Field(
        None, description="with `display`: height, width of the masks' bitmap")
    candidates: list[CandidateOut]


class RenderIn(BaseModel):
    """A candidate's logits drawn again for another view (after a zoom or a pan)."""

    model_config = ConfigDict(extra="forbid")
    low_res: str = Field(description="base64 L x L float16 logits of a candidate")
    region: Box4 | None = Field(None, description="the region they were predicted on")
    model_version_id: DbId | None = Field(
        None, description="the version that made them (default: the one serving)")
    display: DisplayIn

    @field_validator("low_res")
    @classmethod
    def _base64(cls, v: str) -> str:
        return _check_logits(v, "low_res")


class RenderOut(BaseModel):
    image_id: int
    mask_box: list[int]
    mask_size: list[int] = Field(description="height, width")
    counts: str
    bbox: list[float]
    area: int


class EventIn(BaseModel):
    """One step of an interaction; `t` is seconds since the annotator started the mask."""

    model_config = ConfigDict(extra="forbid")
    t: Finite = Field(ge=0)
    type: Literal["point", "box", "brush", "erase", "undo", "cycle", "clear", "select"]
    x: Finite | None = None
    y: Finite | None = None
    label: Literal[0, 1] | None = None
    box: tuple[Finite, Finite, Finite, Finite] | None = None
    radius: Finite | None = Field(None, ge=0)
    candidate: int | None = Field(None, ge=0, le=255)

    @model_validator(mode="after")
    def _has_its_fields(self) -> EventIn:
        missing = [f for f in EVENT_FIELDS[self.type] if getattr(self, f) is None]
        if missing:
            raise ValueError(f"a {self.type!r} event needs {', '.join(missing)}")
        return self


# What each kind of event must carry (the page sends these; exports and statistics read them).
EVENT_FIELDS: dict[str, tuple[str, ...]] = {
    "point": ("x", "y", "label"), "box": ("box",), "brush": ("x", "y"), "erase": ("x", "y"),
    "cycle": ("candidate",), "undo": (), "clear": (), "select": (),
}


class InteractionIn(BaseModel):
    events: list[EventIn] = Field(default_factory=list, max_length=20000)
    n_clicks: int = Field(0, ge=0, le=MAX_INT)
    seconds: Finite = Field(0.0, ge=0)


Counts = str | list[Annotated[int, Field(ge=0)]]
MAX_STROKE_POINTS = 20000


class StrokeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    value: Literal[0, 1] = Field(description="1 brush, 0 eraser")
    radius: Finite = Field(ge=0, le=4096, description="image pixels")
    points: list[tuple[Finite, Finite]] = Field(
        min_length=1, max_length=MAX_STROKE_POINTS, description="disc centres, image (x, y)")


class ShapeIn(BaseModel):
    """The mask to save, made by the server at full resolution: the chosen candidate's
    low-res logits upsampled over their frame (none: start from the saved mask when
    editing, from nothing when creating), then the brush and eraser strokes in order."""

    model_config = ConfigDict(extra="forbid")
    low_res: str | None = Field(None, description="base64 L x L float16 logits of the "
                                "candidate shown (a predict answer's `low_res`)")
    region: Box4 | None = Field(None, description="the region those logits were "
                                "predicted on (null: the whole image)")
    model_version_id: DbId | None = Field(
        None, description="the version that made the logits (default: the one serving)")
    strokes: list[StrokeIn] = Field(default_factory=list, max_length=MAX_STROKE_POINTS)

    @field_validator("low_res")
    @classmethod
    def _base64(cls, v: str | None) -> str | None:
        return _check_logits(v, "low_res")

    @model_validator(mode="after")
    def _few_points(self) -> ShapeIn:
        n = sum(len(s.points) for s in self.strokes)
        if n > MAX_STROKE_POINTS:
            raise ValueError(f"strokes hold {n} points; at most {MAX_STROKE_POINTS}")
        return self


class MaskCreate(BaseModel):
    counts: Counts | None = Field(None, description="the mask as COCO RLE of the image")
    shape: ShapeIn | None = Field(None, description="or: the mask for the server to make")
    source: MaskSource = MaskSource.manual
    model_version_id: DbId | None = None
    predicted_iou: Finite | None = None
    interaction: InteractionIn | None = None
    category_id: int | None = Field(None, description="the mask's class (projects with classes)")

    @model_validator(mode="after")
    def _one_shape(self) -> MaskCreate:
        if (self.counts is None) == (self.shape is None):
            raise ValueError("give the mask as counts or as shape (one of them)")
        return self


class MaskUpdate(BaseModel):
    version: DbInt = Field(description="the version you edited; a stale one gives 409")
    counts: Counts | None = None
    shape: ShapeIn | None = Field(None, description="instead of counts (without low_res, "
                                  "the strokes apply to the saved mask)")
    interaction: InteractionIn | None = None
    category_id: int | None = Field(
        None, description="a new class; given as null it clears the class, left out it stays")

    @model_validator(mode="after")
    def _one_shape(self) -> MaskUpdate:
        if self.counts is not None and self.shape is not None:
            raise ValueError("give counts or shape, not both")
        return self


class CategoryPublic(BaseModel):
    id: int
    name: str


class CategoriesIn(BaseModel):
    names: list[str] = Field(min_length=1, max_length=1000)


class ReviewIn(BaseModel):
    version: DbInt
    state: ReviewState


class MaskPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    image_id: int
    counts: str
    size: list[int] = Field(description="height, width")
    bbox: list[float]
    area: int
    source: str
    model_version_id: int | None
    predicted_iou: float | None
    stability_score: float | None = None
    author_id: int | None
    updated_by_id: int | None = Field(description="who made the latest change")
    review_state: str
    category_id: int | None = None
    prefill_state: str = Field("", description="pre-filled masks (stage 2): proposed, "
                               "confirmed, edited or rejected; '' for other masks")
    meta: dict = Field(default_factory=dict, description="provenance of a proposed mask "
                       "(detector version and score of a pre-filled one, generator settings of an "
                       "automatic one)")
    version: int
    created_at: dt.datetime
    updated_at: dt.datetime
    deleted: bool


class ImagePublic(BaseModel):
    id: int
    file_name: str
    width: int
    height: int
    split: str
    status: str
    n_masks: int | None = None  # live masks (in lists)
    n_pending: int | None = None  # live masks waiting for review (in lists)
    position: int | None = None  # 1-based place in queue order (one image's record)
    total: int | None = None  # images in the project (one image's record)


class ImagePage(BaseModel):
    total: int
    images: list[ImagePublic]


class StatusIn(BaseModel):
    status: ImageStatus


class EmbeddingOut(BaseModel):
    image_id: int
    model_version_id: int
    ready: bool


class UserPublic(BaseModel):
    id: int
    name: str
    role: str


class ModelPublic(BaseModel):
    id: int
    name: str
    round: int
    image_size: int
    low_res_size: int


class Health(BaseModel):
    status: str
