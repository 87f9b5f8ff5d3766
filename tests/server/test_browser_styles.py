"""Saved masks easy to see, in real Chromium: outlines, a colour per mask with its swatch in
the list, fill opacity, show/hide (all, and one by one), the selected mask highlighted."""

from __future__ import annotations

import json

import pytest

from .conftest import DISK
from .test_browser import _area, _image_point
from .test_browser_unsaved import _open, _predict, served  # noqa: F401 - the fixture

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _pixel(page, x: int, y: int) -> list[int]:  # noqa: ANN001
    return page.evaluate(f"Array.from(document.querySelector('#canvas').getContext('2d')"
                         f".getImageData({x}, {y}, 1, 1).data)")


def test_saved_masks_have_outlines_swatches_opacity_and_can_be_hidden(browser, served) -> None:  # noqa: F811, E501
    server, info = served
    page, errors = _open(browser, f"{server.url}/?image=1#token={info.token}")
    x, y = int(DISK[0]), int(DISK[1])
    raw = _pixel(page, x, y)  # the image itself, before any mask
    _predict(page, *DISK)
    page.keyboard.press("Enter")
    page.wait_for_selector("#mask-list li")
    _predict(page, 30, 30)
    page.keyboard.press("Enter")
    page.wait_for_function("document.querySelectorAll('#mask-list li').length === 2")

    # One colour per mask, shown as a swatch in the list.
    swatches = page.eval_on_selector_all(
        "#mask-list .swatch", "els => els.map(e => getComputedStyle(e).backgroundColor)")
    assert len(swatches) == 2 and swatches[0] != swatches[1]
    first = [int(v) for v in swatches[0][4:-1].split(",")]

    # Fill at 45% by default: the pixel is tinted towards the first mask's colour.
    tinted = _pixel(page, x, y)
    assert tinted != raw
    assert sum(abs(a - b) for a, b in zip(tinted[:3], first, strict=True)) < sum(
        abs(a - b) for a, b in zip(raw[:3], first, strict=True))
    # Opacity 0: the inside shows the image, the outline stays, in the mask's colour.
    page.eval_on_selector("#opacity", "e => { e.value = 0; e.dispatchEvent(new Event('input')); }")
    assert _pixel(page, x, y)[:3] == raw[:3]
    edge = page.evaluate(f"""(() => {{
        const c = document.querySelector('#canvas').getContext('2d');
        for (let xx = {x}; xx > 0; xx--) {{
            const d = c.getImageData(xx, {y}, 1, 1).data;
            if (d[0] === {first[0]} && d[1] === {first[1]} && d[2] === {first[2]}) return xx;
        }}
        return -1; }})()""")
    assert edge > 0  # an opaque outline pixel of the first mask's colour left of the click
    page.eval_on_selector("#opacity", "e => { e.value = 45; e.dispatchEvent(new Event('input')); }")

    # H hides every saved mask (outlines too) and shows them again.
    page.keyboard.press("h")
    assert _pixel(page, x, y)[:3] == raw[:3] and _pixel(page, edge, y)[:3] != first
    assert not page.is_checked("#show-masks")
    page.keyboard.press("h")
    assert _pixel(page, x, y) == tinted and page.is_checked("#show-masks")

    # The eye button hides one mask; Shift+click cannot pick a hidden mask.
    page.locator("#mask-list li .eye").first.click()
    assert _pixel(page, x, y)[:3] == raw[:3]
    assert "hidden-mask" in page.get_attribute("#mask-list li >> nth=0", "class")
    page.locator("#mask-list li .eye").first.click()
    assert _pixel(page, x, y) == tinted

    # Selecting a mask highlights it in the list and outlines it in white on the canvas.
    page.keyboard.down("Shift")
    page.mouse.click(*_image_point(page, *DISK))
    page.keyboard.up("Shift")
    assert "editing mask" in page.locator("#candidates").inner_text()
    assert "selected" in page.get_attribute("#mask-list li >> nth=0", "class")
    assert "selected" not in (page.get_attribute("#mask-list li >> nth=1", "class") or "")
    assert _pixel(page, edge, y)[:3] == [255, 255, 255]
    page.screenshot(path=str(info.root.parent / "styles.png"))
    page.keyboard.press("Escape")
    assert "selected" not in page.get_attribute("#mask-list li >> nth=0", "class")
    assert not errors


def test_image_list_filters_position_and_jump(browser, tmp_path) -> None:
    import httpx

    from .conftest import make_project, run_server

    info = make_project(tmp_path, copies=3)  # 6 images
    with run_server(info.root) as server:
        auth = {"Authorization": f"Bearer {info.token}"}
        httpx.put(f"{server.url}/api/images/2/status", json={"status": "done"},
                  headers=auth).raise_for_status()
        bad = httpx.get(f"{server.url}/api/images?filter=bogus", headers=auth)
        assert bad.status_code == 422
        page, errors = _open(browser, f"{server.url}/?image=1#token={info.token}")
        assert page.locator("#image-pos").inner_text() == "1 of 6"
        _predict(page, *DISK)
        page.keyboard.press("Enter")  # a pending mask on image 1: it needs review
        page.wait_for_selector("#mask-list li")

        def listed(which: str) -> list[str]:
            page.select_option("#image-filter", which)
            page.wait_for_selector(f"#image-table[data-filter='{which}']")
            return page.eval_on_selector_all("#image-table tbody tr", "trs => trs.map("
                                             "tr => tr.cells[0].textContent)")

        page.keyboard.press("l")
        page.wait_for_selector("#image-table tbody tr")
        assert listed("all") == [f"#{i}" for i in range(1, 7)]
        assert "current" in page.get_attribute("#image-table tbody tr >> nth=0", "class")
        assert page.locator("#images-range").inner_text() == "1–6 of 6"
        assert listed("done") == ["#2"]
        assert listed("todo") == ["#1", "#3", "#4", "#5", "#6"]
        assert listed("review") == ["#1"]
        row = page.locator("#image-table tbody tr >> nth=0").inner_text()
        assert "1 to review" in row
        listed("all")
        page.locator("#image-table tbody tr >> nth=2").click()  # image 3
        page.wait_for_function("document.querySelector('#image-pos').textContent === '3 of 6'")
        assert not page.locator("#images").is_visible()

        page.keyboard.press("l")
        page.fill("#image-jump-id", "5")
        page.press("#image-jump-id", "Enter")
        page.wait_for_function("document.querySelector('#image-pos').textContent === '5 of 6'")
        page.keyboard.press("l")
        page.fill("#image-jump-id", "99")
        page.press("#image-jump-id", "Enter")
        page.wait_for_function(
            "document.querySelector('#status').textContent.includes('no image #99')")
        assert page.locator("#image-pos").inner_text() == "5 of 6"
        page.keyboard.press("l")
        page.screenshot(path=str(tmp_path / "images.png"))
        page.keyboard.press("Escape")
        assert not page.locator("#images").is_visible()
        assert not errors


def test_zoom_about_the_pointer_pan_and_click_while_zoomed(browser, served) -> None:  # noqa: F811
    server, info = served
    page, errors = _open(browser, f"{server.url}/?image=1#token={info.token}")
    bodies: list[dict] = []
    page.on("request", lambda r: bodies.append(json.loads(r.post_data))
            if r.url.endswith("/predict") else None)

    before = _image_point(page, *DISK)
    page.mouse.move(*before)
    for _ in range(4):
        page.mouse.wheel(0, -100)
    page.wait_for_function("Number(document.querySelector('#canvas').dataset.zoom) > 2")
    after = _image_point(page, *DISK)
    assert abs(after[0] - before[0]) < 2 and abs(after[1] - before[1]) < 2  # about the pointer
    assert page.locator("#zoom-level").inner_text().endswith("%")
    assert _predict(page, *DISK) > 0
    (point,) = bodies[-1]["points"]  # the click lands on the image pixel under the pointer
    assert abs(point["x"] - DISK[0] - 0.5) < 0.2 and abs(point["y"] - DISK[1] - 0.5) < 0.2
    # Zoomed in, the model is asked on what the screen shows (an embedding of that crop).
    x0, y0, x1, y1 = bodies[-1]["region"]
    assert x0 <= point["x"] <= x1 and y0 <= point["y"] <= y1
    assert (x1 - x0) * (y1 - y0) < 640 * 480 / 2
    page.keyboard.press("Escape")

    # Pan with the middle button, and with Space + drag: no prompt is sent for either.
    sent: list[str] = []
    page.on("request", lambda r: sent.append(r.url) if r.url.endswith("/predict") else None)
    start = _image_point(page, *DISK)
    page.mouse.move(*start)
    page.mouse.down(button="middle")
    page.mouse.move(start[0] + 60, start[1] + 30, steps=3)
    page.mouse.up(button="middle")
    moved = _image_point(page, *DISK)
    assert abs(moved[0] - start[0] - 60) < 2 and abs(moved[1] - start[1] - 30) < 2
    page.keyboard.down(" ")
    page.mouse.move(*moved)
    page.mouse.down()
    page.mouse.move(moved[0] - 40, moved[1], steps=3)
    page.mouse.up()
    page.keyboard.up(" ")
    again = _image_point(page, *DISK)
    assert abs(again[0] - moved[0] + 40) < 2
    page.wait_for_timeout(200)
    assert sent == [] and _area(page) == 0
    page.screenshot(path=str(info.root.parent / "zoom.png"))

    page.keyboard.press("0")
    assert page.get_attribute("#canvas", "data-zoom") == "1.000"
    assert page.locator("#zoom-level").inner_text() == ""
    assert not errors


def test_automatic_masks_are_set_apart_in_the_list(browser, served) -> None:  # noqa: F811
    import numpy as np
    from sqlalchemy import select

    from maskengine.engine import rle, services
    from maskengine.engine.models import MaskSource, User
    from maskengine.engine.store import Project

    server, info = served
    proj = Project.open(info.root)
    try:
        with proj.session() as s:
            image = services.get_image(s, image_id=1)
            admin = s.scalar(select(User))
            for source, rows in ((MaskSource.manual, slice(10, 40)),
                                 (MaskSource.automatic, slice(60, 90))):
                m = np.zeros((image.height, image.width), bool)
                m[rows, 10:50] = True
                services.create_mask(s, image_id=1, counts=rle.encode(m).counts, author=admin,
                                     source=source, predicted_iou=0.91, stability_score=0.97)
    finally:
        proj.close()
    page, errors = _open(browser, f"{server.url}/?image=1#token={info.token}")
    page.wait_for_function("document.querySelectorAll('#mask-list li').length === 2")
    rows = page.eval_on_selector_all("#mask-list li", """els => els.map(e => ({
        cls: e.className, tag: e.querySelector('.tag-auto')?.textContent ?? null,
        text: e.textContent, edge: getComputedStyle(e).borderLeftStyle,
        colour: getComputedStyle(e).borderLeftColor}))""")
    manual, auto = rows
    assert "automatic" not in manual["cls"] and manual["tag"] is None
    assert manual["edge"] == "solid"
    assert "automatic" in auto["cls"] and auto["tag"] == "AUTO"
    assert auto["edge"] == "dashed" and auto["colour"] == "rgb(224, 160, 48)"
    assert "automatic · IoU 0.91 · stab 0.97 · pending" in auto["text"]
    assert not errors
