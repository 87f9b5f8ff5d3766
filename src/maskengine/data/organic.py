"""Organic synthetic scenes: a second scene family, unlike `synthetic.generate_scene` in
shape, texture, size and background, for measuring how a model trained on one family
adapts to a domain it never saw.

Shapes: rings (a mask with a hole), crescents, thin curved worms, crosses / L- / T-shapes,
many-lobed flowers and nucleated cells. Parts sit *inside* their object (a nucleus, a bead on
a ring's band, a flower's heart; a worm's head at one end) and may hold a sub-part (a spot).
Textures: dots on a lattice, concentric rings, fine speckle, hatching. Background: a
two-colour radial gradient with speckle or hatching. Sizes: the config's size range
clipped to 8-40% of the short side (log-uniform), and twice the config's object count, so
a scene holds many small-to-medium objects. Later objects hide earlier ones.

Scene i with seed s is a pure function of (s, i), drawn from its own stream
`default_rng([s, i, 1])`, so it shares no random numbers with the shapes family.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import cv2
import numpy as np

from .scenes import (
    OBJECT,
    PART,
    SUBPART,
    Region,
    Scene,
    SceneConfig,
    bbox_slices,
    finish_scene,
    paint_object,
    pick_color,
    smooth_noise,
)

SIZE_RANGE = (0.08, 0.40)  # object diameter, x short side: the clip on the config's range
HW = tuple[int, int]
# A shape returns its body (H x W bool) and a maker of its part (None when it does not fit).
Shape = tuple[np.ndarray, Callable[[], "np.ndarray | None"]]


def _fill(hw: tuple[int, int], outline: np.ndarray, hole: np.ndarray | None = None
          ) -> np.ndarray:
    """H x W bool inside the K x 2 float (x, y) `outline`, minus the inside of `hole`."""
    canvas = np.zeros(hw, np.uint8)
    cv2.fillPoly(canvas, [np.round(outline * 4).astype(np.int32)], 1, cv2.LINE_8, shift=2)
    if hole is not None:
        cv2.fillPoly(canvas, [np.round(hole * 4).astype(np.int32)], 0, cv2.LINE_8, shift=2)
    return canvas.view(bool)  # 0/1 bytes: a bool view, no copy


def _ellipse(cx: float, cy: float, ax: float, ay: float, rot: float,
             lobes: int = 0, depth: float = 0.0) -> np.ndarray:
    """96 x 2 (x, y) points of an ellipse; with lobes > 0 its radius swells `lobes` times."""
    t = np.linspace(0, 2 * np.pi, 96, endpoint=False)
    rad = (1 + depth * np.cos(lobes * t)) / (1 + depth)
    x, y = ax * rad * np.cos(t), ay * rad * np.sin(t)
    c, s = math.cos(rot), math.sin(rot)
    return np.stack([cx + c * x - s * y, cy + s * x + c * y], axis=1)


def _rotate(cx: float, cy: float, rot: float, pts: np.ndarray) -> np.ndarray:
    c, s = math.cos(rot), math.sin(rot)
    return np.stack([cx + c * pts[:, 0] - s * pts[:, 1],
                     cy + s * pts[:, 0] + c * pts[:, 1]], axis=1)


def _inner_spot(rng: np.random.Generator, region: np.ndarray) -> np.ndarray | None:
    """An elliptic spot well inside `region` (H x W bool), or None if the region is too thin.
    It lies where the region is thickest, so the region rings it on most sides."""
    if not region.any():
        return None
    rows, cols = bbox_slices(region)
    crop = np.pad(region[rows, cols], 1).astype(np.uint8)
    dist = cv2.distanceTransform(crop, cv2.DIST_L2, 3)
    dmax = float(dist.max())
    if dmax < 3.0:
        return None
    cand_y, cand_x = np.nonzero(dist >= 0.75 * dmax)
    k = int(rng.integers(len(cand_y)))
    y, x = cand_y[k], cand_x[k]
    r = float(dist[y, x]) * rng.uniform(0.5, 0.8)
    spot = _fill(region.shape, _ellipse(x - 1 + cols.start, y - 1 + rows.start, r,
                                        r * rng.uniform(0.6, 1.0), rng.uniform(0, np.pi)))
    return spot & region


def _ring(rng: np.random.Generator, hw: HW, cx: float, cy: float, r: float
          ) -> Shape:
    """Annulus: an ellipse with an elliptic hole; part = an arc of the band."""
    ay, rot, f = r * rng.uniform(0.75, 1.0), rng.uniform(0, np.pi), rng.uniform(0.4, 0.68)
    off = (1 - f) * ay * 0.3 * rng.uniform(-1, 1, 2)
    body = _fill(hw, _ellipse(cx, cy, r, ay, rot),
                 _ellipse(cx + off[0], cy + off[1], r * f, ay * f, rot))

    def part() -> np.ndarray:
        a0, span = rng.uniform(0, 2 * np.pi), rng.uniform(0.6, 1.6)
        t = np.linspace(a0, a0 + span, 12)
        wedge = np.concatenate([[[cx, cy]], np.stack([cx + 2 * r * np.cos(t),
                                                      cy + 2 * r * np.sin(t)], 1)])
        return body & _fill(hw, wedge)
    return body, part


def _crescent(rng: np.random.Generator, hw: HW, cx: float, cy: float, r: float
              ) -> Shape:
    """A disk minus a shifted disk; part = a spot in its thick middle."""
    ay, rot = r * rng.uniform(0.8, 1.0), rng.uniform(0, np.pi)
    shift, f = r * rng.uniform(0.3, 0.55), rng.uniform(0.75, 0.95)
    body = _fill(hw, _ellipse(cx, cy, r, ay, rot))
    body &= ~_fill(hw, _ellipse(cx + shift * math.cos(rot), cy + shift * math.sin(rot),
                                r * f, ay * f, rot))
    return body, lambda: _inner_spot(rng, body)


def _worm(rng: np.random.Generator, hw: HW, cx: float, cy: float, r: float
          ) -> Shape:
    """A thin curved rod with round ends; part = its head, a disk a bit wider than the rod."""
    t = np.linspace(-1, 1, 24)
    bend, wig, k = rng.uniform(-0.5, 0.5), rng.uniform(0, 0.2), rng.uniform(1, 3)
    length = r * rng.uniform(0.8, 0.95)
    pts = np.stack([t * length, length * (bend * (1 - t * t) + wig * np.sin(k * np.pi * t))], 1)
    pts = _rotate(cx, cy, rng.uniform(0, 2 * np.pi), pts)
    width = max(3, round(r * rng.uniform(0.12, 0.28)))
    canvas = np.zeros(hw, np.uint8)
    cv2.polylines(canvas, [np.round(pts * 4).astype(np.int32)], False, 1, width,
                  cv2.LINE_8, shift=2)
    body = canvas.view(bool)

    def part() -> np.ndarray:
        hr = width * rng.uniform(0.6, 0.8)
        return _fill(hw, _ellipse(*pts[-1], hr, hr * rng.uniform(0.7, 1.0),
                                  rng.uniform(0, np.pi)))
    return body, part


def _cross(rng: np.random.Generator, hw: HW, cx: float, cy: float, r: float
           ) -> Shape:
    """A cross, L or T of two rotated bars; part = a spot where they are thickest."""
    a = r * rng.uniform(0.18, 0.34)
    kind = rng.integers(3)
    if kind == 0:  # cross
        bars = [(-r, r, -a, a), (-a, a, -r, r)]
    elif kind == 1:  # L
        bars = [(-r, -r + 2 * a, -r, r), (-r, r, r - 2 * a, r)]
    else:  # T
        bars = [(-r, r, -r, -r + 2 * a), (-a, a, -r, r)]
    corners = np.array([[[x0, y0], [x1, y0], [x1, y1], [x0, y1]] for x0, x1, y0, y1 in bars],
                       float)
    corners *= r / np.linalg.norm(corners, axis=2).max()  # fits in the circle of radius r
    rot = rng.uniform(0, np.pi)
    body = np.zeros(hw, bool)
    for bar in corners:
        body |= _fill(hw, _rotate(cx, cy, rot, bar))
    return body, lambda: _inner_spot(rng, body)


def _flower(rng: np.random.Generator, hw: HW, cx: float, cy: float, r: float
            ) -> Shape:
    """Five to nine deep lobes; part = the heart of the flower."""
    depth = rng.uniform(0.25, 0.5)
    rot = rng.uniform(0, np.pi)
    body = _fill(hw, _ellipse(cx, cy, r, r, rot, int(rng.integers(5, 10)), depth))

    def part() -> np.ndarray:
        hr = r * (1 - depth) / (1 + depth) * rng.uniform(0.45, 0.8)
        return body & _fill(hw, _ellipse(cx, cy, hr, hr, 0.0))
    return body, part


def _cell(rng: np.random.Generator, hw: HW, cx: float, cy: float, r: float
          ) -> Shape:
    """A round cell with a finely rippled membrane; part = its nucleus, off centre."""
    ay, rot = r * rng.uniform(0.6, 1.0), rng.uniform(0, np.pi)
    body = _fill(hw, _ellipse(cx, cy, r, ay, rot, int(rng.integers(8, 16)),
                              rng.uniform(0.02, 0.06)))
    return body, lambda: _inner_spot(rng, body)


SHAPES: tuple[Callable[..., Shape], ...] = (_ring, _crescent, _worm, _cross, _flower, _cell)
SHAPE_WEIGHTS = np.array([0.22, 0.14, 0.2, 0.14, 0.15, 0.15])


def _texture(rng: np.random.Generator, hw: tuple[int, int], amp: float) -> np.ndarray:
    """H x W x 3 float32 additive pattern: flat, dot lattice, concentric rings, fine speckle
    or (cross-)hatching, none of which the shapes family draws."""
    h, w = hw
    kind = rng.integers(5)
    if kind == 0:
        return np.zeros((h, w, 1), np.float32)
    if kind == 3:  # speckle: independent pixels, softened to 2-pixel grain
        pat = cv2.blur(rng.uniform(-1.7, 1.7, hw).astype(np.float32), (2, 2))
    else:
        # Coordinates in periods, as a column and a row that broadcast to H x W.
        period = rng.uniform(4, 10)
        yy = np.arange(h, dtype=np.float32)[:, None] / np.float32(period)
        xx = np.arange(w, dtype=np.float32)[None, :] / np.float32(period)
        a = rng.uniform(0, np.pi)
        ca, sa = np.float32(math.cos(a)), np.float32(math.sin(a))
        if kind == 1:  # dots on a rotated lattice
            du, dv = (xx * ca + yy * sa) % 1 - 0.5, (yy * ca - xx * sa) % 1 - 0.5
            pat = np.where(du * du + dv * dv < rng.uniform(0.04, 0.1), 1.0, -0.3)
        elif kind == 2:  # concentric rings around the patch centre
            rad = np.hypot(xx - xx[0, -1] / 2, yy - yy[-1, 0] / 2)
            pat = np.sin(rad * np.float32(2 * np.pi))
        else:  # thin lines, crossed half the time
            pat = np.where((xx * ca + yy * sa) % 1 < 0.25, 1.0, -0.3)
            if rng.random() < 0.5:
                pat = np.maximum(pat, np.where((yy * ca - xx * sa) % 1 < 0.25, 1.0, -0.3))
    tint = rng.uniform(0.5, 1.0, 3).astype(np.float32) * np.float32(amp)
    return pat.astype(np.float32)[..., None] * tint


def _background(rng: np.random.Generator, hw: tuple[int, int]) -> tuple[np.ndarray, list]:
    """H x W x 3 float32 radial two-colour gradient with a faint pattern, and the colours
    objects must stand out from."""
    c0 = pick_color(rng, [])
    c1 = np.clip(c0 + rng.normal(0, 1, 3) / math.sqrt(3) * rng.uniform(25, 45), 0, 255)
    h, w = hw
    d = np.hypot(np.arange(w, dtype=np.float32)[None, :] - np.float32(rng.uniform(0, w)),
                 np.arange(h, dtype=np.float32)[:, None] - np.float32(rng.uniform(0, h)))
    t = (d / max(float(d.max()), 1.0))[..., None]
    image = c0.astype(np.float32) + t * (c1 - c0).astype(np.float32)
    image += _texture(rng, hw, rng.uniform(5, 12))
    image += 8 * smooth_noise(rng, hw, 6)[..., None]  # uneven illumination
    return image, [c0, c1, (c0 + c1) / 2]


def generate_organic_scene(config: SceneConfig, seed: int, index: int) -> Scene:
    """Organic scene `index` of the stream `seed`: image H x W x 3 uint8, masks N x H x W bool
    (visible pixels only), in painting order (object, its part, its sub-part, ...)."""
    rng = np.random.default_rng([seed, index, 1])
    hw = (config.height, config.width)
    short = min(hw)
    image, bg_colors = _background(rng, hw)
    n = int(rng.integers(2 * config.min_objects, 2 * config.max_objects + 1))
    hi = min(config.max_size, SIZE_RANGE[1])
    lo = min(max(config.min_size, SIZE_RANGE[0]), hi)
    radii = np.sort(np.exp(rng.uniform(math.log(lo * short), math.log(hi * short), n)) / 2)[::-1]
    occupied = np.zeros(hw, bool)
    masks: list[np.ndarray] = []
    levels: list[int] = []
    parents: list[int] = []
    mask_colors: list[np.ndarray] = []  # the colour each mask was painted
    for r in radii:
        # Of three spots, take the emptiest: many objects, yet most stay largely visible.
        spots = rng.uniform(0, 1, (3, 2)) * (hw[1], hw[0])
        ri = max(int(r), 1)
        fill = [occupied[max(int(y) - ri, 0):int(y) + ri, max(int(x) - ri, 0):int(x) + ri].mean()
                for x, y in spots]
        cx, cy = spots[int(np.argmin(fill))]
        shape = SHAPES[rng.choice(len(SHAPES), p=SHAPE_WEIGHTS)]
        body, make_part = shape(rng, hw, cx, cy, r)
        if not body.any():
            continue
        regions: list[Region] = [(body, OBJECT)]
        if rng.random() < config.part_prob:
            part = make_part()
            if part is not None and part.any():
                regions.append((part, PART))
                if rng.random() < config.subpart_prob:
                    sub = _inner_spot(rng, part)
                    if sub is not None and sub.any():
                        regions.append((sub, SUBPART))
        # Each region differs in colour from what surrounds it (background, objects it
        # overlaps, its parent), so every mask has a visible edge.
        obox = bbox_slices(body)  # parts may stick out
        under = [c for m, c in zip(masks, mask_colors, strict=True)
                 if (m[obox] & body[obox]).any()][-6:]

        def avoid(level: int, painted: list[np.ndarray], under: list = under) -> list:
            if level == OBJECT:
                return bg_colors + under
            return painted[-2:] + (bg_colors if level == PART else [])

        mask_colors += paint_object(
            rng, image, masks, levels, parents, regions, avoid,
            lambda rng, hw: _texture(rng, hw, rng.uniform(10, 26)))
        for region, _ in regions:
            box = bbox_slices(region)
            occupied[box] |= region[box]
    return finish_scene(rng, config, image, masks, levels, parents,
                        f"organic_{seed}_{index:06d}")
