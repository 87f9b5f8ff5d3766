"""Automatic masks into a project: `import-auto` and `auto --project`, provenance, duplicates
left out (of a person's mask, and on a rerun), and which of them a round trains on."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils
from sqlalchemy import select
from typer.testing import CliRunner

from maskengine.cli import app
from maskengine.data import SceneConfig, generate_scene
from maskengine.engine import services
from maskengine.engine.import_auto import AUTO_USER, ImportConfig, import_auto
from maskengine.engine.models import Mask, ModelVersion, ReviewState, User
from maskengine.engine.project_dataset import ProjectDataset
from maskengine.engine.round_stats import round_stats
from maskengine.engine.segmenter import model_key
from maskengine.engine.store import Project, init_project
from maskengine.modeling.registry import bundled_weights_path

SETTINGS = ["--model", "tiny", "--points-per-side", "8", "--pred-iou-thresh", "0",
            "--stability-score-thresh", "0.8", "--no-progress"]


def _cli(*args: str):
    res = CliRunner().invoke(app, list(args))
    assert res.exit_code == 0, res.output
    return res


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> Path:
    """Three scenes (one in a subfolder), one more image the project will not have, and the
    output of `maskengine auto` over both folders: made once for the module."""
    tmp = tmp_path_factory.mktemp("made")
    images, extra = tmp / "images", tmp / "extra"
    (images / "sub").mkdir(parents=True)
    extra.mkdir()
    for i, path in enumerate([images / "a.png", images / "sub" / "b.png", images / "c.png",
                              extra / "stranger.png"]):
        Image.fromarray(generate_scene(SceneConfig(height=96, width=128), 5, i).image).save(path)
    _cli("auto", str(images), str(extra), "--out", str(tmp / "auto"), *SETTINGS)
    return tmp


@pytest.fixture
def setup(made: Path, tmp_path: Path):
    """A copy of `made` and a project of its three scenes (val_fraction 0: all train)."""
    shutil.copytree(made, tmp_path, dirs_exist_ok=True)
    proj, _ = init_project(tmp_path / "proj", tmp_path / "images", val_fraction=0.0)
    proj.close()
    return tmp_path / "proj", tmp_path / "auto"


def _anns(out: Path, rel: str) -> list[dict]:
    return json.loads((out / rel).read_text())["annotations"]


def test_import_auto_provenance_duplicates_and_rerun(setup) -> None:
    root, out = setup
    a_anns = _anns(out, "images/a.json")
    assert len(a_anns) >= 2
    proj = Project.open(root)
    with proj.session() as s:  # a person already drew the first mask of a.png
        admin = s.scalar(select(User))
        a_id = s.scalar(select(services.Image.id).where(services.Image.path == "a.png"))
        services.create_mask(s, image_id=a_id, counts=a_anns[0]["segmentation"]["counts"],
                             author=admin)
    proj.close()

    res = _cli("import-auto", str(root), str(out))
    total = sum(len(_anns(out, f"images/{n}.json")) for n in ("a", "sub/b", "c"))
    added, dups = (int(v) for v in re.search(
        r"imported (\d+) automatic masks of 3 images from 4 files \((\d+) duplicates",
        res.output).groups())
    assert added + dups == total and dups >= 1
    assert "extra/stranger.json: no project image" in res.output

    proj = Project.open(root)
    with proj.session() as s:
        auto = list(s.scalars(select(Mask).where(Mask.source == "automatic")))
        assert len(auto) == added
        # No two masks of an image (the person's included) overlap above the threshold.
        for image_id in {m.image_id for m in auto}:
            rles = [{"size": [96, 128], "counts": c.encode()} for c in s.scalars(
                select(Mask.rle_counts).where(Mask.image_id == image_id))]
            ious = np.asarray(mask_utils.iou(rles, rles, [0] * len(rles)))
            assert (np.triu(ious, k=1) <= 0.85).all()
        mv = s.get(ModelVersion, auto[0].model_version_id)
        weights = bundled_weights_path("tiny")
        assert (mv.key, mv.checkpoint_sha256) == model_key(create_tiny_config(), str(weights))
        author = s.get(User, auto[0].author_id)
        assert author.name == AUTO_USER
        by_rle = {a["segmentation"]["counts"]: a for a in a_anns}
        from_a = [m for m in auto if m.image_id == a_id]
        assert a_anns[0]["segmentation"]["counts"] not in {m.rle_counts for m in from_a}
        for m in from_a:
            ann = by_rle[m.rle_counts]  # the stored mask is the generator's, unchanged
            assert m.review_state == ReviewState.pending.value
            assert m.predicted_iou == pytest.approx(ann["predicted_iou"])
            assert m.stability_score == pytest.approx(ann["stability_score"])
            meta = json.loads(m.meta_json)
            assert meta["generator"]["points_per_side"] == 8
            assert meta["generator"]["stability_score_thresh"] == 0.8
            assert meta["model"]["name"] == "tiny" and meta["sa1b_file"] == "images/a.json"
            assert meta["sa1b_id"] == ann["id"] and meta["point_coords"] == ann["point_coords"]
    proj.close()

    # Again (and through `auto --project`: nothing left to generate): nothing new.
    proj = Project.open(root)
    again = import_auto(proj, out)
    proj.close()
    assert (again.added, again.duplicates, again.images) == (0, total, 3)
    res = _cli("auto", str(root.parent / "images"), str(root.parent / "extra"), "--out",
               str(out), *SETTINGS, "--project", str(root))
    assert "0 annotated, 4 already done" in res.output
    assert "imported 0 automatic masks of 3 images" in res.output


def create_tiny_config():
    from maskengine.config import MODEL_CONFIGS

    return MODEL_CONFIGS["tiny"]


def test_rounds_train_on_reviewed_automatic_masks_only(setup) -> None:
    root, out = setup
    proj = Project.open(root)
    try:
        res = import_auto(proj, out, ImportConfig(dedupe_iou=0.85))
        assert res.added > 3
        with proj.session() as s:
            admin = s.scalar(select(User))
            masks = list(s.scalars(select(Mask).order_by(Mask.id)))
            m = np.zeros((96, 128), np.uint8)
            m[10:30, 10:40] = 1
            from maskengine.engine import rle

            manual = services.create_mask(s, image_id=masks[0].image_id,
                                          counts=rle.encode(m).counts, author=admin)
            approved, rejected = masks[0], masks[1]
            services.review_mask(s, mask_id=approved.id, expected_version=approved.version,
                                 state=ReviewState.approved, reviewer=admin)
            services.review_mask(s, mask_id=rejected.id, expected_version=rejected.version,
                                 state=ReviewState.rejected, reviewer=admin)
            manual_id = manual.id
        ds = ProjectDataset(proj, "train")
        # The manual mask (pending: a person made it) and the approved automatic one; not
        # the rejected one, nor the automatic ones nobody reviewed yet.
        assert ds.num_masks == 2
        counts = {c for e in ds.entries for c in e.counts}
        with proj.session() as s:
            assert counts == {s.get(Mask, approved.id).rle_counts,
                              s.get(Mask, manual_id).rle_counts}
            # Per-round effort figures count what people made, not the generator's output.
            stats = {r.version_id: r for r in round_stats(s)}
            assert stats[approved.model_version_id].masks == 0
    finally:
        proj.close()


def test_import_refuses_what_is_not_an_auto_folder(tmp_path, setup) -> None:
    root, out = setup
    proj = Project.open(root)
    try:
        with pytest.raises(ValueError, match="is not a folder"):
            import_auto(proj, tmp_path / "nowhere")
        (out / "run.json").write_text("[1, 2]")
        with pytest.raises(ValueError, match="not a run record"):
            import_auto(proj, out)
        with pytest.raises(ValueError, match="dedupe_iou"):
            ImportConfig(dedupe_iou=0)
    finally:
        proj.close()
    (out / "run.json").unlink()  # an SA-1B folder from elsewhere: imported, no model version
    bad = _anns(out, "images/c.json")
    bad[0]["segmentation"]["counts"] = "not an rle"
    data = json.loads((out / "images/c.json").read_text())
    (out / "images/c.json").write_text(json.dumps({**data, "annotations": bad}))
    res = CliRunner().invoke(app, ["import-auto", str(root), str(out)])
    assert res.exit_code == 0, res.output
    assert "images/c.json: annotation 0: bad segmentation" in res.output
    assert "of 2 images" in res.output and "model version None" in res.output
