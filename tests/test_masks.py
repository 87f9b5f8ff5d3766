"""maskengine.masks and maskengine.upsampling against brute-force versions."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from pycocotools import mask as mask_utils

from maskengine.masks import (
    check_rle,
    compress_rle,
    decode_rle,
    encode_rle,
    fill_holes_and_remove_islands,
    mask_to_box,
    nms,
    remove_small_regions,
    rle_area,
    rle_runs,
    stability_score,
    uncompressed_rle,
    xyxy_to_xywh,
)
from maskengine.upsampling import UpsampleMap


def random_masks(n: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(n, h // 4 + 1, w // 4 + 1))
    big = np.repeat(np.repeat(base, 4, axis=1), 4, axis=2)[:, :h, :w]
    return big > 0.6


# -- RLE ----------------------------------------------------------------------------------


def test_rle_round_trips_and_matches_pycocotools():
    masks = random_masks(6, 23, 31)
    masks[0] = False
    masks[1] = True
    masks[2, 0, 0] = True  # first pixel set: uncompressed counts start with a 0 run
    for m in masks:
        coco = encode_rle(m)
        unc = uncompressed_rle(m)
        assert coco["size"] == unc["size"] == [23, 31]
        assert sum(unc["counts"]) == m.size
        assert (unc["counts"][0] == 0) == bool(m[0, 0])
        np.testing.assert_array_equal(decode_rle(coco), m)
        np.testing.assert_array_equal(decode_rle(unc), m)
        assert compress_rle(unc) == coco
        ref = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
        assert coco["counts"] == ref["counts"].decode()
        assert rle_area(coco) == rle_area(unc) == int(m.sum())


def test_decode_rle_rejects_runs_of_the_wrong_total():
    with pytest.raises(ValueError, match="expected 12"):
        decode_rle({"size": [3, 4], "counts": [5, 2]})


def test_rle_runs_reads_compressed_counts_like_pycocotools():
    masks = random_masks(40, 19, 27, seed=3)
    masks[0] = True
    for m in masks:
        assert rle_runs(encode_rle(m)["counts"]).tolist() == uncompressed_rle(m)["counts"]
    big = np.zeros((3000, 4000), bool)  # runs of millions: numbers of several characters
    big[100:2000, 7:3999] = True
    assert rle_runs(encode_rle(big)["counts"]).tolist() == uncompressed_rle(big)["counts"]


@pytest.mark.parametrize("counts, message", [
    ("", "add up to 0 pixels, expected 12"),  # pycocotools decodes uninitialised memory
    ("1", "add up to 1 pixels"),
    ("0<0<0<", "add up to"),  # too many pixels: pycocotools writes past its buffer
    ("P", "middle of a number"),
    ("~", "outside the COCO RLE alphabet"),
    ("\u00e9", "ASCII"),
    ("3@", "negative run"),
    ([3, 4], "add up to 7 pixels"),
    ([13, -1], "non-negative"),
])
def test_rle_whose_runs_do_not_make_h_x_w_is_refused_everywhere(counts, message):
    rle = {"size": [3, 4], "counts": counts}
    for fn in (check_rle, decode_rle, rle_area):
        with pytest.raises(ValueError, match=message):
            fn(rle)


# -- boxes and NMS -------------------------------------------------------------------------


def test_mask_to_box_inclusive_and_empty():
    masks = torch.from_numpy(random_masks(5, 17, 29, seed=1))
    masks[3] = False
    boxes = mask_to_box(masks)
    for m, b in zip(masks, boxes, strict=True):
        ys, xs = torch.nonzero(m, as_tuple=True)
        want = [0, 0, 0, 0] if len(ys) == 0 else [xs.min(), ys.min(), xs.max(), ys.max()]
        assert b.tolist() == [int(v) for v in want]
    assert mask_to_box(masks[None]).shape == (1, 5, 4)
    assert xyxy_to_xywh([3, 4, 10, 6]) == [3, 4, 7, 2]


def brute_nms(boxes: np.ndarray, scores: np.ndarray, thr: float) -> list[int]:
    """The textbook greedy loop, on float32 like torchvision."""
    order = sorted(range(len(scores)), key=lambda i: -scores[i])  # sorted() is stable
    keep: list[int] = []
    for i in order:
        ok = True
        for j in keep:
            a, b = boxes[i], boxes[j]
            w = np.float32(max(np.float32(0), min(a[2], b[2]) - max(a[0], b[0])))
            h = np.float32(max(np.float32(0), min(a[3], b[3]) - max(a[1], b[1])))
            inter = w * h
            area_a = (a[2] - a[0]) * (a[3] - a[1])
            area_b = (b[2] - b[0]) * (b[3] - b[1])
            if inter / (area_b + area_a - inter) > thr:
                ok = False
                break
        if ok:
            keep.append(i)
    return keep


@pytest.mark.parametrize("seed", range(4))
def test_nms_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    n = 300
    xy = rng.integers(0, 60, size=(n, 2))
    wh = rng.integers(1, 40, size=(n, 2))
    boxes = np.concatenate([xy, xy + wh], 1).astype(np.float32)
    scores = rng.integers(0, 8, size=n).astype(np.float32)  # many ties
    thr = [0.3, 0.5, 0.7, 0.9][seed]
    got = nms(torch.from_numpy(boxes), torch.from_numpy(scores), thr).tolist()
    assert got == brute_nms(boxes, scores, thr)


def test_nms_threshold_is_strict_and_empty_input_works():
    boxes = torch.tensor([[0.0, 0, 10, 10], [0, 0, 10, 5], [20, 20, 30, 30]])
    scores = torch.tensor([0.9, 0.8, 0.1])
    assert nms(boxes, scores, 0.5).tolist() == [0, 1, 2]  # IoU exactly 0.5 is kept
    assert nms(boxes, scores, 0.49).tolist() == [0, 2]
    assert nms(torch.zeros(0, 4), torch.zeros(0), 0.5).tolist() == []
    with pytest.raises(ValueError, match="N x 4"):
        nms(torch.zeros(3, 2), torch.zeros(3), 0.5)


# -- stability and cleanup -----------------------------------------------------------------


def test_stability_score_counts_pixels_at_two_thresholds():
    logits = torch.tensor([[[-3.0, -0.5, 0.5], [1.5, 2.0, -2.0]]])
    # > 1: 2 pixels; > -1: 4 pixels
    assert stability_score(logits, 0.0, 1.0).tolist() == [0.5]


def test_remove_small_regions_holes_and_islands():
    m = np.zeros((20, 20), dtype=bool)
    m[2:12, 2:12] = True
    m[5:7, 5:7] = False  # hole of 4 px
    m[15, 15] = True  # island of 1 px
    m[16, 16] = True  # diagonal neighbour: one 8-connected island of 2 px
    filled, changed = remove_small_regions(m, 5, "holes")
    assert changed and filled[5:7, 5:7].all() and filled.sum() == m.sum() + 4
    cleaned, changed = remove_small_regions(m, 3, "islands")
    assert changed and not cleaned[15, 15] and not cleaned[16, 16]
    kept, changed = remove_small_regions(m, 2, "islands")
    assert not changed and (kept == m).all()
    # All islands small: the largest survives.
    tiny = np.zeros((9, 9), dtype=bool)
    tiny[0, 0] = True
    tiny[4:6, 4:6] = True
    only, changed = remove_small_regions(tiny, 10, "islands")
    assert changed and only.sum() == 4 and only[4:6, 4:6].all()
    both, changed = fill_holes_and_remove_islands(m, 5)
    assert changed and both.sum() == 100
    with pytest.raises(ValueError, match="mode"):
        remove_small_regions(m, 5, "blobs")  # type: ignore[arg-type]


# -- low-res logits at full resolution -------------------------------------------------------


def full_res(logits: torch.Tensor, s: int, inp: tuple[int, int], out: tuple[int, int]):
    x = F.interpolate(logits[:, None], (s, s), mode="bilinear", align_corners=False)
    x = x[..., : inp[0], : inp[1]]
    return F.interpolate(x, out, mode="bilinear", align_corners=False)[:, 0]


@pytest.mark.parametrize(
    ("low", "s", "inp", "out"),
    [(32, 128, (96, 128), (120, 160)), (32, 128, (128, 85), (300, 200)),
     (64, 256, (171, 256), (60, 90)), (16, 64, (64, 64), (13, 700))],
)
def test_upsample_map_counts_boxes_and_masks_match_interpolation(low, s, inp, out):
    gen = torch.Generator().manual_seed(low + out[0])
    coarse = torch.randn(6, 1, low // 4, low // 4, generator=gen) * 8
    logits = F.interpolate(coarse, (low, low), mode="bilinear", align_corners=False)[:, 0]
    logits[0] = -4.0  # an empty mask
    logits[1] = 3.0  # a full one
    upsample_map = UpsampleMap(low, s, inp, out)
    counts, boxes = upsample_map.stats(logits, (1.0, -1.0, 0.0), 0.0)
    full = full_res(logits, s, inp, out)
    want = torch.stack([(full > t).sum((1, 2)) for t in (1.0, -1.0, 0.0)], 1)
    # Float rounding may move a pixel lying within ~1e-6 of a threshold.
    assert (counts - want).abs().max() <= 2
    assert torch.equal(boxes, mask_to_box(full > 0))
    for i in range(1, len(logits)):
        window = upsample_map.crop_window(logits[i], boxes[i])
        x0, y0, x1, y1 = boxes[i].tolist()
        part = upsample_map.render(window, boxes[i], 0.0)
        assert (part != (full[i, y0:y1 + 1, x0:x1 + 1] > 0)).sum() <= 2
