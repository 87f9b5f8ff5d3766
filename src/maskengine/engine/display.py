"""Masks at the size the annotator's screen draws them, and at full resolution at accept.

A click's cost must not grow with the picture. The decoder answers with low-res logits
(L x L) over a *frame*: the whole image, or the zoomed-in region it was asked on. Upsampling
them to the frame's full size costs as much as the picture is big (27 million pixels per
candidate for 6000 x 4500); the screen shows about a million. So a prediction samples the
logits only at the screen's pixels (`render_view`): the image pixels on screen
(`Display.view`; nothing outside the frame), at the size it is drawn (`Display.size`),
never finer than the image's own pixels. Each screen pixel takes the value of the
full-resolution pixel under its centre, with the same upsampling as `Sam.postprocess_masks`,
so the view is the full-resolution mask sampled, up to float rounding.

The full-resolution mask is made once, when the annotator accepts (`full_mask`): from the
chosen candidate's logits (the page holds them anyway, to send back as the next
`mask_input`), its frame, and the brush and eraser strokes made on it (`apply_strokes`).
That needs no embedding and no decoder, only the model's input size, so any server process
can do it, after a restart too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..modeling.sam import postprocess_masks, unpad_masks
from ..transforms import preprocess_shape
from .errors import InvalidField

Box = tuple[int, int, int, int]  # x0, y0, x1, y1 in image pixels, end-exclusive
MAX_DISPLAY = 16384  # screen pixels on a side (a browser canvas holds at most 32767)
MAX_STROKE_PIXELS = 1_000_000_000  # pixels all the strokes of one mask may touch


@dataclass(frozen=True)
class Display:
    """What the screen shows: `view` (x0, y0, x1, y1), the image pixels on screen (None: the
    whole image), drawn at `size` (width, height) screen pixels."""

    size: tuple[int, int]
    view: tuple[float, float, float, float] | None = None


@dataclass(frozen=True)
class MaskView:
    """Where a display-size mask lies: `box`, the image pixels it covers, drawn as a bitmap
    of `size` (height, width)."""

    box: Box
    size: tuple[int, int]


def check_display(height: int, width: int, display: Display, field: tuple = ("body",)) -> None:
    """InvalidField naming `field` + ("display", ...) unless the display fits the image."""
    w, h = display.size
    if not (1 <= w <= MAX_DISPLAY and 1 <= h <= MAX_DISPLAY):
        raise InvalidField((*field, "display", "size"), f"display size {w} x {h} must be "
                           f"1..{MAX_DISPLAY} pixels on each side")
    if display.view is not None:
        x0, y0, x1, y1 = display.view
        if not (0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height):
            raise InvalidField((*field, "display", "view"), f"view {list(display.view)} is not "
                               f"a box inside the image (0..{width} x 0..{height})")


def mask_view(display: Display, height: int, width: int) -> MaskView:
    """The image pixels on screen (whole pixels) and the bitmap size that draws them at the
    screen's resolution, at most one bitmap pixel per image pixel. The whole view, not only
    the frame's part of it, so brush strokes beside a zoomed region show too."""
    vx0, vy0, vx1, vy1 = display.view or (0, 0, width, height)
    scale = min(1.0, display.size[0] / (vx1 - vx0), display.size[1] / (vy1 - vy0))
    x0, y0 = max(0, math.floor(vx0)), max(0, math.floor(vy0))
    x1, y1 = min(width, math.ceil(vx1)), min(height, math.ceil(vy1))
    size = (max(1, round((y1 - y0) * scale)), max(1, round((x1 - x0) * scale)))
    return MaskView((x0, y0, x1, y1), size)


def in_image(bbox: tuple[float, ...], area: int,
             view: MaskView) -> tuple[tuple[float, float, float, float], int]:
    """The box (XYWH) and area of a display mask of `view`, in image pixels (estimates:
    each bitmap pixel stands for the image pixels it covers)."""
    (x0, y0, x1, y1), (h, w) = view.box, view.size
    sx, sy = (x1 - x0) / w, (y1 - y0) / h
    bx, by, bw, bh = bbox
    return (x0 + bx * sx, y0 + by * sy, bw * sx, bh * sy), round(area * sx * sy)


def _centres(start: int, stop: int, n: int) -> torch.Tensor:
    """Indices of the image pixels under the centres of n screen pixels over start..stop."""
    pos = start + (torch.arange(n, dtype=torch.float64) + 0.5) * (stop - start) / n
    return pos.floor().clamp(start, stop - 1)


@torch.inference_mode()
def render_view(low_res: torch.Tensor, image_size: int, frame: Box, view: MaskView,
                threshold: float = 0.0) -> np.ndarray:
    """low_res: B x L x L float32 logits over `frame` -> B x h x w bool masks of
    `view.box` at `view.size`: each pixel the full-resolution mask's value at the image
    pixel under its centre (False outside the frame). Costs the view's pixels, not the
    frame's."""
    fh, fw = frame[3] - frame[1], frame[2] - frame[0]
    x = unpad_masks(low_res[:, None], image_size, preprocess_shape(fh, fw, image_size))
    (bx0, by0, bx1, by1), (h, w) = view.box, view.size
    ys, xs = _centres(by0, by1, h) - frame[1], _centres(bx0, bx1, w) - frame[0]
    # Normalised positions of those pixels' centres in the frame: with align_corners=False
    # grid_sample reads the input frame where F.interpolate to fh x fw would.
    grid = torch.stack(torch.meshgrid((2 * xs + 1) / fw - 1, (2 * ys + 1) / fh - 1,
                                      indexing="xy"), dim=-1).float()
    out = F.grid_sample(x, grid[None].expand(len(x), -1, -1, -1), mode="bilinear",
                        padding_mode="border", align_corners=False)[:, 0] > threshold
    inside = ((ys >= 0) & (ys < fh))[:, None] & ((xs >= 0) & (xs < fw))[None, :]
    return (out & inside).numpy()


@torch.inference_mode()
def full_mask(low_res: torch.Tensor, image_size: int, frame: Box, height: int, width: int,
              threshold: float = 0.0) -> np.ndarray:
    """low_res: L x L float32 logits over `frame` -> the H x W bool mask of the image:
    `Sam.postprocess_masks` over the frame, nothing outside it."""
    fh, fw = frame[3] - frame[1], frame[2] - frame[0]
    logits = postprocess_masks(low_res[None, None], image_size,
                               preprocess_shape(fh, fw, image_size), (fh, fw))
    out = np.zeros((height, width), dtype=bool)
    out[frame[1]:frame[3], frame[0]:frame[2]] = (logits[0, 0] > threshold).numpy()
    return out


@dataclass(frozen=True)
class Stroke:
    """One brush (value True) or eraser (False) stroke: discs of `radius` image pixels
    centred on `points` (x, y), as the page paints them."""

    value: bool
    radius: float
    points: tuple[tuple[float, float], ...]


def check_strokes(strokes: list[Stroke], height: int, width: int,
                  field: tuple = ("body", "shape", "strokes")) -> None:
    """InvalidField when the strokes would touch more than MAX_STROKE_PIXELS pixels."""
    work = sum(len(s.points) * min((2 * math.ceil(s.radius) + 1) ** 2, height * width)
               for s in strokes)
    if work > MAX_STROKE_PIXELS:
        raise InvalidField(field, f"the strokes cover {work} pixels (discs of radius x "
                           f"points); at most {MAX_STROKE_PIXELS} are allowed")


def apply_strokes(mask: np.ndarray, strokes: list[Stroke]) -> None:
    """Paint `strokes` in order onto the H x W bool `mask`: pixel (px, py) is inside a disc
    when (px - x)^2 + (py - y)^2 <= r^2 (the page's rule)."""
    h, w = mask.shape
    for s in strokes:
        r = s.radius
        for x, y in s.points:
            if not (-r <= x <= w - 1 + r and -r <= y <= h - 1 + r):
                continue  # the disc misses the image (and far-off numbers stay out of arange)
            ys = np.arange(max(0, math.floor(y - r)), min(h - 1, math.ceil(y + r)) + 1)
            xs = np.arange(max(0, math.floor(x - r)), min(w - 1, math.ceil(x + r)) + 1)
            if not len(ys) or not len(xs):
                continue
            disc = (ys[:, None] - y) ** 2 + (xs[None, :] - x) ** 2 <= r * r
            part = mask[ys[0]:ys[-1] + 1, xs[0]:xs[-1] + 1]
            part[disc] = s.value
