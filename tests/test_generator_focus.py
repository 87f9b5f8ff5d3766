"""The automatic generator's focus pass: kept small masks asked again on a zoomed crop.
On by default for models with an input under 1024 (the bundled `tiny`), off on request (and
in the parity tests, which compare with the official single pass); on the bundled model it
measurably raises recall, and it never adds masks."""

from __future__ import annotations

import numpy as np
import pytest

from maskengine import MaskGenerator, create_model
from maskengine.data import SceneConfig, generate_scene
from maskengine.evaluation import RecallCounter
from maskengine.focus import FocusPredictor


@pytest.fixture(scope="module")
def tiny():
    return create_model("tiny")


@pytest.fixture(scope="module")
def scene():
    # The threshold study's seed (benchmarks/generator_thresholds.py), not the demo's.
    return generate_scene(SceneConfig(height=384, width=512), 3000, 5)


def test_focus_is_the_default_for_tiny_and_can_be_turned_off(tiny):
    assert isinstance(MaskGenerator(tiny).focus, FocusPredictor)
    assert MaskGenerator(tiny, focus=False).focus is None
    assert isinstance(MaskGenerator(tiny, focus=True).focus, FocusPredictor)


def test_refine_mask_zooms_on_small_masks_only(tiny, scene):
    fp = FocusPredictor(tiny)
    with pytest.raises(ValueError, match="no image set"):
        fp.refine_mask(scene.masks[0], np.array([10.0, 10.0]))
    fp.set_image(scene.image, encode=False)
    assert not fp.full.is_image_set  # no whole-image embedding for refining alone
    big = np.zeros(scene.image.shape[:2], bool)
    big[50:300, 40:400] = True
    assert fp.refine_mask(big, np.array([200.0, 150.0])) is None
    areas = scene.masks.reshape(len(scene.masks), -1).sum(1)
    i = int(np.argmin(abs(areas - 1200)))  # a small object (about 35 x 35 px)
    truth = scene.masks[i]
    ys, xs = np.nonzero(truth)
    point = np.array([xs[len(xs) // 2], ys[len(ys) // 2]], dtype=float)  # inside it
    # A coarse version of it (shifted by 3 px) still matches; the crop's answer replaces it
    # and is closer to the truth.
    coarse = np.roll(truth, 3, axis=1)
    refined = fp.refine_mask(coarse, point)
    assert refined is not None and refined.mask.shape == coarse.shape
    assert 0.0 <= refined.stability_score <= 1.0 and np.isfinite(refined.predicted_iou)
    out = refined.mask

    def iou(a: np.ndarray) -> float:
        return (a & truth).sum() / (a | truth).sum()
    assert iou(out) > max(iou(coarse), 0.9), (iou(coarse), iou(out))
    assert fp.crops_encoded == 1
    # A mask far from anything the point gives (no candidate within IoU 0.5): None.
    far = np.zeros_like(coarse)
    far[ys.min():ys.min() + 2, xs.min():xs.min() + 2] = True
    assert fp.refine_mask(far, point) is None


def test_a_mask_its_crop_cannot_hold_is_left_alone(tiny):
    """On a long thin image the crop (at most the short side) can be narrower than a small
    mask: refining there would cut it, so it is not refined."""
    image = np.full((40, 400, 3), 90, np.uint8)
    image[10:30, 100:160] = (220, 40, 40)
    mask = np.zeros((40, 400), bool)
    mask[10:30, 100:160] = True  # 60 px wide: small (<= 0.19 x 400) but wider than 40
    fp = FocusPredictor(tiny)
    fp.set_image(image, encode=False)
    assert fp.refine_mask(mask, np.array([130.0, 20.0])) is None
    assert fp.crops_encoded == 0


def _recall(records, truth) -> tuple[float, int]:
    counter = RecallCounter(ks=(100,))
    counter.add(np.stack([r.segmentation for r in records]),
                np.array([r.predicted_iou for r in records]), truth)
    return counter.summary()["ar@100"], len(records)


def test_focus_raises_the_bundled_models_recall_without_adding_masks(tiny, scene):
    kw = {"points_per_side": 16, "pred_iou_thresh": 0.0, "stability_score_thresh": 0.8}
    plain_ar, plain_n = _recall(MaskGenerator(tiny, focus=False, **kw).generate(scene.image),
                                scene.masks)
    records = MaskGenerator(tiny, **kw).generate(scene.image)
    focus_ar, focus_n = _recall(records, scene.masks)
    assert focus_n <= plain_n
    assert focus_ar > plain_ar + 0.05, (plain_ar, focus_ar)
    for r in records:  # the records stay consistent with their refined masks
        ys, xs = np.nonzero(r.segmentation)
        assert r.area == len(ys)
        assert r.bbox == [xs.min(), ys.min(), xs.max() - xs.min(), ys.max() - ys.min()]
