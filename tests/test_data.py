"""Synthetic scenes, SA-1B and COCO readers."""

from __future__ import annotations

import json

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from maskengine.data import SceneConfig, SyntheticDataset, drop_large, generate_scene
from maskengine.data.coco import CocoDataset
from maskengine.data.sa1b import SA1BDataset, write_sa1b_folder
from maskengine.data.synthetic import OBJECT, PART, SUBPART
from maskengine.data.types import Sample
from maskengine.masks import decode_rle, encode_rle


def test_scene_is_deterministic_by_seed_and_index():
    cfg = SceneConfig(height=96, width=128)
    a, b = generate_scene(cfg, 3, 7), generate_scene(cfg, 3, 7)
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.masks, b.masks)
    c = generate_scene(cfg, 4, 7)
    assert not np.array_equal(a.image, c.image)
    assert a.image.shape == (96, 128, 3) and a.image.dtype == np.uint8
    assert a.masks.shape[1:] == (96, 128) and a.masks.dtype == bool


def test_scenes_hold_nested_granularities_and_many_sizes():
    ds = SyntheticDataset(12, seed=0)
    levels, areas = [], []
    for scene in (ds[i] for i in range(len(ds))):
        assert (scene.masks.sum((1, 2)) >= scene_min_area()).all()
        for i, (lvl, parent) in enumerate(zip(scene.levels, scene.parents, strict=True)):
            if lvl == OBJECT:
                assert parent == -1
            else:
                # a part lies inside its object, a sub-part inside its part
                assert scene.levels[parent] == lvl - 1
                assert not (scene.masks[i] & ~scene.masks[parent]).any()
        levels += scene.levels.tolist()
        areas += scene.masks.sum((1, 2)).tolist()
    assert {OBJECT, PART, SUBPART} <= set(levels)
    assert min(areas) < 200 and max(areas) > 4000  # tiny to large


def scene_min_area() -> int:
    return SceneConfig().min_area


def test_bad_scene_config_is_rejected():
    with pytest.raises(ValueError, match="min_objects"):
        SceneConfig(min_objects=5, max_objects=2)
    with pytest.raises(IndexError):
        SyntheticDataset(2)[2]


def test_drop_large_keeps_masks_up_to_the_fraction():
    masks = np.zeros((3, 10, 10), bool)
    masks[0, :9] = True  # 90%: kept
    masks[1] = True  # 100%: dropped
    masks[2, 0, 0] = True
    assert len(drop_large(masks, 0.9)) == 2


def test_sa1b_round_trip(tmp_path):
    scenes = [generate_scene(SceneConfig(height=64, width=80), 0, i) for i in range(2)]
    files = write_sa1b_folder(scenes, tmp_path)
    assert len(files) == 2
    record = json.loads(files[0].read_text())
    assert record["image"]["width"] == 80 and record["image"]["height"] == 64
    ann = record["annotations"][0]
    assert isinstance(ann["segmentation"]["counts"], str)
    assert ann["area"] == int(scenes[0].masks[0].sum())
    ds = SA1BDataset(tmp_path, max_mask_fraction=1.0)
    assert len(ds) == 2
    for scene, sample in zip(scenes, (ds[0], ds[1]), strict=True):
        np.testing.assert_array_equal(sample.image, scene.image)
        np.testing.assert_array_equal(sample.masks, scene.masks)


def test_sa1b_reader_drops_masks_over_90_percent(tmp_path):
    img = np.zeros((20, 20, 3), np.uint8)
    masks = np.zeros((2, 20, 20), bool)
    masks[0] = True
    masks[1, :5, :5] = True
    write_sa1b_folder([Sample(img, masks, "one")], tmp_path)
    assert len(SA1BDataset(tmp_path)[0].masks) == 1
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ValueError, match="not an SA-1B"):
        SA1BDataset(tmp_path)[0]


def test_rle_helpers_round_trip():
    m = np.zeros((7, 9), bool)
    m[2:5, 3:8] = True
    np.testing.assert_array_equal(decode_rle(encode_rle(m)), m)
    flat = m.ravel(order="F")
    runs, val, n = [], False, 0
    for v in flat:
        if v != val:
            runs.append(n)
            val, n = v, 0
        n += 1
    runs.append(n)
    np.testing.assert_array_equal(decode_rle({"size": [7, 9], "counts": runs}), m)


def test_coco_reader_polygons_and_rle(tmp_path):
    from PIL import Image

    Image.fromarray(np.full((40, 50, 3), 128, np.uint8)).save(tmp_path / "a.png")
    box = np.zeros((40, 50), bool)
    box[5:15, 10:30] = True
    rle = mask_utils.encode(np.asfortranarray(box.astype(np.uint8)))
    rle["counts"] = rle["counts"].decode("ascii")
    coco = {
        "images": [{"id": 1, "file_name": "a.png", "width": 50, "height": 40}],
        "annotations": [
            {"id": 1, "image_id": 1, "segmentation": [[20, 20, 40, 20, 40, 35, 20, 35]],
             "iscrowd": 0},
            {"id": 2, "image_id": 1, "segmentation": rle, "iscrowd": 0},
            {"id": 3, "image_id": 1, "segmentation": rle, "iscrowd": 1},
            {"id": 4, "image_id": 1, "segmentation": [[0, 0, 50, 0, 50, 40, 0, 40]],
             "iscrowd": 0},
        ],
    }
    path = tmp_path / "instances.json"
    path.write_text(json.dumps(coco))
    ds = CocoDataset(path)
    assert len(ds) == 1
    s = ds[0]
    assert s.image.shape == (40, 50, 3)
    assert len(s.masks) == 2  # crowd skipped, whole-image polygon dropped (> 90%)
    poly = s.masks[0]
    assert poly[25, 30] and not poly[5, 5]
    assert 250 <= poly.sum() <= 400  # 20 x 15 polygon, rasterised
    np.testing.assert_array_equal(s.masks[1], box)


def test_readers_refuse_rle_that_does_not_fill_the_image(tmp_path):
    from PIL import Image

    Image.fromarray(np.zeros((40, 50, 3), np.uint8)).save(tmp_path / "a.png")
    short = {"size": [40, 50], "counts": "0"}  # 0 pixels of 2000
    coco = {"images": [{"id": 1, "file_name": "a.png", "width": 50, "height": 40}],
            "annotations": [{"id": 1, "image_id": 1, "segmentation": short, "iscrowd": 0}]}
    (tmp_path / "instances.json").write_text(json.dumps(coco))
    with pytest.raises(ValueError, match="add up to 0 pixels, expected 2000"):
        CocoDataset(tmp_path / "instances.json")[0]
    sa1b = {"image": {"image_id": 1, "width": 50, "height": 40, "file_name": "a.png"},
            "annotations": [{"id": 1, "segmentation": short, "bbox": [0, 0, 0, 0]}]}
    folder = tmp_path / "sa1b"
    folder.mkdir()
    Image.fromarray(np.zeros((40, 50, 3), np.uint8)).save(folder / "a.png")
    (folder / "a.json").write_text(json.dumps(sa1b))
    with pytest.raises(ValueError, match="add up to 0 pixels"):
        SA1BDataset(folder)[0]
