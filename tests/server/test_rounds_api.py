"""Rounds through the API: GET /api/rounds (anyone), POST /api/rounds (admins) runs a round
in the server process, reports its error or result, and the server switches to a promoted
model at once. A synthetic project, the bundled tiny model, a 2-step fine-tuning."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from maskengine.data import SceneConfig, generate_scene
from maskengine.engine.rounds import RoundConfig, round_training_config
from maskengine.engine.simulate import AnnotatorConfig, SimulatedAnnotator, make_synthetic_project
from maskengine.server.app import create_app
from maskengine.server.settings import ServerSettings

SCENES = SceneConfig(height=96, width=128, min_objects=2, max_objects=4, min_size=0.2)
TINY_TRAINING = dict(steps=2, batch_size=2, masks_per_image=2, points=1, mask_only=0,
                     grad_iterations=1, checkpoint_every=1, seed=1)
# tolerance 1: no validation change counts as worse, so the round is promoted.
TINY_ROUND = RoundConfig(training=round_training_config(TINY_TRAINING), max_clicks=3,
                         tolerance=1.0)


def synthetic_project(tmp: Path, n_train: int = 3):  # noqa: ANN201
    return make_synthetic_project(tmp, [generate_scene(SCENES, 7, i) for i in range(n_train)],
                                  [generate_scene(SCENES, 8, 0)])


def annotate(sp, segmenter) -> int:  # noqa: ANN001
    """The simulated annotator labels every train image; returns the masks saved."""
    annotator = SimulatedAnnotator(sp.project, segmenter, "simulated",
                                   AnnotatorConfig(max_clicks=3, iou_target=0.95))
    return sum(len(annotator.annotate(i, sp.ground_truth[i]).saved) for i in sp.train_ids)


def wait_done(client: TestClient, timeout: float = 120.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        out = client.get("/api/rounds").json()
        if not out["running"]:
            return out
        assert time.monotonic() < deadline, "the round did not finish"
        time.sleep(0.2)


@pytest.mark.slow
def test_rounds_api_roles_errors_busy_and_switch(tmp_path: Path) -> None:
    sp = synthetic_project(tmp_path)
    other = sp.project.add_user("ann", "annotator")
    settings = ServerSettings(model="tiny", model_poll=0, threads=1, prefetch=0)
    with TestClient(create_app(sp.project.root, settings)) as client:
        client.headers["Authorization"] = f"Bearer {sp.admin_token}"
        runner = client.app.state.rounds
        runner.template = TINY_ROUND
        start = client.get("/api/model").json()

        # Anyone reads the table; only admins start a round.
        plain = {"Authorization": f"Bearer {other}"}
        seen = client.get("/api/rounds", headers=plain).json()
        assert [(r["round"], r["serving"], r["masks"]) for r in seen["rows"]] == [(0, True, 0)]
        assert not seen["running"] and seen["last"] is None and seen["error"] is None
        assert seen["defaults"] == {"steps": 2, "lr": TINY_ROUND.training.lr}
        r = client.post("/api/rounds", headers=plain)
        assert r.status_code == 403 and "may not" in r.json()["detail"]
        for bad in ({"steps": 0}, {"steps": 100_001}, {"lr": 0}, {"lr": -1e-3},
                    {"epochs": 3}, {"steps": "many"}):
            assert client.post("/api/rounds", json=bad).status_code == 422, bad

        # Nothing accepted yet: the round fails, GET says why, the server goes on.
        r = client.post("/api/rounds")
        assert r.status_code == 202 and r.json()["started_at"] is not None
        out = wait_done(client)
        assert "no accepted masks" in out["error"] and out["last"] is None
        assert client.get("/api/health").status_code == 200
        assert client.get("/api/model").json()["id"] == start["id"]

        saved = annotate(sp, client.app.state.engine.segmenter)
        assert saved > 0

        # Hold the round at its start so the second request meets a running one.
        gate = threading.Event()
        real_run = runner.run

        def held(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
            assert gate.wait(60)
            return real_run(*args, **kwargs)

        runner.run = held
        r = client.post("/api/rounds", json={"steps": 2, "lr": 1e-4})
        assert r.status_code == 202 and r.json()["running"] and r.json()["error"] is None
        busy = client.post("/api/rounds")
        assert busy.status_code == 409 and "running" in busy.json()["detail"]
        assert client.get("/api/rounds").json()["running"]
        gate.set()
        out = wait_done(client)

        assert out["error"] is None, out["error"]
        last = out["last"]
        assert last["round"] == 1 and last["promoted"] and last["note"].startswith("promoted")
        assert any(line.startswith("round 1: fine-tuning") for line in out["log"])
        rows = out["rows"]
        assert [(r["round"], r["promoted"], r["serving"]) for r in rows] == [
            (0, True, False), (1, True, True)]
        r0 = rows[0]
        assert r0["masks"] == saved and r0["images"] == len(sp.train_ids)
        assert r0["clicks_per_mask"] >= 1 and r0["seconds_per_mask"] >= 2.0
        assert r0["masks_per_image"] == pytest.approx(saved / len(sp.train_ids))
        assert r0["val_miou1"] is not None and rows[1]["val_noc90"] is not None
        assert rows[1]["version_id"] == last["version_id"] and rows[1]["masks"] == 0

        # The server switched right away (the poller is off here).
        now = client.get("/api/model").json()
        assert now["id"] == last["version_id"] and now["round"] == 1
        pred = client.post(f"/api/images/{sp.train_ids[0]}/predict",
                           json={"points": [{"x": 60, "y": 40, "label": 1}]})
        assert pred.json()["model_version_id"] == last["version_id"]
