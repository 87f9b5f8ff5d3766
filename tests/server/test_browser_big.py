"""A 6000 x 4500 picture in real Chromium: a click is answered and drawn at the screen's
resolution (a small answer, whatever the picture), a zoom draws the mask again for the new
view, and accept saves the full-resolution mask, made by the server, covering the object."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import numpy as np
import pytest
from PIL import Image

from maskengine.engine import rle
from maskengine.engine.store import init_project

from .conftest import run_server
from .test_browser import _image_point
from .test_browser_unsaved import _open

pytestmark = [pytest.mark.browser, pytest.mark.slow]

W, H = 6000, 4500
CX, CY, R = 2600, 2000, 700


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Iterator:
    tmp = tmp_path_factory.mktemp("big")
    yy, xx = np.ogrid[:H, :W]
    image = np.empty((H, W, 3), np.uint8)
    image[...] = np.array([70, 110, 160], np.uint8)
    image[..., 1] = (90 + 60 * yy / H).astype(np.uint8)
    disk = (xx - CX) ** 2 + (yy - CY) ** 2 <= R * R
    image[disk] = (230, 60, 40)
    (tmp / "images").mkdir()
    Image.fromarray(image).save(tmp / "images" / "big.jpg", quality=95)
    project, token = init_project(tmp / "project", tmp / "images", val_fraction=0.0)
    project.close()
    with run_server(tmp / "project", model=["--model", "tiny"]) as server:
        yield server, token, disk, tmp


def _pixel(page, x: int, y: int) -> list[int]:  # noqa: ANN001
    return page.evaluate(f"Array.from(document.querySelector('#canvas').getContext('2d')"
                         f".getImageData({x}, {y}, 1, 1).data)")


def test_a_big_picture_is_answered_at_screen_size_and_saved_at_full_size(browser, served):  # noqa: ANN001, ANN201, E501
    server, token, disk, tmp = served
    page, errors = _open(browser, f"{server.url}/?image=1#token={token}")
    sent: dict[str, dict] = {}
    page.on("request", lambda r: sent.update({r.url.split("/")[-1]: json.loads(r.post_data)})
            if r.method == "POST" else None)
    raw, far = _pixel(page, CX, CY), _pixel(page, 200, 200)
    with page.expect_response(lambda r: r.url.endswith("/predict")) as answer:
        page.mouse.click(*_image_point(page, CX, CY))
    res, nbytes = answer.value.json(), len(answer.value.body())
    page.wait_for_function("document.querySelector('#canvas').dataset.maskArea > 0")
    page.wait_for_function("document.querySelector('#status').textContent.includes(' in ')")
    assert res["mask_box"] == [0, 0, W, H]
    w, h = sent["predict"]["display"]["size"]
    assert res["mask_size"] == [h, w] and w <= 1200 and h <= 800  # the canvas on screen
    # Three candidates of a 27-megapixel picture: the model's low-res logits (fixed by the
    # model) plus masks at the screen's size, whatever the picture's.
    logits = sum(len(c["low_res"]) for c in res["candidates"])
    assert nbytes - logits < 40_000
    tinted = _pixel(page, CX, CY)
    assert tinted[:3] != raw[:3] and tinted[2] > raw[2]  # the blue of the mask being made
    assert _pixel(page, 200, 200) == far  # far from the object: untouched
    area = int(page.get_attribute("#canvas", "data-mask-area"))
    assert abs(area - disk.sum()) < 0.1 * disk.sum()
    page.screenshot(path=str(tmp / "big.png"))

    # Zoomed in on the disk's left edge: once the view rests, the candidate is drawn again
    # for it, at the screen's resolution (finer than before).
    page.mouse.move(*_image_point(page, CX - R, CY))
    for _ in range(6):
        page.mouse.wheel(0, -100)
    page.wait_for_function("Number(document.querySelector('#canvas').dataset.zoom) > 3")
    # data-mask-geo: x0, y0, x1, y1 (image pixels the mask covers), bitmap height, width
    page.wait_for_function("(() => { const g = document.querySelector('#canvas').dataset"
                           f".maskGeo.split(',').map(Number); return g[2] - g[0] < {W / 3}; }})()")
    x0, y0, x1, y1, _, bw = (int(v) for v in page.get_attribute("#canvas",
                                                                 "data-mask-geo").split(","))
    assert x0 <= CX - R <= x1 and bw > (x1 - x0) * w / W  # finer than the fitted view
    assert _pixel(page, CX - R + 40, CY)[:3] != _pixel(page, CX - R - 40, CY)[:3]
    page.screenshot(path=str(tmp / "big_zoomed.png"))

    # Accept: the page sends the candidate's logits, the server makes the mask.
    page.keyboard.press("Enter")
    page.wait_for_selector("#mask-list li")
    assert "counts" not in sent["masks"] and sent["masks"]["shape"]["low_res"]
    (saved,) = httpx.get(f"{server.url}/api/images/1/masks",
                         headers={"Authorization": f"Bearer {token}"}).json()
    assert saved["size"] == [H, W]
    mask = rle.decode(saved["counts"], H, W)
    assert (mask & disk).sum() / (mask | disk).sum() > 0.9
    assert abs(saved["area"] - area) < 0.02 * saved["area"]
    assert not errors
