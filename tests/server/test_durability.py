"""An accepted mask survives the server being killed (SIGKILL) right after the answer."""

from __future__ import annotations

import os
import signal

import httpx
import pytest

from .conftest import DISK, make_project, run_server

pytestmark = pytest.mark.slow


def test_mask_survives_sigkill_after_accept(tmp_path) -> None:
    info = make_project(tmp_path)
    auth = {"Authorization": f"Bearer {info.token}"}
    with run_server(info.root) as server:
        pred = httpx.post(f"{server.url}/api/images/1/predict", headers=auth, timeout=60,
                          json={"points": [{"x": DISK[0], "y": DISK[1], "label": 1}]})
        cand = pred.json()["candidates"][0]
        r = httpx.post(f"{server.url}/api/images/1/masks", headers=auth, timeout=60,
                       json={"counts": cand["counts"], "predicted_iou": cand["score"]})
        assert r.status_code == 201
        os.kill(server.proc.pid, signal.SIGKILL)
        assert server.proc.wait(10) == -signal.SIGKILL
    with run_server(info.root) as server:
        masks = httpx.get(f"{server.url}/api/images/1/masks", headers=auth).json()
        assert [m["id"] for m in masks] == [r.json()["id"]]
        assert masks[0]["counts"] == cand["counts"]
        # The embedding cached by the first run is reused, not recomputed or corrupt.
        again = httpx.post(f"{server.url}/api/images/1/predict", headers=auth, timeout=60,
                           json={"points": [{"x": DISK[0], "y": DISK[1], "label": 1}]})
        assert again.json()["candidates"][0]["counts"] == cand["counts"]
