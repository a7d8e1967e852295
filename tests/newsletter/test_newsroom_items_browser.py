"""The Items screen in a real browser (Debian's Chromium, Playwright, a real `newsletter
serve` on loopback): an editor uploads an item file, searches, corrects an item, adds a
Spanish translation and deletes an item after the confirmation. Screenshots of the list
and an item page at 375 and 1280 px land in tmp_path (and $NEWSLETTER_SCREENSHOTS_DIR)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from newsletter.screenshots import INSTALL_CHROMIUM
from tests.newsroom import add_user, login, serve_newsroom

NEWS = """10 October, 2019

Drought in Guanacaste

Liberia. Farmers in the north report the driest month in forty years.

Wells are running low.

11 October, 2019

New bridge opens

Managua. A new bridge links the two banks of the river.
"""


def launch(playwright: object) -> Browser:
    executable = shutil.which("chromium")
    if executable is None:
        pytest.fail(f"no chromium on PATH: {INSTALL_CHROMIUM}")
    return playwright.chromium.launch(  # type: ignore[attr-defined, no-any-return]
        executable_path=executable, headless=True,
        args=["--no-sandbox", "--disable-background-networking", "--disable-gpu",
              "--no-proxy-server"])


def shoot(page: Page, path: Path, width: int) -> Path:
    # nothing wider than the screen: no sideways scrolling at 375 px
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    page.screenshot(path=path, full_page=True)
    return path


def test_an_editor_uploads_searches_edits_translates_and_deletes(tmp_path: Path) -> None:
    news = tmp_path / "news.txt"
    news.write_text(NEWS, encoding="utf-8")
    shots: list[Path] = []
    with serve_newsroom(tmp_path) as (base_url, env), \
            sync_playwright() as playwright:
        add_user(env, "ed@example.org", "editor", name="Ed Soto")
        browser = launch(playwright)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 800})
            context.set_default_timeout(5000)
            page = context.new_page()
            login(page, base_url, "ed@example.org")
            page.get_by_role("link", name="Items").click()
            expect(page.get_by_role("heading", name="Items", exact=True)).to_be_visible()

            page.get_by_label("Item file").set_input_files(news)
            page.get_by_label("Language of the items").select_option("en")
            page.get_by_role("button", name="Upload").click()
            expect(page.get_by_role("status")).to_have_text(
                "2 items read: 2 added, 0 updated, 0 already there")

            page.get_by_label("Words in the title or text").fill("wells")
            page.get_by_role("button", name="Search").click()
            expect(page.get_by_text("1 items found; page 1 of 1.")).to_be_visible()
            page.get_by_role("link", name="Drought in Guanacaste").click()
            item_url = page.url

            page.get_by_label("Title", exact=True).first.fill("Drought ends in Guanacaste")
            page.get_by_label("Countries (ISO codes, comma-separated)").fill("CR")
            page.get_by_role("button", name="Save", exact=True).click()
            expect(page.get_by_role("status")).to_have_text("Saved: title, countries.")

            add = page.locator("article", has=page.get_by_role("heading",
                                                                name="Add a translation"))
            add.get_by_label("Language").select_option("es")
            add.get_by_label("Title").fill("Termina la sequía en Guanacaste")
            add.get_by_label("Text (paragraphs separated by a blank line)").fill(
                "Liberia. Los agricultores del norte.\n\nLos pozos se secan.")
            add.get_by_role("button", name="Add the translation").click()
            expect(page.get_by_role("status")).to_have_text("Translation saved: es.")
            expect(page.get_by_role("heading", name="Translation (es)")).to_be_visible()
            context.close()

            for width in (375, 1280):
                context = browser.new_context(viewport={"width": width, "height": 800})
                page = context.new_page()
                login(page, base_url, "ed@example.org")
                page.goto(base_url + "/admin/items")
                shots.append(shoot(page, tmp_path / f"newsroom-items-{width}.png", width))
                page.goto(item_url)
                shots.append(shoot(page, tmp_path / f"newsroom-item-{width}.png", width))
                context.close()

            context = browser.new_context(viewport={"width": 375, "height": 800})
            page = context.new_page()
            login(page, base_url, "ed@example.org")
            page.goto(item_url)
            page.get_by_role("button", name="Delete this item").click()
            expect(page.get_by_role("heading", name="Delete an item")).to_be_visible()
            shots.append(shoot(page, tmp_path / "newsroom-item-delete-375.png", 375))
            page.get_by_role("button", name="Delete", exact=True).click()
            expect(page.get_by_role("status")).to_contain_text(
                "deleted: Drought ends in Guanacaste.")
            expect(page.get_by_text("1 items found; page 1 of 1.")).to_be_visible()
            context.close()
        finally:
            browser.close()
    assert all(s.stat().st_size > 1000 for s in shots)
    keep = os.environ.get("NEWSLETTER_SCREENSHOTS_DIR")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        for shot in shots:
            shutil.copy(shot, Path(keep) / shot.name)
