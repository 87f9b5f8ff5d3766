"""Bad input at the store's doors: image folders with link loops, init that fails half way,
stored rows an export cannot use."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
from pycocotools import mask as mask_utils
from sqlalchemy import select
from typer.testing import CliRunner

from maskengine.cli import app
from maskengine.engine.models import Mask, User
from maskengine.engine.services import InteractionData, create_mask
from maskengine.engine.store import Project, init_project

REFERENCE = Path(__file__).resolve().parent.parent / "fixtures" / "reference"


def _folder_with_bad_links(root: Path) -> Path:
    images = root / "images"
    images.mkdir()
    shutil.copy(REFERENCE / "image0.png", images / "a.png")
    os.symlink(".", images / "loop")  # a folder link back to itself
    os.symlink("self.png", images / "self.png")  # a file link to itself
    os.symlink("gone.png", images / "dangling.png")
    os.symlink("y.png", images / "x.png")  # two links to each other
    os.symlink("x.png", images / "y.png")
    return images


def test_init_and_add_images_skip_and_report_link_loops(tmp_path: Path) -> None:
    images = _folder_with_bad_links(tmp_path)
    run = CliRunner().invoke
    r = run(app, ["init", str(tmp_path / "p"), "--images", str(images)])
    assert r.exit_code == 0, r.output
    assert "1 images" in r.output
    for name, why in (("self.png", "link loop"), ("dangling.png", "dangling link"),
                      ("x.png", "link loop"), ("y.png", "link loop")):
        assert f"{name} ({why}" in r.output, r.output
    r = run(app, ["add-images", str(tmp_path / "p"), str(images)])
    assert r.exit_code == 0, r.output
    assert "added 0, skipped 1 duplicates, 4 unreadable" in r.output


def test_init_that_fails_leaves_nothing_and_can_be_rerun(tmp_path: Path) -> None:
    images = tmp_path / "images"
    images.mkdir()
    shutil.copy(REFERENCE / "image0.png", images / "a.png")
    run = CliRunner().invoke
    dead = "postgresql+psycopg://nobody@127.0.0.1:1/none"  # nothing listens on port 1
    r = run(app, ["init", str(tmp_path / "p"), "--images", str(images), "--db", dead])
    assert r.exit_code == 1 and "cannot create the project's database" in r.output
    assert not (tmp_path / "p").exists()
    # In an existing folder, only what init made goes; the owner's files stay.
    (tmp_path / "q").mkdir()
    (tmp_path / "q" / "notes.txt").write_text("mine")
    db = tmp_path / "missing-dir" / "x.db"
    r = run(app, ["init", str(tmp_path / "q"), "--images", str(images), "--db", f"sqlite:///{db}"])
    assert r.exit_code == 1
    assert sorted(p.name for p in (tmp_path / "q").iterdir()) == ["notes.txt"]
    r = run(app, ["init", str(tmp_path / "q"), "--images", str(images)])
    assert r.exit_code == 0, r.output
    assert "1 images" in r.output


def _counts(m: np.ndarray) -> str:
    return mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))["counts"].decode()


def test_export_skips_bad_rows_and_leaves_no_partial_output(tmp_path: Path) -> None:
    images = tmp_path / "images"
    images.mkdir()
    shutil.copy(REFERENCE / "image0.png", images / "a.png")
    shutil.copy(REFERENCE / "image1.png", images / "b.png")
    project, _ = init_project(tmp_path / "p", images)
    m = np.zeros((480, 640), bool)
    m[10:40, 20:60] = True
    with project.session() as s:
        admin = s.scalar(select(User))
        # Rows as they could be stored before events and RLE were checked at the door.
        no_xy = [{"t": 0.0, "type": "point", "label": 1}, {"t": 1.0, "type": "point",
                                                           "x": 5.0, "y": 6.0, "label": 1}]
        create_mask(s, image_id=1, counts=_counts(m), author=admin,
                    interaction=InteractionData(events=no_xy, n_clicks=2))
        bad = create_mask(s, image_id=1, counts=_counts(m), author=admin)
        create_mask(s, image_id=2, counts=_counts(np.ones((300, 200), bool)), author=admin)
        s.flush()
        bad_id = bad.id
    with project.session() as s:
        s.get(Mask, bad_id).rle_counts = ""  # 0 pixels of 640 x 480
    project.close()
    # A half-made export of an earlier, killed run is cleared, never published.
    (tmp_path / ".out.export-tmp").mkdir()
    (tmp_path / ".out.export-tmp" / "junk.json").write_text("{")
    for fmt, out in (("sa1b", tmp_path / "out"), ("coco", tmp_path / "coco.json")):
        r = CliRunner().invoke(app, ["export", str(tmp_path / "p"), str(out), "--format", fmt])
        assert r.exit_code == 0, r.output
        assert "exported 2 masks of 2 images" in r.output and "1 stored rows left out" in r.output
        assert f"mask {bad_id} (image 1): RLE runs add up to 0 pixels" in r.output
    files = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert files == ["a_1.json", "b_2.json"]
    doc = json.loads((tmp_path / "out" / "a_1.json").read_text())
    assert [a["point_coords"] for a in doc["annotations"]] == [[[5.0, 6.0]]]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    coco = json.loads((tmp_path / "coco.json").read_text())
    assert len(coco["annotations"]) == 2
    # Exporting again into the same folder replaces the files one by one.
    r = CliRunner().invoke(app, ["export", str(tmp_path / "p"), str(tmp_path / "out")])
    assert r.exit_code == 0 and sorted(p.name for p in (tmp_path / "out").iterdir()) == files
    Project.open(tmp_path / "p").close()
