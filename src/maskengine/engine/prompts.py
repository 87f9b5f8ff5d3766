"""What a prompt request holds, checked: the image it is on, its points, box and fed-back
logits (`Prompt`), and the crops it may be asked on (`region`, `mask_region`). Request
errors are `InvalidField`s naming the request field."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..predictor import check_prompts
from .errors import InvalidField


@dataclass(frozen=True)
class ImageRef:
    """What the segmenter needs of an image record: file, content hash, size."""

    id: int
    path: Path
    sha256: str
    height: int
    width: int


@dataclass(frozen=True)
class Prompt:
    """Prompts in the original image frame. points N x 2 (x, y) pixels with labels N
    (1 positive, 0 negative); box (x0, y0, x1, y1); mask_input L x L float32 logits (the
    `low_res` of an earlier candidate)."""

    points: np.ndarray | None = None
    labels: np.ndarray | None = None
    box: np.ndarray | None = None
    mask_input: np.ndarray | None = None
    multimask: bool = True


def make_prompt(
    image: ImageRef, *, points: list[tuple[float, float, int]], box: tuple | None,
    mask_input: bytes | None, low_res_size: int, multimask: bool = True,
) -> Prompt:
    """Check prompts against the image and build a `Prompt`. Raises InvalidField naming the
    field: points and boxes must lie inside the image (0 <= x <= W, 0 <= y <= H) and
    mask_input must hold low_res_size^2 float16 values."""
    h, w = image.height, image.width
    for i, (x, y, _) in enumerate(points):
        for name, v, hi in (("x", x, w), ("y", y, h)):
            if not 0 <= v <= hi:
                raise InvalidField(("body", "points", i, name),
                                   f"point {i} {name}={v} is outside the image (0..{hi})")
    if box is not None:
        for j, v in enumerate(box):
            hi = w if j % 2 == 0 else h
            if not 0 <= v <= hi:
                raise InvalidField(("body", "box", j),
                                   f"box coordinate {j} = {v} is outside the image (0..{hi})")
    mask = None
    if mask_input is not None:
        n = low_res_size * low_res_size
        if len(mask_input) != 2 * n:
            raise InvalidField(
                ("body", "mask_input"),
                f"mask_input must hold {low_res_size}x{low_res_size} float16 values "
                f"({2 * n} bytes), got {len(mask_input)} bytes",
            )
        mask = np.frombuffer(mask_input, dtype="<f2").astype(np.float32)
        mask = mask.reshape(low_res_size, low_res_size)
    pts = np.array([(x, y) for x, y, _ in points], dtype=np.float64).reshape(-1, 2)
    labels = np.array([lab for _, _, lab in points], dtype=np.int64)
    prompt = Prompt(points=pts if len(pts) else None, labels=labels if len(pts) else None,
                    box=None if box is None else np.asarray(box, dtype=np.float64),
                    mask_input=mask, multimask=multimask)
    _checked(prompt, low_res_size)
    return prompt


Region = tuple[int, int, int, int]  # x0, y0, x1, y1: a crop of the image, in its pixels
MIN_REGION = 8  # pixels a region's side needs at least


def _frame(image: ImageRef, box: tuple, name: str, min_side: int = MIN_REGION) -> Region:
    """A request's crop box as whole pixels inside the image, at least `min_side` on a
    side; InvalidField otherwise."""
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    if not (0 <= x0 < x1 <= image.width and 0 <= y0 < y1 <= image.height):
        raise InvalidField(("body", name), f"{name} {list(box)} is not a box inside "
                           f"the image (0..{image.width} x 0..{image.height})")
    if min(x1 - x0, y1 - y0) < min_side:
        raise InvalidField(("body", name), f"{name} {list(box)} is under "
                           f"{min_side} pixels on a side")
    return x0, y0, x1, y1


def check_mask_region(image: ImageRef, mask_region: tuple | None) -> Region | None:
    """A request's `mask_region` (the frame its mask_input was made in: an earlier answer's
    region, or the whole image) as whole pixels inside the image; None when not given."""
    # Any frame an answer was made on: the whole image, or a crop (even a small image's).
    return None if mask_region is None else _frame(image, mask_region, "mask_region", 1)


def check_region(image: ImageRef, region: tuple | None, prompt: Prompt) -> Region | None:
    """A request's `region` (the part of the image on the annotator's screen) as whole
    pixels inside the image, with the prompts inside it; InvalidField otherwise. A region
    that is the whole image is None (the image's own embedding serves it)."""
    if region is None:
        return None
    x0, y0, x1, y1 = _frame(image, region, "region")
    inside = [] if prompt.points is None else list(prompt.points)
    if prompt.box is not None:
        inside += [prompt.box[:2], prompt.box[2:]]
    for x, y in inside:
        if not (x0 <= x <= x1 and y0 <= y <= y1):
            raise InvalidField(("body", "region"), f"prompt ({x:g}, {y:g}) lies outside the "
                               f"region {[x0, y0, x1, y1]}")
    if (x0, y0, x1, y1) == (0, 0, image.width, image.height):
        return None
    return x0, y0, x1, y1


def _in_region(prompt: Prompt, region: Region) -> Prompt:
    """The prompt in the frame of the crop `region` (mask_input is already in it)."""
    shift = np.array(region[:2], dtype=np.float64)
    return Prompt(points=None if prompt.points is None else prompt.points - shift,
                  labels=prompt.labels,
                  box=None if prompt.box is None else prompt.box - np.tile(shift, 2),
                  mask_input=prompt.mask_input, multimask=prompt.multimask)


# check_prompts names its arguments; the request's fields are named differently.
_FIELDS = {"point_coords": "points", "point_labels": "points", "box": "box",
           "mask_input": "mask_input"}


def _checked(prompt: Prompt, low_res_size: int) -> tuple:
    """`predictor.check_prompts` on a Prompt (one prompt, original frame); InvalidField
    naming the request field on failure."""
    mask = None if prompt.mask_input is None else prompt.mask_input[None]
    try:
        return check_prompts(prompt.points, prompt.labels, prompt.box, mask, batched=False,
                             low_res=low_res_size)
    except ValueError as exc:
        field = _FIELDS.get(str(exc).split(" ", 1)[0], "prompt")
        raise InvalidField(("body", field), str(exc)) from exc
