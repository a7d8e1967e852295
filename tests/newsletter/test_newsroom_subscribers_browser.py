"""The Subscribers screen in a real browser (Debian's Chromium, Playwright, a real
`newsletter serve` on loopback): an admin searches, opens a person, unsubscribes and then
suppresses them after each confirmation, and sees both in the history with their address.
Screenshots of the search and a person's page at 375 and 1280 px, and the suppress
confirmation at 375 px, land in tmp_path (and $NEWSLETTER_SCREENSHOTS_DIR)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from playwright.sync_api import expect, sync_playwright

from newsletter.db import make_engine, session_factory
from subscribers.lists import create_list
from subscribers.people import NewSubscriber, add
from tests.newsletter.test_newsroom_items_browser import launch, shoot
from tests.newsroom import add_user, login, serve_newsroom

PEOPLE = (
    NewSubscriber("ana.mora@example.org", "Ana Mora", "CR", "es", ("partners",),
                  consent_method="form:2019-10", preconfirm=True),
    NewSubscriber("bob@example.net", "Bob Stone", "NI", "en", preconfirm=True),
    NewSubscriber("carla@example.org", "Carla Ruiz", "", "es-CR", preconfirm=True),
)


def seed(env: dict[str, str]) -> None:
    engine = make_engine(env["NEWSLETTER_DATABASE_URL"])
    try:
        with session_factory(engine)() as session, session.begin():
            create_list(session, "partners")
            for person in PEOPLE:
                add(session, person, default_language="en", by="cli")
    finally:
        engine.dispose()


def test_an_admin_searches_and_unsubscribes_and_suppresses(tmp_path: Path) -> None:
    shots: list[Path] = []
    with serve_newsroom(tmp_path) as (base_url, env), sync_playwright() as playwright:
        add_user(env, "ana@example.org", "admin", name="Ana Admin")
        seed(env)
        browser = launch(playwright)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 800})
            context.set_default_timeout(5000)
            page = context.new_page()
            login(page, base_url, "ana@example.org")
            page.get_by_role("link", name="Subscribers").click()
            expect(page.get_by_text("3 subscribers found; page 1 of 1.")).to_be_visible()
            page.get_by_label("Words in the address or name").fill("mora")
            page.get_by_label("Status").select_option("active")
            page.get_by_role("button", name="Search").click()
            expect(page.get_by_text("1 subscribers found; page 1 of 1.")).to_be_visible()
            page.get_by_role("link", name="ana.mora@example.org").click()
            person_url = page.url
            expect(page.get_by_text("partners (confirmed)", exact=True)).to_be_visible()

            page.get_by_role("button", name="Unsubscribe from everything").click()
            expect(page.get_by_role("heading", name="Unsubscribe a person")).to_be_visible()
            page.get_by_role("button", name="Unsubscribe", exact=True).click()
            expect(page.get_by_role("status")).to_have_text(
                "ana.mora@example.org is unsubscribed.")
            context.close()

            for width in (375, 1280):
                context = browser.new_context(viewport={"width": width, "height": 800})
                page = context.new_page()
                login(page, base_url, "ana@example.org")
                page.goto(base_url + "/admin/subscribers")
                shots.append(shoot(page, tmp_path / f"newsroom-subscribers-{width}.png",
                                   width))
                page.goto(person_url)
                shots.append(shoot(page, tmp_path / f"newsroom-subscriber-{width}.png",
                                   width))
                context.close()

            context = browser.new_context(viewport={"width": 375, "height": 800})
            context.set_default_timeout(5000)
            page = context.new_page()
            login(page, base_url, "ana@example.org")
            page.goto(person_url)
            page.get_by_role("button", name="Suppress this address").click()
            expect(page.get_by_role("heading", name="Suppress an address")).to_be_visible()
            page.get_by_label("Reason").select_option("complained")
            page.get_by_label("Note (optional)").fill("asked by phone")
            shots.append(shoot(page, tmp_path / "newsroom-subscriber-suppress-375.png", 375))
            page.get_by_role("button", name="Suppress", exact=True).click()
            expect(page.get_by_role("status")).to_contain_text("is suppressed")
            history = page.locator("table").last
            expect(history).to_contain_text("complained: asked by phone")
            expect(history.get_by_text("ana@example.org")).to_have_count(2)
            context.close()
        finally:
            browser.close()
    assert all(s.stat().st_size > 1000 for s in shots)
    keep = os.environ.get("NEWSLETTER_SCREENSHOTS_DIR")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        for shot in shots:
            shutil.copy(shot, Path(keep) / shot.name)
