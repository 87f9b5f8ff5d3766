"""Parity with the official outputs (tests/fixtures/reference/README.md): segment-anything
on a small ViT model (`reference/`) and MobileSAM on a small TinyViT model
(`reference_vit_t/`, loaded with the size inferred from the file's keys).

Tolerances: image features and IoU predictions within 1e-4 (absolute), low-resolution logits
within 1e-3, full-resolution boolean masks identical except at most 0.01% of pixels.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from maskengine import Predictor, create_model

from .conftest import FIXTURES

CASES = {"point_multi": True, "points_single": False, "box": False, "box_point": True}
FEATURE_TOL = 1e-4
IOU_TOL = 1e-4
LOW_RES_TOL = 1e-3
MASK_PIXEL_FRACTION = 1e-4


@pytest.fixture(scope="module", params=["reference", "reference_vit_t"])
def model(request, reference_model):
    if request.param == "reference":
        return request.param, reference_model
    return request.param, create_model(checkpoint=FIXTURES / request.param / "checkpoint.pt")


@pytest.fixture(scope="module", params=[0, 1])
def case(request, model):
    folder, net = model
    predictor = Predictor(net)
    image = Image.open(FIXTURES / folder / f"image{request.param}.png").convert("RGB")
    predictor.set_image(np.array(image))
    return predictor, np.load(FIXTURES / folder / f"predictor{request.param}.npz")


def test_image_features(case):
    predictor, ref = case
    assert predictor.input_size == tuple(ref["input_size"])
    assert predictor.original_size == tuple(ref["original_size"])
    feats = predictor.get_image_embedding().numpy()
    assert feats.shape == ref["features"].shape
    assert np.abs(feats - ref["features"]).max() <= FEATURE_TOL


@pytest.mark.parametrize("name", list(CASES))
def test_prompt_case(case, name):
    predictor, ref = case
    prompt = {k.rsplit("/", 1)[1]: ref[k] for k in ref.files if k.startswith(f"{name}/prompt/")}
    masks, iou, low = predictor.predict(**prompt, multimask_output=CASES[name])
    assert masks.shape == ref[f"{name}/masks"].shape and masks.dtype == bool
    assert np.abs(iou - ref[f"{name}/iou"]).max() <= IOU_TOL
    assert np.abs(low - ref[f"{name}/low_res"]).max() <= LOW_RES_TOL
    assert (masks != ref[f"{name}/masks"]).mean() <= MASK_PIXEL_FRACTION


def test_mask_input_round(case):
    predictor, ref = case
    logits, iou, low = predictor.predict(
        point_coords=ref["points_single/prompt/point_coords"],
        point_labels=np.array([1, 1]),
        mask_input=ref["mask_input/input"],
        multimask_output=False,
        return_logits=True,
    )
    assert np.abs(iou - ref["mask_input/iou"]).max() <= IOU_TOL
    assert np.abs(low - ref["mask_input/low_res"]).max() <= LOW_RES_TOL
    # Full-resolution logits are bilinear resamples of the low-res ones.
    assert np.abs(logits - ref["mask_input/logits"]).max() <= LOW_RES_TOL
