"""`maskengine stats`: the figures of a project whose masks are all known (real SQLite store)."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from maskengine.cli import app as cli_app
from maskengine.data import SceneConfig, generate_scene
from maskengine.engine import rle, services
from maskengine.engine.models import ImageStatus, MaskSource, ReviewState, User
from maskengine.engine.simulate import make_synthetic_project
from maskengine.engine.versions import register_model_version
from maskengine.quality.stats import collect_stats, size_class
from maskengine.quality.stats_report import PLOTS, write_report

SCENES = SceneConfig(height=120, width=160, min_objects=2, max_objects=3, min_size=0.2)


def _square(x: int, y: int, side: int) -> np.ndarray:
    m = np.zeros((SCENES.height, SCENES.width), bool)
    m[y:y + side, x:x + side] = True
    return m


@pytest.fixture()
def known(tmp_path: Path):
    """Three train images; masks of known size, place, source, round, author and effort:
    image 1: ann, round 0: small (4x4 at the top left, 10 s, 2 clicks) and medium (40x40,
             20 s, 4 clicks); bob, round 1, prefill: large (100x100, no interaction);
    image 2: bob, round 1: medium (40x40 at the bottom right, 30 s, 3 clicks) and a deleted
             mask; one rejected mask; image 3 marked done without masks."""
    sp = make_synthetic_project(tmp_path, [generate_scene(SCENES, 4, i) for i in range(3)], [])
    project = sp.project
    project.add_user("ann")
    project.add_user("bob", "reviewer")
    a, b, c = sp.train_ids
    with project.session() as s:
        ann = s.scalar(select(User).where(User.name == "ann"))
        bob = s.scalar(select(User).where(User.name == "bob"))
        v0 = register_model_version(s, key="k0", name="tiny", config={},
                                             checkpoint=None, checkpoint_sha256=None)
        v1 = register_model_version(s, key="k1", name="tiny@round1", config={},
                                             checkpoint=None, checkpoint_sha256=None, round=1)

        def add(image, mask, user, version, source=MaskSource.manual, sec=None, clicks=0):
            effort = None if sec is None else services.InteractionData(
                events=[{"t": 0, "type": "point"}], n_clicks=clicks, seconds=sec)
            return services.create_mask(s, image_id=image, counts=rle.encode(mask).counts,
                                        author=user, source=source,
                                        model_version_id=version.id, interaction=effort)

        add(a, _square(0, 0, 4), ann, v0, sec=10.0, clicks=2)
        add(a, _square(50, 40, 40), ann, v0, sec=20.0, clicks=4)
        add(a, _square(30, 10, 100), bob, v1, MaskSource.prefill)
        add(b, _square(120, 80, 40), bob, v1, sec=30.0, clicks=3)
        gone = add(b, _square(0, 0, 50), bob, v1, sec=99.0, clicks=9)
        services.delete_mask(s, mask_id=gone.id, expected_version=gone.version, user=bob)
        bad = add(b, _square(0, 0, 60), ann, v0, sec=99.0, clicks=9)
        services.review_mask(s, mask_id=bad.id, expected_version=bad.version,
                             state=ReviewState.rejected, reviewer=bob)
        services.set_image_status(s, image_id=c, status=ImageStatus.done)
    yield project
    project.close()


def test_stats_count_known_masks(known) -> None:
    d = collect_stats(known, centre_bins=4, effort_bins=2).to_dict()
    assert d["images"]["total"] == 3 and d["images"]["by_split"] == {"train": 3}
    assert d["images"]["annotated"] == 3 and d["images"]["with_masks"] == 2
    m = d["masks"]
    assert m["total"] == 4 and m["by_size"] == {"small": 1, "medium": 2, "large": 1}
    assert m["timed_masks"] == 3
    assert m["seconds_per_mask"] == pytest.approx(20.0)
    assert m["clicks_per_mask"] == pytest.approx(3.0)
    mpi = d["masks_per_image"]
    assert mpi["histogram"] == {"0": 1, "1": 1, "3": 1} and mpi["mean"] == pytest.approx(4 / 3)
    assert set(d["by_source"]) == {"manual", "prefill"}
    assert d["by_source"]["prefill"]["by_size"]["large"] == 1
    assert d["by_source"]["manual"]["masks"] == 3
    assert {k: v["masks"] for k, v in d["by_round"].items()} == {"0": 2, "1": 2}
    ann, bob = d["by_annotator"]["ann"], d["by_annotator"]["bob"]
    assert (ann["masks"], ann["seconds_per_mask"], ann["clicks_per_mask"]) == (2, 15.0, 3.0)
    assert (bob["masks"], bob["timed_masks"], bob["seconds_per_mask"]) == (2, 1, 30.0)
    # Centres on a 4 x 4 grid: (2, 2)/(160, 120) top left; (70, 60) and (80, 60) centre;
    # (140, 100) bottom right.
    grid = np.array(d["centres"]["grid"])
    assert grid.sum() == 4 and grid[0, 0] == 1 and grid[3, 3] == 1 and grid[2, 1] == 1
    assert grid[2, 2] == 1
    # Effort in creation order, 3 timed masks in 2 runs: (10 s, 20 s) then 30 s.
    e = d["effort"]
    assert [b["masks"] for b in e] == [2, 1]
    assert [b["seconds_per_mask"] for b in e] == [15.0, 30.0]
    assert [b["clicks_per_mask"] for b in e] == [3.0, 3.0]
    assert size_class(32 ** 2 - 1) == "small" and size_class(32 ** 2) == "medium"


def test_stats_command_writes_page_with_existing_plots(known, tmp_path: Path) -> None:
    out = tmp_path / "report"
    res = CliRunner().invoke(cli_app, ["stats", str(known.root), "--out", str(out)])
    assert res.exit_code == 0, res.output
    page = (out / "index.html").read_text()
    links = re.findall(r'<img src="([^"]+)"', page)
    assert sorted(links) == sorted(PLOTS)
    for name in links:
        assert (out / name).read_bytes().startswith(b"\x89PNG"), name
    assert "http" not in page  # self-contained: no external style sheet or script
    data = json.loads((out / "stats.json").read_text())
    assert data["masks"]["total"] == 4 and "index.html" in res.output
    # Without plots: the JSON and the tables, no images.
    files = write_report(collect_stats(known), tmp_path / "bare", plots=False)
    assert sorted(f.name for f in files) == ["index.html", "stats.json"]
    assert "<img" not in (tmp_path / "bare" / "index.html").read_text()


def test_stats_without_matplotlib_says_what_to_install(known, tmp_path: Path,
                                                     monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib fails
    res = CliRunner().invoke(cli_app, ["stats", str(known.root), "--out", str(tmp_path / "r")])
    assert res.exit_code == 1 and "maskengine[report]" in res.output
    assert not (tmp_path / "r" / "index.html").exists()
    res = CliRunner().invoke(cli_app, ["stats", str(known.root), "--out", str(tmp_path / "r"),
                                       "--no-plots"])
    assert res.exit_code == 0 and (tmp_path / "r" / "index.html").is_file()


def test_stats_of_an_empty_project(tmp_path: Path) -> None:
    sp = make_synthetic_project(tmp_path, [generate_scene(SCENES, 4, 0)], [])
    stats = collect_stats(sp.project)
    d = stats.to_dict()
    assert d["masks"]["total"] == 0 and d["effort"] == [] and d["masks_per_image"]["mean"] is None
    files = write_report(stats, tmp_path / "out")
    assert len(files) == len(PLOTS) + 2
    sp.project.close()
