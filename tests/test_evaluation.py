"""The evaluation protocol on cases with known answers."""

from __future__ import annotations

import json

import numpy as np
import pytest

from maskengine.evaluation import (
    InteractiveReport,
    RecallCounter,
    clicks_to,
    evaluate_interactive,
    interactive_ious,
    next_click,
)
from maskengine.evaluation_job import EvalConfig, run_evaluation


def _square(h=40, w=50, y0=10, y1=30, x0=5, x1=25):
    m = np.zeros((h, w), bool)
    m[y0:y1, x0:x1] = True
    return m


class OraclePredictor:
    """Answers every prompt with the ground-truth mask that holds the last positive click
    (3 copies; scores favour the first)."""

    def __init__(self, masks: np.ndarray) -> None:
        self.masks = masks

    def set_image(self, image: np.ndarray) -> None:
        self.shape = image.shape[:2]

    def predict_batch(self, point_coords=None, point_labels=None, boxes=None, mask_input=None,
                      multimask_output=True):
        k = len(point_coords)
        out = np.zeros((k, 3, *self.shape), bool)
        for i in range(k):
            x, y = point_coords[i, 0].astype(int)
            hits = [m for m in self.masks if m[y, x]]
            out[i] = min(hits, key=lambda m: m.sum())
        c = 3 if multimask_output else 1
        return out[:, :c], np.tile([0.9, 0.5, 0.1][:c], (k, 1)), np.zeros((k, c, 8, 8))


class GrowingPredictor:
    """The first answer is the left half of the object; every click adds a quarter more."""

    def __init__(self, gt: np.ndarray) -> None:
        self.gt = gt

    def set_image(self, image: np.ndarray) -> None:
        pass

    def predict_batch(self, point_coords=None, point_labels=None, boxes=None, mask_input=None,
                      multimask_output=True):
        n = point_coords.shape[1]
        cols = np.nonzero(self.gt.any(0))[0]
        keep = cols[: max(1, int(len(cols) * min(1.0, 0.25 + 0.25 * n)))]
        m = np.zeros_like(self.gt)
        m[:, keep] = self.gt[:, keep]
        c = 3 if multimask_output else 1
        masks = np.repeat(m[None, None], c, 1)
        if multimask_output:
            masks[0, 2] = self.gt  # the best of three is exact: the oracle sees it
        return masks, np.tile([0.9, 0.5, 0.1][:c], (1, 1)), np.zeros((1, c, 8, 8))


def test_first_click_is_farthest_from_the_boundary():
    x, y, label = next_click(_square(), np.zeros((40, 50), bool))
    assert label == 1 and 14 <= x <= 15 and 19 <= y <= 20
    pred = _square(x1=40)  # spills 15 columns to the right
    x, y, label = next_click(_square(), pred)
    assert label == 0 and 25 <= x < 40
    assert next_click(_square(), _square()) is None


def test_a_perfect_predictor_scores_one_with_one_click():
    masks = np.stack([_square(), _square(y0=2, y1=8, x0=30, x1=48)])
    image = np.zeros((40, 50, 3), np.uint8)
    report = evaluate_interactive(OraclePredictor(masks), [(image, masks)], max_clicks=5)
    s = report.summary()
    for run in ("default", "oracle"):
        assert s[run]["miou@1"] == 1.0 and s[run]["miou@5"] == 1.0
        assert s[run]["noc@85"] == 1.0 and s[run]["noc@90"] == 1.0
        assert s[run]["nof@90"] == 0
    assert s["objects"] == 2
    assert list(s["by_size"]) == ["small"] and s["by_size"]["small"]["objects"] == 2


def test_clicks_improve_a_partial_prediction_and_oracle_takes_the_best_of_three():
    gt = _square()
    image = np.zeros((40, 50, 3), np.uint8)
    ious = interactive_ious(GrowingPredictor(gt), image, gt[None], max_clicks=4)
    np.testing.assert_allclose(ious[0], [0.5, 0.75, 1.0, 1.0])
    assert clicks_to(ious, 0.85)[0] == 3 and clicks_to(ious, 0.5)[0] == 1
    oracle = interactive_ious(GrowingPredictor(gt), image, gt[None], max_clicks=4, oracle=True)
    assert oracle[0, 0] == 1.0
    assert clicks_to(np.array([[0.1, 0.2]]), 0.85)[0] == 2  # never reached -> max clicks


def test_average_recall_of_exact_and_shifted_proposals():
    gt = np.stack([_square(), _square(y0=2, y1=8, x0=30, x1=48)])
    c = RecallCounter(ks=(1, 100))
    c.add(gt[:0], np.zeros(0), gt[:1])  # an image with nothing proposed
    c.add(gt.copy(), np.array([0.2, 0.9]), gt)
    s = c.summary()
    # pooled over images: 2 of 3 found; top-1 by score finds one
    assert s["ar@100"] == pytest.approx(2 / 3) and s["ar@1"] == pytest.approx(1 / 3)
    assert s["gt_masks"] == 3
    c = RecallCounter(ks=(100,))
    shifted = np.roll(gt[:1], 2, axis=2)  # IoU 18/22 = 0.818 with the first square
    c.add(shifted, np.array([1.0]), gt)
    assert c.summary()["ar@100"] == pytest.approx(0.5 * 7 / 10)  # thresholds .50-.80 of 10


def test_eval_job_writes_json(tmp_path):
    out = tmp_path / "eval.json"
    cfg = EvalConfig(num_images=1, max_masks=2, max_clicks=3, scene_size=64, out=str(out))
    result = run_evaluation(cfg, progress=False)
    saved = json.loads(out.read_text())
    assert saved == result and saved["objects"] == 2
    assert set(saved["default"]) >= {"miou@1", "miou@3", "noc@85", "noc@90"}
    assert 0.0 <= saved["oracle"]["miou@1"] <= 1.0
    assert set(saved["iou_head"]) == {"correlation", "picks_best", "mean_abs_error"}
    with pytest.raises(ValueError, match="num_images"):
        EvalConfig(num_images=0)


def test_eval_job_measures_generator_recall(tmp_path):
    cfg = EvalConfig(num_images=1, max_masks=2, max_clicks=1, scene_size=64, proposals=True,
                     points_per_side=4, pred_iou_thresh=0.0, stability_score_thresh=0.0)
    result = run_evaluation(cfg, progress=False)
    p = result["proposals"]
    assert p["gt_masks"] == 2 and 0.0 <= p["ar@100"] <= p["ar@1000"] <= 1.0
    assert result["generator"]["points_per_side"] == 4


def test_summary_breaks_figures_down_by_object_size():
    curves = np.array([[0.2, 0.9], [0.4, 0.95], [0.8, 0.8]])
    report = InteractiveReport(curves, curves, np.array([100.0, 30.0 ** 2, 50.0 ** 2]))
    by = report.summary()["by_size"]
    assert set(by) == {"small", "medium"}  # no object of 96² px or more: no "large" row
    assert by["small"]["objects"] == 2 and by["medium"]["objects"] == 1
    assert by["small"]["default"]["miou@1"] == pytest.approx(0.3)
    assert by["small"]["default"]["noc@90"] == 2.0 and by["medium"]["default"]["nof@90"] == 1
    # Without areas (a report built from curves alone) there is no breakdown.
    assert "by_size" not in InteractiveReport(curves, curves).summary()


def test_iou_head_ranking_is_measured_over_all_first_click_masks():
    curves = np.zeros((2, 1))
    true = np.array([[0.2, 0.9, 0.5], [0.7, 0.1, 0.3]])
    ranked = InteractiveReport(curves, curves, first_scores=true * 0.5 + 0.1, first_true=true)
    head = ranked.summary()["iou_head"]
    assert head["correlation"] == pytest.approx(1.0) and head["picks_best"] == 1.0
    wrong = InteractiveReport(curves, curves, first_scores=1 - true, first_true=true)
    head = wrong.summary()["iou_head"]
    assert head["correlation"] == pytest.approx(-1.0) and head["picks_best"] == 0.0
    assert "iou_head" not in InteractiveReport(curves, curves).summary()


def test_eval_command_names_a_bad_checkpoint_without_a_traceback(tmp_path):
    from typer.testing import CliRunner

    from maskengine.cli import app

    out = CliRunner().invoke(app, ["eval", "--model", "vit_t", "--checkpoint",
                                   str(tmp_path / "missing.pt")], env={"COLUMNS": "400"})
    assert out.exit_code == 2 and "does not exist" in out.output
