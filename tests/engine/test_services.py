"""Mask services: optimistic locking under a real race, the queue, RLE inputs."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from pycocotools import mask as mask_utils
from sqlalchemy import select

from maskengine.engine import rle, services
from maskengine.engine.errors import Conflict, InvalidField, NotFound
from maskengine.engine.models import User
from maskengine.engine.store import init_project

REFERENCE = Path(__file__).resolve().parent.parent / "fixtures" / "reference"


@pytest.fixture
def project(tmp_path: Path):
    images = tmp_path / "images"
    images.mkdir()
    shutil.copy(REFERENCE / "image0.png", images / "a.png")
    project, _ = init_project(tmp_path / "proj", images)
    yield project
    project.close()


def _counts(y0: int, y1: int) -> str:
    m = np.zeros((480, 640), np.uint8)
    m[y0:y1, 10:20] = 1
    return mask_utils.encode(np.asfortranarray(m))["counts"].decode()


def test_concurrent_sessions_cannot_both_save(project) -> None:
    with project.session() as s:
        admin = s.scalar(select(User))
        mask_id = services.create_mask(s, image_id=1, counts=_counts(0, 10), author=admin).id
    a, b = project.new_session(), project.new_session()
    try:
        user_a, user_b = a.scalar(select(User)), b.scalar(select(User))
        # Both read version 1 before either writes: the version check passes for both, the
        # UPDATE ... WHERE version = 1 of the second finds no row and is refused.
        services.get_mask(a, mask_id=mask_id)
        services.get_mask(b, mask_id=mask_id)
        services.update_mask(a, mask_id=mask_id, expected_version=1, user=user_a,
                             counts=_counts(0, 20))
        a.commit()
        with pytest.raises(Conflict):
            services.update_mask(b, mask_id=mask_id, expected_version=1, user=user_b,
                                 counts=_counts(0, 30))
        b.rollback()
    finally:
        a.close()
        b.close()
    with project.session() as s:
        m = services.get_mask(s, mask_id=mask_id)
        assert (m.version, m.area) == (2, 200)


def test_rle_inputs(project) -> None:
    m = np.zeros((480, 640), bool)
    m[5:9, 3:4] = True
    enc = rle.encode(m)
    assert rle.normalise(enc.counts, 480, 640) == enc
    assert (rle.decode(enc.counts, 480, 640) == m).all()
    runs = [3 * 480 + 5, 4, 480 * 640 - 3 * 480 - 9]
    assert rle.normalise(runs, 480, 640) == enc
    with pytest.raises(ValueError, match="add up"):
        rle.normalise([1, 2], 480, 640)
    with project.session() as s:
        admin = s.scalar(select(User))
        with pytest.raises(InvalidField) as err:
            services.create_mask(s, image_id=1, counts="!!", author=admin)
        assert err.value.field == ("body", "counts")
        with pytest.raises(NotFound):
            services.create_mask(s, image_id=7, counts=enc.counts, author=admin)
