"""The focus pass (maskengine.focus): small masks answered again on a zoomed crop; large ones
untouched; the crop geometry and the logits fed back agree; and on the bundled model it
measurably helps small objects."""

from __future__ import annotations

import numpy as np
import pytest

from maskengine import Predictor, create_model
from maskengine.evaluation import evaluate_interactive
from maskengine.evaluation_job import EvalConfig, eval_samples
from maskengine.focus import FocusConfig, FocusPredictor, click_predictor, logits_in_crop


@pytest.fixture(scope="module")
def tiny():
    return create_model("tiny")


@pytest.fixture(scope="module")
def scenes():
    _, samples = eval_samples(EvalConfig(num_images=2, data_seed=1000))
    return list(samples())


def test_crop_box_zooms_on_small_masks_only(tiny):
    fp = FocusPredictor(tiny)
    mask = np.zeros((256, 256), bool)
    mask[100:120, 30:44] = True  # 20 px tall
    x0, y0, side = fp.crop_box(mask, np.array([[35.0, 110.0]]))
    assert side == 64 and x0 <= 30 and x0 + side >= 44 and y0 <= 100 and y0 + side >= 120
    assert x0 % 8 == 0 and y0 % 8 == 0  # on the 1/32 grid, so nearby prompts share it
    mask[:] = False
    mask[10:30, 0:10] = True  # at the border: the crop stays inside the image
    x0, y0, side = fp.crop_box(mask, np.zeros((0, 2)))
    assert x0 == 0 and y0 >= 0 and y0 + side <= 256
    big = np.zeros((256, 256), bool)
    big[50:150, 50:150] = True
    assert fp.crop_box(big, np.zeros((0, 2))) is None
    assert fp.crop_box(np.zeros((256, 256), bool), np.zeros((0, 2))) is None
    with pytest.raises(ValueError, match="focus settings"):
        FocusConfig(context=0.5)


def test_large_objects_keep_the_plain_answer_and_small_ones_get_the_crop(tiny, scenes):
    image, masks = scenes[0]
    plain, focus = Predictor(tiny), FocusPredictor(tiny)
    plain.set_image(image)
    focus.set_image(image)
    area = masks.reshape(len(masks), -1).sum(1)
    big, small = int(area.argmax()), int(area.argmin())
    for i in (big, small):
        ys, xs = np.nonzero(masks[i])
        mid = len(ys) // 2
        pt, lab = np.array([[xs[mid], ys[mid]]], float), np.array([1])
        pm, ps, pl = plain.predict(pt, lab)
        fm, fs, fl = focus.predict(pt, lab)
        assert fm.shape == pm.shape and fs.shape == ps.shape and fl.shape == pl.shape
        crop = focus.crop_box(pm[ps.argmax()], pt)
        if i == big:
            assert crop is None
            assert np.array_equal(fm, pm) and np.array_equal(fs, ps) and np.array_equal(fl, pl)
        else:
            assert crop is not None
            x0, y0, side = crop
            outside = np.ones(fm.shape[1:], bool)
            outside[y0:y0 + side, x0:x0 + side] = False
            assert not fm[:, outside].any()  # nothing outside the crop
            assert not np.array_equal(fs, ps)  # the crop's own IoU predictions
            before = focus.crops_encoded
            focus.predict(pt, lab, mask_input=fl[fs.argmax()][None], multimask_output=False)
            assert focus.crops_encoded == before  # the crop's embedding is kept


def test_logits_fed_back_land_where_they_came_from(tiny, scenes):
    """Crop logits pasted into the full grid and sampled back into the crop agree (the
    two coordinate maps are inverse to each other), up to the resampling blur."""
    focus = FocusPredictor(tiny)
    focus.set_image(scenes[0][0])
    box = (64, 96, 128)  # half the image: the crop's logits are shrunk 2x when pasted
    cols = np.mgrid[0:128, 0:128][1]
    crop_logits = (5 * np.sin(6 * cols / 128))[None]  # a smooth ramp across the crop
    full = np.full((1, 128, 128), -20.0, np.float32)
    focus._paste_logits(full, crop_logits.astype(np.float32), box)
    assert full[0, :48, :].max() == -20.0 and full[0, 48:112, 32:96].min() > -6  # in place
    back = logits_in_crop(full, box, focus.image.shape[:2])
    np.testing.assert_allclose(back[0, 8:-8, 8:-8], crop_logits[0, 8:-8, 8:-8], atol=0.3)


def test_focus_helps_small_objects_of_the_bundled_model(tiny, scenes):
    area = np.concatenate([m.reshape(len(m), -1).sum(1) for _, m in scenes])
    small = area < 32 ** 2
    assert small.sum() >= 10
    plain = evaluate_interactive(Predictor(tiny), iter(scenes), max_clicks=3)
    focus = evaluate_interactive(click_predictor(tiny), iter(scenes), max_clicks=3)
    assert isinstance(click_predictor(tiny), FocusPredictor)  # tiny's default
    assert focus.default[small, 0].mean() > plain.default[small, 0].mean() + 0.03
    assert focus.default[small, 2].mean() > plain.default[small, 2].mean() + 0.05
    assert focus.default[~small, 0].mean() > plain.default[~small, 0].mean() - 0.05


def test_the_server_answers_a_first_click_as_the_focus_predictor(tiny, scenes, tmp_path):
    """The annotation server's Segmenter runs the same focus pass as `maskengine eval`: a
    first click on a small object gets the same crop and the same masks."""
    from PIL import Image

    from maskengine.engine import rle
    from maskengine.engine.prompts import ImageRef, make_prompt
    from maskengine.engine.segmenter import Segmenter
    from maskengine.evaluation import next_click

    image, gts = scenes[0]
    Image.fromarray(image).save(tmp_path / "im.png")
    ref = ImageRef(id=1, path=tmp_path / "im.png", sha256="s", height=image.shape[0],
                   width=image.shape[1])
    seg = Segmenter(tiny, 1, tmp_path / "cache")  # focus on: tiny's default
    fp = FocusPredictor(tiny)
    fp.set_image(image)
    focused = 0
    try:
        for gt in gts[np.argsort(gts.reshape(len(gts), -1).sum(1))][:4]:  # smallest first
            x, y, label = next_click(gt, np.zeros_like(gt))
            cands = seg.predict(ref, make_prompt(ref, points=[(x, y, label)], box=None,
                                                 mask_input=None, low_res_size=128))
            masks, scores, _ = fp.predict(np.array([[x, y]]), np.array([label]))
            order = np.argsort(-scores, kind="stable")
            assert [c.score for c in cands] == pytest.approx(scores[order].tolist(), abs=1e-3)
            for c, i in zip(cands, order, strict=True):
                got = rle.decode(c.counts, *image.shape[:2])
                assert (got != masks[i]).sum() <= 0.01 * max(masks[i].sum(), 1)
            focused += cands[0].region is not None
    finally:
        seg.close()
    assert focused >= 2  # small objects were answered on a crop


def test_the_simulated_annotator_keeps_asking_on_the_crop_as_the_page_does(tmp_path):
    """The simulated annotator goes through the server's code with the page's rule (ask on
    the answer's region until a click falls outside it): with the focus pass it needs fewer
    clicks for the same objects than without."""
    from maskengine.data import SceneConfig, generate_scene
    from maskengine.engine.simulate import (
        AnnotatorConfig,
        SimulatedAnnotator,
        make_synthetic_project,
    )
    from maskengine.server.app import load_state
    from maskengine.server.settings import ServerSettings

    scene = generate_scene(SceneConfig(), 1000, 1)
    sp = make_synthetic_project(tmp_path, [scene], [])
    (image_id,) = sp.train_ids
    clicks, ious = {}, {}
    for focus in (False, True):
        state = load_state(sp.project.root, ServerSettings(model="tiny", model_poll=0,
                                                          prefetch=0, focus=focus))
        try:
            annotator = SimulatedAnnotator(sp.project, state.segmenter, "simulated",
                                           AnnotatorConfig(max_clicks=8, brush_fix=False))
            res = annotator.annotate(image_id, sp.ground_truth[image_id])
        finally:
            state.close()
        clicks[focus] = sum(o.clicks for o in res.objects)
        ious[focus] = np.mean([o.iou for o in res.objects])
    assert clicks[True] < 0.85 * clicks[False] and ious[True] > ious[False]


def test_resampled_logits_go_back_where_they_came_from_and_fill_the_rest():
    from maskengine.focus import resample_logits

    yy, xx = np.mgrid[:64, :64]
    smooth = ((xx - 32) / 4 + (yy - 20) / 8)[None].astype(np.float32)  # a ramp: exact to
    # resample bilinearly, so any error is in where the cells land
    crop, whole = (40, 30, 104, 94), (0, 0, 300, 200)  # a 64 px crop of a 300 x 200 image
    out = resample_logits(smooth, crop, whole)
    assert out.shape == (1, 64, 64)
    # Cells of the whole image's grid (300 px / 64 cells) outside the crop: the fill.
    assert out[0, :5, :].max() == -20.0 and out[0, :, 25:].max() == -20.0
    back = resample_logits(out, whole, crop)
    np.testing.assert_allclose(back[0, 8:-8, 8:-8], smooth[0, 8:-8, 8:-8], atol=0.05)
    same = resample_logits(smooth, crop, crop)
    np.testing.assert_allclose(same, smooth, atol=1e-4)
