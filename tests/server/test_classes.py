"""Optional mask classes: created at init or later, picked with keys 1-9 in the page, stored
with each mask, filterable, and exported as COCO categories; class-agnostic projects stay
as they were."""

from __future__ import annotations

import json

import httpx
import pytest
from typer.testing import CliRunner

from maskengine.cli import app as cli_app
from maskengine.engine.store import Project

from .conftest import DISK, REFERENCE, run_server
from .test_browser import _area, _image_point
from .test_browser_unsaved import _open, _predict


def _init(tmp_path, *extra: str) -> tuple:  # noqa: ANN002
    import shutil

    images = tmp_path / "images"
    images.mkdir(parents=True)
    for name in ("image0.png", "image1.png"):
        shutil.copy(REFERENCE / name, images / name)
    root = tmp_path / "project"
    out = CliRunner().invoke(cli_app, ["init", str(root), "--images", str(images), *extra])
    return root, out


def test_classes_at_init_later_and_bad_names(tmp_path) -> None:
    root, out = _init(tmp_path, "--classes", "cat, dog")
    assert out.exit_code == 0, out.output
    listed = CliRunner().invoke(cli_app, ["classes", str(root)])
    assert "cat  (key 1)" in listed.output and "dog  (key 2)" in listed.output
    added = CliRunner().invoke(cli_app, ["classes", str(root), "bird"])
    assert added.exit_code == 0 and "bird  (key 3)" in added.output
    again = CliRunner().invoke(cli_app, ["classes", str(root), "fish", "cat"])
    assert again.exit_code != 0 and "exist already: cat" in again.output
    assert "fish" not in CliRunner().invoke(cli_app, ["classes", str(root)]).output  # none added
    empty = CliRunner().invoke(cli_app, ["classes", str(root), " "])
    assert empty.exit_code != 0 and "1 to 100 characters" in empty.output

    plain, out = _init(tmp_path / "plain")
    assert out.exit_code == 0
    assert "class-agnostic" in CliRunner().invoke(cli_app, ["classes", str(plain)]).output


def test_mask_classes_over_the_api_and_coco_export(tmp_path) -> None:
    root, _ = _init(tmp_path, "--classes", "cat,dog")
    token = (root / "admin_token").read_text().strip()
    with run_server(root) as server:
        auth = {"Authorization": f"Bearer {token}"}
        cats = httpx.get(f"{server.url}/api/categories", headers=auth).json()
        assert [c["name"] for c in cats] == ["cat", "dog"]
        body = {"counts": [10, 20, 307170], "category_id": cats[1]["id"]}
        made = httpx.post(f"{server.url}/api/images/1/masks", json=body, headers=auth)
        assert made.status_code == 201 and made.json()["category_id"] == cats[1]["id"]
        bad = httpx.post(f"{server.url}/api/images/1/masks", headers=auth,
                         json={**body, "category_id": 999})
        assert bad.status_code == 422 and "category 999" in bad.text
        plain = httpx.post(f"{server.url}/api/images/1/masks", headers=auth,
                           json={"counts": [50, 5, 307145]})
        assert plain.json()["category_id"] is None
        m = made.json()
        # Left out, the class stays; given, it changes; null clears it.
        kept = httpx.put(f"{server.url}/api/masks/{m['id']}", headers=auth,
                         json={"version": m["version"], "counts": [12, 20, 307168]}).json()
        assert kept["category_id"] == cats[1]["id"]
        moved = httpx.put(f"{server.url}/api/masks/{m['id']}", headers=auth,
                          json={"version": kept["version"], "category_id": cats[0]["id"]})
        assert moved.json()["category_id"] == cats[0]["id"]
        added = httpx.post(f"{server.url}/api/categories", json={"names": ["bird"]},
                           headers=auth)
        assert added.status_code == 201 and added.json()[0]["name"] == "bird"
        dupe = httpx.post(f"{server.url}/api/categories", json={"names": ["bird"]}, headers=auth)
        assert dupe.status_code == 409
        # The image list filters by the class of a live mask.
        def listed(query: str) -> httpx.Response:
            return httpx.get(f"{server.url}/api/images?{query}", headers=auth)

        with_cat = listed(f"category={cats[0]['id']}").json()
        assert with_cat["total"] == 1 and [i["id"] for i in with_cat["images"]] == [1]
        assert listed(f"category={cats[1]['id']}").json()["total"] == 0
        assert listed(f"filter=done&category={cats[0]['id']}").json()["total"] == 0
        unknown = listed("category=999")
        assert unknown.status_code == 422 and "category 999 does not exist" in unknown.text

    out = CliRunner().invoke(cli_app, ["export", str(root), str(tmp_path / "coco.json"),
                                       "--format", "coco"])
    assert out.exit_code == 0, out.output
    coco = json.loads((tmp_path / "coco.json").read_text())
    names = {c["id"]: c["name"] for c in coco["categories"]}
    assert names == {cats[0]["id"]: "cat", cats[1]["id"]: "dog", 3: "bird", 4: "unlabelled"}
    assert sorted(names[a["category_id"]] for a in coco["annotations"]) == ["cat", "unlabelled"]
    # --category keeps the masks of the classes named, under the same COCO categories.
    out = CliRunner().invoke(cli_app, ["export", str(root), str(tmp_path / "cats.json"),
                                       "--format", "coco", "--category", "cat, dog"])
    assert out.exit_code == 0 and "exported 1 masks" in out.output, out.output
    only = json.loads((tmp_path / "cats.json").read_text())
    assert [names[a["category_id"]] for a in only["annotations"]] == ["cat"]
    assert only["categories"] == coco["categories"][:3]
    bad = CliRunner().invoke(cli_app, ["export", str(root), str(tmp_path / "x"),
                                       "--category", "fish"])
    said = " ".join(bad.output.replace("│", " ").split())
    assert bad.exit_code != 0 and "unknown class 'fish'" in said
    assert "classes are cat, dog, bird" in said and not (tmp_path / "x").exists()
    Project.open(root).close()


@pytest.mark.browser
@pytest.mark.slow
def test_keys_pick_the_class_in_the_page(browser, tmp_path) -> None:
    root, _ = _init(tmp_path, "--classes", "cat,dog")
    token = (root / "admin_token").read_text().strip()
    with run_server(root) as server:
        page, errors = _open(browser, f"{server.url}/?image=1#token={token}")
        assert page.locator("#class-buttons button").all_inner_texts() == ["1 cat", "2 dog"]
        page.keyboard.press("2")  # sticky: the next new mask is a dog
        _predict(page, *DISK)
        assert page.locator("#class-buttons button.active").inner_text() == "2 dog"
        page.keyboard.press("Enter")
        page.wait_for_selector("#mask-list li")
        assert "dog" in page.locator("#mask-list li").first.inner_text()
        # Select it, press 1, Enter: it becomes a cat (a saved mask's class is an edit).
        page.keyboard.down("Shift")
        page.mouse.click(*_image_point(page, *DISK))
        page.keyboard.up("Shift")
        page.keyboard.press("1")
        assert "Enter saves" in page.locator("#status").inner_text()
        page.keyboard.press("Enter")
        page.wait_for_function(
            "document.querySelector('#mask-list li').textContent.includes('cat')")
        auth = {"Authorization": f"Bearer {token}"}
        (mask,) = httpx.get(f"{server.url}/api/images/1/masks", headers=auth).json()
        cats = {c["name"]: c["id"] for c in httpx.get(f"{server.url}/api/categories",
                                                       headers=auth).json()}
        assert mask["category_id"] == cats["cat"] and mask["version"] == 2
        # The list filter shows one class at a time (canvas and list).
        page.select_option("#class-filter", str(cats["dog"]))
        page.wait_for_function("document.querySelectorAll('#mask-list li').length === 0")
        page.select_option("#class-filter", str(cats["cat"]))
        page.wait_for_function("document.querySelectorAll('#mask-list li').length === 1")
        assert _area(page) == 0
        # The image list: only images with a mask of the class chosen.
        page.keyboard.press("l")
        assert page.locator("#image-class").is_visible()
        page.select_option("#image-class", str(cats["dog"]))
        page.wait_for_selector(f"#image-table[data-category='{cats['dog']}']")
        assert page.locator("#image-table tbody tr").count() == 0
        assert page.locator("#images-range").inner_text() == "no image matches"
        page.select_option("#image-class", str(cats["cat"]))
        page.wait_for_selector(f"#image-table[data-category='{cats['cat']}']")
        assert page.locator("#image-table tbody tr").all_inner_texts()[0].startswith("#1")
        assert page.locator("#images-range").inner_text() == "1–1 of 1"
        page.screenshot(path=str(tmp_path / "classes.png"))
        assert not errors


@pytest.mark.browser
@pytest.mark.slow
def test_a_class_agnostic_project_shows_no_classes(browser, tmp_path) -> None:
    root, _ = _init(tmp_path)
    token = (root / "admin_token").read_text().strip()
    with run_server(root) as server:
        page, errors = _open(browser, f"{server.url}/?image=1#token={token}")
        assert page.locator("#classes").is_hidden()
        _predict(page, *DISK)
        page.keyboard.press("1")  # not a class key here: nothing happens
        page.keyboard.press("Enter")
        page.wait_for_selector("#mask-list li")
        auth = {"Authorization": f"Bearer {token}"}
        (mask,) = httpx.get(f"{server.url}/api/images/1/masks", headers=auth).json()
        assert mask["category_id"] is None
        assert not errors
