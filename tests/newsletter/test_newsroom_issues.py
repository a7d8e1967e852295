"""The newsroom's Issues screen through Flask's test client, on both databases: the
calendar, creating an issue (from a window, from a series), one issue's page, choosing and
ordering its items, its texts (and the approval a change withdraws), the preview."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date, datetime, timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from newsletter import approval, users
from newsletter.cli.demo import sample_items_text
from newsletter.db import utcnow
from newsletter.ingest.text import parse_text
from newsletter.issue_edits import item_ids
from newsletter.issues import create_issue, get_issue, targets_of
from newsletter.items import list_items, store_items
from newsletter.models import Delivery
from newsletter.schedules import schedule_issue
from newsletter.series import SeriesSpec, create_series
from newsletter.settings import Settings
from newsletter.web import create_app, dispose
from subscribers.filters import Filter
from subscribers.importer import import_csv
from subscribers.lists import create_list
from subscribers.people import update_subscriber
from subscribers.segments import create_segment
from tests.newsroom import cheap_argon2  # noqa: F401 (a fixture)
from worker.delivery import plan_issue

pytestmark = pytest.mark.usefixtures("cheap_argon2")
SQLITE_ONLY = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
PASSWORD = "correct horse battery"
TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')
PEOPLE = "email,country,language\nana@example.org,CR,es\npepa@example.org,PA,es\n" \
         "joe@example.org,US,en\n"


@pytest.fixture
def app(settings: Settings) -> Iterator[Flask]:
    app = create_app(settings)
    yield app
    dispose(app)


@pytest.fixture
def db(app: Flask, settings: Settings) -> sessionmaker[Session]:
    """The app's sessions, with the sample items, three subscribers, issue w49 (the
    October items) and two users: an editor and an approver."""
    found: sessionmaker[Session] = app.extensions["newsletter"].sessions
    with found() as session, session.begin():
        store_items(session, parse_text(sample_items_text(), "sample"))
        import_csv(session, PEOPLE, default_language=settings.default_language)
        create_issue(session, "w49", date(2019, 10, 1), date(2019, 10, 31))
        users.add_user(session, "ed@example.org", PASSWORD, "editor", name="Ed Soto",
                       now=utcnow())
        users.add_user(session, "apo@example.org", PASSWORD, "approver", name="Apo Ruiz",
                       now=utcnow())
    return found


def client_of(app: Flask) -> FlaskClient:
    client = app.test_client()
    client.environ_base.update({"wsgi.url_scheme": "https", "HTTP_HOST": "news.example.org"})
    return client


def token(client: FlaskClient, path: str = "/admin/login") -> str:
    found = TOKEN.search(client.get(path).text)
    assert found, f"no CSRF token on {path}"
    return found.group(1)


def logged_in(app: Flask, email: str = "ed@example.org") -> tuple[FlaskClient, str]:
    client = client_of(app)
    response = client.post("/admin/login", data={
        "email": email, "password": PASSWORD, "csrf_token": token(client)})
    assert response.status_code == 303
    return client, token(client, "/admin/")


def in_issue(sessions: sessionmaker[Session], slug: str = "w49") -> list[int]:
    with sessions() as session:
        return item_ids(get_issue(session, slug))


def titles(sessions: sessionmaker[Session]) -> dict[str, int]:
    with sessions() as session:
        return {item.title.split()[0]: item.id for item in list_items(session)}


def test_calendar_create_and_the_issue_page(app: Flask, db: sessionmaker[Session]) -> None:
    assert client_of(app).get("/admin/issues").status_code == 302  # to the login
    client, csrf = logged_in(app)
    page = client.get("/admin/issues")
    assert page.status_code == 200 and "w49" in page.text
    assert 'href="/admin/issues"' in client.get("/admin/").text  # in the main menu now
    response = client.post("/admin/issues/create", data={
        "csrf_token": csrf, "slug": "2019-10", "from": "2019-10-01", "to": "2019-10-31",
        "title-es": "Boletín de octubre", "intro-en": "Hello all.", "focus": "only",
        "approval": "required"})
    assert response.status_code == 303
    assert response.headers["Location"].endswith("/admin/issues/2019-10")
    page = client.get(response.headers["Location"])
    assert "Issue created." in page.text and "Boletín de octubre" in page.text
    assert "Issue created." not in client.get("/admin/issues/2019-10").text  # shown once
    assert "3 subscribers" in page.text  # the audience count
    assert "needs submitting" in client.get("/admin/issues").text
    with db() as session:
        issue = get_issue(session, "2019-10")
        assert (issue.titles, issue.intros, issue.focus, issue.approval) == (
            {"es": "Boletín de octubre"}, {"en": "Hello all."}, "only", "required")
        assert len(issue.entries) == 4
    # the preview, and the sending screen's pages (newsletter/web/admin/sending.py)
    assert 'href="/admin/issues/2019-10/preview"' in page.text
    assert 'href="/admin/issues/2019-10/review"' in page.text
    assert client.get("/admin/issues/nosuch").status_code == 404
    approver, _ = logged_in(app, "apo@example.org")  # every role builds issues
    assert approver.get("/admin/issues/2019-10").status_code == 200


def test_a_refused_creation_keeps_the_form(app: Flask, db: sessionmaker[Session]) -> None:
    client, csrf = logged_in(app)
    form = {"csrf_token": csrf, "slug": "w49", "from": "2019-10-01", "to": "2019-10-31",
            "title": "Kept title"}
    page = client.post("/admin/issues/create", data=form)
    assert page.status_code == 400 and "w49" in page.text and 'role="alert"' in page.text
    assert 'value="Kept title"' in page.text
    page = client.post("/admin/issues/create", data={**form, "slug": "x", "from": "soon"})
    assert page.status_code == 400 and "YYYY-MM-DD" in page.text
    page = client.post("/admin/issues/create", data={**form, "slug": "x",
                                                     "approval": "maybe"})
    assert page.status_code == 400 and "none or required" in page.text
    assert client.post("/admin/issues/create", data={**form, "csrf_token": ""}
                       ).status_code == 400
    with db() as session:
        assert get_issue(session, "w49").title == ""


def test_up_down_remove_add(app: Flask, db: sessionmaker[Session]) -> None:
    ids = titles(db)
    mobile, leaders, youth, study = (ids[w] for w in ("Mobile", "Community", "Youth", "Study"))
    client, csrf = logged_in(app)

    def act(action: str, item: int) -> str:
        response = client.post("/admin/issues/w49/items", data={
            "csrf_token": csrf, "action": action, "item": str(item)})
        assert response.status_code == 303, response.text
        assert response.headers["Location"].endswith("/admin/issues/w49#items")
        return client.get(response.headers["Location"]).text

    act("down", mobile)
    assert in_issue(db) == [leaders, mobile, youth, study]
    act("up", study)
    assert in_issue(db) == [leaders, mobile, study, youth]
    assert "Nothing changed." in act("up", leaders)  # the first stays first
    assert in_issue(db) == [leaders, mobile, study, youth]
    act("remove", youth)
    assert in_issue(db) == [leaders, mobile, study]
    page = client.get("/admin/issues/w49?q=shelter")
    assert "Shelter" in page.text and "Mobile" not in page.text.split('id="add"')[1]
    text = act("add", ids["Shelter"])
    assert in_issue(db) == [leaders, mobile, study, ids["Shelter"]]
    assert "items changed: added" in text
    refused = client.post("/admin/issues/w49/items", data={
        "csrf_token": csrf, "action": "remove", "item": str(ids["Teachers"])})
    assert refused.status_code == 400 and "is not in issue" in refused.text
    refused = client.post("/admin/issues/w49/items", data={
        "csrf_token": csrf, "action": "remove", "item": "many"})
    assert refused.status_code == 400 and "No such item." in refused.text
    for wrong in ("down", "up"):  # an item not in the issue
        refused = client.post("/admin/issues/w49/items", data={
            "csrf_token": csrf, "action": wrong, "item": str(ids["Teachers"])})
        assert refused.status_code == 400
    assert in_issue(db) == [leaders, mobile, study, ids["Shelter"]]


def test_a_change_withdraws_the_approval_loudly(app: Flask, db: sessionmaker[Session]) -> None:
    with db() as session, session.begin():
        issue = get_issue(session, "w49")
        issue.approval = "required"
        approval.submit(session, issue, "Ed Soto", now=utcnow())
        approval.approve(session, issue, "Apo Ruiz", now=utcnow())
    client, csrf = logged_in(app)
    page = client.get("/admin/issues/w49")
    assert "Approval history" in page.text and "Apo Ruiz" in page.text
    assert "Saving a change withdraws" in page.text
    response = client.post("/admin/issues/w49/edit", data={
        "csrf_token": csrf, "title": "", "title-es": "Octubre", "intro-fr": "Bonjour",
        "focus": "none"})
    assert response.status_code == 303
    assert response.headers["Location"].endswith("/admin/issues/w49")
    page = client.get(response.headers["Location"])
    assert "Approval withdrawn: This issue was approved." in page.text
    assert "must be submitted and approved again" in page.text
    assert "Saved: title changed (es); introduction changed (fr); country focus changed: " \
        "first -&gt; none." in page.text
    with db() as session:
        issue = get_issue(session, "w49")
        assert (issue.titles, issue.intros, issue.focus, issue.review) == (
            {"es": "Octubre"}, {"fr": "Bonjour"}, "none", "")
        assert approval.history(session, issue)[-1].by == "Ed Soto <ed@example.org>"
    again = client.post("/admin/issues/w49/edit", data={
        "csrf_token": csrf, "title": "", "title-es": "Octubre", "intro-fr": "Bonjour",
        "focus": "none"}, follow_redirects=True)
    assert "Nothing changed." in again.text and "Approval withdrawn" not in again.text
    refused = client.post("/admin/issues/w49/edit", data={
        "csrf_token": csrf, "title-es": "x", "focus": "everywhere"})
    assert refused.status_code == 400 and 'value="x"' in refused.text


def test_a_scheduled_issue_is_planned_again(app: Flask, db: sessionmaker[Session],
                                            settings: Settings) -> None:
    with db() as session, session.begin():
        issue = get_issue(session, "w49")
        schedule_issue(session, issue, at=utcnow() + timedelta(days=2), timezone="UTC",
                       now=utcnow())
        before = plan_issue(settings, session, issue)
    assert before == 3
    ids = titles(db)
    client, csrf = logged_in(app)
    # the Mobile item is the one about Costa Rica: without it, es-CR readers change variant
    response = client.post("/admin/issues/w49/items", data={
        "csrf_token": csrf, "action": "remove", "item": str(ids["Mobile"])})
    assert response.status_code == 303
    page = client.get(response.headers["Location"])
    assert "3 planned deliveries dropped, 3 planned again for the schedule." in page.text
    with db() as session:
        assert session.scalar(select(func.count()).select_from(Delivery)) == 3
        assert get_issue(session, "w49").status == "scheduled"


def test_the_audience_is_chosen_from_the_lists_and_segments_there_are(
        app: Flask, db: sessionmaker[Session]) -> None:
    with db() as session, session.begin():
        create_list(session, "partners")
        create_list(session, "alerts")
        update_subscriber(session, "ana@example.org", add_lists=("partners",),
                          default_language="en")
        create_segment(session, "english", Filter(languages=("en",)))
        issue = get_issue(session, "w49")
        issue.approval = "required"
        approval.submit(session, issue, "Ed Soto", now=utcnow())
    client, csrf = logged_in(app)
    page = client.get("/admin/issues/w49").text
    for kind, name in (("list", "alerts"), ("list", "partners"), ("segment", "english")):
        assert f'<input type="checkbox" name="{kind}" value="{name}">' in page  # none checked
    response = client.post("/admin/issues/w49/audience", data={
        "csrf_token": csrf, "list": "partners", "segment": "english"})
    assert response.status_code == 303
    assert response.headers["Location"].endswith("/admin/issues/w49#audience")
    page = client.get(response.headers["Location"]).text
    assert "Saved: audience changed: list partners, segment english." in page
    assert "Approval withdrawn: This issue was in review." in page
    # ana (list partners) and joe (segment english)
    assert "Audience now: 2 subscribers." in page
    assert '<input type="checkbox" name="list" value="partners" checked>' in page
    assert '<input type="checkbox" name="list" value="alerts">' in page
    with db() as session:
        issue = get_issue(session, "w49")
        assert targets_of(session, issue) == (["partners"], ["english"])
        assert issue.review == ""
    # none checked: everyone
    page = client.post("/admin/issues/w49/audience", data={"csrf_token": csrf},
                       follow_redirects=True).text
    assert "Audience now: 3 subscribers." in page
    # a list deleted meanwhile: the form comes back with what was checked, and why
    refused = client.post("/admin/issues/w49/audience", data={
        "csrf_token": csrf, "list": ["alerts", "gone"]})
    assert refused.status_code == 400 and "gone" in refused.text
    assert '<input type="checkbox" name="list" value="alerts" checked>' in refused.text
    with db() as session, session.begin():
        get_issue(session, "w49").status = "sent"
    refused = client.post("/admin/issues/w49/audience", data={
        "csrf_token": csrf, "list": "alerts"})
    assert refused.status_code == 400 and "it was sent" in refused.text
    with db() as session:
        assert targets_of(session, get_issue(session, "w49")) == ([], [])


def test_a_sent_issue_cannot_change(app: Flask, db: sessionmaker[Session]) -> None:
    with db() as session, session.begin():
        get_issue(session, "w49").status = "sent"
    client, csrf = logged_in(app)
    page = client.get("/admin/issues/w49")
    assert "can no longer be changed" in page.text and 'value="remove"' not in page.text
    refused = client.post("/admin/issues/w49/edit", data={"csrf_token": csrf,
                                                          "title": "Late"})
    assert refused.status_code == 400 and "it was sent" in refused.text


def test_the_preview(app: Flask, db: sessionmaker[Session]) -> None:
    client, _ = logged_in(app)
    page = client.get("/admin/issues/w49/preview")
    assert page.status_code == 200
    assert "frame-src 'self'" in page.headers["Content-Security-Policy"]
    for label in ("en-regional", "es-CR", "es-PA"):
        assert f'src="/admin/issues/w49/preview/{label}.html"' in page.text
    assert 'sandbox=""' in page.text and 'width="375"' in page.text
    assert "Text version" in page.text
    frame = client.get("/admin/issues/w49/preview/es-CR.html")
    assert frame.status_code == 200 and "<html" in frame.text.lower()
    policy = frame.headers["Content-Security-Policy"]
    assert "sandbox" in policy and "script-src" not in policy and "frame-ancestors 'self'" in policy
    assert frame.headers["X-Frame-Options"] == "SAMEORIGIN"
    assert client.get("/admin/issues/w49/preview/xx-ZZ.html").status_code == 404
    assert client.get("/admin/issues/nosuch/preview").status_code == 404
    # every other page keeps the strict policy
    assert client.get("/admin/issues/w49").headers["X-Frame-Options"] == "DENY"


@SQLITE_ONLY
def test_build_a_series_issue(app: Flask, db: sessionmaker[Session],
                              settings: Settings) -> None:
    with db() as session, session.begin():
        create_series(session, SeriesSpec("octubre", "UTC", every="monthly on the 1st at 09:00"),
                      languages=settings.languages, now=datetime(2019, 10, 1))
    client, csrf = logged_in(app)
    assert 'name="series"' in client.get("/admin/issues").text
    response = client.post("/admin/issues/build", data={
        "csrf_token": csrf, "series": "octubre", "day": "2019-10-15"})
    assert response.status_code == 303, response.text
    slug = response.headers["Location"].split("/admin/issues/")[1]
    page = client.get(response.headers["Location"])
    assert "Issue built from its series." in page.text and "octubre" in page.text
    again = client.post("/admin/issues/build", data={
        "csrf_token": csrf, "series": "octubre", "day": "2019-10-15"})
    assert again.headers["Location"].endswith(f"/admin/issues/{slug}")
    assert "That period&#39;s issue was built before: here it is." in \
        client.get(again.headers["Location"]).text
    refused = client.post("/admin/issues/build", data={
        "csrf_token": csrf, "series": "nosuch", "day": ""})
    assert refused.status_code == 400 and "nosuch" in refused.text
    # a period with too few items: nothing built, and the notice says why
    skipped = client.post("/admin/issues/build", data={
        "csrf_token": csrf, "series": "octubre", "day": "2019-12-15"})
    assert skipped.status_code == 303 and skipped.headers["Location"].endswith("/admin/issues")
    assert "Series octubre: nothing built (0 items between 2019-12-01 and 2019-12-31" in \
        client.get(skipped.headers["Location"]).text


@SQLITE_ONLY
def test_the_issue_page_links_the_sending_pages_each_role_may_open(
        app: Flask, db: sessionmaker[Session]) -> None:
    """An editor is not shown Schedule and Send (approvers' pages, 403 for them); an
    approver is shown every page, and each linked page opens."""
    client, _ = logged_in(app)
    page = client.get("/admin/issues/w49").text
    for path in ("review", "test-send", "progress"):
        assert f'href="/admin/issues/w49/{path}"' in page
        assert client.get(f"/admin/issues/w49/{path}").status_code == 200, path
    for path in ("schedule", "send"):
        assert f'href="/admin/issues/w49/{path}"' not in page
        assert client.get(f"/admin/issues/w49/{path}").status_code == 403, path
    with db() as session, session.begin():
        users.set_role(session, "ed@example.org", "approver")
    # a new role ends the user's sessions: they log in again, as an approver
    assert client.get("/admin/issues/w49").status_code == 302
    client, _ = logged_in(app)
    page = client.get("/admin/issues/w49").text
    for path in ("review", "test-send", "schedule", "send", "progress"):
        assert f'href="/admin/issues/w49/{path}"' in page
        assert client.get(f"/admin/issues/w49/{path}").status_code == 200, path


@SQLITE_ONLY
def test_spanish_interface(app: Flask, db: sessionmaker[Session]) -> None:
    with db() as session, session.begin():
        users.set_language(session, "ed@example.org", "es")
    client, _ = logged_in(app)
    assert "Crear boletín" in client.get("/admin/issues").text
    page = client.get("/admin/issues/w49").text
    assert "4 noticias" in page and "3 suscriptores" in page
    assert "Vista previa de cada variante" in client.get("/admin/issues/w49").text


def test_a_refused_change_speaks_the_editors_language(app: Flask,
                                                       db: sessionmaker[Session]) -> None:
    """The library's translatable errors are shown translated (core.explain), without
    the CLI's hint."""
    with db() as session, session.begin():
        users.set_language(session, "ed@example.org", "es")
    client, csrf = logged_in(app)
    refused = client.post("/admin/issues/w49/items", data={
        "csrf_token": csrf, "action": "add", "item": "999999"})
    assert refused.status_code == 400
    assert "no existe la noticia 999999" in refused.text
    assert "no item" not in refused.text and "items list" not in refused.text


TEXT = st.text(max_size=40)


@pytest.mark.fuzz
@SQLITE_ONLY
@hypothesis_settings(max_examples=40, deadline=None,
                     suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(slug=TEXT, start=TEXT, end=TEXT, title=TEXT, lists=TEXT, focus=TEXT, policy=TEXT,
       action=TEXT, item=TEXT, query=TEXT, country=TEXT)
def test_no_form_ends_in_a_500(app: Flask, db: sessionmaker[Session], slug: str, start: str,
                               end: str, title: str, lists: str, focus: str, policy: str,
                               action: str, item: str, query: str, country: str) -> None:
    client, csrf = logged_in(app)
    codes = [
        client.post("/admin/issues/create", data={
            "csrf_token": csrf, "slug": slug, "from": start, "to": end, "title": title,
            "lists": lists, "focus": focus, "approval": policy}).status_code,
        client.post("/admin/issues/build", data={
            "csrf_token": csrf, "series": slug, "day": start}).status_code,
        client.post("/admin/issues/w49/items", data={
            "csrf_token": csrf, "action": action, "item": item}).status_code,
        client.post("/admin/issues/w49/edit", data={
            "csrf_token": csrf, "title": title, "title-es": query, "intro": lists,
            "focus": focus}).status_code,
        client.post("/admin/issues/w49/audience", data={
            "csrf_token": csrf, "list": [lists, title], "segment": query}).status_code,
        client.get("/admin/issues/w49", query_string={
            "q": query, "since": start, "until": end, "country": country}).status_code,
    ]
    assert all(code < 500 for code in codes), codes
