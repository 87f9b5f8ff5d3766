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
    assert res["default"]["miou@1"] >= 0.74  # measured 0.765 (on 50 images: 0.737)
    assert res["oracle"]["miou@1"] >= 0.78  # measured 0.810 (0.790)
    assert res["default"]["miou@5"] >= 0.79  # measured 0.821 (0.810)
    assert res["iou_head"]["correlation"] >= 0.83  # measured 0.866 (0.855)

    res = run_evaluation(EvalConfig(num_images=3, max_clicks=5), progress=False)
    assert res["focus"] is True
    assert res["default"]["miou@1"] >= 0.80  # measured 0.827 (0.818)
    assert res["oracle"]["miou@1"] >= 0.82  # measured 0.849 (0.865)
    assert res["default"]["miou@5"] >= 0.89  # measured 0.920 (0.925)
    # The IoU head was fitted again on crop answers too (maskengine.training.iou_head).
    assert res["iou_head"]["correlation"] >= 0.77  # measured 0.799 (0.824)
