"""Named, frozen evaluation sets: create, list, immutability, eval by name, rounds on a set
(real SQLite store, the bundled tiny model)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from maskengine.cli import app as cli_app
from maskengine.data import SceneConfig, generate_scene
from maskengine.engine import rle, services
from maskengine.engine.models import Mask, User
from maskengine.engine.rounds import RoundConfig, RoundError, round_training_config, run_round
from maskengine.engine.simulate import make_synthetic_project
from maskengine.evaluation import evaluate_interactive
from maskengine.evaluation_job import EvalConfig, run_evaluation
from maskengine.focus import click_predictor
from maskengine.modeling import create_model
from maskengine.quality.evalsets import (
    EvalSetDataset,
    EvalSetError,
    create_evalset,
    default_evalset,
    evalset_file,
    load_evalset,
)
from maskengine.quality.versions import snapshot
from maskengine.server.app import load_state
from maskengine.server.settings import ServerSettings

SCENES = SceneConfig(height=64, width=80, min_objects=2, max_objects=3, min_size=0.25)


def _cli(*args: str) -> str:
    res = CliRunner().invoke(cli_app, list(args))
    assert res.exit_code == 0, res.output
    return res.output


@pytest.fixture()
def sp(tmp_path: Path):
    """Two train and two validation scenes; the validation masks are the ground truth."""
    made = make_synthetic_project(tmp_path, [generate_scene(SCENES, 5, i) for i in range(2)],
                                  [generate_scene(SCENES, 6, i) for i in range(2)])
    yield made
    made.project.close()


def _add_square(project, image_id: int) -> int:  # noqa: ANN001
    with project.session() as s:
        admin = s.scalar(select(User).where(User.name == "admin"))
        m = np.zeros((SCENES.height, SCENES.width), bool)
        m[5:15, 5:15] = True
        return services.create_mask(s, image_id=image_id, author=admin,
                                    counts=rle.encode(m).counts).id


def test_create_list_and_immutability(sp) -> None:
    project, root = sp.project, str(sp.project.root)
    assert "no evaluation sets yet" in _cli("evalset", root)
    out = _cli("evalset", root, "create", "val1")
    n_masks = sum(len(sp.ground_truth[i]) for i in sp.val_ids)
    assert f"{n_masks} masks on 2 validation images" in out
    frozen = evalset_file(project, "val1").read_bytes()
    # Masks added later (on train and on validation images) do not change the set.
    _add_square(project, sp.val_ids[0])
    _add_square(project, sp.train_ids[0])
    assert evalset_file(project, "val1").read_bytes() == frozen
    data = EvalSetDataset(project, "val1")
    assert len(data) == 2 and data.num_masks == n_masks
    for i, image_id in enumerate(sp.val_ids):
        assert np.array_equal(data[i].masks, sp.ground_truth[image_id])
    # The new set sees the added mask; list shows both and the default.
    _cli("evalset", root, "create", "val2", "--default")
    assert load_evalset(project, "val2")["sha256"] != load_evalset(project, "val1")["sha256"]
    listing = _cli("evalset", root, "list")
    assert f"val1: {n_masks} masks on 2 images" in listing
    assert f"val2 (default): {n_masks + 1} masks" in listing
    assert default_evalset(project) == "val2"
    # Never overwritten; a hand edit is detected.
    with pytest.raises(EvalSetError, match="exists already"):
        create_evalset(project, "val1")
    file = evalset_file(project, "val2")
    edited = json.loads(file.read_text())
    edited["images"][0]["masks"].pop()
    file.write_text(json.dumps(edited))
    with pytest.raises(EvalSetError, match="does not match its hash"):
        load_evalset(project, "val2")


def test_create_from_a_snapshot_and_errors(sp) -> None:
    project = sp.project
    snapshot(project, "v1")
    with project.session() as s:  # after the snapshot, every validation mask is deleted
        admin = s.scalar(select(User).where(User.name == "admin"))
        for m in list(s.scalars(select(Mask))):
            services.delete_mask(s, mask_id=m.id, expected_version=m.version, user=admin)
    with pytest.raises(EvalSetError, match="no validation images with accepted masks"):
        create_evalset(project, "now")
    d = create_evalset(project, "then", version="v1")
    assert d["source"] == "version v1" and len(d["images"]) == 2
    with pytest.raises(EvalSetError, match=r"'nope' does not exist \(sets: then\)"):
        load_evalset(project, "nope")
    with pytest.raises(EvalSetError, match="not allowed"):
        create_evalset(project, "../x")
    res = CliRunner().invoke(cli_app, ["eval", "--project", str(project.root),
                                       "--evalset", "nope"])
    assert res.exit_code != 0 and "'nope' does not exist" in res.output
    res = CliRunner().invoke(cli_app, ["eval", "--evalset", "then"])
    assert res.exit_code != 0 and "go together" in res.output


def test_eval_by_name_equals_evaluating_the_masks_directly(sp, tmp_path: Path) -> None:
    project = sp.project
    create_evalset(project, "frozen")
    _add_square(project, sp.val_ids[1])  # not in the set
    load_state(project.root, ServerSettings(model="tiny", model_poll=0, threads=1)).close()
    out = tmp_path / "figures.json"
    _cli("eval", "--project", str(project.root), "--evalset", "frozen", "--max-clicks", "3",
         "--out", str(out))
    by_name = json.loads(out.read_text())
    assert by_name["data"] == "evalset:frozen" and by_name["model"] == "tiny"
    assert by_name["model_version_id"] is not None
    samples = [(generate_scene(SCENES, 6, i).image, sp.ground_truth[image_id])
               for i, image_id in enumerate(sp.val_ids)]
    # `maskengine eval` answers as the interactive tools do (tiny: with the focus pass).
    direct = evaluate_interactive(click_predictor(create_model("tiny")), samples,
                                  max_clicks=3).summary()
    for key in ("objects", "default", "oracle", "by_size"):
        assert by_name[key] == direct[key], key
    # An explicit model overrides the served one.
    res = run_evaluation(EvalConfig(project=str(project.root), evalset="frozen",
                                    model="tiny", max_clicks=1), progress=False)
    assert res["model_version_id"] is None and res["objects"] == direct["objects"]


@pytest.mark.slow
def test_a_round_validates_on_the_named_set(sp) -> None:
    project = sp.project
    _add_square(project, sp.train_ids[0])  # something to train on
    load_state(project.root, ServerSettings(model="tiny", model_poll=0, threads=1)).close()
    train = dict(steps=1, batch_size=1, masks_per_image=1, points=1, mask_only=0,
                 grad_iterations=1, checkpoint_every=1, threads=1)
    with pytest.raises(RoundError, match="'missing' does not exist"):
        run_round(project, RoundConfig(training=round_training_config(train),
                                       evalset="missing"), progress=False, log=lambda _: None)
    create_evalset(project, "one", default=True)
    with project.session() as s:  # a set of one image: drop the other's masks
        admin = s.scalar(select(User).where(User.name == "admin"))
        for m in list(s.scalars(select(Mask).where(Mask.image_id == sp.val_ids[1]))):
            services.delete_mask(s, mask_id=m.id, expected_version=m.version, user=admin)
    logs: list[str] = []
    r = run_round(project, RoundConfig(training=round_training_config(train), max_clicks=2,
                                       tolerance=1.0, replay=None), progress=False,
                  log=logs.append)
    # The default set (2 images, as frozen), not the validation split (now 1 image).
    assert r.metrics["val_set"] == "evalset:one"
    assert r.metrics["val"]["objects"] == sum(len(sp.ground_truth[i]) for i in sp.val_ids)
    assert any("(evaluation set one)" in line for line in logs)
