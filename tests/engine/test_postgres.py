"""The store on PostgreSQL: a throwaway cluster from Debian's postgresql package, on a free
loopback port; migrations, the conflict check and the API's save path run against it."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
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

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

REFERENCE = Path(__file__).resolve().parent.parent / "fixtures" / "reference"


def _bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}")) or [shutil.which(name)]
    assert found[-1], f"{name} not found: install Debian's postgresql package (make setup)"
    return found[-1]


def _as_owner(cmd: list[str]) -> list[str]:
    # PostgreSQL refuses to run as root; CI runs as root.
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    tmp = tempfile.mkdtemp(prefix="maskengine-pg-")
    if os.geteuid() == 0:
        shutil.chown(tmp, "postgres")
    data = os.path.join(tmp, "data")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    subprocess.run(_as_owner([_bin("initdb"), "-D", data, "-A", "trust", "-U", "postgres"]),
                   check=True, capture_output=True)
    opts = f"-p {port} -k {tmp} -c listen_addresses=127.0.0.1 -c fsync=off"
    subprocess.run(_as_owner([_bin("pg_ctl"), "-D", data, "-o", opts, "-w", "-l",
                              os.path.join(tmp, "log"), "start"]), check=True, capture_output=True)
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(_as_owner([_bin("pg_ctl"), "-D", data, "-m", "immediate", "stop"]),
                       capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)


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
