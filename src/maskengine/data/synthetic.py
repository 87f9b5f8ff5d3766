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
from dataclasses import dataclass, field

import cv2
import numpy as np

from .types import Sample

OBJECT, PART, SUBPART = 0, 1, 2
FAMILIES = ("shapes", "organic")


@dataclass(frozen=True)
class SceneConfig:
    """How synthetic scenes look. Sizes are fractions of the image's short side."""

    height: int = field(default=256, metadata={"help": "scene height in pixels"})
    width: int = field(default=256, metadata={"help": "scene width in pixels"})
    min_objects: int = field(default=3, metadata={"help": "fewest objects per scene"})
    max_objects: int = field(default=12, metadata={"help": "most objects per scene"})
    min_size: float = field(default=0.06, metadata={"help": "smallest object, x short side"})
    max_size: float = field(default=0.55, metadata={"help": "largest object, x short side"})
    part_prob: float = field(default=0.5, metadata={"help": "chance an object has a part"})
    subpart_prob: float = field(default=0.6, metadata={"help": "chance a part has a sub-part"})
    noise_std: float = field(default=5.0, metadata={"help": "pixel noise std (0..255)"})
    min_area: int = field(default=30, metadata={"help": "drop visible masks below this"})
    family: str = field(default="shapes", metadata={"help": "'shapes' (default) or 'organic'"})

    def __post_init__(self) -> None:
        if self.height < 16 or self.width < 16:
            raise ValueError(f"scene size {self.height}x{self.width} is below 16 pixels")
        if not 1 <= self.min_objects <= self.max_objects:
            raise ValueError("need 1 <= min_objects <= max_objects")
        if not 0 < self.min_size <= self.max_size:
            raise ValueError("need 0 < min_size <= max_size")
        if self.family not in FAMILIES:
            raise ValueError(f"scene family {self.family!r} is not one of {', '.join(FAMILIES)}")


@dataclass(frozen=True)
class Scene(Sample):
    """A Sample plus the hierarchy: levels N (0 object, 1 part, 2 sub-part) and parents N
    (index of the enclosing mask in `masks`, -1 for objects)."""

    levels: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    parents: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))


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


def _smooth_noise(rng: np.random.Generator, hw: tuple[int, int], cells: int) -> np.ndarray:
    """H x W float32 in about [-1, 1]: a random grid upsampled bicubically."""
    grid = rng.uniform(-1, 1, (cells + 1, cells + 1)).astype(np.float32)
    return cv2.resize(grid, (hw[1], hw[0]), interpolation=cv2.INTER_CUBIC)


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
        pat = _smooth_noise(rng, hw, int(rng.integers(4, 24)))
    tint = rng.uniform(0.5, 1.0, 3).astype(np.float32)
    return (amp * pat)[..., None] * tint


def _color(rng: np.random.Generator, away_from: list[np.ndarray]) -> np.ndarray:
    """A random RGB colour at least 70 away from each colour in `away_from`."""
    for _ in range(32):
        c = rng.uniform(20, 235, 3)
        if all(np.linalg.norm(c - o) >= 70 for o in away_from):
            return c
    return c


def _add_region(masks: list[np.ndarray], levels: list[int], parents: list[int],
                region: np.ndarray, level: int, obj_index: int) -> None:
    """Record one drawn region in the hierarchy: an object starts a new mask; a part or
    sub-part joins its object's mask and gets its own, parented to the object (part) or to
    the part drawn just before it (sub-part)."""
    if level == OBJECT:
        masks.append(region.copy())
        parents.append(-1)
    else:
        masks[obj_index] |= region
        masks.append(region.copy())
        parents.append(obj_index if level == PART else len(masks) - 2)
    levels.append(level)


def generate_scene(config: SceneConfig, seed: int, index: int) -> Scene:
    """Scene `index` of the stream seeded by `seed`: image H x W x 3 uint8, masks N x H x W
    bool (visible pixels only), in painting order (object, its part, its sub-part, ...)."""
    if config.family == "organic":
        from .organic import generate_organic_scene  # organic imports this module

        return generate_organic_scene(config, seed, index)
    rng = np.random.default_rng([seed, index])
    hw = (config.height, config.width)
    short = min(hw)
    bg = _color(rng, [])
    image = np.empty((*hw, 3), np.float32)
    image[:] = bg
    image += _texture(rng, hw) + 20 * _smooth_noise(rng, hw, 3)[..., None]
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
        regions = [(body, OBJECT)]
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
        obj_index = len(masks)
        colors: list[np.ndarray] = [bg]
        for region, level in regions:
            # Each region differs from its surroundings, so every mask has a visible edge.
            col = _color(rng, colors[-2:] if level else colors)
            colors.append(col)
            # Texture only the region's bounding box: most objects are small.
            ys, xs = np.nonzero(region.any(1))[0], np.nonzero(region.any(0))[0]
            box = (slice(ys[0], ys[-1] + 1), slice(xs[0], xs[-1] + 1))
            tex = _texture(rng, (ys[-1] + 1 - ys[0], xs[-1] + 1 - xs[0]))
            image[box][region[box]] = col + np.broadcast_to(tex, (*tex.shape[:2], 3))[
                region[box]]
            for m in masks[:obj_index]:  # occlusion: hides earlier objects, not its own
                m &= ~region
            _add_region(masks, levels, parents, region, level, obj_index)
    return _finish_scene(rng, config, image, masks, levels, parents,
                         f"synthetic_{seed}_{index:06d}")


def _finish_scene(rng: np.random.Generator, config: SceneConfig, image: np.ndarray,
                  masks: list[np.ndarray], levels: list[int], parents: list[int],
                  name: str) -> Scene:
    """Pixel noise, optional blur and uint8 on `image` (H x W x 3 float32); drops masks
    under `config.min_area` and renumbers `parents` to the kept masks."""
    hw = image.shape[:2]
    image += rng.normal(0, config.noise_std, image.shape).astype(np.float32)
    image = np.clip(image, 0, 255).astype(np.uint8)
    if rng.random() < 0.5:  # soft edges half the time, as in photographs
        image = cv2.GaussianBlur(image, (3, 3), 0)
    keep = [i for i, m in enumerate(masks) if m.sum() >= config.min_area]
    remap = {old: new for new, old in enumerate(keep)}
    out_masks = np.stack([masks[i] for i in keep]) if keep else np.zeros((0, *hw), bool)
    return Scene(
        image=image,
        masks=out_masks,
        name=name,
        levels=np.array([levels[i] for i in keep], np.int64),
        parents=np.array([remap.get(parents[i], -1) for i in keep], np.int64),
    )


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
