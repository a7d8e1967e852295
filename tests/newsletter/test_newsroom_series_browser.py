"""Series, feeds and the calendar in a real browser (Debian's Chromium, Playwright) against
a real `newsletter serve` on loopback: an editor adds a feed by its labelled fields, fetches
it, creates a weekly series drawing on it (a wrong cadence first: the error at its field),
builds the next issue, looks at the calendar, and is told which series draws on the feed
before removing it. Screenshots at 375 and 1280 px land in tmp_path (and in
$NEWSLETTER_SCREENSHOTS_DIR when it is set)."""

from __future__ import annotations

import functools
import os
import shutil
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from newsletter.screenshots import INSTALL_CHROMIUM
from tests.conftest import FIXTURES
from tests.newsroom import add_user, login, serve_newsroom

WIDTHS = (375, 1280)
PAGES = (("series", "/admin/series"), ("series-one", "/admin/series/semanal"),
         ("feeds", "/admin/feeds"), ("feed", "/admin/feeds/noticias"),
         ("calendar", "/admin/calendar"))


class QuietFiles(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def feed_url() -> Iterator[str]:
    handler = functools.partial(QuietFiles, directory=str(FIXTURES / "feeds"))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/rss20-es.xml"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def browser() -> Iterator[Browser]:
    executable = shutil.which("chromium")
    if executable is None:
        pytest.fail(f"no chromium on PATH: {INSTALL_CHROMIUM}")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable, headless=True,
            args=["--no-sandbox", "--disable-background-networking", "--disable-gpu",
                  "--no-proxy-server"])
        yield browser
        browser.close()


def submit(page: Page, button: str) -> None:
    with page.expect_navigation():
        page.get_by_role("button", name=button).click()


def test_series_and_feeds_main_path(browser: Browser, feed_url: str, tmp_path: Path) -> None:
    # the feed is served on 127.0.0.1: the server must be told it may fetch from there
    with serve_newsroom(tmp_path, NEWSLETTER_FEED_ALLOW_PRIVATE="true",
                        NEWSLETTER_LANGUAGES='["en","es"]') as (base_url, env):
        add_user(env, "ed@example.org", "editor", name="Ed Soto")
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        context.set_default_timeout(10000)
        page = context.new_page()
        login(page, base_url, "ed@example.org")

        page.get_by_role("link", name="Feeds").click()
        page.get_by_label("Address (RSS or Atom, http or https)").fill(feed_url)
        page.get_by_label("Name (empty: from the address)").fill("noticias")
        page.get_by_label("Language (empty: detect each entry's)").fill("es")
        page.get_by_label("Countries (codes or names, separated by commas)").fill("CR, NI")
        submit(page, "Add")
        assert "The feed was added" in page.get_by_role("status").inner_text()
        submit(page, "Fetch now")
        assert page.get_by_role("status").inner_text() == (
            "Fetched. Entries: 3; new items: 3; updated: 0.")
        assert page.get_by_role("cell", name="Upala abre un segundo albergue temporal")\
            .is_visible()

        page.get_by_role("link", name="Series").first.click()
        page.get_by_label("Name (lower-case letters, digits, - _ .)").fill("semanal")
        page.get_by_label("Every (e.g. weekly on monday at 09:00)").fill("every blue moon")
        page.get_by_label("noticias").check()
        page.get_by_label("Title in es").fill("Boletín semanal")
        submit(page, "Create")
        every = page.get_by_label("Every (e.g. weekly on monday at 09:00)")
        assert every.get_attribute("aria-invalid") == "true"
        assert "not understood" in page.locator("#every-problem").inner_text()
        assert page.get_by_label("Title in es").input_value() == "Boletín semanal"  # kept
        every.fill("weekly on monday at 09:00")
        submit(page, "Create")
        assert page.get_by_role("status").inner_text() == "The series was created."
        assert page.get_by_role("heading", name="Series semanal").is_visible()
        submit(page, "Build the next issue now")
        said = page.get_by_role("status").inner_text()
        # what the build finds depends on today's date against the fixture's items
        assert "was built" in said or "skipped" in said, said

        page.get_by_role("link", name="Calendar").click()
        assert page.get_by_role("heading", name="Calendar").is_visible()
        assert page.get_by_text("to be built").count() >= 7

        page.goto(base_url + "/admin/feeds/noticias")
        submit(page, "Remove")
        assert "semanal" in page.locator(".problem").inner_text()
        context.close()

        shots = []
        for width in WIDTHS:
            context = browser.new_context(viewport={"width": width, "height": 800})
            page = context.new_page()
            login(page, base_url, "ed@example.org")
            for name, path in PAGES:
                page.goto(base_url + path)
                # nothing wider than the screen: no sideways scrolling at 375 px
                assert page.evaluate("document.documentElement.scrollWidth") <= width, name
                shots.append(tmp_path / f"newsroom-{name}-{width}.png")
                page.screenshot(path=shots[-1], full_page=True)
            context.close()
        keep = os.environ.get("NEWSLETTER_SCREENSHOTS_DIR")
        if keep:
            Path(keep).mkdir(parents=True, exist_ok=True)
            for shot in shots:
                shutil.copy(shot, Path(keep) / shot.name)
        assert all(shot.stat().st_size > 5000 for shot in shots)
