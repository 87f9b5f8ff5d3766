"""The web page in real Chromium (Debian's /usr/bin/chromium) driven by Playwright."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from .conftest import DISK, make_project, run_server

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@pytest.fixture(scope="module")
def browser() -> Iterator:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


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
