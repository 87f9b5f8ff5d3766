"""Quality checks on projects with known planted errors (real SQLite store, real model)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage
from sqlalchemy import select
from typer.testing import CliRunner

from maskengine.cli import app as cli_app
from maskengine.data import SceneConfig, generate_scene
from maskengine.engine import rle, services
from maskengine.engine.models import Image, ImageStatus, User
from maskengine.engine.simulate import AnnotatorConfig, SimulatedAnnotator, make_synthetic_project
from maskengine.quality.checks import CheckConfig, run_checks
from maskengine.quality.imagehash import dhash, hamming, near_duplicates, similar_vectors
from maskengine.quality.inject import plant_errors
from maskengine.server.app import load_state
from maskengine.server.settings import ServerSettings

SCENES = SceneConfig(height=96, width=128, min_objects=3, max_objects=5, min_size=0.2)


def _scenes(seed: int, n: int) -> list:
    return [generate_scene(SCENES, seed, i) for i in range(n)]


def test_dhash_near_copies_close_other_images_far() -> None:
    a, b = _scenes(0, 2)
    small = np.asarray(PILImage.fromarray(a.image).resize((64, 48)))
    brighter = np.clip(a.image.astype(int) + 6, 0, 255).astype(np.uint8)
    assert hamming(dhash(a.image), dhash(small)) <= 4
    assert hamming(dhash(a.image), dhash(brighter)) <= 4
    assert hamming(dhash(a.image), dhash(b.image)) > 12
    hashes = [dhash(a.image), dhash(b.image), dhash(brighter)]
    assert [(p.a, p.b) for p in near_duplicates(hashes, 4)] == [(0, 2)]
    vecs = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [2.0, 0.01, 0.0]])
    [pair] = similar_vectors(vecs, 0.999)
    assert (pair.a, pair.b) == (0, 2) and pair.distance < 1e-3


@pytest.fixture()
def planted(tmp_path: Path):
    """A project whose masks are the ground truth, plus one of each shape problem, a
    duplicate, a done image without masks and a brightened copy (in train) of a val image."""
    scenes = _scenes(3, 3)
    sp = make_synthetic_project(tmp_path, [], scenes)  # val: masks stored from ground truth
    copy = np.clip(scenes[0].image.astype(int) + 4, 0, 255).astype(np.uint8)
    PILImage.fromarray(copy).save(tmp_path / "images" / "copy.png")
    project = sp.project
    project.add_images([tmp_path / "images" / "copy.png"])
    ids = {}
    with project.session() as s:
        admin = s.scalar(select(User).where(User.name == "admin"))
        img = {Path(i.path).name: i for i in s.scalars(select(Image))}
        first = img["val_0000.png"]
        h, w = first.height, first.width
        tiny = np.zeros((h, w), bool)
        tiny[5:8, 5:8] = True
        whole = np.ones((h, w), bool)
        whole[0, 0] = False
        pieces = np.zeros((h, w), bool)
        pieces[2:6:, 10:90:10] = True  # 8 separate squares
        gt0 = scenes[0].masks[0]
        for name, m in (("tiny", tiny), ("whole", whole), ("pieces", pieces),
                        ("duplicate", gt0)):
            ids[name] = services.create_mask(s, image_id=first.id, author=admin,
                                             counts=rle.encode(m).counts).id
        services.set_image_status(s, image_id=img["copy.png"].id, status=ImageStatus.done)
        ids["copy_image"] = img["copy.png"].id
        ids["first_image"] = first.id
    yield project, ids
    project.close()


def test_checks_find_planted_shapes_duplicates_and_images(planted) -> None:
    project, ids = planted
    report = run_checks(project, CheckConfig(model=False))
    by_id = {m.mask_id: m for m in report.masks}
    assert "tiny" in by_id[ids["tiny"]].flags
    assert "whole-image" in by_id[ids["whole"]].flags
    assert "fragmented" in by_id[ids["pieces"]].flags and by_id[ids["pieces"]].components == 8
    dup = by_id[ids["duplicate"]]
    assert "duplicate" in dup.flags and dup.duplicate_of is not None
    assert any(p.kind == "duplicate" and p.b == ids["duplicate"] for p in report.pairs)
    # The three certain problems lead the ranking.
    assert {m.mask_id for m in report.masks[:3]} == {ids["tiny"], ids["whole"],
                                                     ids["duplicate"]}
    assert report.done_without_masks == [ids["copy_image"]]
    [pair] = report.images
    assert {pair.a, pair.b} == {ids["first_image"], ids["copy_image"]}
    assert pair.crosses_split and pair.method == "dhash"
    assert report.model_version_id is None


def test_check_command_json_and_table(planted, tmp_path: Path) -> None:
    project, ids = planted
    out = tmp_path / "report.json"
    res = CliRunner().invoke(cli_app, ["check", str(project.root), "--no-model", "--json",
                                       "--out", str(out)])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert data == json.loads(out.read_text())
    assert data["summary"]["across_split"] == 1
    assert data["masks"][0]["score"] == 1.0
    res = CliRunner().invoke(cli_app, ["check", str(project.root), "--no-model", "--top", "5"],
                             env={"COLUMNS": "120"})
    assert res.exit_code == 0, res.output
    assert "likeliest wrong masks" in res.output and "crosses split" in res.output
    res = CliRunner().invoke(cli_app, ["check", str(project.root), "--duplicate-iou", "0.1"])
    assert res.exit_code != 0 and "overlap_iou" in res.output


def test_model_recheck_ranks_planted_errors_first(tmp_path: Path) -> None:
    """Annotate with the tiny model and its clicks, plant errors, and find them."""
    sp = make_synthetic_project(tmp_path, _scenes(5, 4), [])
    state = load_state(sp.project.root, ServerSettings(model="tiny", model_poll=0, threads=1))
    try:
        annotator = SimulatedAnnotator(sp.project, state.segmenter, "simulated",
                                       AnnotatorConfig(max_clicks=3))
        for i in sp.train_ids:
            annotator.annotate(i, sp.ground_truth[i])
        served = state.segmenter.model_version_id
    finally:
        state.close()
    planted = plant_errors(sp.project, fraction=0.25, seed=1, min_area=100)
    kinds = {p.kind for p in planted}
    assert {"shift", "erode", "dilate", "swap", "duplicate"} <= kinds
    # No segmenter given: the check loads the served version (embeddings cached on disk).
    report = run_checks(sp.project, CheckConfig(hash_distance=-1))
    assert report.model_version_id == served
    assert all(m.model_iou_box is not None for m in report.masks)
    k = len(planted)
    top = {m.mask_id for m in report.masks[:2 * k]}
    found = sum(p.mask_id in top for p in planted)
    assert found >= 0.75 * k, (found, k)
