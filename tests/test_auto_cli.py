"""`maskengine auto`: a folder with good and bad images, SA-1B output, errors, resume."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from maskengine import MaskGenerator
from maskengine.cli import app
from maskengine.engine.auto import find_jobs, load_image, run_auto
from maskengine.masks import decode_rle

from .conftest import REFERENCE, load_reference_image

FAST = ["--points-per-side", "3", "--pred-iou-thresh", "0.05", "--stability-score-thresh",
        "0.3"]


@pytest.fixture()
def folder(tmp_path):
    """Two good images (one in a subfolder, jpg), a corrupt one, an empty file, a huge one
    (for a small --max-pixels) and a text file that is not an image."""
    src = tmp_path / "images"
    (src / "sub").mkdir(parents=True)
    shutil.copy(REFERENCE / "image1.png", src / "a.png")
    Image.fromarray(load_reference_image(1)[:150, :120]).save(src / "sub" / "b.jpg")
    (src / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg" * 10)
    (src / "empty.png").write_bytes(b"")
    Image.new("RGB", (400, 300)).save(src / "huge.bmp")
    (src / "notes.txt").write_text("not an image")
    return src


def run_cli(*args: str):
    res = CliRunner().invoke(app, ["auto", *args], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return res


@pytest.mark.slow
def test_auto_folder_with_bad_images_and_resume(folder, tmp_path):
    out = tmp_path / "out"
    common = [str(folder), "--out", str(out), "--model", str(REFERENCE / "config.json"),
              "--checkpoint", str(REFERENCE / "checkpoint.pt"), "--max-pixels", "100000",
              "--overlay", "--no-progress", *FAST]
    res = run_cli(*common)
    assert "5 images: 2 annotated, 0 already done, 3 failed" in res.output

    for name, (h, w) in {"a": (300, 200), "sub/b": (150, 120)}.items():
        data = json.loads((out / f"{name}.json").read_text())
        assert data["image"]["height"] == h and data["image"]["width"] == w
        assert data["image"]["file_name"] == name.split("/")[-1] + (
            ".png" if name == "a" else ".jpg")
        anns = data["annotations"]
        assert anns, name
        ids = {a["id"] for a in anns}
        assert len(ids) == len(anns)
        for a in anns:
            assert set(a) == {"id", "segmentation", "bbox", "area", "predicted_iou",
                              "stability_score", "crop_box", "point_coords"}
            assert isinstance(a["segmentation"]["counts"], str)
            m = decode_rle(a["segmentation"])
            assert m.shape == (h, w) and int(m.sum()) == a["area"]
            assert a["crop_box"] == [0, 0, w, h]
            # The official generator's box: width = last column - first column (one pixel
            # less than the mask spans; `export` writes the span, as pycocotools does).
            ys, xs = np.nonzero(m)
            assert a["bbox"] == [xs.min(), ys.min(), xs.max() - xs.min(), ys.max() - ys.min()]
        overlay = np.array(Image.open(out / f"{name}.overlay.png"))
        assert overlay.shape == (h, w, 3)

    errors = [json.loads(line) for line in (out / "errors.jsonl").read_text().splitlines()]
    reasons = {e["name"]: e["reason"] for e in errors}
    assert set(reasons) == {"corrupt.jpg", "empty.png", "huge.bmp"}
    assert reasons["corrupt.jpg"].startswith("unreadable")
    assert reasons["empty.png"].startswith("empty")
    assert reasons["huge.bmp"].startswith("too large")
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["total"], summary["processed"], summary["failed"]) == (5, 2, 3)

    before = (out / "a.json").stat().st_mtime_ns
    res = run_cli(*common)
    assert "5 images: 0 annotated, 2 already done, 3 failed" in res.output
    assert (out / "a.json").stat().st_mtime_ns == before


class Interrupting:
    """A generator that is 'killed' (KeyboardInterrupt) on its n-th image."""

    def __init__(self, inner: MaskGenerator, kill_at: int) -> None:
        self.inner, self.kill_at, self.calls = inner, kill_at, 0

    def generate(self, image):
        self.calls += 1
        if self.calls == self.kill_at:
            raise KeyboardInterrupt
        return self.inner.generate(image)


def test_killed_run_loses_only_the_image_in_flight(reference_model, tmp_path):
    src = tmp_path / "images"
    src.mkdir()
    for i in range(3):
        Image.fromarray(load_reference_image(1)[i * 10:i * 10 + 90, :80]).save(src / f"{i}.png")
    out = tmp_path / "out"
    gen = MaskGenerator(reference_model, points_per_side=2, pred_iou_thresh=0.0,
                        stability_score_thresh=0.0, output_mode="coco_rle")
    with pytest.raises(KeyboardInterrupt):
        run_auto([src], out, Interrupting(gen, kill_at=2), progress=False)
    assert (out / "0.json").is_file()
    assert not (out / "1.json").exists()
    assert not list(out.glob(".*.tmp"))  # no half-written file left behind
    done = []
    summary = run_auto([src], out, gen, progress=False, on_image=lambda j, n: done.append(j.name))
    assert done == ["1.png", "2.png"]
    assert (summary.skipped, summary.processed, summary.failed) == (1, 2, 0)


def test_find_jobs_and_load_image(folder, tmp_path):
    jobs = find_jobs([folder], tmp_path)
    assert [j.name for j in jobs] == ["a.png", "corrupt.jpg", "empty.png", "huge.bmp",
                                      "sub/b.jpg"]
    assert jobs[-1].json_path == tmp_path / "sub" / "b.json"
    Image.new("RGB", (4, 4)).save(folder / "a.jpg")  # same stem as a.png
    names = {j.name: j.json_path.name for j in find_jobs([folder], tmp_path)}
    assert names["a.png"] == "a.png.json" and names["a.jpg"] == "a.jpg.json"
    with pytest.raises(FileNotFoundError, match="neither"):
        find_jobs([tmp_path / "missing"], tmp_path)
    rgb = load_reference_image(1)[:20, :30]
    for suffix in (".tif", ".webp", ".bmp"):
        Image.fromarray(rgb).save(tmp_path / f"c{suffix}", lossless=True)
        assert load_image(tmp_path / f"c{suffix}", 10_000).shape == (20, 30, 3)
    gray16 = Image.fromarray(np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000)
    gray16.save(tmp_path / "g16.png")
    arr = load_image(tmp_path / "g16.png", 10_000)
    assert arr.shape == (8, 8, 3) and arr.dtype == np.uint8 and arr.max() == 255


def test_links_that_lead_nowhere_are_reported_and_all_failed_exits_nonzero(tmp_path):
    src = tmp_path / "images"
    src.mkdir()
    (src / "corrupt.png").write_bytes(b"not a png")
    os.symlink("self.png", src / "self.png")  # a loop
    os.symlink("gone.jpg", src / "dangling.jpg")
    os.symlink(".", src / "again")  # a folder link back: not followed
    out = tmp_path / "out"
    args = ["auto", str(src), "--out", str(out), "--model", str(REFERENCE / "config.json"),
            "--checkpoint", str(REFERENCE / "checkpoint.pt"), "--no-progress", *FAST]
    res = CliRunner().invoke(app, args, catch_exceptions=False)
    assert res.exit_code == 1, res.output
    assert "3 images: 0 annotated, 0 already done, 3 failed" in res.output
    assert "no image was annotated" in res.output
    errors = [json.loads(line) for line in (out / "errors.jsonl").read_text().splitlines()]
    reasons = {e["name"]: e["reason"] for e in errors}
    assert reasons["self.png"].startswith("link loop")
    assert reasons["dangling.jpg"].startswith("dangling link")
    assert reasons["corrupt.png"].startswith("unreadable")
    # One good image is enough for success; the bad links are still listed.
    shutil.copy(REFERENCE / "image1.png", src / "good.png")
    res = CliRunner().invoke(app, args, catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert "4 images: 1 annotated, 0 already done, 3 failed" in res.output
