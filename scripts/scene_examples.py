"""Example pictures of the synthetic scene families for the docs: each is one scene beside
the same scene with its mask outlines (objects yellow, parts cyan, sub-parts magenta).

Usage: python scripts/scene_examples.py [--out docs/images] [--seed 0] [--index 1]
Writes shapes_example.png and organic_example.png (palette PNGs, well under 150 KB).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from maskengine.data import SceneConfig, generate_scene

LEVEL_COLORS = [(255, 230, 0), (0, 230, 255), (255, 0, 200)]  # RGB: object, part, sub-part


def outlined(image: np.ndarray, masks: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """H x W x 3 uint8 copy of `image` with each mask's outline (holes too) drawn on it."""
    out = image.copy()
    for mask, level in zip(masks, levels, strict=True):
        contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_CCOMP,
                                       cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(out, contours, -1, LEVEL_COLORS[int(level)], 1)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="docs/images")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--index", type=int, default=1)
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for family in ("shapes", "organic"):
        scene = generate_scene(SceneConfig(family=family), args.seed, args.index)
        gap = np.full((scene.image.shape[0], 4, 3), 255, np.uint8)
        panel = np.concatenate(
            [scene.image, gap, outlined(scene.image, scene.masks, scene.levels)], axis=1)
        path = out / f"{family}_example.png"
        Image.fromarray(panel).quantize(256).save(path, optimize=True)
        print(f"{path}: {len(scene.masks)} masks, {path.stat().st_size // 1024} KB")


if __name__ == "__main__":
    main()
