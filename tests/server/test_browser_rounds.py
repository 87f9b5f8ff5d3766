"""The Rounds panel in real Chromium: the per-round table, "Train a round" for admins, the
model label following the switch, no old-model logits sent to the new model, and a running
round's progress line and Cancel button.

The server runs in this process (uvicorn in a thread) so the test can give the round
runner a 2-step recipe; the page and the API are the real ones."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import uvicorn

from maskengine.server.app import create_app
from maskengine.server.settings import ServerSettings

from .conftest import free_port
from .test_browser import ARGS, CHROMIUM, _image_point
from .test_rounds_api import TINY_ROUND, annotate, hold_training, synthetic_project

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@contextmanager
def serve_in_thread(app, timeout: float = 60.0) -> Iterator[str]:  # noqa: ANN001
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)


def click(page, x: float, y: float, button: str = "left") -> None:  # noqa: ANN001
    """Click image pixel (x, y) and wait until the page shows the prediction's answer."""
    with page.expect_response(lambda r: r.url.endswith("/predict")):
        page.mouse.click(*_image_point(page, x, y), button=button)
    page.wait_for_function("document.querySelector('#status').textContent.includes(' in ')")


def _rows(page) -> list[list[str]]:
    return page.eval_on_selector_all(
        "#round-table tbody tr",
        "trs => trs.map(tr => Array.from(tr.cells, td => td.textContent))")


def test_rounds_panel_train_and_switch(tmp_path) -> None:
    from playwright.sync_api import sync_playwright

    sp = synthetic_project(tmp_path)
    other = sp.project.add_user("ann", "annotator")
    app = create_app(sp.project.root, ServerSettings(model="tiny", model_poll=0, prefetch=0))
    with serve_in_thread(app) as url, sync_playwright() as pw:
        app.state.rounds.template = TINY_ROUND
        saved = annotate(sp, app.state.app_state.segmenter)
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        errors: list[str] = []

        # An annotator sees the table but no training button.
        page = browser.new_page(viewport={"width": 1400, "height": 800})
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"{url}/#token={other}")
        page.wait_for_selector("#canvas[data-ready='1']")
        assert "model rounds" in page.locator("#shortcuts").inner_text()
        page.keyboard.press("r")
        page.wait_for_selector("#round-table tbody tr")
        (row,) = _rows(page)
        # round, version, masks, s/mask, clicks/mask, masks/image, mIoU, NoC, train s, state,
        # note
        assert row[0] == "0" and row[2] == str(saved) and row[9] == "serving"
        assert row[8] == "–"  # the starting model was not trained by a round
        assert float(row[3]) >= 2.0 and float(row[4]) >= 1.0
        assert float(row[5]) == pytest.approx(saved / len(sp.train_ids), abs=0.05)
        assert row[6] == "–" and row[7] == "–"  # not validated before the first round
        assert page.locator("#round-form").is_hidden()
        page.keyboard.press("r")
        assert not page.locator("#rounds").is_visible()
        page.close()

        # The admin makes a mask with clicks: the second sends the first's logits back,
        # with the region the first was answered on (the focus pass's crop for a small
        # answer, which holds the second click); the third falls outside it.
        page = browser.new_page(viewport={"width": 1400, "height": 800})
        page.on("pageerror", lambda e: errors.append(str(e)))
        sent: list[dict] = []
        got: list[dict] = []
        page.on("request", lambda r: sent.append(json.loads(r.post_data))
                if r.url.endswith("/predict") else None)
        page.on("response", lambda r: got.append(r.json())
                if r.url.endswith("/predict") else None)
        page.goto(f"{url}/#token={sp.admin_token}")
        page.wait_for_selector("#canvas[data-ready='1']")
        old = int(page.get_attribute("#model-name", "data-version"))
        assert "round 0" in page.locator("#model-name").inner_text()
        click(page, 30, 30)
        click(page, 38, 36, button="right")
        assert len(sent) == 2
        assert sent[0]["mask_input"] is None and sent[1]["mask_input"] is not None
        assert sent[0]["region"] is None and sent[1]["region"] == got[0]["region"]
        # A third click outside the crop of the second answer: asked on the whole image,
        # with the second answer's logits and the frame they were made in.
        h, w = got[1]["size"]
        crop = got[1]["region"] or [0, 0, w, h]
        outside = (crop[2] + 3, crop[1] + 3) if crop[2] + 3 < w else (crop[0] - 3, crop[1] + 3)
        if got[1]["region"] is None:
            outside = (w - 3, h - 3)
        click(page, *outside, button="right")
        assert len(sent) == 3 and sent[2]["region"] is None
        assert sent[2]["mask_input"] is not None and sent[2]["mask_region"] == crop

        page.click("#rounds-open")
        page.wait_for_selector("#round-form:not([hidden])")
        # The form shows at page load; its defaults arrive with the panel's GET /api/rounds.
        page.wait_for_selector("#round-steps[placeholder]")
        assert page.get_attribute("#round-steps", "placeholder") == "2"
        page.fill("#round-steps", "2")
        page.click("#round-train")
        page.wait_for_function(
            "document.querySelectorAll('#round-table tbody tr').length === 2", timeout=120_000)
        page.wait_for_selector("#round-state[data-state='promoted']", timeout=30_000)
        rows = _rows(page)
        assert [(r[0], r[9]) for r in rows] == [("0", "promoted"), ("1", "serving")]
        assert rows[1][10].startswith("promoted") and float(rows[1][6]) >= 0.0
        assert float(rows[1][8]) >= 0.0  # the round's training seconds
        assert rows[0][6] != "–"  # the starting model got its validation figures
        assert "round 1" in page.locator("#round-state").inner_text()
        page.wait_for_function(f"document.querySelector('#model-name').dataset.version != {old}")
        assert "round 1" in page.locator("#model-name").inner_text()
        new = int(page.get_attribute("#model-name", "data-version"))

        # Back on the canvas, the next click must not feed the old model's logits to the new.
        page.keyboard.press("Escape")
        assert not page.locator("#rounds").is_visible()
        click(page, 40, 40)
        assert len(sent) == 4 and sent[3]["mask_input"] is None and len(sent[3]["points"]) == 4
        page.keyboard.press("Enter")
        page.wait_for_function("document.querySelector('#status').textContent.startsWith('saved')")
        image_id = int(page.evaluate("new URLSearchParams(location.search).get('image')"))
        masks = page.evaluate(
            f"fetch('/api/images/{image_id}/masks', {{headers: {{Authorization: "
            f"'Bearer {sp.admin_token}'}}}}).then(r => r.json())")
        assert masks[-1]["model_version_id"] == new
        browser.close()
    assert not errors


def test_rounds_panel_progress_and_cancel(tmp_path) -> None:
    from playwright.sync_api import sync_playwright

    sp = synthetic_project(tmp_path)
    app = create_app(sp.project.root, ServerSettings(model="tiny", model_poll=0, prefetch=0))
    with serve_in_thread(app) as url, sync_playwright() as pw:
        runner = app.state.rounds
        runner.template = TINY_ROUND
        annotate(sp, app.state.app_state.segmenter)
        # Training pauses after step 1 of 5, so the page has a known progress to show.
        held = hold_training(runner, at_step=1)
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        errors: list[str] = []
        page = browser.new_page(viewport={"width": 1400, "height": 800})
        page.on("pageerror", lambda e: errors.append(str(e)))
        try:
            page.goto(f"{url}/#token={sp.admin_token}")
            page.wait_for_selector("#canvas[data-ready='1']")
            page.keyboard.press("r")
            page.wait_for_selector("#round-steps[placeholder]")
            assert page.locator("#round-cancel").is_hidden()
            assert page.locator("#round-progress").is_hidden()
            page.fill("#round-steps", "5")
            page.click("#round-train")
            page.wait_for_selector("#round-cancel:not([hidden])")
            assert page.locator("#round-train").is_disabled()

            # The next poll after step 1 shows its progress.
            page.wait_for_function("document.querySelector('#round-progress-text')"
                                   ".textContent.startsWith('step 1 of 5')", timeout=120_000)
            text = page.locator("#round-progress-text").inner_text()
            assert re.fullmatch(r"step 1 of 5 · loss \d+\.\d{4} · IoU [01]\.\d{3} · "
                                r"\d+\.\d\d steps/s · ETA (\d+ s|\d+:\d\d)", text), text
            assert page.locator("#round-progress").is_visible()
            assert page.evaluate("document.querySelector('#round-bar').value") == 0.2
            assert page.get_attribute("#round-state", "data-state") == "running"
            assert "training" in page.locator("#round-state").inner_text()

            with page.expect_response(lambda r: r.url.endswith("/api/rounds")
                                      and r.request.method == "DELETE") as resp:
                page.click("#round-cancel")
            assert resp.value.status == 202
            # One check of both: a poll answered just before the DELETE may still land.
            page.wait_for_function(
                "document.querySelector('#round-state').dataset.state === 'cancelling'"
                " && document.querySelector('#round-cancel').disabled")
        finally:
            held.release.set()
        page.wait_for_selector("#round-state[data-state='cancelled']", timeout=60_000)
        state = page.locator("#round-state").inner_text()
        assert "cancelled after step 2 of 5" in state and "resumes" in state
        assert page.locator("#round-cancel").is_hidden()
        assert page.locator("#round-train").is_enabled()
        assert [r[0] for r in _rows(page)] == ["0"]  # nothing registered
        assert page.locator("#round-progress-text").inner_text().startswith("step 2 of 5")
        browser.close()
    assert not errors
