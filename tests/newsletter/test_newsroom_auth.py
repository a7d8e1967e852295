"""The newsroom's security rules through Flask's test client, on both databases: login,
the cookie, CSRF on every form, roles, removal and demotion taking effect at once."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import time_machine
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.orm import Session, sessionmaker

from newsletter import users
from newsletter.db import utcnow
from newsletter.settings import Settings
from newsletter.web import create_app, dispose
from newsletter.web.admin.account import safe_next
from tests.newsroom import cheap_argon2  # noqa: F401 (a fixture)

pytestmark = pytest.mark.usefixtures("cheap_argon2")
# rules that do not depend on the database run on SQLite only (the suite's time budget)
SQLITE_ONLY = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
PASSWORD = "correct horse battery"
TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture
def app(settings: Settings) -> Iterator[Flask]:
    app = create_app(settings)
    yield app
    dispose(app)


@pytest.fixture
def app_sessions(app: Flask) -> sessionmaker[Session]:
    found: sessionmaker[Session] = app.extensions["newsletter"].sessions
    return found


def make_user(sessions: sessionmaker[Session], email: str, role: str,
              language: str = "en") -> None:
    with sessions() as session, session.begin():
        users.add_user(session, email, PASSWORD, role, language=language, now=utcnow())


def client_of(app: Flask) -> FlaskClient:
    # the public URL is https, so the cookie is Secure: talk https to have it sent back
    client = app.test_client()
    client.environ_base.update({"wsgi.url_scheme": "https", "HTTP_HOST": "news.example.org"})
    return client


def token(client: FlaskClient, path: str = "/admin/login") -> str:
    found = TOKEN.search(client.get(path).text)
    assert found, f"no CSRF token on {path}"
    return found.group(1)


def log_in(client: FlaskClient, email: str, password: str = PASSWORD) -> int:
    response = client.post("/admin/login", data={
        "email": email, "password": password, "csrf_token": token(client)})
    return response.status_code


def emails(sessions: sessionmaker[Session]) -> list[str]:
    with sessions() as session:
        return [u.email for u in users.list_users(session)]


def test_login_page_and_cookie(app: Flask, app_sessions: sessionmaker[Session]) -> None:
    make_user(app_sessions, "ana@example.org", "admin")
    client = client_of(app)
    page = client.get("/admin/login")
    assert page.status_code == 200
    html = page.text
    assert '<label for="email">Email</label>' in html
    assert '<label for="password">Password</label>' in html
    assert '<button type="submit">Log in</button>' in html
    policy = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    before = token(client)
    response = client.post("/admin/login", data={
        "email": "ana@example.org", "password": PASSWORD, "csrf_token": before})
    assert response.status_code == 303 and response.headers["Location"] == "/admin/"
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" in cookie
    assert "Path=/admin" in cookie and "Expires=" in cookie
    assert token(client, "/admin/") != before  # a new session at login, a new token
    assert client.get("/admin/").status_code == 200


@SQLITE_ONLY
def test_every_page_but_the_login_needs_a_login(app: Flask) -> None:
    client = client_of(app)
    pages = [rule.rule for rule in app.url_map.iter_rules()
             if rule.rule.startswith("/admin") and "GET" in (rule.methods or ())
             and rule.endpoint not in ("admin.login", "admin.stylesheet")]
    assert "/admin/users" in pages
    for path in pages:
        response = client.get(path)
        assert response.status_code == 302, path
        assert response.headers["Location"].startswith("/admin/login"), path
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/admin") and "POST" in (rule.methods or ()):
            assert client.post(rule.rule).status_code in (302, 400), rule.rule


def test_wrong_password_and_throttle(app: Flask, app_sessions: sessionmaker[Session]) -> None:
    make_user(app_sessions, "ana@example.org", "admin")
    client = client_of(app)
    wrong = client.post("/admin/login", data={
        "email": "ana@example.org", "password": "not the password", "csrf_token": token(client)})
    unknown = client.post("/admin/login", data={
        "email": "nobody@example.org", "password": "not the password",
        "csrf_token": token(client)})
    assert wrong.status_code == unknown.status_code == 401
    assert "Wrong email or password." in wrong.text and "Wrong email or password." in unknown.text
    for _ in range(3):
        log_in(client, "ana@example.org", "still not it")
    throttled = client.post("/admin/login", data={
        "email": "ana@example.org", "password": PASSWORD, "csrf_token": token(client)})
    assert throttled.status_code == 429 and "Try again in 15 minutes" in throttled.text
    assert client.get("/admin/").status_code == 302


@SQLITE_ONLY
def test_parallel_guesses_cannot_outrun_the_throttle(
        app: Flask, app_sessions: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch) -> None:
    """Guesses sent at once are not all checked before any failure is counted: at most
    THROTTLE_FAILURES passwords are ever tried (a barrier in the hash check lets every
    guess through together when nothing serialises them)."""
    make_user(app_sessions, "ana@example.org", "admin")
    guesses = users.THROTTLE_FAILURES * 2
    together = threading.Barrier(guesses)
    checked = users.verify_password

    def slow_check(user: users.User, password: str) -> bool:
        try:
            together.wait(timeout=0.5)
        except threading.BrokenBarrierError:
            pass
        return checked(user, password)

    monkeypatch.setattr(users, "verify_password", slow_check)
    clients = [client_of(app) for _ in range(guesses)]
    tokens = [token(client) for client in clients]

    def guess(n: int) -> int:
        return clients[n].post("/admin/login", data={
            "email": "ana@example.org", "password": f"guess number {n}",
            "csrf_token": tokens[n]}).status_code

    with ThreadPoolExecutor(guesses) as pool:
        codes = list(pool.map(guess, range(guesses)))
    assert codes.count(401) == users.THROTTLE_FAILURES
    assert codes.count(429) == guesses - users.THROTTLE_FAILURES


@SQLITE_ONLY
@pytest.mark.parametrize("proxies", [0, 1])
def test_behind_a_proxy_the_throttle_counts_each_client(
        settings: Settings, proxies: int) -> None:
    """With NEWSLETTER_TRUSTED_PROXIES=1 failures from one client behind the proxy do not
    lock out another; without it a client's X-Forwarded-For is not believed."""
    app = create_app(settings.model_copy(update={"trusted_proxies": proxies}))
    try:
        make_user(app.extensions["newsletter"].sessions, "ana@example.org", "admin")
        guesser, colleague = client_of(app), client_of(app)
        guesser.environ_base["HTTP_X_FORWARDED_FOR"] = "203.0.113.7"
        colleague.environ_base["HTTP_X_FORWARDED_FOR"] = "198.51.100.8"
        for n in range(users.THROTTLE_FAILURES):
            assert log_in(guesser, f"someone{n}@example.org", "wrong password") == 401
        assert log_in(colleague, "ana@example.org") == (303 if proxies else 429)
    finally:
        dispose(app)


def test_a_form_without_its_token_changes_nothing(
        app: Flask, app_sessions: sessionmaker[Session]) -> None:
    make_user(app_sessions, "ana@example.org", "admin")
    client = client_of(app)
    assert log_in(client, "ana@example.org") == 303
    form = {"email": "eve@example.org", "password": PASSWORD, "role": "admin", "language": "en"}
    for sent in ({}, {"csrf_token": "forged"}):
        refused = client.post("/admin/users/add", data={**form, **sent})
        assert refused.status_code == 400 and "security token" in refused.text
    assert client.post("/admin/logout").status_code == 400
    assert emails(app_sessions) == ["ana@example.org"]
    # a login form without its token does not log in either
    fresh = client_of(app)
    assert fresh.post("/admin/login", data={"email": "ana@example.org",
                                            "password": PASSWORD}).status_code == 400
    assert fresh.get("/admin/").status_code == 302
    added = client.post("/admin/users/add", data={**form, "csrf_token": token(client,
                                                                             "/admin/users")})
    assert added.status_code == 303 and added.headers["Location"] == "/admin/users"
    assert "User added." in client.get("/admin/users").text
    assert emails(app_sessions) == ["ana@example.org", "eve@example.org"]
    # a refused user: the page again (400) with what was typed, but not the password
    refused = client.post("/admin/users/add", data={
        "email": "flo@example.org", "name": "Flo Ruiz", "role": "editor", "language": "es",
        "password": "tiny pw", "csrf_token": token(client, "/admin/users")})
    assert refused.status_code == 400 and 'value="flo@example.org"' in refused.text
    assert 'value="Flo Ruiz"' in refused.text and "tiny pw" not in refused.text
    assert '<option value="editor" selected>' in refused.text
    assert '<option value="es" selected>' in refused.text


@SQLITE_ONLY
def test_a_forged_or_altered_cookie_is_refused(
        app: Flask, app_sessions: sessionmaker[Session]) -> None:
    make_user(app_sessions, "ana@example.org", "admin")
    client = client_of(app)
    log_in(client, "ana@example.org")
    cookie = client.get_cookie("newsroom_session", path="/admin")
    assert cookie is not None
    payload, _, signature = cookie.value.rpartition(".")
    other = client_of(app)
    other.set_cookie("newsroom_session", payload + "." + signature[::-1], path="/admin")
    assert other.get("/admin/").status_code == 302
    # a cookie signed with another key (the subscriber links' secret itself, say)
    forger = Flask("forger")
    forger.secret_key = "test-secret"
    with forger.test_request_context():
        from flask.sessions import SecureCookieSessionInterface
        serializer = SecureCookieSessionInterface().get_signing_serializer(forger)
        assert serializer is not None
        forged = serializer.dumps({"uid": 1, "auth": "x", "csrf_token": "t"})
    other.set_cookie("newsroom_session", str(forged), path="/admin")
    assert other.get("/admin/").status_code == 302


def test_only_admins_manage_users(app: Flask, app_sessions: sessionmaker[Session]) -> None:
    make_user(app_sessions, "ana@example.org", "admin")
    make_user(app_sessions, "ed@example.org", "editor")
    editor = client_of(app)
    log_in(editor, "ed@example.org")
    assert "/admin/users" not in editor.get("/admin/").text  # not in the nav
    assert editor.get("/admin/users").status_code == 403
    forbidden = editor.post("/admin/users/role", data={
        "email": "ed@example.org", "role": "admin", "csrf_token": token(editor, "/admin/")})
    assert forbidden.status_code == 403 and "role does not allow" in forbidden.text
    with app_sessions() as session:
        assert users.get_user(session, "ed@example.org").role == "editor"
    admin = client_of(app)
    log_in(admin, "ana@example.org")
    assert admin.get("/admin/users").status_code == 200


def test_removal_and_demotion_take_effect_at_the_next_request(
        app: Flask, app_sessions: sessionmaker[Session]) -> None:
    make_user(app_sessions, "ana@example.org", "admin")
    make_user(app_sessions, "bo@example.org", "admin")
    bo = client_of(app)
    log_in(bo, "bo@example.org")
    assert bo.get("/admin/users").status_code == 200
    with app_sessions() as session, session.begin():
        users.set_role(session, "bo@example.org", "editor")
    # a new role ends the user's sessions: logged in again, they have the new role's pages
    demoted = bo.get("/admin/users")
    assert demoted.status_code == 302 and "/admin/login" in demoted.headers["Location"]
    assert log_in(bo, "bo@example.org") == 303
    assert bo.get("/admin/users").status_code == 403
    assert bo.get("/admin/").status_code == 200
    with app_sessions() as session, session.begin():
        users.remove_user(session, "bo@example.org")
    assert bo.get("/admin/").status_code == 302


@SQLITE_ONLY
def test_a_new_password_logs_out_other_sessions(
        app: Flask, app_sessions: sessionmaker[Session]) -> None:
    make_user(app_sessions, "ana@example.org", "admin")
    laptop, phone = client_of(app), client_of(app)
    log_in(laptop, "ana@example.org")
    log_in(phone, "ana@example.org")
    changed = laptop.post("/admin/account", data={
        "action": "password", "current": PASSWORD, "new": "a brand new passphrase",
        "repeat": "a brand new passphrase", "csrf_token": token(laptop, "/admin/account")})
    assert changed.status_code == 303 and changed.headers["Location"] == "/admin/account"
    assert "Your password was changed." in laptop.get("/admin/account").text
    assert laptop.get("/admin/").status_code == 200
    assert phone.get("/admin/").status_code == 302


@SQLITE_ONLY
def test_interface_language_is_the_users_choice(
        app: Flask, app_sessions: sessionmaker[Session]) -> None:
    make_user(app_sessions, "ana@example.org", "admin", language="es")
    client = client_of(app)
    assert "Iniciar sesión" in client.get(
        "/admin/login", headers={"Accept-Language": "es"}).text
    log_in(client, "ana@example.org")
    page = client.get("/admin/")
    assert '<html lang="es">' in page.text and "Panel" in page.text
    switched = client.post("/admin/account", data={
        "action": "language", "language": "en", "csrf_token": token(client, "/admin/account")})
    assert switched.status_code == 303 and switched.headers["Location"] == "/admin/account"
    assert "Saved." in client.get("/admin/account").text  # the notice in the new language
    assert "Dashboard" in client.get("/admin/").text


def test_role_names_are_translated(app: Flask, app_sessions: sessionmaker[Session]) -> None:
    """users.html.j2 and account.html.j2 name the roles in the reader's language (the
    role_label filter); the form values stay the CLI's."""
    make_user(app_sessions, "ana@example.org", "admin", language="es")
    make_user(app_sessions, "ed@example.org", "editor")
    client = client_of(app)
    log_in(client, "ana@example.org")
    page = client.get("/admin/users").text
    assert '<option value="editor">Editor(a)</option>' in page
    assert '<th scope="col">Aprobador(a)</th>' in page
    assert '<option value="admin" selected>Administrador(a)</option>' in page
    assert "· Administrador(a)</p>" in client.get("/admin/account").text
    english = client_of(app)
    log_in(english, "ed@example.org")
    assert "· editor</p>" in english.get("/admin/account").text


@SQLITE_ONLY
def test_after_login_only_our_own_pages(app: Flask) -> None:
    cases = [("/admin/users", "/admin/users"), ("https://evil.example/", "/admin/"),
             ("//evil.example/admin/", "/admin/"), ("/admin//evil.example", "/admin/"),
             ("/admin/\\evil", "/admin/"), ("", "/admin/")]
    with app.test_request_context():
        assert [safe_next(target) for target, _ in cases] == [want for _, want in cases]


@SQLITE_ONLY
@pytest.mark.fuzz
@given(form=st.dictionaries(
    st.sampled_from(["email", "password", "csrf_token", "next", "role", "name", "language",
                     "action", "current", "new", "repeat", "x"]),
    st.text(max_size=300)))
def test_no_form_ends_in_a_server_error(app: Flask, app_sessions: sessionmaker[Session],
                                        form: dict[str, str]) -> None:
    admin = app.extensions.setdefault("test-admin-client", client_of(app))
    if not emails(app_sessions):
        make_user(app_sessions, "ana@example.org", "admin")
    if admin.get("/admin/").status_code != 200:  # first example, or removed by one
        log_in(admin, "ana@example.org")
    anonymous = client_of(app)
    assert anonymous.post("/admin/login", data=form).status_code in (303, 400, 401, 429)
    csrf = token(admin, "/admin/users")
    for path in ("/admin/users/add", "/admin/users/role", "/admin/users/remove",
                 "/admin/account"):
        response = admin.post(path, data={**form, "csrf_token": csrf})
        assert response.status_code in (200, 303, 400), (path, response.status_code)
        assert "Traceback" not in response.text


def test_the_spanish_catalog_translates_every_message() -> None:
    """Every message the newsroom's templates and views mark has a Spanish translation
    (run `pybabel extract` with the mapping below to find new ones)."""
    from babel.messages.extract import extract_from_dir
    from babel.messages.pofile import read_po

    from newsletter.web.admin.core import catalog_path

    root = Path(__file__).resolve().parents[2]
    marked = set()
    for folder, method in (("newsletter/web/admin", "python"),
                           ("templates/web/admin", "jinja2")):
        found = extract_from_dir(
            root / folder, method_map=[("**.py", "python")] if method == "python" else
            [("**.j2", "jinja2")], keywords={"_": None, "gettext": None, "N_": None},
            options_map={"**.j2": {"extensions": "jinja2.ext.i18n", "trim_blocks": "True",
                                   "lstrip_blocks": "True"}})
        marked |= {message for _, _, message, _, _ in found if isinstance(message, str)}
    with catalog_path("es").open("rb") as po:
        catalog = read_po(po, locale="es")
    translated = {m.id for m in catalog if m.id and m.string}
    assert len(marked) > 50
    assert marked - translated == set()


@SQLITE_ONLY
def test_a_session_lasts_twelve_hours_from_the_login(
        app: Flask, app_sessions: sessionmaker[Session]) -> None:
    make_user(app_sessions, "ana@example.org", "admin")
    client = client_of(app)
    start = datetime(2026, 12, 6, 8, 0, tzinfo=UTC)
    with time_machine.travel(start, tick=False) as clock:
        log_in(client, "ana@example.org")
        clock.move_to(start + timedelta(hours=11))
        # a change re-signs the cookie, which must not extend the session
        assert client.post("/admin/account", data={
            "action": "password", "current": PASSWORD, "new": "a brand new passphrase",
            "repeat": "a brand new passphrase",
            "csrf_token": token(client, "/admin/account")}).status_code == 303
        clock.move_to(start + timedelta(hours=11, minutes=59))
        assert client.get("/admin/").status_code == 200
        clock.move_to(start + timedelta(hours=12, minutes=1))
        assert client.get("/admin/").status_code == 302


def test_an_admin_removes_a_user_after_confirming(
        app: Flask, app_sessions: sessionmaker[Session]) -> None:
    make_user(app_sessions, "ana@example.org", "admin")
    make_user(app_sessions, "ed@example.org", "editor")
    admin = client_of(app)
    log_in(admin, "ana@example.org")
    csrf = token(admin, "/admin/users")
    asked = admin.post("/admin/users/remove", data={"email": "ed@example.org",
                                                    "csrf_token": csrf})
    assert asked.status_code == 200 and "Remove ed@example.org?" in asked.text
    assert emails(app_sessions) == ["ana@example.org", "ed@example.org"]
    done = admin.post("/admin/users/remove", data={"email": "ed@example.org", "confirm": "yes",
                                                   "csrf_token": csrf})
    assert done.status_code == 303 and done.headers["Location"] == "/admin/users"
    assert "User removed." in admin.get("/admin/users").text
    assert emails(app_sessions) == ["ana@example.org"]
    last = admin.post("/admin/users/remove", data={"email": "ana@example.org", "confirm": "yes",
                                                   "csrf_token": csrf})
    assert last.status_code == 400 and "last admin" in last.text


def test_the_dashboard_shows_what_waits_and_what_goes_out(
        app: Flask, app_sessions: sessionmaker[Session]) -> None:
    from newsletter import approval
    from newsletter.cli.demo import sample_items_text
    from newsletter.ingest.text import parse_text
    from newsletter.issues import create_issue
    from newsletter.items import store_items
    from newsletter.schedules import schedule_issue

    make_user(app_sessions, "ana@example.org", "editor")
    now = utcnow()
    with app_sessions() as session, session.begin():
        stored = store_items(session, parse_text(sample_items_text(), "sample"))
        waiting = create_issue(session, "w49", date(2019, 9, 1), date(2019, 10, 31))
        waiting.approval = "required"
        approval.submit(session, waiting, "Bo", now=now)
        planned = create_issue(session, "w50", date(2019, 9, 1), date(2019, 10, 31))
        schedule_issue(session, planned, at=datetime(2031, 1, 5, 14, 0),
                       timezone="America/Costa_Rica", now=now)
    client = client_of(app)
    log_in(client, "ana@example.org")
    page = client.get("/admin/").text
    waits, goes = page.index("Waiting for approval"), page.index("Scheduled")
    assert "w49" in page[waits:goes] and "w50" not in page[waits:goes]
    assert "w50" in page[goes:] and "2031-01-05 14:00 UTC" in page[goes:]
    assert stored.added > 0 and f"<strong>{stored.added}</strong> items" in page
