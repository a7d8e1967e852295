"""Sending an issue in a real browser: Debian's Chromium, driven by Playwright, against a
real `newsletter serve` on loopback (tests/newsroom.py), mailing to the outbox.

An editor submits the issue; an approver approves it, schedules it (the zone report
shows), takes it off the calendar, confirms the send with its audience count, and watches
the progress page reach "sent" without a reload (the page's script polls progress.json).
Screenshots of the four pages at 375 and 1280 px land in the test's tmp_path (and in
$NEWSLETTER_SCREENSHOTS_DIR when it is set).
"""

from __future__ import annotations

import os
import shutil
from datetime import date, timedelta
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, Page, expect, sync_playwright

from newsletter.cli.demo import sample_items_text
from newsletter.db import make_engine, session_factory, utcnow
from newsletter.ingest.text import parse_text
from newsletter.issues import create_issue
from newsletter.items import store_items
from newsletter.screenshots import INSTALL_CHROMIUM
from subscribers.people import NewSubscriber, add
from tests.newsroom import add_user, login, serve_newsroom

WIDTHS = (375, 1280)
SLUG = "w49"


def seed(env: dict[str, str]) -> None:
    """Items, an issue that needs approval, and three subscribers in the served database."""
    engine = make_engine(env["NEWSLETTER_DATABASE_URL"])
    try:
        with session_factory(engine)() as session, session.begin():
            store_items(session, parse_text(sample_items_text(), "sample"))
            issue = create_issue(session, SLUG, date(2019, 9, 1), date(2019, 10, 31))
            issue.approval = "required"
            for email, country, language in (("zoe@example.org", "CR", "es"),
                                             ("li@example.org", "US", "en"),
                                             ("mo@example.org", "MX", "es")):
                add(session, NewSubscriber(email, country=country, language=language),
                    default_language="en")
    finally:
        engine.dispose()


def shoot(context: BrowserContext, page: Page, shots: list[Path], tmp_path: Path,
          name: str) -> None:
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 800})
        shots.append(tmp_path / f"sending-{name}-{width}.png")
        page.screenshot(path=shots[-1], full_page=True)
    page.set_viewport_size({"width": 1280, "height": 800})


def test_submit_approve_schedule_send_and_watch(tmp_path: Path) -> None:
    executable = shutil.which("chromium")
    if executable is None:
        pytest.fail(f"no chromium on PATH: {INSTALL_CHROMIUM}")
    shots: list[Path] = []
    with serve_newsroom(tmp_path) as (base_url, env), sync_playwright() as playwright:
        add_user(env, "ed@example.org", "editor", name="Ed Soto")
        add_user(env, "ana@example.org", "approver", name="Ana Mora")
        seed(env)
        browser = playwright.chromium.launch(
            executable_path=executable, headless=True,
            args=["--no-sandbox", "--disable-background-networking", "--disable-gpu",
                  "--no-proxy-server"])
        issue = f"{base_url}/admin/issues/{SLUG}"
        try:
            # the editor submits
            context = browser.new_context(viewport={"width": 1280, "height": 800})
            context.set_default_timeout(5000)
            page = context.new_page()
            login(page, base_url, "ed@example.org")
            page.goto(f"{issue}/review")
            page.get_by_label("Note (required to reject)").fill("ready for review")
            page.get_by_role("button", name="Submit for approval").click()
            expect(page.get_by_role("status")).to_have_text("Submitted for approval.")
            context.close()

            # the approver approves, schedules, unschedules, sends now
            context = browser.new_context(viewport={"width": 1280, "height": 800})
            context.set_default_timeout(5000)
            page = context.new_page()
            login(page, base_url, "ana@example.org")
            page.goto(f"{issue}/review")
            page.get_by_role("button", name="Approve").click()
            expect(page.get_by_role("status")).to_have_text("Approved.")
            expect(page.locator("table")).to_contain_text("Ed Soto")
            shoot(context, page, shots, tmp_path, "review")

            page.get_by_role("link", name="Schedule").click()
            page.get_by_label("At this time in each subscriber's own zone").check()
            day = (utcnow() + timedelta(days=2)).date().isoformat()
            page.get_by_label("Date", exact=True).fill(day)
            page.get_by_label("Time", exact=True).fill("09:00")
            page.get_by_label("Time zone", exact=True).fill("America/Costa_Rica")
            page.get_by_role("button", name="Schedule", exact=True).click()
            expect(page.get_by_role("status")).to_have_text("Scheduled.")
            expect(page.locator("#zones-title + p")).to_have_text("3 deliveries planned.")
            expect(page.get_by_role("cell", name="America/Mexico_City")).to_be_visible()
            shoot(context, page, shots, tmp_path, "schedule")
            page.get_by_role("button", name="Unschedule").click()
            expect(page.get_by_role("status")).to_contain_text("a draft again")

            page.get_by_role("link", name="Send", exact=True).click()
            expect(page.locator("[data-audience]")).to_contain_text("3 subscribers")
            shoot(context, page, shots, tmp_path, "send")
            with page.expect_navigation():
                page.get_by_role("button", name="Send to 3 subscribers now").click()
            assert page.url.endswith("/progress?started=1")
            page.evaluate("window.notReloaded = true")
            expect(page.locator('[data-field="status"]')).to_have_text("sent", timeout=15000)
            expect(page.locator('[data-count="sent"]')).to_have_text("3")
            assert page.evaluate("window.notReloaded") is True  # updated in place
            shoot(context, page, shots, tmp_path, "progress")
            context.close()
        finally:
            browser.close()
        outbox = Path(env["NEWSLETTER_VAR_DIR"]) / "outbox"
        assert len(list(outbox.rglob("*.eml"))) == 3
    assert all(s.stat().st_size > 1000 for s in shots)
    keep = os.environ.get("NEWSLETTER_SCREENSHOTS_DIR")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        for shot in shots:
            shutil.copy(shot, Path(keep) / shot.name)
