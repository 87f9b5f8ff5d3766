"""Validation reports reused between rounds: keyed by model, data and protocol; a damaged
file is evaluated again."""

from __future__ import annotations

from dataclasses import fields

import numpy as np
import pytest
import torch

from maskengine.data import SceneConfig, generate_scene
from maskengine.engine.report_cache import ReportCache, data_fingerprint, model_fingerprint
from maskengine.evaluation import InteractiveReport
from maskengine.modeling import create_model


@pytest.fixture(scope="module")
def model():  # noqa: ANN201
    return create_model("tiny").eval()


def scenes(n: int = 1) -> list:
    out = [generate_scene(SceneConfig(height=96, width=96), 31, i) for i in range(n)]
    return [type(s)(image=s.image, masks=s.masks[:2], name=s.name) for s in out]


def test_a_stored_report_is_read_back_not_evaluated_again(tmp_path, model):
    data = scenes()
    cache = ReportCache(tmp_path, data, max_clicks=2)
    first = cache.report(model)
    path = cache.path(model)
    assert path.is_file() and first.default.shape == (2, 2)
    # What is stored is what comes back: plant other figures under the same key.
    planted = InteractiveReport(default=np.full((2, 2), 0.25), oracle=np.full((2, 2), 0.5))
    np.savez(path, **{f.name: getattr(planted, f.name) for f in fields(InteractiveReport)})
    again = ReportCache(tmp_path, data, max_clicks=2).report(model)
    assert np.array_equal(again.default, planted.default)
    assert np.array_equal(again.oracle, planted.oracle)


def test_a_damaged_report_is_evaluated_again_and_rewritten(tmp_path, model):
    data = scenes()
    cache = ReportCache(tmp_path, data, max_clicks=2)
    fresh = cache.report(model)
    cache.path(model).write_bytes(b"not an npz file")
    redone = cache.report(model)
    assert np.allclose(redone.default, fresh.default, atol=1e-6)
    with np.load(cache.path(model)) as z:  # rewritten as a readable report
        assert np.allclose(z["default"], fresh.default, atol=1e-6)


def test_the_key_follows_the_weights_the_masks_and_the_protocol(tmp_path, model):
    data = scenes()
    base = ReportCache(tmp_path, data, max_clicks=2).path(model)
    assert ReportCache(tmp_path, scenes(), max_clicks=2).path(model) == base  # same content
    assert ReportCache(tmp_path, data, max_clicks=3).path(model) != base
    one_mask = [type(data[0])(image=data[0].image, masks=data[0].masks[:1], name="x")]
    assert ReportCache(tmp_path, one_mask, max_clicks=2).path(model) != base
    assert data_fingerprint(one_mask) != data_fingerprint(data)

    other = create_model("tiny").eval()
    assert model_fingerprint(other) == model_fingerprint(model)
    with torch.no_grad():
        next(other.parameters()).view(-1)[0] += 1e-3
    assert model_fingerprint(other) != model_fingerprint(model)
    assert ReportCache(tmp_path, data, max_clicks=2).path(other) != base
