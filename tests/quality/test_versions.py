"""Dataset versions: snapshot, diff, and export of a version byte for byte."""

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
from maskengine.engine.models import Mask, ReviewState, User
from maskengine.engine.simulate import make_synthetic_project
from maskengine.quality.versions import VersionError, diff, snapshot

SCENES = SceneConfig(height=64, width=80, min_objects=2, max_objects=4, min_size=0.25)


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def _cli(*args: str) -> str:
    res = CliRunner().invoke(cli_app, list(args))
    assert res.exit_code == 0, res.output
    return res.output


def test_snapshot_diff_and_export_reproduce_a_version(tmp_path: Path) -> None:
    sp = make_synthetic_project(tmp_path, [], [generate_scene(SCENES, 2, i) for i in range(3)])
    project, root = sp.project, str(sp.project.root)
    _cli("export", root, str(tmp_path / "then_sa1b"), "--with-images")
    _cli("export", root, str(tmp_path / "then.json"), "--format", "coco")
    assert "version v1:" in _cli("snapshot", root, "v1")

    with project.session() as s:
        admin = s.scalar(select(User).where(User.name == "admin"))
        edited, deleted, rejected = list(s.scalars(select(Mask).order_by(Mask.id)))[:3]
        grown = rle.decode(edited.rle_counts, edited.image.height, edited.image.width)
        grown[:5] = True
        services.update_mask(s, mask_id=edited.id, expected_version=edited.version,
                             user=admin, counts=rle.encode(grown).counts)
        services.delete_mask(s, mask_id=deleted.id, expected_version=deleted.version,
                             user=admin)
        services.review_mask(s, mask_id=rejected.id, expected_version=rejected.version,
                             state=ReviewState.rejected, reviewer=admin)
        new = np.zeros((SCENES.height, SCENES.width), bool)
        new[10:20, 10:20] = True
        added = services.create_mask(s, image_id=edited.image_id, author=admin,
                                     counts=rle.encode(new).counts).id
    d = diff(project, "v1")  # against the current masks
    assert (d.added, d.removed, d.edited) == ([added], sorted([deleted.id, rejected.id]),
                                              [edited.id])
    snapshot(project, "v2")
    assert diff(project, "v1", "v2").to_dict() == {**d.to_dict(), "b": "v2"}
    out = json.loads(_cli("diff", root, "v1", "v2", "--json"))
    assert out["edited"] == [edited.id] and out["images_added"] == []
    assert "1 masks added, 2 removed, 1 edited" in _cli("diff", root, "v1", "v2")

    # The project changed since v1; exporting v1 gives back the very bytes of back then.
    _cli("export", root, str(tmp_path / "now_sa1b"), "--with-images", "--version", "v1")
    _cli("export", root, str(tmp_path / "now.json"), "--format", "coco", "--version", "v1")
    assert _files(tmp_path / "now_sa1b") == _files(tmp_path / "then_sa1b")
    assert (tmp_path / "now.json").read_bytes() == (tmp_path / "then.json").read_bytes()
    _cli("export", root, str(tmp_path / "current_sa1b"))
    assert _files(tmp_path / "current_sa1b") != {
        k: v for k, v in _files(tmp_path / "then_sa1b").items() if k.endswith(".json")}
    project.close()


def test_version_errors_name_the_problem(tmp_path: Path) -> None:
    sp = make_synthetic_project(tmp_path, [], [generate_scene(SCENES, 2, 0)])
    snapshot(sp.project, "v1")
    with pytest.raises(VersionError, match="exists already"):
        snapshot(sp.project, "v1")
    for bad in ("../x", "current", "", "a b"):
        with pytest.raises(VersionError, match="not allowed"):
            snapshot(sp.project, bad)
    with pytest.raises(VersionError, match=r"'v9' does not exist \(versions: v1\)"):
        diff(sp.project, "v9")
    res = CliRunner().invoke(cli_app, ["export", str(sp.project.root), str(tmp_path / "x"),
                                       "--version", "nope"])
    assert res.exit_code != 0 and "does not exist" in res.output
    sp.project.close()
