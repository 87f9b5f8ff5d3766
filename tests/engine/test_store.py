"""The project store: init, images, users, migrations, export."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from PIL import Image as PILImage
from pycocotools import mask as mask_utils
from sqlalchemy import inspect, select

from maskengine.data.sa1b import SA1BDataset
from maskengine.engine.export import ExportConfig, export_project
from maskengine.engine.models import Base, Image, Role, User
from maskengine.engine.services import InteractionData, create_mask
from maskengine.engine.store import Project, ProjectError, hash_token, init_project
from maskengine.masks import decode_rle

REFERENCE = Path(__file__).resolve().parent.parent / "fixtures" / "reference"


@pytest.fixture
def images(tmp_path: Path) -> Path:
    d = tmp_path / "images"
    (d / "sub").mkdir(parents=True)
    shutil.copy(REFERENCE / "image0.png", d / "a.png")
    shutil.copy(REFERENCE / "image1.png", d / "sub" / "b.png")
    return d


def test_init_registers_images_users_and_schema(tmp_path: Path, images: Path) -> None:
    project, token = init_project(tmp_path / "proj", images)
    with project.session() as s:
        rows = s.scalars(select(Image).order_by(Image.id)).all()
        assert [(r.path, r.width, r.height) for r in rows] == [
            ("a.png", 640, 480), ("sub/b.png", 200, 300)]
        assert all(len(r.sha256) == 64 and r.split in ("train", "val") for r in rows)
        admin = s.scalar(select(User))
        assert admin.role == Role.admin.value and admin.token_hash == hash_token(token)
        assert token not in (tmp_path / "proj" / "store.db").read_bytes().decode("latin-1")
    assert (tmp_path / "proj" / "admin_token").read_text().strip() == token
    assert (tmp_path / "proj" / "admin_token").stat().st_mode & 0o077 == 0
    # The migrated schema is exactly the ORM's.
    with project.db_engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
        assert "alembic_version" in inspect(conn).get_table_names()
    with pytest.raises(ProjectError, match="already"):
        init_project(tmp_path / "proj", images)


def test_add_images_skips_duplicates_and_reports_unreadable(tmp_path, images) -> None:
    project, _ = init_project(tmp_path / "proj", images)
    more = tmp_path / "more"
    more.mkdir()
    shutil.copy(images / "a.png", more / "copy.png")  # same content
    PILImage.new("RGB", (7, 5)).save(more / "new.jpg")
    (more / "broken.png").write_bytes(b"not an image")
    res = Project.open(tmp_path / "proj").add_image_dir(more)
    assert (res.added, res.duplicates) == (1, 1)
    assert [Path(p).name for p in res.unreadable] == ["broken.png"]
    with project.session() as s:
        new = s.scalar(select(Image).where(Image.width == 7))
        assert Path(new.path).is_absolute() and project.image_path(new).is_file()
    with pytest.raises(ProjectError, match="not a maskengine project"):
        Project.open(tmp_path)


def test_split_is_fixed_by_content(tmp_path, images) -> None:
    p1, _ = init_project(tmp_path / "p1", images, val_fraction=0.5)
    p2, _ = init_project(tmp_path / "p2", images, val_fraction=0.5)
    with p1.session() as s1, p2.session() as s2:
        q = select(Image.sha256, Image.split).order_by(Image.sha256)
        assert s1.execute(q).all() == s2.execute(q).all()


def test_export_sa1b_and_coco(tmp_path, images) -> None:
    project, _ = init_project(tmp_path / "proj", images)
    m = np.zeros((480, 640), np.uint8)
    m[100:150, 200:260] = 1
    counts = mask_utils.encode(np.asfortranarray(m))["counts"].decode()
    with project.session() as s:
        admin = s.scalar(select(User))
        ev = [{"t": 0.0, "type": "point", "x": 230.0, "y": 120.0, "label": 1}]
        create_mask(s, image_id=1, counts=counts, author=admin, predicted_iou=0.9,
                    interaction=InteractionData(events=ev, n_clicks=1, seconds=2.0))
    res = export_project(project, tmp_path / "sa", ExportConfig(format="sa1b"))
    assert (res.images, res.masks) == (2, 1)
    doc = json.loads((tmp_path / "sa" / "a_1.json").read_text())
    assert doc["image"] == {"image_id": 1, "width": 640, "height": 480, "file_name": "a.png"}
    ann = doc["annotations"][0]
    # pycocotools' box: the 60 columns and 50 rows the mask spans (`auto` writes the
    # official generator's, one pixel less: see maskengine.data.sa1b_write).
    assert ann["bbox"] == [200.0, 100.0, 60.0, 50.0] and ann["area"] == 3000
    assert ann["point_coords"] == [[230.0, 120.0]] and ann["predicted_iou"] == 0.9
    assert (decode_rle(ann["segmentation"]) == m).all()
    export_project(project, tmp_path / "coco.json", ExportConfig(format="coco"))
    coco = json.loads((tmp_path / "coco.json").read_text())
    assert len(coco["images"]) == 2 and coco["annotations"][0]["image_id"] == 1
    assert coco["annotations"][0]["category_id"] == 1 and coco["annotations"][0]["iscrowd"] == 0
    # With the images copied beside, the export is a training set.
    export_project(project, tmp_path / "ds", ExportConfig(with_images=True))
    ds = SA1BDataset(tmp_path / "ds")
    assert len(ds) == 2 and (ds[0].masks[0] == m).all() and ds[0].image.shape == (480, 640, 3)
    res = export_project(project, tmp_path / "ap", ExportConfig(approved_only=True))
    assert res.masks == 0
    with pytest.raises(ValueError, match="format"):
        ExportConfig(format="yolo")  # type: ignore[arg-type]


def test_a_project_of_two_or_more_images_has_a_validation_image(tmp_path) -> None:
    d = tmp_path / "two"
    d.mkdir()
    for k in range(2):
        PILImage.new("RGB", (8, 6), (k * 90, 10, 20)).save(d / f"{k}.png")
    for fraction, expected in ((0.001, 1), (0.0, 0)):  # 0.0: the user asked for none
        project, _ = init_project(tmp_path / f"p{fraction}", d, val_fraction=fraction)
        with project.session() as s:
            splits = sorted(s.scalars(select(Image.split)))
        assert splits.count("val") == expected and len(splits) == 2
        project.close()
    # One image first: nothing to validate on yet; the second one added goes to val.
    one = tmp_path / "one"
    one.mkdir()
    PILImage.new("RGB", (8, 6), (1, 2, 3)).save(one / "a.png")
    project, _ = init_project(tmp_path / "grow", one, val_fraction=0.001)
    with project.session() as s:
        assert list(s.scalars(select(Image.split))) == ["train"]
    PILImage.new("RGB", (8, 6), (4, 5, 6)).save(one / "b.png")
    project.add_image_dir(one)
    with project.session() as s:
        assert sorted(s.scalars(select(Image.split))) == ["train", "val"]
