"""The store's commands: init (with a database URL), add-images, add-user, export."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from typer.testing import CliRunner

from maskengine.cli import app

REFERENCE = Path(__file__).resolve().parent.parent / "fixtures" / "reference"


def _text(out: str) -> str:
    """Rich wraps error boxes: compare letters only."""
    return "".join(ch for ch in out if ch.isalnum())


def test_init_add_images_add_user_export(tmp_path: Path) -> None:
    images, more = tmp_path / "images", tmp_path / "more"
    images.mkdir()
    more.mkdir()
    shutil.copy(REFERENCE / "image0.png", images / "a.png")
    shutil.copy(REFERENCE / "image1.png", more / "b.png")
    db = tmp_path / "elsewhere.db"
    run = CliRunner().invoke
    r = run(app, ["init", str(tmp_path / "p"), "--images", str(images), "--db", f"sqlite:///{db}"])
    assert r.exit_code == 0, r.output
    assert "1 images" in r.output and db.is_file() and not (tmp_path / "p" / "store.db").exists()
    r = run(app, ["add-images", str(tmp_path / "p"), str(more)])
    assert r.exit_code == 0 and "added 1" in r.output
    r = run(app, ["add-user", str(tmp_path / "p"), "ann", "--role", "reviewer"])
    assert r.exit_code == 0 and len(r.output.strip()) > 20
    r = run(app, ["add-user", str(tmp_path / "p"), "ann"])
    assert r.exit_code != 0 and "exists" in _text(r.output)
    r = run(app, ["export", str(tmp_path / "p"), str(tmp_path / "out"), "--format", "coco"])
    assert r.exit_code == 0, r.output
    coco = json.loads((tmp_path / "out" / "annotations.json").read_text())
    assert [im["file_name"] for im in coco["images"]] == ["a.png", str(more / "b.png")]
    r = run(app, ["init", str(tmp_path / "q"), "--images", str(tmp_path / "missing")])
    assert r.exit_code != 0 and "doesnotexist" in _text(r.output)
