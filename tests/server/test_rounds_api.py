"""Rounds through the API: GET /api/rounds (anyone), POST /api/rounds (admins) runs a round
in the server process, reports its progress, its error or result, and the server switches to
a promoted model at once; DELETE /api/rounds (admins) cancels it, and the next round resumes.
A synthetic project, the bundled tiny model, a fine-tuning of a few steps."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from maskengine.data import SceneConfig, generate_scene
from maskengine.engine.rounds import RoundConfig, round_running, round_training_config, run_round
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


@dataclass
class Held:
    """What `hold_training` saw: the steps and phases the round reported."""

    at_step: int | None
    reached: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    steps: list[int] = field(default_factory=list)
    phases: list[str] = field(default_factory=list)


def hold_training(runner, at_step: int | None = None) -> Held:  # noqa: ANN001
    """Make the runner's rounds (the real `run_round`) pause right after training step
    `at_step` has been reported (so the test reads a known progress) until `release` is
    set, and record the steps and phases the round went through."""
    held = Held(at_step)

    def run(*args, on_step, on_phase, **kwargs):  # noqa: ANN002, ANN003, ANN001, ANN202
        def step(n: int, logs: dict) -> None:
            held.steps.append(n)
            on_step(n, logs)  # the runner's: records progress, raises once cancelled
            if n == held.at_step:
                held.reached.set()
                if not held.release.wait(60):
                    raise RuntimeError("the test never released the round")

        def phase(name: str) -> None:
            held.phases.append(name)
            on_phase(name)

        return run_round(*args, on_step=step, on_phase=phase, **kwargs)

    runner.run = run
    return held


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
                    {"epochs": 3}, {"steps": "many"}, {"force": "maybe"}):
            assert client.post("/api/rounds", json=bad).status_code == 422, bad

        # Nothing accepted yet: the round fails, GET says why, the server goes on.
        r = client.post("/api/rounds")
        assert r.status_code == 202 and r.json()["started_at"] is not None
        out = wait_done(client)
        assert "no accepted masks" in out["error"] and out["last"] is None
        assert client.get("/api/health").status_code == 200
        assert client.get("/api/model").json()["id"] == start["id"]

        saved = annotate(sp, client.app.state.app_state.segmenter)
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


@pytest.mark.slow
def test_rounds_api_progress_cancel_and_resume(tmp_path: Path) -> None:
    sp = synthetic_project(tmp_path)
    other = {"Authorization": f"Bearer {sp.project.add_user('ann', 'annotator')}"}
    settings = ServerSettings(model="tiny", model_poll=0, threads=1, prefetch=0)
    with TestClient(create_app(sp.project.root, settings)) as client:
        client.headers["Authorization"] = f"Bearer {sp.admin_token}"
        runner = client.app.state.rounds
        runner.template = TINY_ROUND
        assert annotate(sp, client.app.state.app_state.segmenter) > 0
        idle = client.get("/api/rounds").json()
        assert idle["phase"] is None and idle["progress"] is None and not idle["cancelled"]

        # Nothing to cancel: 409 for an admin, 403 for anyone else.
        r = client.delete("/api/rounds")
        assert r.status_code == 409 and "no round is running" in r.json()["detail"]
        assert client.delete("/api/rounds", headers=other).status_code == 403

        # Training pauses after step 1 of 4: the progress of that step shows, to anyone.
        held = hold_training(runner, at_step=1)
        try:
            r = client.post("/api/rounds", json={"steps": 4})
            assert r.status_code == 202 and r.json()["phase"] == "starting"
            assert held.reached.wait(120), "training did not reach step 1"
            out = client.get("/api/rounds", headers=other).json()
            assert out["running"] and out["phase"] == "training" and not out["cancelled"]
            p = out["progress"]
            assert (p["step"], p["steps"]) == (1, 4)
            assert p["loss"] > 0 and 0.0 <= p["iou"] <= 1.0
            assert p["steps_per_s"] > 0 and p["eta_s"] == pytest.approx(3 / p["steps_per_s"])

            # Only an admin cancels; the round says so and refuses a new start meanwhile.
            assert client.delete("/api/rounds", headers=other).status_code == 403
            assert client.get("/api/rounds").json()["phase"] == "training"
            r = client.delete("/api/rounds")
            assert r.status_code == 202
            assert r.json()["running"] and r.json()["phase"] == "cancelling"
            assert client.post("/api/rounds").status_code == 409
        finally:
            held.release.set()
        out = wait_done(client)

        # It stopped at the next step boundary: nothing registered, no error, lock free.
        assert out["cancelled"] and out["error"] is None and out["last"] is None
        assert out["phase"] is None and out["progress"]["step"] == 2
        assert held.steps == [1, 2] and held.phases == ["training"]
        assert [r["round"] for r in out["rows"]] == [0]
        assert any("cancelled after training step 2" in line for line in out["log"])
        assert not round_running(sp.project)
        run_dir = sp.project.root / "runs" / "round_001" / "train"
        assert (run_dir / "resume.pt").is_file()
        assert client.delete("/api/rounds").status_code == 409

        # The next round resumes from the cancelled one's checkpoint (step 2 of 3) and
        # goes through validation to a promoted version.
        held = hold_training(runner)
        assert client.post("/api/rounds", json={"steps": 3}).status_code == 202
        out = wait_done(client)
        assert out["error"] is None, out["error"]
        assert not out["cancelled"] and out["phase"] is None
        assert out["last"]["round"] == 1 and out["last"]["promoted"]
        assert held.steps == [3] and held.phases == ["training", "validating", "registering"]
        assert (out["progress"]["step"], out["progress"]["steps"]) == (3, 3)
        metrics = (run_dir / "metrics.jsonl").read_text().splitlines()
        assert [json.loads(line)["step"] for line in metrics] == [1, 2, 3]
        assert [(r["round"], r["serving"]) for r in out["rows"]] == [(0, False), (1, True)]


def test_the_page_can_force_a_promotion_without_validation(tmp_path: Path) -> None:
    from maskengine.server.round_runner import RoundRunner

    runner = RoundRunner(synthetic_project(tmp_path, 1).project, on_promoted=lambda: None,
                         template=TINY_ROUND)
    assert not runner.config({"steps": 3}).force
    forced = runner.config({"steps": 3}, force=True)
    assert forced.force and forced.training.steps == 3 and not runner.template.force
