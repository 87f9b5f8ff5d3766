"""The stage-2 commands: `maskengine detector PROJECT` trains and registers a detector,
`maskengine prefill PROJECT` pre-fills (and says so when there is no detector or a bad
image id), and a round retrains the detector once the project has one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from maskengine.cli import app
from maskengine.engine.models import DetectorVersion, Mask, ModelVersion
from maskengine.engine.round_stats import round_stats
from maskengine.engine.rounds import RoundConfig, round_training_config, run_round

from .stage2_helpers import FAST_DETECTOR, stage2_project

FAST = ["--hidden", str(FAST_DETECTOR.hidden), "--layers", str(FAST_DETECTOR.layers),
        "--steps", str(FAST_DETECTOR.steps), "--batch-size", "2"]
OPEN = ["--min-detector-score", "0", "--min-predicted-iou", "0", "--min-stability", "0"]


@pytest.mark.slow
def test_detector_prefill_commands_and_round_retraining(tmp_path: Path) -> None:
    st = stage2_project(tmp_path)
    root = str(st.sp.project.root)
    cli = CliRunner()

    r = cli.invoke(app, ["prefill", root])
    assert r.exit_code == 1 and "no detector for the served model version" in r.output
    r = cli.invoke(app, ["detector", root, *FAST])
    assert r.exit_code == 0, r.output
    assert "detector 1 (model version 1): validation AP50" in r.output
    r = cli.invoke(app, ["prefill", root, "--images", "999"])
    assert r.exit_code == 1 and "no image with id 999" in r.output
    r = cli.invoke(app, ["prefill", root, "--images", "x"])
    assert r.exit_code == 2 and "--images takes image ids" in r.output
    r = cli.invoke(app, ["prefill", root, *OPEN, "--max-masks", "2",
                         "--images", ",".join(map(str, st.todo))])
    assert r.exit_code == 0, r.output
    assert f"detector 1: {len(st.todo)} images pre-filled (0 done before)" in r.output
    r = cli.invoke(app, ["prefill", root, *OPEN])  # every todo image of the train split
    assert r.exit_code == 0 and f"0 images pre-filled ({len(st.todo)} done before)" in r.output
    with st.sp.project.session() as s:
        n = len(list(s.scalars(select(Mask).where(Mask.prefill_state == "proposed"))))
        assert 0 < n <= 2 * len(st.todo)

    # A round of a project with a detector retrains it on the served model and reports
    # AP50 / recall with the round.
    tiny = dict(steps=2, batch_size=2, masks_per_image=2, points=1, mask_only=0,
                grad_iterations=1, checkpoint_every=1, seed=1)
    cfg = RoundConfig(training=round_training_config(tiny), max_clicks=3, tolerance=1.0,
                      replay=None, detector_config=FAST_DETECTOR)
    lines: list[str] = []
    phases: list[str] = []
    res = run_round(st.sp.project, cfg, progress=False, log=lines.append,
                    on_phase=phases.append)
    assert phases[-2:] == ["registering", "detector"]
    det = res.metrics["detector"]
    assert det["model_version_id"] == res.version_id  # promoted: the new model's embeddings
    assert 0.0 <= det["val"]["ap50"] <= 1.0
    with st.sp.project.session() as s:
        dv = s.get(DetectorVersion, det["id"])
        assert dv.model_version_id == res.version_id
        stored = json.loads(s.get(ModelVersion, res.version_id).metrics_json)
        assert stored["detector"]["val"] == det["val"]
        row = [r for r in round_stats(s) if r.version_id == res.version_id][0]
        assert row.det_ap50 == det["val"]["ap50"] and row.det_recall == det["val"]["recall50"]
    r = cli.invoke(app, ["status", root])
    assert r.exit_code == 0 and "detector AP50" in r.output
    # Asked not to, a round leaves the detector alone.
    res2 = run_round(st.sp.project, RoundConfig(**{**cfg.__dict__, "detector": False}),
                     progress=False, log=lines.append)
    assert "detector" not in res2.metrics
