"""A click on a big picture costs what the screen shows: predict answers at the display's
size over the part of the frame on screen, and the full-resolution mask is made at accept
from the candidate's logits (the same pixels a full-resolution predict gives)."""

from __future__ import annotations

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from maskengine.config import MODEL_CONFIGS
from maskengine.engine import rle
from maskengine.engine.store import init_project
from maskengine.server.app import create_app
from maskengine.server.settings import ServerSettings

W, H = 6000, 4500
CX, CY, R = 2600, 2000, 700  # a red disk on a smooth background
LOW = MODEL_CONFIGS["tiny"].low_res_size  # the served model's low-res logits side
SCREEN = (933, 700)  # the page's canvas on screen, whole picture fitted


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("display")
    yy, xx = np.ogrid[:H, :W]
    image = np.empty((H, W, 3), np.uint8)
    image[...] = np.array([70, 110, 160], np.uint8)
    image[..., 1] = (90 + 60 * yy / H).astype(np.uint8)
    image[(xx - CX) ** 2 + (yy - CY) ** 2 <= R * R] = (230, 60, 40)
    (tmp / "images").mkdir()
    Image.fromarray(image).save(tmp / "images" / "big.jpg", quality=95)
    project, token = init_project(tmp / "project", tmp / "images", val_fraction=0.0)
    project.close()
    app = create_app(tmp / "project", ServerSettings(model="tiny", model_poll=0, prefetch=0))
    with TestClient(app) as c:
        c.headers["Authorization"] = f"Bearer {token}"
        c.disk = (xx - CX) ** 2 + (yy - CY) ** 2 <= R * R
        yield c


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def _centres(start: int, stop: int, n: int) -> np.ndarray:
    """Image pixels under the centres of n screen pixels over start..stop."""
    return np.floor(start + (np.arange(n) + 0.5) * (stop - start) / n).astype(int)


def _predict(client, **body) -> dict:  # noqa: ANN001
    res = client.post("/api/images/1/predict", json={"points": [{"x": CX, "y": CY, "label": 1}],
                                                     **body})
    assert res.status_code == 200, res.text
    return res.json()


def _accept(client, **shape) -> dict:  # noqa: ANN001
    res = client.post("/api/images/1/masks", json={"shape": shape})
    assert res.status_code == 201, res.text
    return res.json()


def test_a_click_answers_at_display_size_and_accept_makes_the_full_mask(client) -> None:
    old = _predict(client)  # no display: full-resolution masks, as older clients get them
    assert old["mask_box"] is None and old["mask_size"] is None
    full = rle.decode(old["candidates"][0]["counts"], H, W)
    assert _iou(full, client.disk) > 0.9

    new = _predict(client, display={"size": list(SCREEN)})
    assert new["mask_box"] == [0, 0, W, H]
    h, w = new["mask_size"]
    assert (w, h) == SCREEN  # 6000 x 4500 fitted in 933 x 700 screen pixels
    best = new["candidates"][0]
    assert best["low_res"] == old["candidates"][0]["low_res"]
    shown = rle.decode(best["counts"], h, w)
    # Each screen pixel is the full-resolution mask's pixel under its centre (the logits
    # differ only by their float16 rounding).
    sampled = full[_centres(0, H, h)][:, _centres(0, W, w)]
    assert (shown != sampled).mean() < 1e-3
    assert abs(best["area"] - old["candidates"][0]["area"]) < 0.02 * best["area"]
    assert np.allclose(best["bbox"], old["candidates"][0]["bbox"], atol=2 * W / w)

    # Accept: the server makes the full-resolution mask from the candidate's logits.
    saved = _accept(client, low_res=best["low_res"], model_version_id=new["model_version_id"])
    assert saved["size"] == [H, W]
    mask = rle.decode(saved["counts"], H, W)
    assert _iou(mask, full) >= 0.999 and (mask != full).sum() < 100
    assert _iou(mask, client.disk) > 0.9
    shown_again = mask[_centres(0, H, h)][:, _centres(0, W, w)]
    assert (shown_again != shown).sum() <= 2  # what was shown is what was saved


def test_a_zoomed_view_gets_its_part_of_the_frame_at_screen_resolution(client) -> None:
    # Zoomed in 4x about the disk's left edge, asked on the whole image: the answer covers
    # the view only, one bitmap pixel per screen pixel, never finer than the image.
    view = [1700, 1700, 3200, 2825]  # 1500 x 1125 image pixels on 933 x 700 screen pixels
    res = _predict(client, display={"size": list(SCREEN), "view": view})
    assert res["mask_box"] == view and res["mask_size"] == [700, 933]
    close = _predict(client, display={"size": [4000, 3000], "view": view})
    assert close["mask_size"] == [1125, 1500]  # capped at the image's own pixels
    full = rle.decode(_predict(client)["candidates"][0]["counts"], H, W)
    part = rle.decode(close["candidates"][0]["counts"], 1125, 1500)
    assert (part != full[1700:2825, 1700:3200]).mean() < 1e-3

    # With a region, the answer is the region's part on screen; accept pastes it back.
    region = [CX - 900, CY - 900, CX + 900, CY + 900]
    left = [1200, 1700, 2700, 2825]  # shows the region's left part and what lies beside it
    zoomed = _predict(client, region=region, display={"size": list(SCREEN), "view": left})
    assert zoomed["region"] == region and zoomed["mask_box"] == left
    best = zoomed["candidates"][0]
    bits = rle.decode(best["counts"], *zoomed["mask_size"])
    beside = _centres(1200, 2700, zoomed["mask_size"][1]) < region[0]
    assert not bits[:, beside].any() and bits[:, ~beside].any()  # nothing outside the region
    saved = _accept(client, low_res=best["low_res"], region=region,
                    model_version_id=zoomed["model_version_id"])
    mask = rle.decode(saved["counts"], H, W)
    outside = np.ones((H, W), bool)
    outside[region[1]:region[3], region[0]:region[2]] = False
    # In place (a misplaced paste would overlap the disk little); the model's best first
    # mask of this large disk seen closer is not its best work (IoU 0.77 with the stride-8
    # bundled tiny), so the bound checks the geometry, not the model.
    assert not mask[outside].any() and _iou(mask, client.disk) > 0.7
    old = _predict(client, region=region)["candidates"][0]
    assert _iou(mask, rle.decode(old["counts"], H, W)) >= 0.999

    # After a pan, the page asks for the candidate drawn for the new view: no decoder.
    moved = [2400, 1200, 3900, 2325]
    drawn = client.post("/api/images/1/render", json={
        "low_res": best["low_res"], "region": region,
        "model_version_id": zoomed["model_version_id"],
        "display": {"size": list(SCREEN), "view": moved}})
    assert drawn.status_code == 200, drawn.text
    out = drawn.json()
    x0, y0, x1, y1 = out["mask_box"]
    assert out["mask_box"] == moved
    h, w = out["mask_size"]
    bits = rle.decode(out["counts"], h, w)
    assert (bits != mask[_centres(y0, y1, h)][:, _centres(x0, x1, w)]).mean() < 1e-3


def test_strokes_are_painted_at_full_resolution(client) -> None:
    painted = _accept(client, strokes=[{"value": 1, "radius": 50, "points": [[300, 400]]}])
    assert abs(painted["area"] - np.pi * 50 ** 2) < 0.01 * np.pi * 50 ** 2
    # An edit with an eraser stroke applies to the saved mask.
    edit = client.put(f"/api/masks/{painted['id']}", json={
        "version": painted["version"],
        "shape": {"strokes": [{"value": 0, "radius": 20, "points": [[300, 400], [330, 400]]}]}})
    assert edit.status_code == 200, edit.text
    mask = rle.decode(edit.json()["counts"], H, W)
    assert not mask[400, 300] and not mask[400, 330] and mask[400, 260] and mask[440, 300]
    # Logits and a brush stroke on top of them: the candidate plus the disc.
    res = _predict(client, display={"size": list(SCREEN)})
    best = res["candidates"][0]
    saved = _accept(client, low_res=best["low_res"], model_version_id=res["model_version_id"],
                    strokes=[{"value": 1, "radius": 30, "points": [[5000, 4000]]}])
    mask = rle.decode(saved["counts"], H, W)
    assert mask[4000, 5000] and mask[CY, CX] and not mask[4000, 4900]


@pytest.mark.parametrize(("body", "where", "why"), [
    ({"display": {"size": [0, 700]}}, "size", "greater than or equal to 1"),
    ({"display": {"size": [933, 20000]}}, "size", "less than or equal to 16384"),
    ({"display": {"size": [933, 700], "view": [0, 0, W + 10, 100]}}, "view", "inside the image"),
    ({"display": {"size": [933, 700], "view": [10, 0, 10, 100]}}, "view", "x1 > x0"),
])
def test_bad_displays_are_refused(client, body, where, why) -> None:
    res = client.post("/api/images/1/predict",
                      json={"points": [{"x": CX, "y": CY, "label": 1}], **body})
    assert res.status_code == 422 and why in res.text, res.text
    assert where in [str(p) for p in res.json()["detail"][0]["loc"]]


@pytest.mark.parametrize(("body", "why"), [
    ({"shape": {"low_res": "AAAAAA=="}}, f"must hold {LOW}x{LOW} float16 values"),
    ({"shape": {"low_res": "AAAAAA=="}, "counts": "PPYo0"}, "one of them"),
    ({}, "one of them"),
    ({"shape": {}}, "the mask is empty"),
    ({"shape": {"low_res": "AAAAAA==", "model_version_id": 99}}, "does not exist"),
    ({"shape": {"strokes": [{"value": 1, "radius": 4000, "points": [[1, 1]] * 20000}]}},
     "at most 1000000000"),
    ({"shape": {"strokes": [{"value": 1, "radius": 4, "points": [[1, 1]] * 20001}]}},
     "at most 20000"),
])
def test_bad_shapes_are_refused(client, body, why) -> None:
    res = client.post("/api/images/1/masks", json=body)
    assert res.status_code == 422 and why in res.text, res.text


def test_strokes_far_off_the_image_paint_nothing(client) -> None:
    far = [[1.7976931348623155e308, 4.4e15], [-1e7, 3.7e-71], [-2.5e51, 4.6e16]]
    res = client.post("/api/images/1/masks", json={"shape": {"strokes": [
        {"value": 1, "radius": 3262.3, "points": far}]}})
    assert res.status_code == 422 and "the mask is empty" in res.text, res.text
