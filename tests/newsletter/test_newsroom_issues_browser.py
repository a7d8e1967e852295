"""The Issues screen in a real browser (Debian's Chromium, Playwright) against a real
`newsletter serve` (tests/newsroom.py): create an issue from a window, reorder, remove and
add items with the buttons (no script), give it a Spanish title, preview es-CR in its
sandboxed frames. Screenshots of the calendar, the issue page and the preview at 375 and
1280 px land in tmp_path (and in $NEWSLETTER_SCREENSHOTS_DIR when it is set)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from playwright.sync_api import Page, expect, sync_playwright

from newsletter.cli.demo import sample_items_text
from newsletter.db import make_engine, session_factory
from newsletter.ingest.text import parse_text
from newsletter.issue_edits import item_ids
from newsletter.issues import get_issue
from newsletter.items import list_items, store_items
from newsletter.screenshots import INSTALL_CHROMIUM
from subscribers.importer import import_csv
from tests.newsroom import add_user, login, serve_newsroom

PEOPLE = "email,country,language\nana@example.org,CR,es\njoe@example.org,US,en\n"


def seed(env: dict[str, str]) -> dict[str, int]:
    """The sample items and two subscribers in the served database: {first word: id}."""
    engine = make_engine(env["NEWSLETTER_DATABASE_URL"])
    try:
        with session_factory(engine)() as session, session.begin():
            store_items(session, parse_text(sample_items_text(), "sample"))
            import_csv(session, PEOPLE, default_language="en")
            return {item.title.split()[0]: item.id for item in list_items(session)}
    finally:
        engine.dispose()


def issue_items(env: dict[str, str], slug: str) -> list[int]:
    engine = make_engine(env["NEWSLETTER_DATABASE_URL"])
    try:
        with session_factory(engine)() as session:
            return item_ids(get_issue(session, slug))
    finally:
        engine.dispose()


def shoot(page: Page, base_url: str, shots: list[Path], folder: Path, width: int) -> None:
    for name, path in (("issues", "/admin/issues"), ("issue", "/admin/issues/2019-10"),
                       ("preview", "/admin/issues/2019-10/preview")):
        page.goto(base_url + path)
        assert page.evaluate("document.documentElement.scrollWidth") <= width, name
        shots.append(folder / f"newsroom-{name}-{width}.png")
        # a viewport as tall as the page: Chromium paints frames out of view as blank
        height = page.evaluate("document.documentElement.scrollHeight")
        page.set_viewport_size({"width": width, "height": min(height, 8000)})
        page.screenshot(path=shots[-1], full_page=True)
        page.set_viewport_size({"width": width, "height": 800})


def test_create_choose_order_and_preview(tmp_path: Path) -> None:
    executable = shutil.which("chromium")
    assert executable is not None, f"no chromium on PATH: {INSTALL_CHROMIUM}"
    with serve_newsroom(tmp_path) as (base_url, env), \
            sync_playwright() as playwright:
        ids = seed(env)
        add_user(env, "ed@example.org", "editor", name="Ed Soto")
        browser = playwright.chromium.launch(
            executable_path=executable, headless=True,
            args=["--no-sandbox", "--disable-background-networking", "--disable-gpu",
                  "--no-proxy-server"])
        shots: list[Path] = []
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 800})
            context.set_default_timeout(5000)
            page = context.new_page()
            login(page, base_url, "ed@example.org")
            page.get_by_role("link", name="Issues").click()
            page.get_by_label("Name (e.g. 2026-12)").fill("2019-10")
            page.get_by_label("From").fill("2019-10-01")
            page.get_by_label("To", exact=True).fill("2019-10-31")
            page.get_by_label("Title in es").fill("Boletín de octubre")
            with page.expect_navigation():
                page.get_by_role("button", name="Create issue").click()
            expect(page.get_by_role("status").first).to_have_text("Issue created.")
            mobile, leaders, youth, study = (
                ids[w] for w in ("Mobile", "Community", "Youth", "Study"))
            assert issue_items(env, "2019-10") == [mobile, leaders, youth, study]
            first = page.locator("ol.items > li").first
            first.get_by_role("button", name="Down").click()
            page.wait_for_load_state()
            assert issue_items(env, "2019-10") == [leaders, mobile, youth, study]
            page.locator("ol.items > li").nth(2).get_by_role("button", name="Remove").click()
            page.wait_for_load_state()
            assert issue_items(env, "2019-10") == [leaders, mobile, study]
            page.get_by_label("Search (words in the title or text)").fill("shelter")
            page.get_by_role("button", name="Search").click()
            page.locator("ul.items > li").first.get_by_role("button", name="Add").click()
            page.wait_for_load_state()
            assert issue_items(env, "2019-10") == [leaders, mobile, study, ids["Shelter"]]
            page.get_by_label("Introduction in es").fill("Hola a todos.")
            page.get_by_role("button", name="Save", exact=True).click()
            expect(page.get_by_text("introduction changed (es)")).to_be_visible()
            # the audience: a checkbox per list and segment; the notice counts it again
            page.get_by_role("button", name="Save the audience").click()
            expect(page.get_by_text("Nothing changed.")).to_be_visible()
            page.get_by_role("link", name="Preview every variant").click()
            section = page.locator("#v-es-CR")
            expect(section.get_by_text("Boletín de octubre")).to_be_visible()
            frames = section.locator("iframe")
            expect(frames).to_have_count(2)
            assert [frames.nth(n).get_attribute("width") for n in (0, 1)] == ["375", "800"]
            assert frames.first.get_attribute("sandbox") == ""
            # the frames run no script, so Playwright does not look inside them: the
            # browser's own request for what they show (with the session cookie) does
            shown = context.request.get(base_url + frames.first.get_attribute("src"))
            assert "Hola a todos." in shown.text()
            assert "sandbox" in shown.headers["content-security-policy"]
            context.close()
            for width in (375, 1280):
                context = browser.new_context(viewport={"width": width, "height": 800})
                page = context.new_page()
                login(page, base_url, "ed@example.org")
                shoot(page, base_url, shots, tmp_path, width)
                context.close()
        finally:
            browser.close()
    assert all(s.stat().st_size > 1000 for s in shots)
    keep = os.environ.get("NEWSLETTER_SCREENSHOTS_DIR")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        for shot in shots:
            shutil.copy(shot, Path(keep) / shot.name)
