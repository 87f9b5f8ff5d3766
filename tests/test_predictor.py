"""Predictor behaviour beyond parity: batching, formats, and bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from maskengine import Predictor

from .conftest import load_reference_image


@pytest.fixture(scope="module")
def predictor(reference_model):
    p = Predictor(reference_model)
    p.set_image(load_reference_image(1))
    return p


def test_predict_batch_equals_single_calls(predictor):
    rng = np.random.default_rng(0)
    coords = rng.uniform(0, 199, size=(5, 2, 2))
    labels = np.array([[1, 0], [1, 1], [1, 0], [0, 1], [1, 1]])
    masks, iou, low = predictor.predict_batch(coords, labels, batch_size=2)
    assert masks.shape == (5, 3, 300, 200) and iou.shape == (5, 3) and low.shape == (5, 3, 128, 128)
    for k in range(5):
        m, i, lo = predictor.predict(coords[k], labels[k])
        np.testing.assert_allclose(i, iou[k], atol=1e-5)
        np.testing.assert_allclose(lo, low[k], atol=1e-4)
        assert (m != masks[k]).mean() < 1e-4


def test_many_boxes_in_one_call(predictor):
    boxes = np.array([[10, 10, 100, 150], [50, 60, 190, 290], [0, 0, 199, 299]])
    masks, iou, _ = predictor.predict_batch(boxes=boxes, multimask_output=False)
    assert masks.shape == (3, 1, 300, 200) and iou.shape == (3, 1)
    single, _, _ = predictor.predict(box=boxes[1], multimask_output=False)
    assert (single != masks[1]).mean() < 1e-4


def test_bgr_input_is_flipped(reference_model):
    image = load_reference_image(1)
    rgb, bgr = Predictor(reference_model), Predictor(reference_model)
    rgb.set_image(image)
    bgr.set_image(np.ascontiguousarray(image[..., ::-1]), image_format="BGR")
    torch.testing.assert_close(rgb.get_image_embedding(), bgr.get_image_embedding())


def test_reset_and_predict_before_image(reference_model):
    p = Predictor(reference_model)
    with pytest.raises(ValueError, match="call set_image"):
        p.predict(point_coords=np.array([[1, 1]]), point_labels=np.array([1]))
    with pytest.raises(ValueError, match="call set_image"):
        p.get_image_embedding()


def test_set_embedding_reuses_cached_features(predictor, reference_model):
    p = Predictor(reference_model)
    p.set_embedding(predictor.get_image_embedding().half(), predictor.original_size)
    assert p.input_size == predictor.input_size
    a = p.predict(np.array([[50, 60]]), np.array([1]))[1]
    b = predictor.predict(np.array([[50, 60]]), np.array([1]))[1]
    np.testing.assert_allclose(a, b, atol=2e-2)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"point_coords": np.zeros((2, 3)), "point_labels": np.ones(2)}, "point_coords must have"),
        ({"point_coords": np.zeros((2, 2)), "point_labels": np.ones(3)}, "point_labels must have"),
        ({"point_coords": np.zeros((2, 2)), "point_labels": np.array([1, 2])}, "-1, 0 or 1"),
        ({"point_coords": np.zeros((2, 2))}, "point_labels must be given"),
        ({"point_labels": np.ones(2)}, "point_coords must be given"),
        ({"point_coords": [[np.nan, 1.0]], "point_labels": [1]}, "point_coords contains NaN"),
        ({"box": np.array([50, 10, 20, 40])}, "box must satisfy x1 >= x0"),
        ({"box": np.array([1, 2, 3])}, "box must have shape"),
        ({"box": np.array([0, 0, np.inf, 5])}, "box contains NaN"),
        ({"mask_input": np.zeros((1, 64, 64))}, "mask_input must have shape"),
        ({"point_coords": "abc", "point_labels": [1]}, "point_coords must be numeric"),
    ],
)
def test_malformed_prompts_name_the_argument(predictor, kwargs, match):
    with pytest.raises(ValueError, match=match):
        predictor.predict(**kwargs)


@pytest.mark.parametrize(
    ("image", "match"),
    [
        (np.zeros((10, 10), np.uint8), "H x W x 3"),
        (np.zeros((10, 10, 4), np.uint8), "H x W x 3"),
        (np.zeros((0, 10, 3), np.uint8), "H x W x 3"),
        (np.zeros((10, 10, 3), np.float32), "uint8"),
    ],
)
def test_bad_images(reference_model, image, match):
    with pytest.raises(ValueError, match=match):
        Predictor(reference_model).set_image(image)


def test_bad_image_format(reference_model):
    with pytest.raises(ValueError, match="image_format"):
        Predictor(reference_model).set_image(np.zeros((4, 4, 3), np.uint8), image_format="HSV")
