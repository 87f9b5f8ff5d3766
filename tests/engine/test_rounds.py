"""Model-in-the-loop rounds: a tiny two-round run through the server's own state.

Round 1 is promoted (tolerance 1: no validation change counts as worse) and the running
app switches to it; round 2 trains with a learning rate that wrecks the model, so its
validation figures fall and it is kept but not promoted."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from maskengine.cli import app as cli_app
from maskengine.data import SceneConfig, generate_scene
from maskengine.engine.round_stats import round_stats
from maskengine.engine.rounds import (
    RoundConfig,
    RoundError,
    round_training_config,
    run_round,
)
from maskengine.engine.simulate import AnnotatorConfig, SimulatedAnnotator, make_synthetic_project
from maskengine.engine.versions import served_version
from maskengine.server.app import create_app
from maskengine.server.settings import ServerSettings

SCENES = SceneConfig(height=96, width=128, min_objects=2, max_objects=4, min_size=0.2)
TRAIN = dict(steps=2, batch_size=2, masks_per_image=2, points=1, mask_only=0,
             grad_iterations=1, checkpoint_every=1, threads=1)


def _scenes(seed: int, n: int) -> list:
    return [generate_scene(SCENES, seed, i) for i in range(n)]


@pytest.mark.slow
def test_two_rounds_bookkeeping_promotion_and_hot_switch(tmp_path: Path) -> None:
    sp = make_synthetic_project(tmp_path, _scenes(7, 3), _scenes(8, 1))
    settings = ServerSettings(model="tiny", model_poll=0, threads=1)
    with TestClient(create_app(sp.project.root, settings)) as client:
        client.headers["Authorization"] = f"Bearer {sp.admin_token}"
        state = client.app.state.app_state
        first = client.get("/api/model").json()
        assert first["round"] == 0

        # Before anything is accepted, a round refuses to start and changes nothing.
        with pytest.raises(RoundError, match="no accepted masks"):
            run_round(sp.project, RoundConfig(training=round_training_config(TRAIN)),
                      progress=False, log=lambda _m: None)

        annotator = SimulatedAnnotator(sp.project, state.segmenter, "simulated",
                                       AnnotatorConfig(max_clicks=3, iou_target=0.95))
        results = [annotator.annotate(i, sp.ground_truth[i]) for i in sp.train_ids]
        saved = sum(len(r.saved) for r in results)
        clicks = sum(o.clicks for r in results for o in r.saved)
        assert saved > 0
        # The simulated masks went through the API's own store: the page lists them.
        listed = sum(len(client.get(f"/api/images/{i}/masks").json()) for i in sp.train_ids)
        assert listed == saved

        cfg = RoundConfig(training=round_training_config({**TRAIN, "seed": 1}), max_clicks=3,
                          tolerance=1.0)
        r1 = run_round(sp.project, cfg, progress=False, log=lambda _m: None)
        assert r1.promoted and r1.round == 1 and r1.note.startswith("promoted")
        assert r1.metrics["train"]["masks"] == saved
        assert set(r1.metrics["val"]["default"]) >= {"miou@1", "noc@90"}

        # The server notices the promotion and serves the new version without a restart.
        assert client.app.state.watcher.check()
        now = client.get("/api/model").json()
        assert now["id"] == r1.version_id and now["round"] == 1
        pred = client.post(f"/api/images/{sp.train_ids[0]}/predict",
                           json={"points": [{"x": 60, "y": 40, "label": 1}]})
        assert pred.status_code == 200 and pred.json()["model_version_id"] == r1.version_id
        assert (sp.project.cache_dir / "embeddings" / f"v{r1.version_id}").is_dir()
        assert (sp.project.cache_dir / "embeddings" / f"v{first['id']}").is_dir()  # kept

        bad = RoundConfig(training=round_training_config({**TRAIN, "lr": 3.0, "seed": 2,
                                                          "warmup_steps": 0}), max_clicks=3)
        r2 = run_round(sp.project, bad, progress=False, log=lambda _m: None)
        assert not r2.promoted and r2.note.startswith("kept, not promoted")
        assert not client.app.state.watcher.check()
        assert client.get("/api/model").json()["id"] == r1.version_id
        with sp.project.session() as s:
            assert served_version(s).id == r1.version_id

        # Round 3 starts from round 1's version and is held to the starting version too.
        r3 = run_round(sp.project, RoundConfig(
            training=round_training_config({**TRAIN, "seed": 3}), max_clicks=3,
            tolerance=1.0), progress=False, log=lambda _m: None)
        assert r3.promoted, r3.note
        assert f"; against the starting version {first['id']} (" in r3.note
        start_fig = r3.metrics["promotion_vs_start"]["miou@1"]
        assert start_fig["old"] == pytest.approx(r3.metrics["start_val"]["default"]["miou@1"])
        assert start_fig["new"] == pytest.approx(r3.metrics["val"]["default"]["miou@1"])
        assert "promotion_vs_start" not in r1.metrics  # round 1's served version is the start
        # Each model was validated once: round 3 read the served and the starting version's
        # reports from round 1 (round 2 diverged, nothing to validate).
        assert len(list((sp.project.root / "runs" / "val_reports").glob("*.npz"))) == 3
        with sp.project.session() as s:
            rows = round_stats(s)

    assert [(r.round, r.promoted, r.serving) for r in rows] == [
        (0, True, False), (1, True, False), (2, False, False), (3, True, True)]
    r0 = rows[0]
    assert r0.masks == saved and r0.clicks_per_mask == pytest.approx(clicks / saved)
    assert r0.masks_per_image == pytest.approx(saved / r0.images)
    assert r0.seconds_per_mask >= 2.0  # 2 s per click credited, at least one click
    assert r0.val_miou1 is not None  # the starting model got its figures from round 1
    assert rows[2].note.startswith("kept, not promoted") and rows[1].masks == 0

    out = CliRunner().invoke(cli_app, ["status", str(sp.project.root), "--json"])
    assert out.exit_code == 0, out.output
    assert [r["version_id"] for r in json.loads(out.output)] == [r.version_id for r in rows]
    table = CliRunner().invoke(cli_app, ["status", str(sp.project.root)],
                               env={"COLUMNS": "80"})
    assert table.exit_code == 0 and "not promoted" in table.output
    lines = table.output.splitlines()
    assert max(len(line) for line in lines) <= 80
    for r in rows:  # each round is one line with all its figures whole (nothing wrapped)
        cells = [str(r.round), str(r.version_id), str(r.masks),
                 "-" if r.clicks_per_mask is None else f"{r.clicks_per_mask:.2f}",
                 "-" if r.val_miou1 is None else f"{r.val_miou1:.3f}"]
        assert any(line.split()[:3] == cells[:3] and all(c in line.split() for c in cells)
                   for line in lines), (cells, table.output)


def test_round_options_owned_by_the_round_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="sets checkpoint"):
        round_training_config({"checkpoint": "x.pt"})
    sp = make_synthetic_project(tmp_path, _scenes(3, 1), [])
    out = CliRunner().invoke(cli_app, ["train", str(sp.project.root), "--data", "synthetic"])
    assert out.exit_code != 0 and "sets data itself" in out.output
    out = CliRunner().invoke(cli_app, ["train", str(sp.project.root)])
    assert out.exit_code == 1 and "no served model" in out.output
    out = CliRunner().invoke(cli_app, ["status", str(sp.project.root)])
    assert out.exit_code == 0 and "no model version yet" in out.output
    assert np.asarray(sp.ground_truth[sp.train_ids[0]]).dtype == bool


def test_a_second_round_of_the_same_project_is_refused(tmp_path: Path) -> None:
    from maskengine.engine.rounds import _round_lock

    sp = make_synthetic_project(tmp_path, _scenes(4, 1), [])
    with _round_lock(sp.project), pytest.raises(RoundError, match="another round"):
        run_round(sp.project, progress=False, log=lambda _m: None)
    from maskengine.engine.rounds import round_running

    assert not round_running(sp.project)
    with _round_lock(sp.project):
        assert round_running(sp.project)


@pytest.mark.slow
def test_a_round_without_validation_masks_is_not_promoted_unless_forced(tmp_path: Path) -> None:
    from sqlalchemy import select

    from maskengine.engine import rle, services
    from maskengine.engine.models import User

    sp = make_synthetic_project(tmp_path, _scenes(5, 2), [])  # no validation images
    settings = ServerSettings(model="tiny", model_poll=0, threads=1, prefetch=0)
    with TestClient(create_app(sp.project.root, settings)) as client:
        client.headers["Authorization"] = f"Bearer {sp.admin_token}"
        served = client.get("/api/model").json()["id"]
        with sp.project.session() as s:
            admin = s.scalar(select(User).where(User.name == "admin"))
            for i in sp.train_ids:
                for m in sp.ground_truth[i]:
                    services.create_mask(s, image_id=i, counts=rle.encode(m).counts,
                                         author=admin)
        cfg = RoundConfig(training=round_training_config(TRAIN))
        r1 = run_round(sp.project, cfg, progress=False, log=lambda _m: None)
        assert not r1.promoted and "no accepted masks on validation images" in r1.note
        assert "val" not in r1.metrics
        with sp.project.session() as s:
            assert served_version(s).id == served
        forced = RoundConfig(training=round_training_config({**TRAIN, "seed": 1}), force=True)
        r2 = run_round(sp.project, forced, progress=False, log=lambda _m: None)
        assert r2.promoted and r2.note.startswith("promoted without validation (forced)")
        with sp.project.session() as s:
            assert served_version(s).id == r2.version_id
