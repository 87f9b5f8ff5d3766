"""Stage 2 in real Chromium: the admin's Pre-fill button (a detector is trained first),
pre-filled masks drawn dashed with a "pre-filled" tag, and an annotator's keys: P selects
the next proposal, C confirms it, X rejects it, an edit saved with Enter is "edited". Each
decision lands in the store with its seconds."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlalchemy import select

from maskengine.engine.models import Interaction, Mask
from maskengine.server.app import create_app
from maskengine.server.settings import ServerSettings

from ..engine.stage2_helpers import FAST_DETECTOR, OPEN, stage2_project
from .test_browser import ARGS, CHROMIUM, _image_point
from .test_browser_rounds import serve_in_thread

pytestmark = [pytest.mark.browser, pytest.mark.slow]
SHOTS = Path(os.environ.get("MASKENGINE_SHOTS", "/tmp"))


def _list(page) -> list[tuple[str, str]]:  # noqa: ANN001
    """(mask id, tag text) per entry of the mask list."""
    return page.eval_on_selector_all(
        "#mask-list li", "lis => lis.map(li => [li.dataset.id, "
        "(li.querySelector('.tag') || {}).textContent || ''])")


def _status_has(page, text: str) -> None:  # noqa: ANN001
    page.wait_for_function(f"document.querySelector('#status').textContent.includes({text!r})")


def test_prefill_button_and_decision_keys(tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    st = stage2_project(tmp_path)
    project = st.sp.project
    app = create_app(project.root, ServerSettings(model="tiny", model_poll=0, prefetch=0))
    with serve_in_thread(app) as url, sync_playwright() as pw:
        app.state.prefill.template = OPEN.__class__(**{**OPEN.to_dict(), "max_masks": 4})
        app.state.prefill.detector_template = FAST_DETECTOR
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        errors: list[str] = []
        page = browser.new_page(viewport={"width": 1300, "height": 760})
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"{url}/#token={st.sp.admin_token}")
        page.wait_for_selector("#canvas[data-ready='1']")
        image_id = int(page.evaluate("new URLSearchParams(location.search).get('image')"))
        assert image_id == st.todo[0] and _list(page) == []
        assert "pre-filled mask" in page.locator("#shortcuts").inner_text()

        page.click("#prefill-run")
        page.wait_for_selector("#prefill-state[data-state='done']", timeout=180_000)
        assert "masks proposed" in page.locator("#prefill-state").inner_text()
        page.wait_for_function("document.querySelectorAll('#mask-list li').length >= 3")
        entries = _list(page)
        assert all(tag == "pre-filled" for _, tag in entries)
        assert page.locator("#mask-list li.proposed").count() == len(entries)
        page.screenshot(path=str(SHOTS / "maskengine_prefill.png"))

        # An annotator does the deciding (their page has no Pre-fill button).
        token = project.add_user("ann")
        page = browser.new_page(viewport={"width": 1300, "height": 760})
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"{url}/#token={token}")
        page.wait_for_selector("#canvas[data-ready='1']")
        assert page.locator("#prefill-run").is_hidden()
        first, second, third = (int(i) for i, _ in _list(page)[:3])

        page.keyboard.press("p")
        page.wait_for_selector(f"#mask-list li.selected[data-id='{first}']")
        page.wait_for_timeout(300)  # time spent looking at it: recorded as the seconds
        page.keyboard.press("c")
        _status_has(page, f"#{first} confirmed")
        # The next proposal is selected by itself; X rejects it.
        page.wait_for_selector(f"#mask-list li.selected[data-id='{second}']")
        page.keyboard.press("x")
        _status_has(page, f"#{second} rejected")
        page.wait_for_selector(f"#mask-list li.selected[data-id='{third}']")
        # Edit the third with the brush: a stroke, then Enter saves the edit.
        page.keyboard.press("b")
        page.mouse.move(*_image_point(page, 5, 5))
        page.mouse.down()
        page.mouse.move(*_image_point(page, 15, 8))
        page.mouse.up()
        page.keyboard.press("Enter")
        _status_has(page, f"#{third} edited")
        tags = dict(_list(page))
        assert tags[str(first)] == "pre-filled, confirmed"
        assert tags[str(third)] == "pre-filled, edited"
        assert str(second) not in tags  # rejected: gone from the list (kept in the store)
        page.screenshot(path=str(SHOTS / "maskengine_prefill_decided.png"))
        browser.close()
    assert not errors
    with project.session() as s:
        states = {m.id: m.prefill_state for m in s.scalars(
            select(Mask).where(Mask.id.in_([first, second, third])))}
        assert states == {first: "confirmed", second: "rejected", third: "edited"}
        decided = {i.mask_id: (i.kind, i.seconds, i.n_clicks) for i in s.scalars(
            select(Interaction).where(Interaction.mask_id.in_([first, second, third]),
                                      Interaction.kind != "create"))}
    assert decided[first][0] == "confirm" and decided[first][1] >= 0.3
    assert decided[second][0] == "reject"
    assert decided[third][0] == "edit" and decided[third][2] >= 1  # the brush stroke
