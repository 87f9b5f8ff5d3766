"""Work the page must not lose or misplace, in real Chromium: an unsaved mask when moving to
another image or reloading, the saved token against a wrong link, and a 409 on an edit."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from .conftest import DISK, make_project, run_server
from .test_browser import _area, _image_point

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def served(tmp_path) -> Iterator:
    info = make_project(tmp_path)
    with run_server(info.root) as server:
        yield server, info


def _open(browser, url: str, image: int = 1):  # noqa: ANN001, ANN202
    page = browser.new_page(viewport={"width": 1200, "height": 800})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{url}&image={image}" if "?" in url else url)
    page.wait_for_selector("#canvas[data-ready='1']")
    return page, errors


def _status(page) -> str:  # noqa: ANN001
    return page.locator("#status").inner_text()


def _masks(server, info, image: int) -> list[dict]:  # noqa: ANN001
    return httpx.get(f"{server.url}/api/images/{image}/masks",
                     headers={"Authorization": f"Bearer {info.token}"}).json()


def _saved_version(server, info, version: int) -> dict:  # noqa: ANN001
    """Image 1's only mask once the server holds its `version` (a save the page's status
    cannot tell apart from the one before it: both say "saved")."""
    deadline = time.monotonic() + 15.0
    while True:
        (mask,) = _masks(server, info, 1)
        if mask["version"] >= version or time.monotonic() > deadline:
            return mask
        time.sleep(0.1)


def _pixels(page) -> list[int]:  # noqa: ANN001
    return page.evaluate("(() => { const c = document.querySelector('#canvas'); return Array"
                         ".from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data)"
                         ".filter((_, i) => i % 97 === 0); })()")


def _predict(page, x: float, y: float) -> int:  # noqa: ANN001
    page.mouse.click(*_image_point(page, x, y))
    page.wait_for_function("document.querySelector('#canvas').dataset.maskArea > 0")
    page.wait_for_function("document.querySelector('#status').textContent.includes(' in ')")
    return _area(page)


def test_moving_on_with_an_unsaved_mask_asks_first_and_draws_nothing_stale(
        browser, served) -> None:
    server, info = served
    page, errors = _open(browser, f"{server.url}/?image=1#token={info.token}")
    _predict(page, *DISK)
    page.keyboard.press("ArrowRight")
    assert "unsaved mask" in _status(page)
    assert "#1 " in page.locator("#image-name").inner_text()  # still here, mask kept
    assert _area(page) > 0
    page.keyboard.press("ArrowRight")  # asked twice: leave it
    page.wait_for_function("document.querySelector('#image-name').textContent.includes('#2 ')")
    page.wait_for_selector("#canvas[data-ready='1']")
    assert _area(page) == 0 and "no mask" in page.locator("#candidates").inner_text()
    page.keyboard.press("Enter")
    assert "nothing to accept" in _status(page)
    # Nothing stale is drawn over the new image: its pixels are those of a fresh page.
    fresh, _ = _open(browser, f"{server.url}/?image=2#token={info.token}")
    assert _pixels(page) == _pixels(fresh)
    fresh.close()
    assert _masks(server, info, 1) == []  # nothing saved behind the user's back

    # Saving first, then moving, needs one press; so does moving with nothing unsaved.
    page.keyboard.press("ArrowLeft")
    page.wait_for_function("document.querySelector('#image-name').textContent.includes('#1 ')")
    page.wait_for_selector("#canvas[data-ready='1']")
    _predict(page, *DISK)
    page.keyboard.press("Enter")
    page.wait_for_selector("#mask-list li")
    page.keyboard.press("ArrowRight")
    page.wait_for_function("document.querySelector('#image-name').textContent.includes('#2 ')")
    assert len(_masks(server, info, 1)) == 1
    assert not errors


def test_a_reload_keeps_the_unsaved_mask_as_a_draft(browser, served) -> None:
    server, info = served
    page, errors = _open(browser, f"{server.url}/?image=1#token={info.token}")
    area = _predict(page, *DISK)
    page.reload()
    page.wait_for_selector("#canvas[data-ready='1']")
    assert "restored the unsaved mask" in _status(page)
    assert _area(page) == area
    page.keyboard.press("Enter")
    page.wait_for_selector("#mask-list li")
    (mask,) = _masks(server, info, 1)
    assert mask["area"] == area
    page.reload()  # saved: no draft any more
    page.wait_for_selector("#canvas[data-ready='1']")
    assert _area(page) == 0 and "restored" not in _status(page)

    # Escape drops the draft too.
    _predict(page, DISK[0] + 3, DISK[1])
    page.keyboard.press("Escape")
    page.reload()
    page.wait_for_selector("#canvas[data-ready='1']")
    assert _area(page) == 0
    assert not errors


def test_a_wrong_link_token_does_not_replace_the_saved_one(browser, served) -> None:
    server, info = served
    page, errors = _open(browser, f"{server.url}/?image=1#token={info.token}")
    page.goto("about:blank")  # then the link, as a new load (not a same-page hash change)
    page.goto(f"{server.url}/?image=1#token=not-a-token")
    page.wait_for_selector("#canvas[data-ready='1']")
    assert "token in the link was refused" in _status(page)
    assert page.evaluate("localStorage.getItem('maskengine-token')") == info.token
    assert "admin" in page.locator("#user").inner_text()
    assert not errors


def test_an_edit_that_lost_a_race_reloads_that_mask_and_says_so(browser, served) -> None:
    server, info = served
    first, errors1 = _open(browser, f"{server.url}/?image=1#token={info.token}")
    _predict(first, *DISK)
    first.keyboard.press("Enter")
    first.wait_for_selector("#mask-list li")
    second, errors2 = _open(browser, f"{server.url}/?image=1#token={info.token}")
    for page in (first, second):  # both open the same saved mask for editing
        page.locator("#mask-list li").first.click()
        assert "editing mask" in page.locator("#candidates").inner_text()
        page.keyboard.press("b")

    first.mouse.click(*_image_point(first, 20, 20))
    first.keyboard.press("Enter")
    mask = _saved_version(server, info, 2)
    assert mask["version"] == 2

    second.mouse.click(*_image_point(second, 300, 20))
    second.keyboard.press("Enter")
    second.wait_for_function(
        "document.querySelector('#status').textContent.includes('changed by someone else')")
    assert "now version 2" in _status(second)
    assert "editing mask" in second.locator("#candidates").inner_text()
    assert _area(second) == mask["area"]  # their version, not the stale copy
    # The reloaded copy can be edited and saved at once, without Escape.
    second.mouse.click(*_image_point(second, 300, 20))
    second.keyboard.press("Enter")
    second.wait_for_function("document.querySelector('#status').textContent.startsWith('saved')")
    mask = _saved_version(server, info, 3)
    assert mask["version"] == 3
    assert not errors1 and not errors2
