"""The newsroom's Subscribers screen through Flask's test client, on both databases: the
search (words of the address or name, and the CLI's filter) with paging, the counts, the
CSV export of the current search, a person's page, and unsubscribing and suppressing after
a confirmation, by admins only (editors and approvers read), recorded with who did it."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.orm import Session, sessionmaker

from newsletter import users
from newsletter.db import utcnow
from newsletter.settings import Settings
from newsletter.web import create_app, dispose
from newsletter.web.admin import subscribers as screen
from subscribers.lists import create_list
from subscribers.people import NewSubscriber, add, find
from subscribers.report import history
from subscribers.suppressions import is_suppressed
from tests.newsroom import cheap_argon2  # noqa: F401 (a fixture)

pytestmark = pytest.mark.usefixtures("cheap_argon2")
SQLITE_ONLY = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
PASSWORD = "correct horse battery"
TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')
PEOPLE = (
    NewSubscriber("ana@example.org", "Ana Mora", "CR", "es", ("partners",),
                  consent_method="form:2019-10", preconfirm=True),
    NewSubscriber("bob@example.net", "Bob Stone", "NI", "en", preconfirm=True),
    NewSubscriber("carla@example.org", "=HYPERLINK(1)", "", "es-CR", ("alerts",)),
    NewSubscriber("dora.mora@example.com", "Dora", "CR", "en", ("partners",),
                  preconfirm=True),
)


@pytest.fixture
def app(settings: Settings) -> Iterator[Flask]:
    app = create_app(settings)
    yield app
    dispose(app)


@pytest.fixture
def app_sessions(app: Flask) -> sessionmaker[Session]:
    found: sessionmaker[Session] = app.extensions["newsletter"].sessions
    return found


def client_as(app: Flask, sessions: sessionmaker[Session], role: str) -> FlaskClient:
    email = f"{role}@example.org"
    with sessions() as session, session.begin():
        users.add_user(session, email, PASSWORD, role, now=utcnow())
    client = app.test_client()
    client.environ_base.update({"wsgi.url_scheme": "https", "HTTP_HOST": "news.example.org"})
    response = client.post("/admin/login", data={
        "email": email, "password": PASSWORD, "csrf_token": token(client, "/admin/login")})
    assert response.status_code == 303
    return client


def token(client: FlaskClient, path: str = "/admin/subscribers") -> str:
    found = TOKEN.search(client.get(path).text)
    assert found, f"no CSRF token on {path}"
    return found.group(1)


def post(client: FlaskClient, path: str, **data: object) -> tuple[int, str]:
    """POST a form: (status, page); after a 303 (Post/Redirect/Get) the page it leads to."""
    response = client.post(path, data={**data, "csrf_token": token(client)})
    location = response.headers.get("Location")
    if response.status_code == 303 and location:  # done: 303 and the page it leads to
        followed = client.get(location)
        assert followed.status_code == 200, location
        return 303, followed.text
    return response.status_code, response.text


def seed(sessions: sessionmaker[Session]) -> dict[str, int]:
    """PEOPLE added; their ids by address."""
    with sessions() as session, session.begin():
        create_list(session, "partners")
        create_list(session, "alerts", opt_in="double")  # carla: pending
        return {p.email: add(session, p, default_language="en", by="cli").id
                for p in PEOPLE}


def addresses(client: FlaskClient, query: str) -> list[str]:
    text = client.get("/admin/subscribers?" + query).text
    return [p.email for p in PEOPLE if f">{p.email}</a>" in text]


def test_search_filters_paging_and_counts(app: Flask, app_sessions: sessionmaker[Session],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    ids = seed(app_sessions)
    client = client_as(app, app_sessions, "approver")  # reading is for every role
    page = client.get("/admin/subscribers").text
    assert "4 subscribers found; page 1 of 1." in page
    assert f'href="/admin/subscribers/{ids["ana@example.org"]}"' in page
    everyone = [p.email for p in PEOPLE]
    assert addresses(client, "") == everyone
    assert addresses(client, "q=MORA") == ["ana@example.org", "dora.mora@example.com"]
    assert addresses(client, "q=mora+ana") == ["ana@example.org"]  # every word
    assert addresses(client, "q=example.net") == ["bob@example.net"]  # the address
    assert addresses(client, "q=%25") == []  # % is a character, not a wildcard
    assert addresses(client, "country=cr") == ["ana@example.org", "dora.mora@example.com"]
    assert addresses(client, "country=NI,none") == ["bob@example.net", "carla@example.org"]
    assert addresses(client, "language=es") == ["ana@example.org", "carla@example.org"]
    assert addresses(client, "status=pending") == ["carla@example.org"]
    assert addresses(client, "list=partners&language=en") == ["dora.mora@example.com"]
    # the counts: country x language x status of the people the filters select
    counts = client.get("/admin/subscribers?country=CR").text
    section = counts[counts.index("Counts by country"):]
    cells = re.findall(r'<td data-label="[^"]+">([^<]*)</td>', section)
    assert cells == ["CR", "en", "active", "1", "CR", "es", "active", "1"]
    assert "Total: 2 people." in section
    full = client.get("/admin/subscribers").text
    assert "(none)" in full[full.index("Counts by country"):]  # carla has no country
    # the library's message, in the page, with the search kept
    response = client.get("/admin/subscribers?list=nosuch&q=ana")
    assert response.status_code == 400
    assert "no list called &#39;nosuch&#39;" in response.text
    assert 'value="ana"' in response.text
    # paging keeps the search
    monkeypatch.setattr(screen, "PER_PAGE", 1)
    first = client.get("/admin/subscribers?q=mora").text
    assert "2 subscribers found; page 1 of 2." in first
    assert 'href="/admin/subscribers?page=2&amp;q=mora" rel="next"' in first
    assert addresses(client, "q=mora&page=2") == ["dora.mora@example.com"]
    assert addresses(client, "q=mora&page=99") == ["dora.mora@example.com"]  # the last


def test_export_the_current_search_as_csv(app: Flask,
                                          app_sessions: sessionmaker[Session]) -> None:
    seed(app_sessions)
    # the export is personal data leaving: admins only (users.PERMISSIONS)
    editor = client_as(app, app_sessions, "editor")
    page = editor.get("/admin/subscribers?q=example.org&language=es").text
    assert "export.csv" not in page
    assert editor.get("/admin/subscribers/export.csv?q=example.org").status_code == 403
    client = client_as(app, app_sessions, "admin")
    page = client.get("/admin/subscribers?q=example.org&language=es").text
    assert 'href="/admin/subscribers/export.csv?q=example.org&amp;language=es"' in page
    response = client.get("/admin/subscribers/export.csv?q=example.org&language=es")
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert re.fullmatch(r'attachment; filename="subscribers-\d{8}-\d{4}\.csv"',
                        response.headers["Content-Disposition"])
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [r["email"] for r in rows] == ["ana@example.org", "carla@example.org"]
    assert rows[0]["lists"] == "partners"
    assert rows[1]["name"] == "'=HYPERLINK(1)"  # formula-escaped, as the CLI does
    bad = client.get("/admin/subscribers/export.csv?status=gone")
    assert bad.status_code == 400 and "unknown status" in bad.text


def test_a_persons_page(app: Flask, app_sessions: sessionmaker[Session]) -> None:
    ids = seed(app_sessions)
    client = client_as(app, app_sessions, "editor")
    page = client.get(f"/admin/subscribers/{ids['ana@example.org']}").text
    for shown in ("ana@example.org", "Ana Mora", "CR", "partners (confirmed)", "form:2019-10",
                  "subscribed", ">cli<"):
        assert shown in page, shown
    assert "/unsubscribe" not in page and "/suppress" not in page  # editors read
    assert client.get("/admin/subscribers/999999").status_code == 404
    assert client.get("/admin/subscribers/x1").status_code == 404


def test_an_admin_unsubscribes_and_suppresses_after_a_confirmation(
        app: Flask, app_sessions: sessionmaker[Session]) -> None:
    ids = seed(app_sessions)
    ana = ids["ana@example.org"]
    client = client_as(app, app_sessions, "admin")
    page = client.get(f"/admin/subscribers/{ana}").text
    assert "Unsubscribe from everything" in page and "Suppress this address" in page
    code, text = post(client, f"/admin/subscribers/{ana}/unsubscribe")
    assert code == 200 and "Unsubscribe ana@example.org from everything?" in text
    with app_sessions() as session:
        assert find(session, "ana@example.org").status == "active"  # asking changes nothing
    code, text = post(client, f"/admin/subscribers/{ana}/unsubscribe", confirm="yes")
    assert code == 303 and "ana@example.org is unsubscribed." in text
    assert "Suppress this address" in text  # back on the person's page
    code, text = post(client, f"/admin/subscribers/{ana}/suppress")
    assert code == 200 and 'name="reason"' in text
    with app_sessions() as session:
        assert not is_suppressed(session, "ana@example.org")
    code, text = post(client, f"/admin/subscribers/{ana}/suppress", confirm="yes",
                      reason="nosuch")
    assert code == 400 and "reason &#39;nosuch&#39;" in text
    code, text = post(client, f"/admin/subscribers/{ana}/suppress", confirm="yes",
                      reason="complained", note="asked by phone")
    assert code == 303 and "ana@example.org is suppressed" in text
    with app_sessions() as session:
        found = history(session, ana)
    assert found.status == "unsubscribed" and found.suppressed
    assert found.lists == [("partners", "unsubscribed")]
    done = {e.kind: e for e in found.timeline}
    assert done["unsubscribed"].by == "admin@example.org"
    assert "by admin" in done["unsubscribed"].detail
    assert done["suppressed"].by == "admin@example.org"
    assert done["suppressed"].detail == "complained: asked by phone"
    assert "/unsubscribe" not in text and "/suppress" not in text  # nothing left to do
    code, text = post(client, f"/admin/subscribers/{ana}/suppress", confirm="yes")
    assert code == 303 and "already suppressed" in text
    assert "already suppressed" not in client.get(f"/admin/subscribers/{ana}").text  # once


def test_editors_and_approvers_change_nothing(app: Flask,
                                             app_sessions: sessionmaker[Session]) -> None:
    bob = seed(app_sessions)["bob@example.net"]
    for role in ("editor", "approver"):
        client = client_as(app, app_sessions, role)
        for action in ("unsubscribe", "suppress"):
            assert post(client, f"/admin/subscribers/{bob}/{action}",
                        confirm="yes")[0] == 403, (role, action)
    admin = client_as(app, app_sessions, "admin")  # and nobody without the CSRF token
    assert admin.post(f"/admin/subscribers/{bob}/unsubscribe",
                      data={"confirm": "yes"}).status_code == 400
    with app_sessions() as session:
        assert find(session, "bob@example.net").status == "active"
        assert not is_suppressed(session, "bob@example.net")
    for path in ("/admin/subscribers", f"/admin/subscribers/{bob}",
                 "/admin/subscribers/export.csv"):
        assert app.test_client().get(path).status_code == 302  # logged out: the login


@SQLITE_ONLY
def test_the_screen_in_spanish(app: Flask, app_sessions: sessionmaker[Session]) -> None:
    ana = seed(app_sessions)["ana@example.org"]
    client = client_as(app, app_sessions, "admin")
    with app_sessions() as session, session.begin():
        users.set_language(session, "admin@example.org", "es")
    page = client.get("/admin/subscribers").text
    assert "Palabras de la dirección o del nombre" in page and "Descargar como CSV" in page
    page = client.get(f"/admin/subscribers/{ana}").text
    assert "Dar de baja de todo" in page and "Historial" in page
    code, text = post(client, f"/admin/subscribers/{ana}/suppress")
    assert "Suprimir una dirección" in text


FIELDS = ["q", "country", "language", "status", "list", "page"]


@pytest.mark.fuzz
@settings(max_examples=40, deadline=None)
@given(query=st.dictionaries(st.sampled_from(FIELDS), st.text(max_size=60)),
       form=st.dictionaries(st.sampled_from(["confirm", "reason", "note"]),
                            st.text(max_size=100)),
       raw_id=st.text(max_size=14))
def test_no_search_or_form_ends_in_a_server_error(
        app: Flask, app_sessions: sessionmaker[Session], query: dict[str, str],
        form: dict[str, str], raw_id: str) -> None:
    client = app.extensions.get("test-subscribers-client")
    if client is None:
        seed(app_sessions)
        client = app.extensions["test-subscribers-client"] = client_as(
            app, app_sessions, "admin")
    for path in ("/admin/subscribers", "/admin/subscribers/export.csv"):
        response = client.get(path, query_string=query)
        assert response.status_code in (200, 400), (path, response.status_code)
        assert "Traceback" not in response.text
    response = client.get("/admin/subscribers/" + raw_id.replace("/", "").replace("?", ""))
    assert response.status_code in (200, 302, 308, 404), response.status_code
    csrf = token(client)
    with app_sessions() as session:
        target = find(session, "bob@example.net").id
    for action in ("unsubscribe", "suppress"):
        response = client.post(f"/admin/subscribers/{target}/{action}",
                               data={**form, "csrf_token": csrf})
        assert response.status_code in (200, 400), (action, response.status_code)
        assert "Traceback" not in response.text
