"""Synthetic scenes: textured objects with parts and sub-parts, occluding one another.

Every object is a body shape; it may carry a *part* that sticks out of its outline, and
the part may hold a *sub-part*. A point on a sub-part therefore has three right answers
(sub-part, part, whole object): the ambiguity the decoder's three outputs exist for.
Objects are drawn from large to small with a log-uniform size, so one image holds a few
large objects and many small ones; later objects hide earlier ones.

Scene i of a `SceneConfig` with seed s is a pure function of (s, i): datasets are
reproducible and training can be resumed at any step.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from .organic import generate_organic_scene
from .scenes import (
    FAMILIES,
    OBJECT,
    PART,
    SUBPART,
    Region,
    Scene,
    SceneConfig,
    finish_scene,
    paint_object,
    pick_color,
    smooth_noise,
)


def _star_polygon(rng: np.random.Generator, cx: float, cy: float, r: float) -> np.ndarray:
    """K x 2 int32 vertices of a random star-convex shape of radius about r."""
    kind = rng.integers(4)
    if kind == 0:  # ellipse
        n = 48
        t = np.linspace(0, 2 * np.pi, n, endpoint=False)
        ax, ay, rot = r, r * rng.uniform(0.4, 1.0), rng.uniform(0, np.pi)
        x, y = ax * np.cos(t), ay * np.sin(t)
    elif kind == 1:  # rotated rectangle
        w, h, rot = r, r * rng.uniform(0.35, 1.0), rng.uniform(0, np.pi)
        x, y = np.array([-w, w, w, -w]), np.array([-h, -h, h, h])
    elif kind == 2:  # random polygon
        n = int(rng.integers(3, 9))
        t = np.sort(rng.uniform(0, 2 * np.pi, n))
        rad = r * rng.uniform(0.6, 1.0, n)
        x, y, rot = rad * np.cos(t), rad * np.sin(t), 0.0
    else:  # smooth blob: a few low harmonics on the radius
        n = 64
        t = np.linspace(0, 2 * np.pi, n, endpoint=False)
        rad = np.ones(n)
        for k in (2, 3, 4):
            rad += rng.uniform(0, 0.25) * np.cos(k * t + rng.uniform(0, 2 * np.pi))
        rad = r * rad / rad.max()
        x, y, rot = rad * np.cos(t), rad * np.sin(t), 0.0
    c, s = math.cos(rot), math.sin(rot)
    pts = np.stack([cx + c * x - s * y, cy + s * x + c * y], axis=1)
    return np.round(pts * 4).astype(np.int32)  # 2 fractional bits for cv2 shift=2


def _shape_mask(rng: np.random.Generator, hw: tuple[int, int], cx: float, cy: float,
                r: float) -> np.ndarray:
    canvas = np.zeros(hw, np.uint8)
    cv2.fillPoly(canvas, [_star_polygon(rng, cx, cy, r)], 1, lineType=cv2.LINE_8, shift=2)
    return canvas.astype(bool)


def _texture(rng: np.random.Generator, hw: tuple[int, int]) -> np.ndarray:
    """H x W x 3 float32 additive pattern: flat, stripes, checker, gradient or noise."""
    h, w = hw
    kind = rng.integers(5)
    amp = rng.uniform(8, 28)
    if kind == 0:
        return np.zeros((h, w, 1), np.float32)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    a = rng.uniform(0, np.pi)
    u = xx * math.cos(a) + yy * math.sin(a)
    if kind == 1:
        pat = np.sin(u * 2 * np.pi / rng.uniform(4, 16))
    elif kind == 2:
        period = rng.uniform(4, 14)
        v = -xx * math.sin(a) + yy * math.cos(a)
        pat = np.sign(np.sin(u * np.pi / period) * np.sin(v * np.pi / period))
    elif kind == 3:
        pat = (u - u.mean()) / max(float(np.ptp(u)), 1.0) * 2
    else:
        pat = smooth_noise(rng, hw, int(rng.integers(4, 24)))
    tint = rng.uniform(0.5, 1.0, 3).astype(np.float32)
    return (amp * pat)[..., None] * tint


def generate_shapes_scene(config: SceneConfig, seed: int, index: int) -> Scene:
    """Shapes scene `index` of the stream seeded by `seed`: image H x W x 3 uint8, masks
    N x H x W bool (visible pixels only), in painting order (object, its part, ...)."""
    rng = np.random.default_rng([seed, index])
    hw = (config.height, config.width)
    short = min(hw)
    bg = pick_color(rng, [])
    image = np.empty((*hw, 3), np.float32)
    image[:] = bg
    image += _texture(rng, hw) + 20 * smooth_noise(rng, hw, 3)[..., None]
    n = int(rng.integers(config.min_objects, config.max_objects + 1))
    lo, hi = math.log(config.min_size * short), math.log(config.max_size * short)
    radii = np.sort(np.exp(rng.uniform(lo, hi, n)) / 2)[::-1]
    masks: list[np.ndarray] = []
    levels: list[int] = []
    parents: list[int] = []
    for r in radii:
        cx, cy = rng.uniform(0, hw[1]), rng.uniform(0, hw[0])
        body = _shape_mask(rng, hw, cx, cy, r)
        if not body.any():
            continue
        regions: list[Region] = [(body, OBJECT)]
        if r * 0.35 >= 3 and rng.random() < config.part_prob:
            # The part sits on the outline so it sticks out: its own silhouette is visible.
            ang = rng.uniform(0, 2 * np.pi)
            px, py = cx + 0.8 * r * math.cos(ang), cy + 0.8 * r * math.sin(ang)
            pr = r * rng.uniform(0.3, 0.55)
            part = _shape_mask(rng, hw, px, py, pr)
            if part.any():
                regions.append((part, PART))
                if pr * 0.4 >= 3 and rng.random() < config.subpart_prob:
                    sub = _shape_mask(rng, hw, px + rng.uniform(-0.2, 0.2) * pr,
                                      py + rng.uniform(-0.2, 0.2) * pr,
                                      pr * rng.uniform(0.3, 0.5)) & part
                    if sub.any():
                        regions.append((sub, SUBPART))
        paint_object(rng, image, masks, levels, parents, regions,
                     lambda level, painted: ([bg, *painted][-2:] if level else [bg]), _texture)
    return finish_scene(rng, config, image, masks, levels, parents,
                         f"synthetic_{seed}_{index:06d}")


# The one place a family is chosen: SceneConfig.family -> its generator.
GENERATORS = {"shapes": generate_shapes_scene, "organic": generate_organic_scene}


def generate_scene(config: SceneConfig, seed: int, index: int) -> Scene:
    """Scene `index` of the stream seeded by `seed`, of the family `config.family`: image
    H x W x 3 uint8, masks N x H x W bool (visible pixels only), in painting order (object,
    its part, its sub-part, ...); levels and parents give the hierarchy."""
    return GENERATORS[config.family](config, seed, index)


class SyntheticDataset:
    """`num_images` scenes of the stream `seed`; item i is `generate_scene(config, seed, i)`."""

    def __init__(self, num_images: int, seed: int = 0, config: SceneConfig | None = None):
        if num_images < 1:
            raise ValueError(f"num_images must be >= 1, got {num_images}")
        self.num_images = num_images
        self.seed = seed
        self.config = config or SceneConfig()

    def __len__(self) -> int:
        return self.num_images

    def __getitem__(self, index: int) -> Scene:
        if not 0 <= index < self.num_images:
            raise IndexError(f"scene {index} outside 0..{self.num_images - 1}")
        return generate_scene(self.config, self.seed, index)


__all__ = ["FAMILIES", "OBJECT", "PART", "SUBPART", "Scene", "SceneConfig", "SyntheticDataset",
           "generate_scene", "generate_shapes_scene"]
