"""Asking the model on a zoomed-in region: a small object of a big picture gets the model's
full input resolution (an embedding of the crop, cached), masks come back in the image's
frame, and bad regions are refused. The focus pass picks such a region by itself."""

from __future__ import annotations

import base64

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from maskengine.engine import rle
from maskengine.engine.store import init_project
from maskengine.server.app import create_app
from maskengine.server.settings import ServerSettings

W, H = 2400, 1800
CX, CY, R = 1500, 700, 12  # a 24 px disk: 2.6 px across in a 256 view of the whole picture


@pytest.fixture(scope="module")
def project_dir(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("region")
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:H, :W]
    image = np.stack([80 + 60 * xx / W, 120 + 40 * yy / H, 150 - 50 * xx / W], -1)
    image = image + rng.normal(0, 6, image.shape)
    disk = (xx - CX) ** 2 + (yy - CY) ** 2 <= R * R
    image[disk] = (230, 60, 40)
    (tmp / "images").mkdir()
    Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(tmp / "images" / "big.png")
    project, token = init_project(tmp / "project", tmp / "images", val_fraction=0.0)
    project.close()
    return tmp / "project", token, disk


def _client(project_dir, focus: bool | None):  # noqa: ANN202 - a context manager
    path, token, disk = project_dir
    app = create_app(path, ServerSettings(model="tiny", model_poll=0, prefetch=0,
                                          focus=focus))
    c = TestClient(app)
    c.headers["Authorization"] = f"Bearer {token}"
    c.disk, c.cache = disk, path
    return c


@pytest.fixture(scope="module")
def client(project_dir):
    """The server with the focus pass off: regions come only from the request."""
    with _client(project_dir, focus=False) as c:
        yield c


def _best_iou(res: dict, disk: np.ndarray) -> float:
    best = 0.0
    for cand in res["candidates"]:
        m = rle.decode(cand["counts"], H, W)
        best = max(best, float((m & disk).sum() / max((m | disk).sum(), 1)))
    return best


def test_a_zoomed_region_gives_a_small_object_a_real_mask(client) -> None:
    point = {"x": CX, "y": CY, "label": 1}
    whole = client.post("/api/images/1/predict", json={"points": [point]})
    assert whole.status_code == 200 and whole.json()["region"] is None
    region = [CX - 75, CY - 55, CX + 75, CY + 57]  # the disk 41 px across in the model
    zoomed = client.post("/api/images/1/predict", json={"points": [point], "region": region})
    assert zoomed.status_code == 200, zoomed.text
    res = zoomed.json()
    assert res["region"] == region and res["size"] == [H, W]
    outside = np.ones((H, W), dtype=bool)
    outside[region[1]:region[3], region[0]:region[2]] = False
    for cand in res["candidates"]:  # masks in the image's frame, nothing outside the crop
        assert not rle.decode(cand["counts"], H, W)[outside].any()
    assert _best_iou(res, client.disk) >= 0.7 > _best_iou(whole.json(), client.disk) + 0.2
    # The crop's embedding is cached like an image's.
    assert list(client.cache.rglob(f"*_r{'_'.join(map(str, region))}.npy"))

    # Its low-res logits go back with the same region for the next click.
    again = client.post("/api/images/1/predict", json={
        "points": [point, {"x": CX + 40, "y": CY, "label": 0}], "region": region,
        "mask_input": res["candidates"][0]["low_res"]})
    assert again.status_code == 200 and again.json()["region"] == region
    assert base64.b64decode(again.json()["candidates"][0]["low_res"])


@pytest.mark.parametrize(("region", "why"), [
    ([CX - 150, CY - 110, CX + 150, CY + 115 + H], "not a box inside the image"),
    ([CX, CY, CX - 10, CY + 10], "not a box inside the image"),
    ([CX - 2, CY - 2, CX + 3, CY + 3], "under 8 pixels"),
    ([0, 0, 100, 100], "outside the region"),
])
def test_bad_regions_are_refused(client, region, why) -> None:
    out = client.post("/api/images/1/predict",
                      json={"points": [{"x": CX, "y": CY, "label": 1}], "region": region})
    assert out.status_code == 422 and why in out.text


def test_the_whole_image_as_region_is_the_image(client) -> None:
    point = {"x": CX, "y": CY, "label": 1}
    a = client.post("/api/images/1/predict", json={"points": [point]}).json()
    b = client.post("/api/images/1/predict",
                    json={"points": [point], "region": [0, 0, W, H]}).json()
    assert b["region"] is None and a["candidates"] == b["candidates"]


def test_the_focus_pass_chooses_the_region_itself(project_dir, client) -> None:
    """With the focus pass (tiny's default) a prompt on the whole image whose answer is
    small comes back answered on a crop around it, the crop named in `region`; the page
    sends that region with the next prompt on the mask, and drops it for a prompt outside."""
    point = {"x": CX, "y": CY, "label": 1}
    plain = client.post("/api/images/1/predict", json={"points": [point]}).json()
    with _client(project_dir, focus=None) as c:
        res = c.post("/api/images/1/predict", json={"points": [point]}).json()
        x0, y0, x1, y1 = res["region"]
        assert x1 - x0 == y1 - y0 >= W // 4 and x0 <= CX <= x1 and y0 <= CY <= y1
        outside = np.ones((H, W), dtype=bool)
        outside[y0:y1, x0:x1] = False
        for cand in res["candidates"]:
            assert not rle.decode(cand["counts"], H, W)[outside].any()
        assert _best_iou(res, c.disk) >= 0.8 > _best_iou(plain, c.disk) + 0.2

        # The next click on this mask, with its region and logits: answered on the crop.
        again = c.post("/api/images/1/predict", json={
            "points": [point, {"x": CX + 40, "y": CY, "label": 0}], "region": res["region"],
            "mask_input": res["candidates"][0]["low_res"]}).json()
        assert again["region"] == res["region"] and _best_iou(again, c.disk) >= 0.8
        # A large answer keeps the whole image: a box over most of the picture.
        big = c.post("/api/images/1/predict", json={"box": [100, 100, W - 100, H - 100]})
        assert big.status_code == 200 and big.json()["region"] is None


def test_a_prompt_outside_the_crop_keeps_the_logits_made_on_it(project_dir) -> None:
    """A click outside the focus crop drops the crop (the page asks on the whole image) but
    not the logits made on it: sent with `mask_region`, the server resamples them into the
    frame it asks on (the whole image, then the focus pass's crop, straight from theirs)."""
    point = {"x": CX, "y": CY, "label": 1}
    with _client(project_dir, focus=None) as c:
        first = c.post("/api/images/1/predict", json={"points": [point]}).json()
        crop, low = first["region"], first["candidates"][0]["low_res"]
        assert crop is not None
        far = {"x": 200, "y": 1600, "label": 0}  # outside the crop
        body = {"points": [point, far], "multimask": False}
        kept = c.post("/api/images/1/predict",
                      json={**body, "mask_input": low, "mask_region": crop})
        assert kept.status_code == 200, kept.text
        without = c.post("/api/images/1/predict", json=body).json()
        a, b = kept.json()["candidates"], without["candidates"]
        assert [k["score"] for k in a] != [k["score"] for k in b]  # the logits were used
        assert _best_iou(kept.json(), c.disk) >= 0.8
        # Logits sent with the frame they were made in, when that is the request's own:
        # as without mask_region.
        same = {"points": [point, {"x": CX + 40, "y": CY, "label": 0}], "region": crop,
                "mask_input": low, "multimask": False}
        assert (c.post("/api/images/1/predict", json={**same, "mask_region": crop}).json()
                == c.post("/api/images/1/predict", json=same).json())
        bad = c.post("/api/images/1/predict",
                     json={**body, "mask_input": low, "mask_region": [0, 0, W + 50, H]})
        assert bad.status_code == 422 and "mask_region" in bad.text
