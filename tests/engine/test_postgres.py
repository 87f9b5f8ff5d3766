"""The store on PostgreSQL: a throwaway cluster from Debian's postgresql package, on a free
loopback port; migrations, the conflict check and the API's save path run against it."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from pycocotools import mask as mask_utils
from sqlalchemy import select

from maskengine.engine import services
from maskengine.engine.errors import Conflict
from maskengine.engine.models import User
from maskengine.engine.store import Project, init_project

from ..pg_cluster import throwaway_postgres

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

REFERENCE = Path(__file__).resolve().parent.parent / "fixtures" / "reference"


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    with throwaway_postgres() as url:
        yield url


def test_store_and_conflicts_on_postgres(tmp_path: Path, pg_url: str) -> None:
    images = tmp_path / "images"
    images.mkdir()
    shutil.copy(REFERENCE / "image0.png", images / "a.png")
    project, token = init_project(tmp_path / "proj", images, db_url=pg_url)
    project.close()
    project = Project.open(tmp_path / "proj")  # the URL is read back from project.json
    assert project.db_engine.dialect.name == "postgresql"
    m = np.zeros((480, 640), np.uint8)
    m[1:5, 1:5] = 1
    counts = mask_utils.encode(np.asfortranarray(m))["counts"].decode()
    with project.session() as s:
        assert services.user_by_token(s, token=token).name == "admin"
        admin = s.scalar(select(User))
        mask_id = services.create_mask(s, image_id=1, counts=counts, author=admin).id
    a, b = project.new_session(), project.new_session()
    try:
        ua, ub = a.scalar(select(User)), b.scalar(select(User))
        services.get_mask(a, mask_id=mask_id)
        services.get_mask(b, mask_id=mask_id)
        services.update_mask(a, mask_id=mask_id, expected_version=1, user=ua, counts=counts)
        a.commit()
        with pytest.raises(Conflict):
            services.update_mask(b, mask_id=mask_id, expected_version=1, user=ub, counts=counts)
    finally:
        a.close()
        b.close()
    with project.session() as s:
        assert services.get_mask(s, mask_id=mask_id).version == 2
    project.close()


def test_simultaneous_edits_over_http_on_postgres(tmp_path: Path, pg_url: str) -> None:
    from ..server.conftest import run_server
    from ..server.test_hostile import simultaneous_edits

    images = tmp_path / "images"
    images.mkdir()
    shutil.copy(REFERENCE / "image0.png", images / "a.png")
    # The cluster is the module's: the database already holds the first test's admin.
    project, token = init_project(tmp_path / "proj", images, db_url=pg_url, admin="admin2")
    project.close()
    with run_server(tmp_path / "proj") as srv:
        simultaneous_edits(srv.url, token)
