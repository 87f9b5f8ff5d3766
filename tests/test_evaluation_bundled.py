"""The bundled tiny weights: they load by default and keep their measured quality."""

from __future__ import annotations

import torch

from maskengine import create_model
from maskengine.evaluation_job import EvalConfig, run_evaluation
from maskengine.modeling.registry import bundled_weights_path


def test_tiny_loads_the_bundled_weights_by_default():
    path = bundled_weights_path("tiny")
    assert path is not None and path.stat().st_size <= 20 * 2**20
    sd = torch.load(path, weights_only=True)
    model = create_model("tiny")
    assert sum(v.numel() for v in model.parameters()) < 5_000_000
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, sd[k])


def test_bundled_tiny_keeps_its_quality_on_unseen_scenes():
    # Scenes of seed 1000 (the bundled model trained on seed 0). The floors sit a little under the
    # figures measured on these 3 images, so a regression in the model, the predictor or
    # the protocol shows here; the full figures are in docs/training.md. First the model
    # alone (the official single pass), then as `maskengine eval` runs it by default, with
    # the focus pass for small masks (maskengine.focus).
    res = run_evaluation(EvalConfig(num_images=3, max_clicks=5, focus=False), progress=False)
    assert res["objects"] >= 20 and res["focus"] is False
    assert res["default"]["miou@1"] >= 0.71  # measured 0.739 (on 50 images: 0.717)
    assert res["oracle"]["miou@1"] >= 0.76  # measured 0.810 (0.790)
    assert res["default"]["miou@5"] >= 0.77  # measured 0.803 (0.797)
    assert res["iou_head"]["correlation"] >= 0.79  # measured 0.809 (0.802)

    res = run_evaluation(EvalConfig(num_images=3, max_clicks=5), progress=False)
    assert res["focus"] is True
    assert res["default"]["miou@1"] >= 0.79  # measured 0.814
    assert res["oracle"]["miou@1"] >= 0.82  # measured 0.845
    assert res["default"]["miou@5"] >= 0.88  # measured 0.908
    assert res["iou_head"]["correlation"] >= 0.74  # measured 0.765: the crop's predictions
