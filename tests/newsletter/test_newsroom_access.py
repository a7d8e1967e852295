"""Who may do what in the newsroom, and sessions that end when they should, through Flask's
test client: every admin endpoint x every role against one table of expectations (a view
added without a guard fails here), server-side sessions (a cookie copied before logging
out is refused after it; "Log out everywhere else"; `users sessions|logout`), the
subscriber export's audit line, and the login and sign-up throttles holding across two
app instances (two processes' worth of engines) on both databases."""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

import subscribers.signup as signup
from newsletter import users
from newsletter.cli import cli
from newsletter.db import transaction, utcnow
from newsletter.settings import Settings
from newsletter.web import create_app, dispose
from newsletter.web.auth import PERMISSION
from subscribers.models import SignupAttempt
from subscribers.people import NewSubscriber, add
from subscribers.signup import Limits
from subscribers.suppressions import is_suppressed
from tests.newsletter.test_accessibility import html_validate, summary
from tests.newsroom import cheap_argon2  # noqa: F401 (a fixture)

pytestmark = pytest.mark.usefixtures("cheap_argon2")
SQLITE_ONLY = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
PASSWORD = "correct horse battery"
TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')
SIGNUP_TOKEN = re.compile(r'name="token" value="([^"]+)"')

EVERYONE = ("editor", "approver", "admin")
APPROVERS = ("approver", "admin")
ADMINS = ("admin",)
# the model, written out here on purpose: a change to users.PERMISSIONS must change this
MODEL = {
    "newsroom.read": EVERYONE, "account.change": EVERYONE, "items.change": EVERYONE,
    "issues.change": EVERYONE, "series.change": EVERYONE, "feeds.change": EVERYONE,
    "issues.approve": APPROVERS, "issues.schedule": APPROVERS, "issues.send": APPROVERS,
    "subscribers.read": EVERYONE, "subscribers.change": ADMINS,
    "subscribers.export": ADMINS, "users.manage": ADMINS,
}
PUBLIC = "public"
_I, _S, _F, _P = "/admin/issues/no-such", "/admin/series/no-such", "/admin/feeds/no-such", \
    "/admin/subscribers/999999"
# every (endpoint, method) under /admin: the URL tried and the permission it needs
EXPECTED: dict[tuple[str, str], tuple[str, str]] = {
    ("admin.login", "GET"): ("/admin/login", PUBLIC),
    ("admin.login", "POST"): ("/admin/login", PUBLIC),
    ("admin.stylesheet", "GET"): ("/admin/static/newsroom.css", PUBLIC),
    ("admin.dashboard", "GET"): ("/admin/", "newsroom.read"),
    ("admin.account", "GET"): ("/admin/account", "account.change"),
    ("admin.account", "POST"): ("/admin/account", "account.change"),
    ("admin.account_sessions", "POST"): ("/admin/account/sessions", "account.change"),
    ("admin.users", "GET"): ("/admin/users", "users.manage"),
    ("admin.users_add", "POST"): ("/admin/users/add", "users.manage"),
    ("admin.users_role", "POST"): ("/admin/users/role", "users.manage"),
    ("admin.users_remove", "POST"): ("/admin/users/remove", "users.manage"),
    ("admin.users_logout", "POST"): ("/admin/users/logout", "users.manage"),
    ("admin.items", "GET"): ("/admin/items", "newsroom.read"),
    ("admin.items_upload", "POST"): ("/admin/items/upload", "items.change"),
    ("admin.item", "GET"): ("/admin/items/999999", "newsroom.read"),
    ("admin.item_edit", "POST"): ("/admin/items/999999/edit", "items.change"),
    ("admin.item_translate", "POST"): ("/admin/items/999999/translate", "items.change"),
    ("admin.item_delete", "POST"): ("/admin/items/999999/delete", "items.change"),
    ("admin.sending_script", "GET"): ("/admin/static/sending.js", "newsroom.read"),
    ("admin.sending_review", "GET"): (f"{_I}/review", "newsroom.read"),
    ("admin.sending_review", "POST"): (f"{_I}/review", "newsroom.read"),
    ("admin.sending_schedule", "GET"): (f"{_I}/schedule", "issues.schedule"),
    ("admin.sending_schedule", "POST"): (f"{_I}/schedule", "issues.schedule"),
    ("admin.sending_send", "GET"): (f"{_I}/send", "issues.send"),
    ("admin.sending_send", "POST"): (f"{_I}/send", "issues.send"),
    ("admin.sending_progress", "GET"): (f"{_I}/progress", "newsroom.read"),
    ("admin.sending_progress_json", "GET"): (f"{_I}/progress.json", "newsroom.read"),
    ("admin.sending_control", "POST"): (f"{_I}/control", "issues.send"),
    ("admin.sending_test", "GET"): (f"{_I}/test-send", "issues.change"),
    ("admin.sending_test", "POST"): (f"{_I}/test-send", "issues.change"),
    ("admin.series", "GET"): ("/admin/series", "newsroom.read"),
    ("admin.series_create", "POST"): ("/admin/series/create", "series.change"),
    ("admin.series_one", "GET"): (_S, "newsroom.read"),
    ("admin.series_pause", "POST"): (f"{_S}/pause", "series.change"),
    ("admin.series_resume", "POST"): (f"{_S}/resume", "series.change"),
    ("admin.series_delete", "POST"): (f"{_S}/delete", "series.change"),
    ("admin.series_build", "POST"): (f"{_S}/build", "series.change"),
    ("admin.series_edit", "POST"): (f"{_S}/edit", "series.change"),
    ("admin.calendar", "GET"): ("/admin/calendar", "newsroom.read"),
    ("admin.feeds", "GET"): ("/admin/feeds", "newsroom.read"),
    ("admin.feeds_add", "POST"): ("/admin/feeds/add", "feeds.change"),
    ("admin.feed", "GET"): (_F, "newsroom.read"),
    ("admin.feed_fetch", "POST"): (f"{_F}/fetch", "feeds.change"),
    ("admin.feed_remove", "POST"): (f"{_F}/remove", "feeds.change"),
    ("admin.feed_edit", "POST"): (f"{_F}/edit", "feeds.change"),
    ("admin.subscribers", "GET"): ("/admin/subscribers", "subscribers.read"),
    ("admin.subscribers_export", "GET"): ("/admin/subscribers/export.csv",
                                          "subscribers.export"),
    ("admin.subscriber", "GET"): (_P, "subscribers.read"),
    ("admin.subscriber_unsubscribe", "POST"): (f"{_P}/unsubscribe", "subscribers.change"),
    ("admin.subscriber_suppress", "POST"): (f"{_P}/suppress", "subscribers.change"),
    ("admin.issues", "GET"): ("/admin/issues", "newsroom.read"),
    ("admin.issues_create", "POST"): ("/admin/issues/create", "issues.change"),
    ("admin.issues_build", "POST"): ("/admin/issues/build", "issues.change"),
    ("admin.issue", "GET"): (_I, "newsroom.read"),
    ("admin.issue_items", "POST"): (f"{_I}/items", "issues.change"),
    ("admin.issue_edit", "POST"): (f"{_I}/edit", "issues.change"),
    ("admin.issue_audience", "POST"): (f"{_I}/audience", "issues.change"),
    ("admin.issue_preview", "GET"): (f"{_I}/preview", "newsroom.read"),
    ("admin.issue_variant", "GET"): (f"{_I}/preview/en-regional.html", "newsroom.read"),
    ("admin.logout", "POST"): ("/admin/logout", "account.change"),  # last: it logs out
}


@pytest.fixture
def app(settings: Settings) -> Iterator[Flask]:
    app = create_app(settings)
    yield app
    dispose(app)


@pytest.fixture
def app_sessions(app: Flask) -> sessionmaker[Session]:
    found: sessionmaker[Session] = app.extensions["newsletter"].sessions
    return found


def make_user(sessions: sessionmaker[Session], email: str, role: str) -> None:
    with sessions() as session, session.begin():
        users.add_user(session, email, PASSWORD, role, now=utcnow())


def client_of(app: Flask, agent: str = "pytest") -> FlaskClient:
    client = app.test_client()
    client.environ_base.update({"wsgi.url_scheme": "https", "HTTP_HOST": "news.example.org",
                                "HTTP_USER_AGENT": agent})
    return client


def token(client: FlaskClient, path: str = "/admin/login") -> str:
    found = TOKEN.search(client.get(path).text)
    assert found, f"no CSRF token on {path}"
    return found.group(1)


def log_in(client: FlaskClient, email: str) -> None:
    response = client.post("/admin/login", data={
        "email": email, "password": PASSWORD, "csrf_token": token(client)})
    assert response.status_code == 303, response.text


def cookie(client: FlaskClient) -> str:
    found = client.get_cookie("newsroom_session", path="/admin")
    assert found is not None
    return found.value


# --- permissions ------------------------------------------------------------------------

def test_the_permission_table_is_the_model() -> None:
    """Editors prepare; approvers also approve, schedule and send; admins also manage
    people and change and export subscribers."""
    assert users.PERMISSIONS == MODEL
    assert users.permissions_of("approver") == [
        name for name, roles in MODEL.items() if "approver" in roles]


def test_every_admin_endpoint_is_in_the_table_and_guarded(app: Flask) -> None:
    """A new view fails here until it is given a `require(...)` and a row above."""
    found = {(rule.endpoint, method) for rule in app.url_map.iter_rules()
             if rule.endpoint.startswith("admin.")
             for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}}
    assert found == set(EXPECTED)
    for (endpoint, _method), (_url, permission) in EXPECTED.items():
        if permission != PUBLIC:
            assert getattr(app.view_functions[endpoint], PERMISSION, None) == permission, \
                endpoint


@SQLITE_ONLY
@pytest.mark.parametrize("role", EVERYONE)
def test_each_role_gets_exactly_what_the_table_permits(
        app: Flask, app_sessions: sessionmaker[Session], role: str) -> None:
    """Every endpoint x this role: 403 when the role lacks the permission, and never 403,
    a server error or the login page when it holds it."""
    make_user(app_sessions, f"{role}@example.org", role)
    if role != "admin":
        make_user(app_sessions, "root@example.org", "admin")
    client = client_of(app)
    log_in(client, f"{role}@example.org")
    csrf = token(client, "/admin/account")
    wrong = []
    for (endpoint, method), (url, permission) in EXPECTED.items():
        if permission == PUBLIC:
            continue
        if method == "GET":
            response = client.get(url)
        else:
            response = client.post(url, data={"csrf_token": csrf})
        allowed = role in MODEL[permission]
        code = response.status_code
        to_login = code == 302 and "/admin/login" in response.headers.get("Location", "")
        if allowed and (code == 403 or code >= 500 or to_login):
            wrong.append(f"{method} {endpoint}: {code} but {role} holds {permission}")
        if not allowed and code != 403:
            wrong.append(f"{method} {endpoint}: {code} but {role} lacks {permission}")
    assert wrong == []


@SQLITE_ONLY
def test_pages_show_only_what_the_role_may_do(
        app: Flask, app_sessions: sessionmaker[Session]) -> None:
    make_user(app_sessions, "ana@example.org", "admin")
    make_user(app_sessions, "ed@example.org", "editor")
    admin, editor = client_of(app), client_of(app)
    log_in(admin, "ana@example.org")
    log_in(editor, "ed@example.org")
    assert "Download these as CSV" in admin.get("/admin/subscribers").text
    assert "Download these as CSV" not in editor.get("/admin/subscribers").text
    assert 'href="/admin/users"' in admin.get("/admin/").text
    assert 'href="/admin/users"' not in editor.get("/admin/").text
    page = admin.get("/admin/users").text
    assert "What each role may do" in page
    row = re.search(r"<code>subscribers\.export</code></th>(.*?)</tr>", page)
    assert row and re.findall(r"<td>(\w+)</td>", row.group(1)) == ["no", "no", "yes"]


@SQLITE_ONLY
def test_users_list_shows_each_users_permissions(
        app: Flask, app_sessions: sessionmaker[Session], runner: CliRunner) -> None:
    make_user(app_sessions, "ap@example.org", "approver")
    result = runner.invoke(cli, ["users", "list", "--json"])
    assert result.exit_code == 0, result.output
    [shown] = json.loads(result.output)
    assert shown["permissions"] == users.permissions_of("approver")
    assert "issues.send" in shown["permissions"] and "users.manage" not in shown["permissions"]
    table = runner.invoke(cli, ["users", "list"])
    assert "What each role may do" in table.output and "subscribers.export" in table.output


@SQLITE_ONLY
def test_every_export_is_logged_with_who_exported(
        app: Flask, app_sessions: sessionmaker[Session],
        caplog: pytest.LogCaptureFixture) -> None:
    make_user(app_sessions, "ana@example.org", "admin")
    with app_sessions() as session, session.begin():
        add(session, NewSubscriber(email="person@example.org"), default_language="en")
    admin = client_of(app)
    log_in(admin, "ana@example.org")
    with caplog.at_level(logging.WARNING, logger="newsletter.audit"):
        response = admin.get("/admin/subscribers/export.csv")
    assert response.status_code == 200 and "person@example.org" in response.text
    assert [r.getMessage() for r in caplog.records if r.name == "newsletter.audit"] == [
        "subscribers exported by ana@example.org: 1 people (csv)"]


# --- sessions ---------------------------------------------------------------------------

def test_a_cookie_copied_before_logout_is_refused_after_it(
        app: Flask, app_sessions: sessionmaker[Session]) -> None:
    make_user(app_sessions, "ana@example.org", "admin")
    browser, thief = client_of(app), client_of(app)
    log_in(browser, "ana@example.org")
    thief.set_cookie("newsroom_session", cookie(browser), path="/admin")
    assert thief.get("/admin/").status_code == 200  # the copy works while logged in
    assert browser.post("/admin/logout", data={
        "csrf_token": token(browser, "/admin/")}).status_code == 303
    refused = thief.get("/admin/")
    assert refused.status_code == 302 and "/admin/login" in refused.headers["Location"]
    with app_sessions() as session:
        row = session.scalars(select(users.UserSession)).one()
        assert row.revoked


@SQLITE_ONLY
def test_account_lists_sessions_and_logs_out_everywhere_else(
        app: Flask, app_sessions: sessionmaker[Session]) -> None:
    make_user(app_sessions, "ana@example.org", "admin")
    laptop, phone = client_of(app, "Firefox on a laptop"), client_of(app, "Phone browser")
    log_in(laptop, "ana@example.org")
    log_in(phone, "ana@example.org")
    page = laptop.get("/admin/account").text
    assert "Firefox on a laptop <strong>(this session)</strong>" in page
    assert "Phone browser" in page and "Log out everywhere else" in page
    done = laptop.post("/admin/account/sessions",
                       data={"csrf_token": token(laptop, "/admin/account")})
    assert done.status_code == 303 and done.headers["Location"].endswith("/admin/account")
    after = laptop.get("/admin/account").text
    assert "Other sessions logged out: 1." in after and "Phone browser" not in after
    assert "Log out everywhere else" not in after  # nothing else to end
    assert phone.get("/admin/").status_code == 302
    assert laptop.get("/admin/").status_code == 200


@SQLITE_ONLY
def test_an_admin_logs_a_user_out_everywhere_on_the_page_and_the_cli(
        app: Flask, app_sessions: sessionmaker[Session], runner: CliRunner) -> None:
    make_user(app_sessions, "ana@example.org", "admin")
    make_user(app_sessions, "bo@example.org", "editor")
    admin, bo_laptop, bo_phone = client_of(app), client_of(app, "laptop"), client_of(app)
    log_in(admin, "ana@example.org")
    log_in(bo_laptop, "bo@example.org")
    listed = runner.invoke(cli, ["users", "sessions", "bo@example.org", "--json"])
    assert listed.exit_code == 0, listed.output
    [one] = json.loads(listed.output)
    assert one["user_agent"] == "laptop" and one["current"] is False
    done = admin.post("/admin/users/logout", data={
        "email": "bo@example.org", "csrf_token": token(admin, "/admin/users")})
    assert done.status_code == 303
    notice = "bo@example.org was logged out everywhere (sessions ended: 1)."
    assert notice in admin.get("/admin/users").text
    assert bo_laptop.get("/admin/").status_code == 302
    log_in(bo_phone, "bo@example.org")
    out = runner.invoke(cli, ["users", "logout", "bo@example.org"])
    assert out.exit_code == 0 and "logged out: 1 session ended" in out.output, out.output
    assert bo_phone.get("/admin/").status_code == 302
    assert admin.get("/admin/").status_code == 200
    assert json.loads(runner.invoke(cli, ["users", "sessions", "bo@example.org",
                                          "--json"]).output) == []
    unknown = runner.invoke(cli, ["users", "logout", "nobody@example.org"])
    assert unknown.exit_code != 0 and "no user" in unknown.output


@SQLITE_ONLY
def test_sessions_are_stored_hashed_and_expired_ones_purged(
        app_sessions: sessionmaker[Session]) -> None:
    make_user(app_sessions, "ana@example.org", "admin")
    start = datetime(2026, 12, 6, 8, 0)
    with app_sessions() as session, session.begin():
        ana = users.get_user(session, "ana@example.org")
        first = users.start_session(session, ana, "x" * 500 + "\n", now=start)
        row = session.scalars(select(users.UserSession)).one()
        assert first not in row.token_hash and len(row.user_agent) == users.MAX_AGENT
        assert users.session_user(session, first, now=start + timedelta(hours=11)) is ana
        assert users.session_user(session, first, now=start + timedelta(hours=12)) is None
        users.start_session(session, ana, now=start + timedelta(hours=12, minutes=1))
        assert session.scalar(select(func.count()).select_from(users.UserSession)) == 1


# --- throttles across processes ---------------------------------------------------------

@pytest.fixture
def two_apps(settings: Settings) -> Iterator[tuple[Flask, Flask]]:
    """Two app instances on one database, each with its own engine and pool: what two
    `newsletter serve` processes (or gunicorn workers) are."""
    first, second = create_app(settings), create_app(settings)
    yield first, second
    dispose(first)
    dispose(second)


def test_guesses_spread_over_two_processes_cannot_outrun_the_login_throttle(
        two_apps: tuple[Flask, Flask], monkeypatch: pytest.MonkeyPatch) -> None:
    """`users.authenticate` through the two instances' engines at once, as two processes'
    login views call it (a lock in one process does not order another's). Pairs of
    guesses are checked together when nothing orders them (a barrier in the hash check),
    so each pair would count the same failures. Exactly THROTTLE_FAILURES are tried."""
    factories = [app.extensions["newsletter"].sessions for app in two_apps]
    make_user(factories[0], "ana@example.org", "admin")
    guesses = users.THROTTLE_FAILURES * 2 + 2
    pair = threading.Barrier(2)
    checked = users.verify_password

    def paired_check(user: users.User, password: str) -> bool:
        try:
            pair.wait(timeout=0.5)
        except threading.BrokenBarrierError:
            pass
        return checked(user, password)

    monkeypatch.setattr(users, "verify_password", paired_check)

    def guess(n: int) -> str:
        try:
            with transaction(factories[n % 2]) as session:
                found = users.authenticate(session, "ana@example.org", f"guess {n}",
                                           f"192.0.2.{n}", now=utcnow())
        except users.LoginThrottled:
            return "throttled"
        return "wrong" if found is None else "in"

    with ThreadPoolExecutor(guesses) as pool:
        answers = list(pool.map(guess, range(guesses)))
    assert answers.count("wrong") == users.THROTTLE_FAILURES
    assert answers.count("throttled") == guesses - users.THROTTLE_FAILURES


def test_sign_ups_spread_over_two_processes_cannot_outrun_the_limits(
        two_apps: tuple[Flask, Flask], monkeypatch: pytest.MonkeyPatch) -> None:
    """Requests for one address from many clients, sent at once to two processes: still
    `mails_per_address` confirmation requests, no more."""
    sessions = two_apps[0].extensions["newsletter"].sessions
    requests = 10
    pair = threading.Barrier(2)

    def paired_is_suppressed(session: Session, email: str) -> bool:
        try:
            pair.wait(timeout=0.5)
        except threading.BrokenBarrierError:
            pass
        return is_suppressed(session, email)

    first = two_apps[0].test_client()
    for _ in range(Limits().mails_per_address - 1):  # known, pending, one mail still due
        found = SIGNUP_TOKEN.search(first.get("/signup").text)
        assert found
        assert first.post("/signup", data={"token": found.group(1),
                                           "email": "bombed@example.org"}).status_code == 200
    forms = []
    for n in range(requests):
        c = two_apps[n % 2].test_client()
        c.environ_base["REMOTE_ADDR"] = f"198.51.100.{n + 10}"
        found = SIGNUP_TOKEN.search(c.get("/signup").text)
        assert found
        forms.append((c, found.group(1)))
    monkeypatch.setattr(signup, "is_suppressed", paired_is_suppressed)

    def send(n: int) -> int:
        c, form_token = forms[n]
        return c.post("/signup", data={"token": form_token,
                                       "email": "bombed@example.org"}).status_code

    with ThreadPoolExecutor(requests) as pool:
        codes = list(pool.map(send, range(requests)))
    assert set(codes) == {200}
    with sessions() as session:
        mailed = session.scalar(select(func.count()).select_from(SignupAttempt)
                                .where(SignupAttempt.mailed.is_(True)))
    assert mailed == Limits().mails_per_address


@SQLITE_ONLY
def test_the_account_and_users_pages_pass_html_validate(
        app: Flask, app_sessions: sessionmaker[Session], tmp_path: Path) -> None:
    """The sessions list, its button, the Users page's sessions column and permission
    table: labelled, valid, with the accessibility rules."""
    make_user(app_sessions, "ana@example.org", "admin")
    laptop, phone = client_of(app, "laptop <b>"), client_of(app, "phone")
    log_in(laptop, "ana@example.org")
    log_in(phone, "ana@example.org")
    pages = {"account.html": laptop.get("/admin/account").text,
             "users.html": laptop.get("/admin/users").text}
    for name, body in pages.items():
        (tmp_path / name).write_text(body, encoding="utf-8")
    config = {"extends": ["html-validate:recommended", "html-validate:a11y",
                          "html-validate:document"],
              # the newsroom's layout: lower-case <!doctype html>, and its one stylesheet
              # is our own, same origin (SRI guards files from elsewhere)
              "rules": {"doctype-style": "off", "require-sri": "off"}}
    found = html_validate([tmp_path / name for name in pages], config, tmp_path)
    assert {name: summary(messages) for name, messages in found.items()} == {
        name: [] for name in pages}
    assert "laptop &lt;b&gt;" in pages["account.html"]  # the User-Agent, escaped
