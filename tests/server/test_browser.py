"""The web page in real Chromium (Debian's /usr/bin/chromium) driven by Playwright."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from .conftest import ARGS, CHROMIUM, DISK, make_project, run_server  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.slow]



@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Iterator:
    info = make_project(tmp_path_factory.mktemp("browser"))
    with run_server(info.root) as server:
        yield server, info


def _image_point(page, x: float, y: float) -> tuple[float, float]:
    """Page coordinates of image pixel (x, y) on the scaled canvas."""
    box = page.locator("#canvas").bounding_box()
    w, h = page.eval_on_selector("#canvas", "c => [c.width, c.height]")
    return box["x"] + (x + 0.5) * box["width"] / w, box["y"] + (y + 0.5) * box["height"] / h


def test_click_accept_reload(browser, served) -> None:
    server, info = served
    page = browser.new_page(viewport={"width": 1200, "height": 800})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{server.url}/#token={info.token}")
    page.wait_for_selector("#canvas[data-ready='1']")
    assert page.locator("#mask-list li").count() == 0
    assert "Enter" in page.locator("#shortcuts").inner_text()

    page.mouse.click(*_image_point(page, *DISK))
    page.wait_for_function("document.querySelector('#canvas').dataset.maskArea > 0")
    area = int(page.get_attribute("#canvas", "data-mask-area"))
    assert "candidate 1/3" in page.locator("#candidates").inner_text()
    # A pixel at the click is tinted by the mask overlay.
    tint = page.evaluate(
        f"() => Array.from(document.querySelector('#canvas').getContext('2d')"
        f".getImageData({int(DISK[0])}, {int(DISK[1])}, 1, 1).data)"
    )
    assert tint[:3] != [220, 234, 232] and tint[2] > tint[0]

    page.keyboard.press("Enter")
    page.wait_for_selector("#mask-list li")
    page.reload()
    page.wait_for_selector("#canvas[data-ready='1']")
    assert page.locator("#mask-list li").count() == 1
    masks = httpx.get(f"{server.url}/api/images/1/masks",
                      headers={"Authorization": f"Bearer {info.token}"}).json()
    assert len(masks) == 1 and masks[0]["area"] == area  # the page's RLE encoder agrees
    assert masks[0]["source"] == "manual" and masks[0]["predicted_iou"] is not None
    assert not errors


def test_wrong_token_is_refused(browser, served) -> None:
    server, _ = served
    page = browser.new_page()
    page.goto(f"{server.url}/#token=not-a-token")
    page.wait_for_selector("#auth-error:has-text('token refused')")
    assert page.locator("#main").is_hidden()
    assert httpx.get(f"{server.url}/api/images",
                     headers={"Authorization": "Bearer not-a-token"}).status_code == 401


def _area(page) -> int:
    return int(page.get_attribute("#canvas", "data-mask-area"))


def test_cycle_undo_clear_box_brush_and_edit(browser, served) -> None:
    server, info = served
    page = browser.new_page(viewport={"width": 1200, "height": 800})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{server.url}/?image=2#token={info.token}")  # image1.png, 200 x 300
    page.wait_for_selector("#canvas[data-ready='1']")
    assert "#2 image1.png" in page.locator("#image-name").inner_text()

    page.mouse.click(*_image_point(page, 100, 150))
    page.wait_for_function("document.querySelector('#canvas').dataset.maskArea > 0")
    page.keyboard.press("Tab")
    assert "candidate 2/3" in page.locator("#candidates").inner_text()
    page.keyboard.press("Control+z")
    assert "candidate 1/3" in page.locator("#candidates").inner_text()
    page.keyboard.press("Escape")
    assert _area(page) == 0 and "no mask" in page.locator("#candidates").inner_text()

    # A dragged box gives a mask inside (about) the box.
    page.mouse.move(*_image_point(page, 40, 60))
    page.mouse.down()
    page.mouse.move(*_image_point(page, 100, 120), steps=4)
    page.mouse.move(*_image_point(page, 160, 240), steps=4)
    page.mouse.up()
    page.wait_for_function("document.querySelector('#canvas').dataset.maskArea > 0")
    page.keyboard.press("Escape")

    # Brush alone paints a mask; the eraser takes part of it back.
    page.keyboard.press("b")
    page.mouse.click(*_image_point(page, 50, 50))
    painted = _area(page)
    assert painted > 100
    page.keyboard.press("e")
    page.mouse.click(*_image_point(page, 56, 50))
    assert 0 < _area(page) < painted
    page.keyboard.press("Enter")
    page.wait_for_selector("#mask-list li")
    page.keyboard.press("v")

    # Shift+click selects the saved mask; the brush grows it; Enter saves version 2.
    page.keyboard.down("Shift")
    page.mouse.click(*_image_point(page, 42, 50))
    page.keyboard.up("Shift")
    assert "editing mask" in page.locator("#candidates").inner_text()
    page.keyboard.press("b")
    page.mouse.click(*_image_point(page, 50, 80))
    page.keyboard.press("Enter")
    auth = {"Authorization": f"Bearer {info.token}"}
    # The status line said "saved" already after the first accept, so it cannot tell when
    # this save lands: wait on the store instead (at most 15 s).
    for _ in range(150):
        (mask,) = httpx.get(f"{server.url}/api/images/2/masks", headers=auth).json()
        if mask["version"] >= 2:
            break
        time.sleep(0.1)
    assert mask["version"] == 2 and mask["area"] > painted

    # Select it again and delete it.
    page.locator("#mask-list li").first.click()
    page.keyboard.press("Delete")
    page.wait_for_function("document.querySelectorAll('#mask-list li').length === 0")
    assert httpx.get(f"{server.url}/api/images/2/masks", headers=auth).json() == []

    page.keyboard.press("ArrowRight")  # wraps to image 1
    page.wait_for_function("document.querySelector('#image-name').textContent.includes('#1 ')")
    assert not errors
