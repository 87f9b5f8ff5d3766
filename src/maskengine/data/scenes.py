"""What every synthetic scene family shares: the settings, the record, and the painting.

A family (`synthetic` shapes, `organic`) draws object outlines and textures its own way;
this module paints them: each region gets a colour that stands out from what it must
differ from, a texture inside its bounding box, hides the objects painted before it, and
joins the mask hierarchy (object -> part -> sub-part). It imports no family, so families
import it and `synthetic.generate_scene` chooses among them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import cv2
import numpy as np

from .types import Sample

OBJECT, PART, SUBPART = 0, 1, 2
FAMILIES = ("shapes", "organic")
Region = tuple[np.ndarray, int]  # (H x W bool, level)


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


def smooth_noise(rng: np.random.Generator, hw: tuple[int, int], cells: int) -> np.ndarray:
    """H x W float32 in about [-1, 1]: a random grid upsampled bicubically."""
    grid = rng.uniform(-1, 1, (cells + 1, cells + 1)).astype(np.float32)
    return cv2.resize(grid, (hw[1], hw[0]), interpolation=cv2.INTER_CUBIC)


def pick_color(rng: np.random.Generator, away_from: list[np.ndarray]) -> np.ndarray:
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


def bbox_slices(region: np.ndarray) -> tuple[slice, slice]:
    """(rows, cols) slices of the bounding box of a non-empty H x W bool `region`."""
    ys, xs = np.nonzero(region.any(1))[0], np.nonzero(region.any(0))[0]
    return slice(ys[0], ys[-1] + 1), slice(xs[0], xs[-1] + 1)


def paint_object(
    rng: np.random.Generator, image: np.ndarray, masks: list[np.ndarray], levels: list[int],
    parents: list[int], regions: list[Region],
    avoid: Callable[[int, list[np.ndarray]], list[np.ndarray]],
    texture: Callable[[np.random.Generator, tuple[int, int]], np.ndarray],
) -> list[np.ndarray]:
    """Paint one object's regions (its body, then its part and sub-part) onto `image`
    (H x W x 3 float32) and record them in `masks` / `levels` / `parents`.

    avoid(level, painted): the colours a region of `level` must stand out from, given the
    colours of this object's regions painted so far. texture(rng, (h, w)): an h x w x 1|3
    float32 pattern added to the region's colour. Returns the colours painted, in order.
    """
    obj_index = len(masks)
    painted: list[np.ndarray] = []
    for region, level in regions:
        # Each region differs from its surroundings, so every mask has a visible edge.
        col = pick_color(rng, avoid(level, painted))
        painted.append(col)
        # Texture only the region's bounding box: most objects are small.
        box = bbox_slices(region)
        inside = region[box]
        tex = texture(rng, inside.shape)
        image[box][inside] = col + np.broadcast_to(tex, (*tex.shape[:2], 3))[inside]
        hidden = ~inside
        for m in masks[:obj_index]:  # occlusion: hides earlier objects, not its own
            m[box] &= hidden
        _add_region(masks, levels, parents, region, level, obj_index)
    return painted


def finish_scene(rng: np.random.Generator, config: SceneConfig, image: np.ndarray,
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


