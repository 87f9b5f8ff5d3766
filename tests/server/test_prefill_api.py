"""Stage 2 through the API: an admin starts a pre-fill (a detector is trained first, the
served model has none), everyone sees its progress and the pre-filled masks with their
provenance; an annotator confirms, edits and rejects them; decisions race safely."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from maskengine.engine import rle
from maskengine.server.app import create_app
from maskengine.server.settings import ServerSettings

from ..engine.stage2_helpers import FAST_DETECTOR, OPEN, stage2_project

pytestmark = pytest.mark.slow


def _wait(client: TestClient, timeout: float = 180.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        data = client.get("/api/prefill").json()
        if not data["running"]:
            return data
        assert time.monotonic() < deadline, "the pre-fill did not finish"
        time.sleep(0.2)


def test_prefill_and_decisions_over_http(tmp_path: Path) -> None:
    st = stage2_project(tmp_path)
    ann_token = st.sp.project.add_user("ann")
    app = create_app(st.sp.project.root, ServerSettings(model="tiny", model_poll=0,
                                                        prefetch=0, threads=1))
    with TestClient(app) as admin, TestClient(app) as ann:
        admin.headers["Authorization"] = f"Bearer {st.sp.admin_token}"
        ann.headers["Authorization"] = f"Bearer {ann_token}"
        app.state.prefill.template = OPEN
        app.state.prefill.detector_template = FAST_DETECTOR

        before = admin.get("/api/prefill").json()
        assert before["detector"] is None and not before["running"]
        assert before["stats"]["masks"]["proposed"] == 0
        assert ann.post("/api/prefill", json={}).status_code == 403
        assert admin.post("/api/prefill", json={"images": [0]}).status_code == 422
        assert admin.post("/api/prefill", json={"bogus": 1}).status_code == 422

        r = admin.post("/api/prefill", json={})
        assert r.status_code == 202 and r.json()["running"]
        done = _wait(admin)
        assert done["error"] is None, done["error"]
        assert done["detector"]["model_version_id"] == admin.get("/api/model").json()["id"]
        assert done["last"]["images"] == len(st.todo) and done["done"] == len(st.todo)
        proposed = done["last"]["proposed"]
        assert proposed == done["stats"]["masks"]["proposed"] > 0
        # Idempotent: a second run pre-fills nothing new.
        admin.post("/api/prefill", json={})
        again = _wait(admin)
        assert (again["last"]["images"], again["last"]["skipped"]) == (0, len(st.todo))

        masks = [m for i in st.todo for m in ann.get(f"/api/images/{i}/masks").json()]
        assert len(masks) == proposed
        for m in masks:
            assert m["prefill_state"] == "proposed" and m["source"] == "prefill"
            assert m["meta"]["detector_version_id"] == done["detector"]["id"]
            assert m["stability_score"] is not None and m["author_id"] is None
        m0, m1, m2, m3 = masks[:4]

        # An annotator decides on masks nobody gave them.
        ok = ann.post(f"/api/masks/{m0['id']}/prefill", json={
            "decision": "confirm", "version": m0["version"],
            "interaction": {"n_clicks": 1, "seconds": 1.25}})
        assert ok.status_code == 200, ok.text
        assert ok.json()["prefill_state"] == "confirmed"
        assert ok.json()["author_id"] is not None
        h, w = m1["size"]
        shifted = rle.encode(np.roll(rle.decode(m1["counts"], h, w), 2, axis=0)).counts
        ed = ann.post(f"/api/masks/{m1['id']}/prefill", json={
            "decision": "edit", "version": m1["version"], "counts": shifted,
            "interaction": {"n_clicks": 2, "seconds": 4.0,
                            "events": [{"t": 0.5, "type": "brush", "x": 3, "y": 4,
                                        "radius": 5}]}})
        assert ed.status_code == 200 and ed.json()["counts"] == shifted
        assert ed.json()["prefill_state"] == "edited"
        rj = ann.post(f"/api/masks/{m2['id']}/prefill", json={
            "decision": "reject", "version": m2["version"]})
        assert rj.status_code == 200 and rj.json()["deleted"]
        assert rj.json()["prefill_state"] == "rejected"
        # Deleting a proposal (the Delete key) rejects it too.
        dl = ann.delete(f"/api/masks/{m3['id']}?version={m3['version']}")
        assert dl.status_code == 200 and dl.json()["prefill_state"] == "rejected"

        # Deciding again loses with 409; bad bodies are refused with 422.
        late = ann.post(f"/api/masks/{m0['id']}/prefill", json={
            "decision": "reject", "version": ok.json()["version"]})
        assert late.status_code == 409 and "confirmed" in late.json()["detail"]
        assert ann.post(f"/api/masks/{m0['id']}/prefill", json={
            "decision": "approve", "version": 1}).status_code == 422
        stats = ann.get("/api/prefill").json()["stats"]
        assert stats["masks"] == {"proposed": proposed - 4, "confirmed": 1, "edited": 1,
                                  "rejected": 2}
        assert stats["decisions"]["confirm"] == {"count": 1, "seconds": 1.25}
        assert stats["decisions"]["edit"] == {"count": 1, "seconds": 4.0}
        assert stats["decisions"]["reject"]["count"] == 2
