"""The review queue in real Chromium: suspect masks (from `maskengine check`) first, then
pending ones; Y / N / J approve, reject, skip; state, reviewer and time stored; progress."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import numpy as np
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from maskengine.cli import app as cli_app
from maskengine.engine import rle
from maskengine.engine.models import Mask, User
from maskengine.engine.store import Project

from .conftest import make_project, run_server
from .test_browser import ARGS, CHROMIUM

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _square(x: int, y: int, side: int, hw: tuple[int, int] = (480, 640)) -> str:
    m = np.zeros(hw, bool)
    m[y:y + side, x:x + side] = True
    return rle.encode(m).counts


@pytest.fixture
def served(tmp_path) -> Iterator:
    info = make_project(tmp_path)
    project = Project.open(info.root)
    tokens = {"reviewer": project.add_user("rita", "reviewer"),
              "annotator": project.add_user("anna", "annotator")}
    project.close()
    with run_server(info.root) as server:
        auth = {"Authorization": f"Bearer {info.token}"}
        ids = [httpx.post(f"{server.url}/api/images/{image}/masks", headers=auth,
                          json={"counts": counts}).json()["id"]
               for image, counts in ((1, _square(100, 100, 80)), (1, _square(300, 300, 3)),
                                     (2, _square(50, 50, 60, (300, 200))))]
        res = CliRunner().invoke(cli_app, ["check", str(info.root), "--no-model", "--json"])
        assert res.exit_code == 0, res.output
        yield server, info, tokens, ids


def test_review_queue_suspect_first_keys_and_progress(served) -> None:
    from playwright.sync_api import sync_playwright

    server, info, tokens, (normal, tiny, other) = served
    queue = httpx.get(f"{server.url}/api/review/queue",
                      headers={"Authorization": f"Bearer {tokens['reviewer']}"}).json()
    order = [i["mask_id"] for i in queue["items"]]
    scores = [i["score"] for i in queue["items"]]
    assert order[0] == tiny and scores == sorted(scores, reverse=True)
    _, second, third = order
    image_of = {normal: 1, tiny: 1, other: 2}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1200, "height": 800})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"{server.url}/?image=2#token={tokens['reviewer']}")
        page.wait_for_selector("#canvas[data-ready='1']")
        page.keyboard.press("q")
        # The tiny mask is suspect (flagged by the check): it comes first, on image 1.
        page.wait_for_selector(f"#review-bar[data-mask='{tiny}']")
        assert "suspect" in page.locator("#review-item").inner_text()
        assert "tiny" in page.locator("#review-item").inner_text()
        page.wait_for_function("document.querySelector('#image-name').textContent"
                               ".includes('#1 ')")
        assert page.locator("#mask-list li.selected").get_attribute("data-id") == str(tiny)
        assert "0 of 3 masks reviewed" in page.locator("#review-progress").inner_text()
        page.keyboard.press("n")  # reject the tiny one
        # Then the others by their score (without a model: how well the outline follows
        # image edges; these squares were drawn anywhere).
        page.wait_for_selector(f"#review-bar[data-mask='{second}']")
        assert "1 of 3 masks reviewed" in page.locator("#review-progress").inner_text()
        page.keyboard.press("y")
        page.wait_for_selector(f"#review-bar[data-mask='{third}']")
        page.wait_for_function("document.querySelector('#image-name').textContent"
                               f".includes('#{image_of[third]} ')")
        page.keyboard.press("j")  # skip the last
        page.wait_for_function("document.querySelector('#review-item').textContent"
                               ".includes('only skipped')")
        assert "2 of 3 masks reviewed" in page.locator("#review-progress").inner_text()
        page.keyboard.press("q")
        assert page.locator("#review-bar").is_hidden()

        # An annotator has no queue: no button, and the API refuses.
        page2 = browser.new_page()
        page2.goto(f"{server.url}/?image=1#token={tokens['annotator']}")
        page2.wait_for_selector("#canvas[data-ready='1']")
        assert page2.locator("#review-open").is_hidden()
        browser.close()
    assert errors == []
    res = httpx.get(f"{server.url}/api/review/queue",
                    headers={"Authorization": f"Bearer {tokens['annotator']}"})
    assert res.status_code == 403

    project = Project.open(info.root)
    with project.session() as s:
        rita = s.scalar(select(User).where(User.name == "rita"))
        got = {m.id: m for m in s.scalars(select(Mask))}
        assert (got[tiny].review_state, got[tiny].reviewer_id) == ("rejected", rita.id)
        assert (got[second].review_state, got[second].reviewer_id) == ("approved", rita.id)
        assert got[third].review_state == "pending" and got[third].reviewer_id is None
        assert got[second].updated_at > got[second].created_at  # the review's time
    project.close()
