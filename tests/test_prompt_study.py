"""The prompt study (`maskengine prompts`): prompts land on the objects they were made
from, figures add up and repeat, on synthetic scenes with the bundled tiny model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from maskengine.cli import app as cli_app
from maskengine.data import SceneConfig, generate_scene
from maskengine.modeling import create_model
from maskengine.predictor import Predictor
from maskengine.prompt_study import (
    PROMPTS,
    PromptStudyConfig,
    object_prompts,
    run_prompt_study,
    run_study,
)

SCENES = SceneConfig(height=96, width=128, min_objects=3, max_objects=6, min_size=0.1)


class TruthPredictor:
    """A model-free predictor that answers from the ground truth: for points, the (up to
    3) true masks holding every point, smallest first; for a box, the true mask whose tight
    box it is. Its best-of-3 answer is exact exactly when the study's prompts lie on the
    right pixels (x, y order, inclusive box corners)."""

    def __init__(self, truth: dict[bytes, np.ndarray]) -> None:
        self.truth = truth
        self.masks = np.zeros((0, 1, 1), bool)

    def set_image(self, image: np.ndarray) -> None:
        self.masks = self.truth[image.tobytes()]

    def _answer(self, points: np.ndarray | None, box: np.ndarray | None) -> list[np.ndarray]:
        if box is not None:
            x0, y0, x1, y1 = box.astype(int)
            for m in self.masks:
                ys, xs = np.nonzero(m)
                if (xs.min(), ys.min(), xs.max(), ys.max()) == (x0, y0, x1, y1):
                    return [m]
            return []
        held = [m for m in self.masks
                if all(m[int(y), int(x)] for x, y in points)]
        return sorted(held, key=lambda m: m.sum())[:3]

    def predict_batch(self, point_coords=None, point_labels=None, boxes=None,  # noqa: ANN001
                      mask_input=None, multimask_output=True):  # noqa: ANN001, ANN201
        k = len(point_coords if point_coords is not None else boxes)
        c = 3 if multimask_output else 1
        out = np.zeros((k, c, *self.masks.shape[1:]), bool)
        for i in range(k):
            found = self._answer(None if point_coords is None else point_coords[i],
                                 None if boxes is None else boxes[i])
            for j, m in enumerate(found[:c]):
                out[i, j] = m
        scores = np.tile(np.linspace(1.0, 0.5, c), (k, 1))
        return out, scores, np.zeros((k, c, 4, 4), np.float32)


def _samples(n: int) -> list[tuple[np.ndarray, np.ndarray]]:
    return [(s.image, s.masks) for s in (generate_scene(SCENES, 9, i) for i in range(n))]


def test_prompts_lie_inside_their_object() -> None:
    mask = np.zeros((40, 50), bool)
    mask[10:20, 5:35] = True
    prompts = object_prompts(mask, np.random.default_rng(0))
    assert set(prompts) == set(PROMPTS)
    (cx, cy), = prompts["1 point"][0]
    assert mask[int(cy), int(cx)] and cy in (14, 15)  # mid-height: farthest from the edge
    for kind in ("3 points", "5 points"):
        pts = prompts[kind][0]
        assert len(pts) == int(kind[0]) and all(mask[int(y), int(x)] for x, y in pts)
    assert prompts["box"][1].tolist() == [5, 10, 34, 19]


def test_perfect_answers_give_oracle_one_everywhere() -> None:
    samples = _samples(3)
    truth = TruthPredictor({im.tobytes(): m for im, m in samples})
    res = run_study(truth, samples)
    objects = sum(len(m) for _, m in samples)
    assert res["objects"] == objects and res["images"] == 3
    for kind, row in res["prompts"].items():
        assert row["oracle_miou"] == 1.0, kind
        assert sum(s["objects"] for s in row["by_size"].values()) == objects
    assert res["prompts"]["box"]["miou"] == 1.0  # a box names one object


@pytest.mark.slow
def test_tiny_model_study_repeats_and_adds_up(tmp_path: Path) -> None:
    samples = _samples(1)
    predictor = Predictor(create_model("tiny"))
    first = run_study(predictor, samples, seed=3)
    assert run_study(predictor, samples, seed=3) == first
    assert run_study(predictor, samples, seed=4)["prompts"]["3 points"] != \
        first["prompts"]["3 points"]  # the drawn points follow the seed
    for row in first["prompts"].values():
        assert 0.0 <= row["miou"] <= row["oracle_miou"] + 1e-9 <= 1.0 + 1e-9
        assert sum(s["objects"] for s in row["by_size"].values()) == first["objects"]
        for s in row["by_size"].values():
            assert 0.0 <= s["miou"] <= 1.0
    out = tmp_path / "prompts.json"
    res = CliRunner().invoke(cli_app, ["prompts", "--num-images", "1", "--scene-size", "64",
                                       "--out", str(out)])
    assert res.exit_code == 0, res.output
    data = json.loads(out.read_text())
    assert list(data["prompts"]) == list(PROMPTS) and data["model"] == "tiny"
    assert "box + point" in res.output and data["data_seed"] == 1000


def test_prompt_study_config_errors() -> None:
    with pytest.raises(ValueError, match="go together"):
        PromptStudyConfig(project="p")
    with pytest.raises(ValueError, match="num_images"):
        run_prompt_study(PromptStudyConfig(num_images=0))
