"""Input a hostile (or careless) client may send: each is refused at the door with a clear
4xx, never stored, never a 500; who may change which mask; simultaneous edits."""

from __future__ import annotations

import threading
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from maskengine.engine.models import MaskChange
from maskengine.engine.store import Project
from maskengine.masks import encode_rle

from .conftest import make_project, run_server

IMAGE0 = 1  # 640 x 480


def _counts(y0: int = 10, y1: int = 50) -> str:
    m = np.zeros((480, 640), bool)
    m[y0:y1, 20:80] = True
    return encode_rle(m)["counts"]


def _stored(client: TestClient) -> list:
    return client.get(f"/api/images/{IMAGE0}/masks", params={"include_deleted": True}).json()


@pytest.mark.parametrize("counts", ["", "0", "1", "PP", "0<0<0<", "~~", "P"])
def test_rle_that_does_not_cover_the_image_is_422(client: TestClient, counts: str) -> None:
    for _ in range(2):  # once read uninitialised memory: areas differed from call to call
        r = client.post(f"/api/images/{IMAGE0}/masks", json={"counts": counts})
        assert r.status_code == 422, r.text
        assert r.json()["detail"][0]["loc"] == ["body", "counts"]
    good = client.post(f"/api/images/{IMAGE0}/masks", json={"counts": _counts()}).json()
    r = client.put(f"/api/masks/{good['id']}", json={"version": 1, "counts": counts})
    assert r.status_code == 422
    assert [m["id"] for m in _stored(client)] == [good["id"]]
    assert client.get(f"/api/masks/{good['id']}").json()["version"] == 1


@pytest.mark.parametrize(("event", "needs"), [
    ({"type": "point", "label": 1}, "x, y"),
    ({"type": "point", "x": 3, "y": 4}, "label"),
    ({"type": "box"}, "box"),
    ({"type": "brush", "x": 1}, "y"),
    ({"type": "cycle"}, "candidate"),
])
def test_events_without_their_fields_are_422(client: TestClient, event: dict, needs: str) -> None:
    body = {"counts": _counts(), "interaction": {"events": [{"t": 0, **event}]}}
    r = client.post(f"/api/images/{IMAGE0}/masks", json=body)
    assert r.status_code == 422, r.text
    d = r.json()["detail"][0]
    assert d["loc"][:4] == ["body", "interaction", "events", 0] and needs in d["msg"]
    assert _stored(client) == []


@pytest.mark.parametrize("raw", [
    b'{"points": [{"x": NaN, "y": 1, "label": 1}]}',
    b'{"points": [{"x": 1, "y": Infinity, "label": 1}]}',
    b'{"box": [-Infinity, 0, 1, 1]}',
])
def test_bare_nan_and_infinity_are_422(client: TestClient, raw: bytes) -> None:
    r = client.post(f"/api/images/{IMAGE0}/predict", content=raw,
                    headers={"Content-Type": "application/json"})
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["input"] in ("nan", "inf", "-inf")


def test_ids_beyond_the_column_are_422(client: TestClient) -> None:
    big = 2**63
    for method, path, kw in (
        ("GET", f"/api/images/{big}", {}), ("GET", f"/api/masks/{big}", {}),
        ("GET", f"/api/images/{2**31}/masks", {}), ("GET", "/api/images/next",
                                                    {"params": {"after": big}}),
        ("GET", "/api/images", {"params": {"offset": big}}),
        ("DELETE", "/api/masks/1", {"params": {"version": big}}),
        ("PUT", "/api/masks/1", {"json": {"version": big}}),
        ("POST", f"/api/images/{IMAGE0}/masks",
         {"json": {"counts": _counts(), "model_version_id": big}}),
        ("POST", f"/api/images/{IMAGE0}/masks",
         {"json": {"counts": _counts(), "interaction": {"n_clicks": big}}}),
    ):
        r = client.request(method, path, **kw)
        assert r.status_code == 422, (method, path, r.status_code, r.text)


def test_bodies_over_the_limit_are_413(client: TestClient) -> None:
    limit = client.app.state.app_state.settings.max_body_bytes
    huge = b'{"counts": [' + b"0," * (limit // 2) + b"0]}"
    r = client.post(f"/api/images/{IMAGE0}/masks", content=huge,
                    headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and "larger than" in r.json()["detail"]

    def chunks():  # no Content-Length: counted while read
        for i in range(0, len(huge), 65536):
            yield huge[i:i + 65536]

    r = client.post(f"/api/images/{IMAGE0}/masks", content=chunks(),
                    headers={"Content-Type": "application/json"})
    assert r.status_code == 413
    assert client.get("/api/health").status_code == 200 and _stored(client) == []


def test_annotators_change_only_their_own_unreviewed_masks(client: TestClient, project) -> None:
    p = Project.open(project.root)
    tokens = {name: p.add_user(name, role) for name, role in
              (("ann", "annotator"), ("bea", "annotator"), ("rev", "reviewer"))}
    p.close()
    as_ = {name: {"Authorization": f"Bearer {t}"} for name, t in tokens.items()}
    mask = client.post(f"/api/images/{IMAGE0}/masks", headers=as_["ann"],
                       json={"counts": _counts()}).json()
    url = f"/api/masks/{mask['id']}"
    # Another annotator may neither edit nor delete it.
    r = client.put(url, headers=as_["bea"], json={"version": 1, "counts": _counts(5, 60)})
    assert r.status_code == 403 and "another user" in r.json()["detail"]
    r = client.delete(url, headers=as_["bea"], params={"version": 1})
    assert r.status_code == 403
    # Its author may, while it is unreviewed.
    r = client.put(url, headers=as_["ann"], json={"version": 1, "counts": _counts(5, 60)})
    assert r.status_code == 200 and r.json()["updated_by_id"] == r.json()["author_id"]
    r = client.post(f"{url}/review", headers=as_["rev"], json={"version": 2, "state": "approved"})
    assert r.status_code == 200
    rev_id = r.json()["updated_by_id"]
    r = client.put(url, headers=as_["ann"], json={"version": 3, "counts": _counts(1, 9)})
    assert r.status_code == 403 and "approved" in r.json()["detail"]
    # Reviewers and admins change any mask.
    r = client.put(url, headers=as_["rev"], json={"version": 3, "counts": _counts(1, 9)})
    assert r.status_code == 200 and r.json()["review_state"] == "pending"
    assert client.delete(url, params={"version": 4}).status_code == 200
    # Every change names who made it.
    with client.app.state.app_state.project.session() as s:
        rows = s.scalars(select(MaskChange).where(MaskChange.mask_id == mask["id"])
                         .order_by(MaskChange.id)).all()
        changes = [(c.kind, c.version, c.user_id, c.detail) for c in rows]
    ann_id, admin_id = mask["author_id"], 1
    assert changes == [("create", 1, ann_id, ""), ("edit", 2, ann_id, ""),
                       ("review", 3, rev_id, "approved"), ("edit", 4, rev_id, ""),
                       ("delete", 5, admin_id, "")]


def simultaneous_edits(base: str, token: str, rounds: int = 3) -> None:
    """Eight clients save an edit of the same mask version at once, `rounds` times: one
    200 and seven 409 each time, and the mask's version goes up by one."""
    headers = {"Authorization": f"Bearer {token}"}
    r = httpx.post(f"{base}/api/images/{IMAGE0}/masks", headers=headers,
                   json={"counts": _counts()})
    url = f"{base}/api/masks/{r.json()['id']}"
    for round_ in range(rounds):
        version = httpx.get(url, headers=headers).json()["version"]
        start = threading.Barrier(8)
        codes: list[int] = []

        def edit(k: int, version: int = version, start=start, codes=codes) -> None:
            body = {"version": version, "counts": _counts(10 + k, 60)}
            start.wait()
            codes.append(httpx.put(url, headers=headers, json=body, timeout=60).status_code)

        threads = [threading.Thread(target=edit, args=(k,)) for k in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(codes) == [200] + [409] * 7, (round_, codes)
        assert httpx.get(url, headers=headers).json()["version"] == version + 1


@pytest.mark.slow
def test_simultaneous_edits_one_wins_all_others_get_409(tmp_path: Path) -> None:
    info = make_project(tmp_path)  # SQLite; tests/engine/test_postgres.py: PostgreSQL
    with run_server(info.root) as srv:
        simultaneous_edits(srv.url, info.token)
