"""The organic scene family: deterministic, nested like the shapes family, yet unlike it."""

from __future__ import annotations

from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from maskengine.data import SceneConfig, generate_scene, open_dataset
from maskengine.data.organic import generate_organic_scene
from maskengine.data.synthetic import OBJECT, PART, SUBPART

ORGANIC = SceneConfig(family="organic")


def has_hole(mask: np.ndarray) -> bool:
    """True if filling the outer outlines of `mask` (H x W bool) adds pixels."""
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL,
                                   cv2.CHAIN_APPROX_NONE)
    filled = np.zeros(mask.shape, np.uint8)
    cv2.drawContours(filled, contours, -1, 1, -1)
    return int(filled.sum()) > int(mask.sum())


def longest_side(mask: np.ndarray) -> int:
    ys, xs = np.nonzero(mask.any(1))[0], np.nonzero(mask.any(0))[0]
    return int(max(ys[-1] - ys[0], xs[-1] - xs[0])) + 1


def test_organic_scene_is_deterministic_and_its_own_stream():
    cfg = SceneConfig(height=96, width=128, family="organic")
    a, b = generate_scene(cfg, 3, 7), generate_organic_scene(cfg, 3, 7)
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.masks, b.masks)
    np.testing.assert_array_equal(a.parents, b.parents)
    assert a.name == "organic_3_000007"
    assert not np.array_equal(a.image, generate_scene(cfg, 4, 7).image)
    shapes = generate_scene(SceneConfig(height=96, width=128), 3, 7)
    assert not np.array_equal(a.image, shapes.image)
    assert a.image.shape == (96, 128, 3) and a.image.dtype == np.uint8
    assert a.masks.shape[1:] == (96, 128) and a.masks.dtype == bool
    assert a.levels.dtype == np.int64 and a.parents.dtype == np.int64


def test_organic_scenes_keep_the_nesting_contract_and_visible_edges():
    levels = []
    kernel = np.ones((5, 5), np.uint8)
    for i in range(8):
        scene = generate_scene(ORGANIC, 0, i)
        image = scene.image.astype(np.float64)
        assert len(scene.masks) == len(scene.levels) == len(scene.parents)
        assert (scene.masks.sum((1, 2)) >= ORGANIC.min_area).all()
        for k, (mask, lvl, parent) in enumerate(
                zip(scene.masks, scene.levels, scene.parents, strict=True)):
            if lvl == OBJECT:
                assert parent == -1
            else:
                assert 0 <= parent < k and scene.levels[parent] == lvl - 1
                assert not (mask & ~scene.masks[parent]).any()
            # Colour inside (2 px in from the outline) differs from colour just outside.
            outside = cv2.dilate(mask.astype(np.uint8), kernel).astype(bool) & ~mask
            inside = mask & ~cv2.dilate((~mask).astype(np.uint8), kernel).astype(bool)
            if outside.any() and inside.any():
                gap = np.linalg.norm(image[inside].mean(0) - image[outside].mean(0))
                assert gap > 20, f"scene {i} mask {k}: colour gap {gap:.1f}"
        levels += scene.levels.tolist()
    assert {OBJECT, PART, SUBPART} <= set(levels)


def test_organic_objects_have_holes_that_shapes_never_draw():
    # One object per shapes scene (two per organic scene): no occlusion makes holes there.
    shapes_holes = organic_holes = 0
    for i in range(20):
        shapes = generate_scene(SceneConfig(min_objects=1, max_objects=1), 0, i)
        shapes_holes += sum(has_hole(m) for m in shapes.masks[shapes.levels == OBJECT])
        organic = generate_scene(SceneConfig(min_objects=1, max_objects=1, family="organic"),
                                 0, i)
        organic_holes += sum(has_hole(m) for m in organic.masks[organic.levels == OBJECT])
    assert shapes_holes == 0
    assert organic_holes >= 3  # rings


def test_organic_size_distribution_more_and_smaller_objects():
    counts = {"shapes": [], "organic": []}
    sides = {"shapes": [], "organic": []}
    for family in counts:
        cfg = SceneConfig(family=family)
        for i in range(12):
            scene = generate_scene(cfg, 0, i)
            objects = scene.masks[scene.levels == OBJECT]
            counts[family].append(len(objects))
            sides[family] += [longest_side(m) / 256 for m in objects]
    assert np.mean(counts["organic"]) > 1.5 * np.mean(counts["shapes"])
    assert max(sides["organic"]) <= 0.45  # the 40% cap, plus a worm's width
    assert max(sides["shapes"]) > 0.45


def test_open_dataset_builds_the_family_and_rejects_unknown_ones():
    def spec(data: str) -> SimpleNamespace:
        return SimpleNamespace(data=data, num_images=3, data_seed=5, scene_size=64)

    ds = open_dataset(spec("synthetic:organic"))
    assert len(ds) == 3 and ds.config.family == "organic" and ds.config.height == 64
    assert ds[2].name == "organic_5_000002"
    assert open_dataset(spec("synthetic")).config.family == "shapes"
    assert open_dataset(spec("synthetic:shapes")).config.family == "shapes"
    with pytest.raises(ValueError, match="'bogus' is not one of shapes, organic"):
        open_dataset(spec("synthetic:bogus"))
    with pytest.raises(ValueError, match="scene family 'Organic'"):
        SceneConfig(family="Organic")
