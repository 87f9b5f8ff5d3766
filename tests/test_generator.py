"""MaskGenerator: parity with the official generator's outputs, pipeline pieces, modes."""

from __future__ import annotations

import json

import numpy as np
import pytest

from maskengine import GeneratorConfig, MaskGenerator
from maskengine.generator import crop_boxes, point_grid
from maskengine.masks import decode_rle
from maskengine.parity import match_records

from .conftest import REFERENCE, load_reference_image


@pytest.mark.slow
@pytest.mark.parametrize("setting", ["grid", "filters", "crops"])
def test_parity_with_official_generator(reference_model, setting):
    ref = json.loads((REFERENCE / f"amg_{setting}.json").read_text())
    # The official single pass: the focus pass (on by default for inputs under 1024) off.
    gen = MaskGenerator(reference_model, output_mode="coco_rle", focus=False, **ref["params"])
    ours = gen.generate(load_reference_image(0))
    want = ref["records"]
    assert abs(len(ours) - len(want)) <= 0.02 * len(want)
    match = match_records(want, ours)
    assert match.matched >= 0.98 * len(want)
    assert match.max_abs_diff["predicted_iou"] <= 1e-3
    assert match.max_abs_diff["stability_score"] <= 1e-3
    assert match.max_abs_diff["bbox"] <= 1
    assert match.crop_box_mismatches == 0


def test_point_grid_and_crop_boxes():
    g = point_grid(4)
    assert g.shape == (16, 2)
    np.testing.assert_allclose(g[:4, 0], [0.125, 0.375, 0.625, 0.875])  # x varies fastest
    np.testing.assert_allclose(g[:4, 1], 0.125)
    boxes = crop_boxes(480, 640, 1, 512 / 1500)
    assert boxes[0] == ([0, 0, 640, 480], 0)
    assert len(boxes) == 5 and all(layer == 1 for _, layer in boxes[1:])
    overlap = int(512 / 1500 * 480)
    cw = -(-(overlap + 640) // 2)
    ch = -(-(overlap + 480) // 2)
    assert boxes[1][0] == [0, 0, cw, ch]
    assert boxes[2][0] == [0, ch - overlap, cw, 480]  # y varies fastest within a column
    assert boxes[4][0] == [cw - overlap, ch - overlap, 640, 480]
    assert len(crop_boxes(100, 100, 2, 0.3)) == 1 + 4 + 16


def test_config_defaults_are_the_official_ones_and_validate():
    c = GeneratorConfig()
    assert (c.points_per_side, c.points_per_batch, c.pred_iou_thresh) == (32, 64, 0.88)
    assert (c.stability_score_thresh, c.stability_score_offset, c.box_nms_thresh) == (
        0.95, 1.0, 0.7)
    assert (c.crop_n_layers, c.crop_nms_thresh, c.crop_overlap_ratio) == (0, 0.7, 512 / 1500)
    assert (c.crop_n_points_downscale_factor, c.min_mask_region_area, c.output_mode) == (
        1, 0, "binary_mask")
    with pytest.raises(ValueError, match="output_mode"):
        GeneratorConfig(output_mode="png")
    with pytest.raises(ValueError, match="points_per_batch"):
        GeneratorConfig(points_per_batch=0)


def test_point_grids_replace_points_per_side(reference_model):
    with pytest.raises(ValueError, match="exactly one"):
        MaskGenerator(reference_model, point_grids=[point_grid(2)])
    with pytest.raises(ValueError, match="one per crop layer"):
        MaskGenerator(reference_model, points_per_side=None, point_grids=[])
    gen = MaskGenerator(reference_model, points_per_side=None, point_grids=[point_grid(3)],
                        pred_iou_thresh=0.0, stability_score_thresh=0.0)
    recs = gen.generate(load_reference_image(1))
    assert recs and all(len(r.point_coords) == 1 for r in recs)


def test_output_modes_agree_and_records_are_official(reference_model):
    image = load_reference_image(1)  # 300 x 200
    params = dict(points_per_side=3, pred_iou_thresh=0.05, stability_score_thresh=0.3,
                  points_per_batch=5)
    out = {mode: MaskGenerator(reference_model, output_mode=mode, **params).generate(image)
           for mode in ("binary_mask", "uncompressed_rle", "coco_rle")}
    n = len(out["coco_rle"])
    assert n > 0 and all(len(v) == n for v in out.values())
    for b, u, c in zip(out["binary_mask"], out["uncompressed_rle"], out["coco_rle"],
                       strict=True):
        assert b.segmentation.shape == image.shape[:2] and b.segmentation.dtype == bool
        assert isinstance(u.segmentation["counts"], list)
        assert isinstance(c.segmentation["counts"], str)
        np.testing.assert_array_equal(decode_rle(u.segmentation), b.segmentation)
        np.testing.assert_array_equal(decode_rle(c.segmentation), b.segmentation)
        assert b.area == int(b.segmentation.sum())
        ys, xs = np.nonzero(b.segmentation)
        assert b.bbox == [xs.min(), ys.min(), xs.max() - xs.min(), ys.max() - ys.min()]
        assert b.crop_box == [0, 0, 200, 300]
        d = c.to_dict()
        assert set(d) == {"segmentation", "area", "bbox", "predicted_iou", "point_coords",
                          "stability_score", "crop_box"}
        assert c["area"] == c.area
        json.dumps(d)  # RLE records are JSON-ready


def test_bad_image_is_refused(reference_model):
    gen = MaskGenerator(reference_model, points_per_side=2)
    with pytest.raises(ValueError, match="H x W x 3"):
        gen.generate(np.zeros((10, 10), dtype=np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        gen.generate(np.zeros((10, 10, 3), dtype=np.float32))


def test_match_records_pairs_identical_sets_and_counts_differences():
    ref = json.loads((REFERENCE / "amg_grid.json").read_text())["records"][:5]
    same = match_records(ref, ref)
    assert same.matched == 5 and same.matched_fraction == 1.0
    assert same.max_abs_diff == {"predicted_iou": 0.0, "stability_score": 0.0, "bbox": 0.0}
    moved = [{**r, "crop_box": [1, 0, 0, 0], "predicted_iou": r["predicted_iou"] + 0.5}
             for r in ref]
    diff = match_records(ref, moved)
    assert diff.crop_box_mismatches == 5
    assert diff.max_abs_diff["predicted_iou"] == pytest.approx(0.5)
    assert match_records([], []).matched_fraction == 1.0
    assert match_records(ref, []).to_dict()["matched_fraction"] == 0.0
