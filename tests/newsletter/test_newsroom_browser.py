"""The newsroom in a real browser: Debian's Chromium, driven by Playwright, against a real
`newsletter serve` on loopback (tests/newsroom.py).

Logging in by the labelled fields, a wrong password and the throttle, a form posted
without its CSRF token, a forged session cookie, an editor refused the Users page, and
the keyboard reaching every field with a visible focus ring. Screenshots of the login
page and the dashboard at 375 and 1280 px land in the test's tmp_path (and in
$NEWSLETTER_SCREENSHOTS_DIR when it is set).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

from newsletter import users
from newsletter.db import make_engine, session_factory
from newsletter.screenshots import INSTALL_CHROMIUM
from tests.newsroom import PASSWORD, add_user, login, serve_newsroom

WIDTHS = (375, 1280)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's Chromium, allowed to reach loopback (newsletter.screenshots' browser is
    walled off from every server, loopback included, on purpose)."""
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


@pytest.fixture(scope="module")
def newsroom(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str]]]:
    with serve_newsroom(tmp_path_factory.mktemp("newsroom")) as (base_url, env):
        add_user(env, "ana@example.org", "admin", name="Ana Mora")
        add_user(env, "ed@example.org", "editor", name="Ed Soto")
        yield base_url, env


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(5000)
    yield context
    context.close()


@pytest.fixture
def page(context: BrowserContext) -> Page:
    return context.new_page()


def user_emails(env: dict[str, str]) -> list[str]:
    engine = make_engine(env["NEWSLETTER_DATABASE_URL"])
    try:
        with session_factory(engine)() as session:
            return [u.email for u in users.list_users(session)]
    finally:
        engine.dispose()


def test_log_in_and_out(context: BrowserContext, page: Page,
                       newsroom: tuple[str, dict[str, str]]) -> None:
    base_url, _ = newsroom
    page.goto(base_url + "/admin/users")
    assert page.url.startswith(base_url + "/admin/login")
    page.get_by_label("Email").fill("ana@example.org")
    page.get_by_label("Password").fill(PASSWORD)
    with page.expect_navigation():
        page.get_by_role("button", name="Log in").click()
    assert page.url == base_url + "/admin/users"  # back where she was going
    assert page.get_by_role("heading", name="Users").is_visible()
    assert page.get_by_role("link", name="Ana Mora").is_visible()
    [copied] = [c for c in context.cookies() if c["name"] == "newsroom_session"]
    with page.expect_navigation():
        page.get_by_role("button", name="Log out").click()
    assert page.url.startswith(base_url + "/admin/login")
    page.goto(base_url + "/admin/")
    assert page.url.startswith(base_url + "/admin/login")
    # the cookie as it was before "Log out" (copied, say) is refused: the server revoked it
    context.clear_cookies()
    context.add_cookies([{"name": "newsroom_session", "value": copied["value"],
                          "url": base_url + "/admin/"}])
    page.goto(base_url + "/admin/")
    assert page.url.startswith(base_url + "/admin/login")


def test_wrong_password_then_the_throttle(browser: Browser, tmp_path: Path) -> None:
    # a server of its own: the throttle also locks the client address, 127.0.0.1
    with serve_newsroom(tmp_path) as (base_url, env):
        add_user(env, "throttled@example.org", "editor")
        throttle(browser, base_url)


def throttle(browser: Browser, base_url: str) -> None:
    context = browser.new_context()
    page = context.new_page()
    try:
        login(page, base_url, "throttled@example.org", "not the password")
        assert page.get_by_role("alert").inner_text() == "Wrong email or password."
        for _ in range(users.THROTTLE_FAILURES - 1):
            login(page, base_url, "throttled@example.org", "not the password")
        login(page, base_url, "throttled@example.org", PASSWORD)  # right, but too late
        assert "Try again in 15 minutes" in page.get_by_role("alert").inner_text()
        assert "/admin/login" in page.url
    finally:
        context.close()


def test_a_form_without_its_csrf_token_is_refused(
        page: Page, newsroom: tuple[str, dict[str, str]]) -> None:
    base_url, env = newsroom
    login(page, base_url, "ana@example.org")
    page.goto(base_url + "/admin/users")
    form = page.locator("form", has=page.locator("#new-email"))
    form.get_by_label("Email").fill("mallory@example.org")
    form.get_by_label("Password (at least 12 characters)").fill(PASSWORD)
    form.locator('input[name="csrf_token"]').evaluate("e => e.remove()")
    with page.expect_navigation():
        form.get_by_role("button", name="Add").click()
    assert "security token" in page.get_by_role("alert").inner_text()
    assert "mallory@example.org" not in user_emails(env)
    # and a raw request with someone else's token (a cross-site form) does no better
    response = page.request.post(base_url + "/admin/users/add", form={
        "email": "mallory@example.org", "password": PASSWORD, "role": "admin",
        "csrf_token": "stolen-or-guessed"})
    assert response.status == 400
    assert "mallory@example.org" not in user_emails(env)


def test_a_forged_session_cookie_is_refused(
        context: BrowserContext, page: Page, newsroom: tuple[str, dict[str, str]]) -> None:
    base_url, _ = newsroom
    login(page, base_url, "ana@example.org")
    [cookie] = [c for c in context.cookies() if c["name"] == "newsroom_session"]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"
    payload, _, signature = cookie["value"].partition(".")
    altered = payload[:-2] + ("AA" if payload[-2:] != "AA" else "BB")
    context.clear_cookies()
    context.add_cookies([{"name": "newsroom_session", "value": f"{altered}.{signature}",
                          "url": base_url + "/admin/"}])
    page.goto(base_url + "/admin/")
    assert page.url.startswith(base_url + "/admin/login")


def test_an_editor_is_refused_the_users_page(
        page: Page, newsroom: tuple[str, dict[str, str]]) -> None:
    base_url, _ = newsroom
    login(page, base_url, "ed@example.org")
    assert page.get_by_role("link", name="Users").count() == 0
    response = page.goto(base_url + "/admin/users")
    assert response is not None and response.status == 403
    assert page.get_by_role("alert").inner_text() == "Your role does not allow this page."


def test_the_keyboard_reaches_every_field_with_a_visible_focus(
        page: Page, newsroom: tuple[str, dict[str, str]]) -> None:
    base_url, _ = newsroom
    page.goto(base_url + "/admin/login")
    reached = []
    for _ in range(4):
        page.keyboard.press("Tab")
        reached.append(page.evaluate("""() => {
            const e = document.activeElement, s = getComputedStyle(e);
            return {id: e.id || e.tagName.toLowerCase() + ':' + e.textContent.trim(),
                    outline: s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) >= 2};
        }"""))
    assert [r["id"] for r in reached] == ["a:Skip to content", "email", "password",
                                          "button:Log in"]
    assert all(r["outline"] for r in reached), reached
    # Enter on the button logs in, without the mouse
    page.get_by_label("Email").fill("ana@example.org")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_label("Password").focus()
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert page.url == base_url + "/admin/"


def test_screenshots(browser: Browser, newsroom: tuple[str, dict[str, str]],
                     tmp_path: Path) -> None:
    base_url, _ = newsroom
    shots = []
    for width in WIDTHS:
        context = browser.new_context(viewport={"width": width, "height": 800})
        page = context.new_page()
        try:
            page.goto(base_url + "/admin/login")
            shots.append(tmp_path / f"newsroom-login-{width}.png")
            page.screenshot(path=shots[-1], full_page=True)
            login(page, base_url, "ana@example.org")
            for name, path in (("dashboard", "/admin/"), ("users", "/admin/users")):
                page.goto(base_url + path)
                # nothing wider than the screen: no sideways scrolling at 375 px
                assert page.evaluate("document.documentElement.scrollWidth") <= width
                shots.append(tmp_path / f"newsroom-{name}-{width}.png")
                page.screenshot(path=shots[-1], full_page=True)
        finally:
            context.close()
    assert all(s.stat().st_size > 1000 for s in shots)
    keep = os.environ.get("NEWSLETTER_SCREENSHOTS_DIR")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        for shot in shots:
            shutil.copy(shot, Path(keep) / shot.name)
