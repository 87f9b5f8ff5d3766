"""Masks the server draws from a candidate's low-res logits: for a display (a view drawn
again after a zoom or a pan) and at full resolution when the annotator accepts.

Both need only the logits, the frame they cover (the image or the region they were
predicted on) and the input size of the model version that made them: no embedding, no
decoder, so any server process can do it (see `engine.display`).
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass

import numpy as np
import torch
from sqlalchemy.orm import Session

from ..config import SamConfig
from ..engine import rle
from ..engine.display import (
    Box,
    Display,
    Stroke,
    apply_strokes,
    check_display,
    check_strokes,
    full_mask,
    in_image,
    mask_view,
    render_view,
)
from ..engine.errors import InvalidField
from ..engine.models import Image, ModelVersion
from ..engine.prompts import Prompt, check_region
from .deps import AppState
from .schemas import DisplayIn, RenderOut, ShapeIn


@dataclass(frozen=True)
class Logits:
    """One candidate's low-res logits (L x L float32) over `frame`, for a model whose input
    size is `image_size`."""

    values: torch.Tensor
    frame: Box
    image_size: int


def _input_size(state: AppState, session: Session, version_id: int | None,
                field: tuple) -> tuple[int, int]:
    """(image_size, low_res_size) of a model version (default: the one serving)."""
    for seg in [state.segmenter, *state.retired]:
        if version_id in (None, seg.model_version_id):
            return seg.model.config.image_size, seg.low_res_size
    mv = session.get(ModelVersion, version_id)
    if mv is None:
        raise InvalidField((*field, "model_version_id"),
                           f"model version {version_id} does not exist")
    try:
        config = SamConfig(**json.loads(mv.config_json))
    except (TypeError, ValueError) as exc:
        raise InvalidField((*field, "model_version_id"), f"model version {version_id} has "
                           f"no usable config: {exc}") from exc
    return config.image_size, config.low_res_size


def logits(state: AppState, session: Session, image: Image, *, low_res: str,
           region: tuple | None, version_id: int | None, field: tuple) -> Logits:
    """A request's logits, checked: L x L float16 for the version that made them, and a
    region inside the image."""
    image_size, n = _input_size(state, session, version_id, field)
    raw = base64.b64decode(low_res)
    if len(raw) != 2 * n * n:
        raise InvalidField((*field, "low_res"), f"low_res must hold {n}x{n} float16 values "
                           f"({2 * n * n} bytes), got {len(raw)} bytes")
    values = np.frombuffer(raw, dtype="<f2").astype(np.float32).reshape(n, n)
    if not np.isfinite(values).all():
        raise InvalidField((*field, "low_res"), "low_res holds NaN or infinite values")
    ref = state.image_ref(image)
    try:
        checked = check_region(ref, region, Prompt())
    except InvalidField as exc:
        raise InvalidField((*field, "region"), exc.message) from exc
    frame = checked or (0, 0, image.width, image.height)
    return Logits(torch.from_numpy(values), frame, image_size)


def display_of(body: DisplayIn, image: Image, field: tuple) -> Display:
    display = Display(size=tuple(body.size), view=body.view)
    check_display(image.height, image.width, display, field)
    return display


def render(state: AppState, image: Image, lg: Logits, display: Display) -> RenderOut:
    """The candidate drawn for `display`: the image pixels on screen at the screen's
    resolution."""
    view = mask_view(display, image.height, image.width)
    seg = state.segmenter
    bits = seg.run(render_view, lg.values[None], lg.image_size, lg.frame, view,
                   seg.model.mask_threshold)[0]
    enc = rle.encode(bits)
    bbox, area = in_image(enc.bbox, enc.area, view)
    return RenderOut(image_id=image.id, mask_box=list(view.box), mask_size=list(view.size),
                     counts=enc.counts, bbox=list(bbox), area=area)


def shape_mask(state: AppState, session: Session, image: Image, shape: ShapeIn,
               base: str | None = None, field: tuple = ("body", "shape")) -> rle.Encoded:
    """The full-resolution mask `shape` describes: its logits upsampled over their frame
    (else the saved mask `base`, compressed counts, else nothing), then its strokes."""
    h, w = image.height, image.width
    strokes = [Stroke(bool(s.value), s.radius, tuple(s.points)) for s in shape.strokes]
    check_strokes(strokes, h, w, (*field, "strokes"))
    seg = state.segmenter
    if shape.low_res is not None:
        lg = logits(state, session, image, low_res=shape.low_res, region=shape.region,
                    version_id=shape.model_version_id, field=field)
        mask = seg.run(full_mask, lg.values, lg.image_size, lg.frame, h, w,
                       seg.model.mask_threshold)
    elif base is not None:
        mask = rle.decode(base, h, w).copy()
    else:
        mask = np.zeros((h, w), dtype=bool)
    apply_strokes(mask, strokes)
    enc = rle.encode(mask)
    if enc.area == 0:
        raise InvalidField(field, "the mask is empty")
    return enc
