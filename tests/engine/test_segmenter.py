"""The server's Segmenter answers prompts through the Predictor's path: same checks, same
masks as a Predictor on the same image."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from maskengine import Predictor, create_model
from maskengine.engine.errors import InvalidField
from maskengine.engine.prompts import ImageRef, Prompt, make_prompt
from maskengine.engine.segmenter import Segmenter


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("seg")
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
    image[10:30, 20:40] = (250, 20, 20)
    path = root / "im.png"
    Image.fromarray(image).save(path)
    model = create_model("tiny")
    seg = Segmenter(model, 1, root / "cache", focus=False)  # the plain pass (see test_focus)
    yield image, ImageRef(id=1, path=path, sha256="abc", height=48, width=64), seg, model
    seg.close()


def test_segmenter_matches_the_predictor(setup):
    _, ref, seg, model = setup
    pred = Predictor(model)
    pred.set_embedding(seg.embedding(ref), (ref.height, ref.width))  # the served embedding
    prompt = make_prompt(ref, points=[(30.0, 20.0, 1), (5.0, 5.0, 0)], box=(18, 8, 42, 32),
                         mask_input=None, low_res_size=model.config.low_res_size)
    cands = seg.predict(ref, prompt)
    masks, scores, _ = pred.predict(prompt.points, prompt.labels, prompt.box)
    order = np.argsort(-scores, kind="stable")
    assert [c.score for c in cands] == pytest.approx(scores[order].tolist(), abs=1e-6)
    assert [c.area for c in cands] == [int(masks[i].sum()) for i in order]


def test_bad_prompts_name_the_request_field(setup):
    _, ref, seg, model = setup
    low = model.config.low_res_size
    with pytest.raises(InvalidField) as err:
        make_prompt(ref, points=[(3.0, 3.0, 7)], box=None, mask_input=None, low_res_size=low)
    assert err.value.field == ("body", "points") and "point_labels" in err.value.message
    nan = np.full(low * low, np.nan, np.float16).tobytes()
    with pytest.raises(InvalidField) as err:
        make_prompt(ref, points=[(3.0, 3.0, 1)], box=None, mask_input=nan, low_res_size=low)
    assert err.value.field == ("body", "mask_input")
    with pytest.raises(ValueError, match="at least one prompt"):
        seg.predict(ref, Prompt())


def test_mask_region_accepts_any_frame_inside_the_image_even_a_tiny_one(tmp_path):
    from maskengine.engine.prompts import check_mask_region, check_region

    small = ImageRef(id=1, path=tmp_path / "x.png", sha256="0", height=6, width=7)
    assert check_mask_region(small, None) is None
    assert check_mask_region(small, (0, 0, 7, 6)) == (0, 0, 7, 6)  # the whole image
    with pytest.raises(InvalidField, match="mask_region"):
        check_mask_region(small, (0, 0, 8, 6))
    prompt = make_prompt(small, points=[(3, 3, 1)], box=None, mask_input=None,
                         low_res_size=4)
    with pytest.raises(InvalidField, match="under 8 pixels"):
        check_region(small, (0, 0, 6, 6), prompt)  # a region still needs 8 pixels
