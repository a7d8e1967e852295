"""Sending an issue in the newsroom (newsletter/web/admin/sending.py) through Flask's test
client, on both databases: review with the roles and the own-issue rule, schedule and
unschedule with the zone report, send now (on a background thread: no broker here),
progress as a page and as JSON, pause / resume / cancel / retry, a test-send to the
logged-in user, and insecure SMTP settings refused."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import date, timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from newsletter import users
from newsletter.cli.demo import sample_items_text
from newsletter.db import utcnow
from newsletter.ingest.text import parse_text
from newsletter.issues import create_issue, get_issue
from newsletter.items import store_items
from newsletter.settings import DEV_SECRET, Settings
from newsletter.web import create_app, dispose
from subscribers.models import Subscriber
from subscribers.people import NewSubscriber, add
from tests.newsroom import cheap_argon2  # noqa: F401 (a fixture)
from worker import background, ledger

pytestmark = pytest.mark.usefixtures("cheap_argon2")
SQLITE_ONLY = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
PASSWORD = "correct horse battery"
TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')
SLUG = "w49"
BASE = f"/admin/issues/{SLUG}"


@pytest.fixture
def app(settings: Settings) -> Iterator[Flask]:
    app = create_app(settings)
    yield app
    assert background.join_all(30)
    background.forget_runtime()
    dispose(app)


@pytest.fixture
def db(app: Flask) -> sessionmaker[Session]:
    found: sessionmaker[Session] = app.extensions["newsletter"].sessions
    with found() as session, session.begin():
        for email, role, name in (("ed@example.org", "editor", "Ed Soto"),
                                  ("ana@example.org", "approver", "Ana Mora"),
                                  ("root@example.org", "admin", "")):
            users.add_user(session, email, PASSWORD, role, name=name, now=utcnow())
        store_items(session, parse_text(sample_items_text(), "sample"))
        create_issue(session, SLUG, date(2019, 9, 1), date(2019, 10, 31)).approval = "required"
        for email, country, language in (("zoe@example.org", "CR", "es"),
                                         ("li@example.org", "US", "en"),
                                         ("mo@example.org", "MX", "es")):
            add(session, NewSubscriber(email, country=country, language=language),
                default_language="en")
    return found


def client_as(app: Flask, email: str) -> FlaskClient:
    client = app.test_client()
    client.environ_base.update({"wsgi.url_scheme": "https", "HTTP_HOST": "news.example.org"})
    response = client.post("/admin/login", data={
        "email": email, "password": PASSWORD, "csrf_token": token(client, "/admin/login")})
    assert response.status_code == 303
    return client


def token(client: FlaskClient, path: str) -> str:
    found = TOKEN.search(client.get(path).text)
    assert found, f"no CSRF token on {path}"
    return found.group(1)


def post(client: FlaskClient, path: str, **form: str) -> tuple[int, str]:
    """POST a form: (status, page); after a 303 (Post/Redirect/Get) the page it leads to."""
    response = client.post(path, data={**form, "csrf_token": token(client, "/admin/account")})
    location = response.headers.get("Location")
    if response.status_code == 303 and location:  # done: 303 and the page it leads to
        followed = client.get(location)
        assert followed.status_code == 200, location
        return 303, followed.text
    return response.status_code, response.text


def state(db: sessionmaker[Session]) -> tuple[str, str]:
    with db() as session:
        issue = get_issue(session, SLUG)
        return issue.status, issue.review


def approve(app: Flask) -> None:
    assert post(client_as(app, "ed@example.org"), f"{BASE}/review", action="submit")[0] == 303
    assert post(client_as(app, "ana@example.org"), f"{BASE}/review", action="approve")[0] == 303


def test_review_roles_own_issue_and_history(app: Flask, db: sessionmaker[Session]) -> None:
    ed, ana = client_as(app, "ed@example.org"), client_as(app, "ana@example.org")
    page = ed.get(f"{BASE}/review").text
    assert '<label for="note">' in page and "Submit for approval" in page
    assert ">Approve<" not in page  # an editor is not offered approval
    assert post(ed, f"{BASE}/review", action="approve")[0] == 403
    code, html = post(ed, f"{BASE}/review", action="submit", note="ready")
    assert code == 303 and "Submitted for approval." in html
    assert "Submitted for approval." not in ed.get(f"{BASE}/review").text  # shown once
    assert state(db) == ("draft", "in_review")
    # Ana submits it again: already in review, shown in the page with the note kept
    code, html = post(ana, f"{BASE}/review", action="submit", note="mine")
    assert code == 400 and "already in review" in html and ">mine</textarea>" in html
    code, html = post(ana, f"{BASE}/review", action="reject", note="")
    assert code == 400 and "a rejection needs a note: say what has to change" in html
    assert "--note" not in html  # the CLI's option is the CLI's hint
    code, html = post(ana, f"{BASE}/review", action="reject", note="fix the title")
    assert code == 303 and "Rejected; the note says why." in html
    assert state(db) == ("draft", "rejected")
    # Ana submits the changed issue: she cannot approve it herself, Ed cannot at all
    assert post(ana, f"{BASE}/review", action="submit")[0] == 303
    code, html = post(ana, f"{BASE}/review", action="approve")
    assert code == 400 and "nobody approves their own issue" in html
    assert "You submitted this issue" in ana.get(f"{BASE}/review").text
    root = client_as(app, "root@example.org")
    code, html = post(root, f"{BASE}/review", action="approve", note="ok")
    assert code == 303 and "Approved." in html
    assert state(db) == ("draft", "approved")
    history = root.get(f"{BASE}/review").text
    assert [m for m in ("Ed Soto", "Ana Mora", "root@example.org", "fix the title")
            if m not in history] == []
    assert client_as(app, "ed@example.org").get("/admin/issues/nope/review").status_code == 404


def test_the_submitter_or_an_approver_withdraws(app: Flask, db: sessionmaker[Session]) -> None:
    """`issues withdraw` in the review page: back to not submitted, recorded in the
    history; for whoever submitted it or an approver, not for another editor."""
    ed, ana = client_as(app, "ed@example.org"), client_as(app, "ana@example.org")
    with app.extensions["newsletter"].sessions() as session, session.begin():
        users.add_user(session, "flo@example.org", PASSWORD, "editor", name="Flo",
                       now=utcnow())
    flo = client_as(app, "flo@example.org")
    assert ">Withdraw<" not in ed.get(f"{BASE}/review").text  # nothing submitted yet
    code, html = post(ana, f"{BASE}/review", action="withdraw")
    assert code == 400 and "has not been submitted: there is nothing to withdraw" in html
    assert post(ed, f"{BASE}/review", action="submit")[0] == 303
    assert ">Withdraw<" not in flo.get(f"{BASE}/review").text
    assert post(flo, f"{BASE}/review", action="withdraw")[0] == 403
    assert state(db) == ("draft", "in_review")
    assert ">Withdraw<" in ed.get(f"{BASE}/review").text
    code, html = post(ed, f"{BASE}/review", action="withdraw", note="one more item")
    assert code == 303 and "Withdrawn: the issue is not submitted any more" in html
    assert state(db) == ("draft", "")
    assert "withdrawn" in html and "one more item" in html  # in the history
    # an approver withdraws an approval (someone else's submission)
    assert post(ed, f"{BASE}/review", action="submit")[0] == 303
    assert post(ana, f"{BASE}/review", action="approve")[0] == 303
    assert ">Withdraw<" in ana.get(f"{BASE}/review").text
    assert post(ana, f"{BASE}/review", action="withdraw")[0] == 303
    assert state(db) == ("draft", "")


def test_the_review_page_offers_only_the_steps_the_user_may_take(
        app: Flask, db: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch) -> None:
    """Each link after approval needs its own permission (no role tells them apart
    today, so the test gives "issues.send" to admins only); an issue that went out or
    was cancelled offers no Submit (the library refuses it)."""
    approve(app)
    monkeypatch.setitem(users.PERMISSIONS, "issues.send", ("admin",))
    ana = client_as(app, "ana@example.org")
    page = ana.get(f"{BASE}/review").text
    assert "Choose when it goes out" in page and "Send it now" not in page
    monkeypatch.setitem(users.PERMISSIONS, "issues.send", ("approver", "admin"))
    monkeypatch.setitem(users.PERMISSIONS, "issues.schedule", ("admin",))
    page = ana.get(f"{BASE}/review").text
    assert "Choose when it goes out" not in page and "Send it now" in page
    monkeypatch.undo()
    ed = client_as(app, "ed@example.org")
    for status in ("sent", "cancelled"):
        with db() as session, session.begin():
            issue = get_issue(session, SLUG)
            issue.status, issue.review = status, ""
        assert "Submit for approval" not in ed.get(f"{BASE}/review").text, status
        assert post(ed, f"{BASE}/review", action="submit")[0] == 400
    with db() as session, session.begin():
        get_issue(session, SLUG).status = "draft"
    assert "Submit for approval" in ed.get(f"{BASE}/review").text


def test_schedule_zone_report_and_unschedule(app: Flask, db: sessionmaker[Session]) -> None:
    ana = client_as(app, "ana@example.org")
    assert client_as(app, "ed@example.org").get(f"{BASE}/schedule").status_code == 403
    day = (utcnow() + timedelta(days=3)).date().isoformat()
    code, html = post(ana, f"{BASE}/schedule", action="schedule", mode="local", day=day,
                      time="09:00", zone="America/Costa_Rica")
    assert code == 303 and "Scheduled." in html and "3 deliveries planned." in html
    assert "America/Mexico_City" in html and "America/Costa_Rica" in html
    assert "US has" in html  # a country of several zones, and the one its people get
    assert "Not approved yet" in html
    again = ana.get(f"{BASE}/schedule").text  # the page keeps the report, not the notice
    assert "Scheduled." not in again and "3 deliveries planned." in again
    assert "America/Mexico_City" in again and "US has" in again
    with db() as session:
        issue = get_issue(session, SLUG)
        assert (issue.status, issue.send_local_time) == ("scheduled", "09:00")
        assert ledger.total(session, issue.id) == 3
    past = (utcnow() - timedelta(days=2)).date().isoformat()
    code, html = post(ana, f"{BASE}/schedule", action="schedule", mode="at", day=past,
                      time="09:00", zone="UTC")
    assert code == 400 and "in the past" in html and f'value="{past}"' in html
    code, html = post(ana, f"{BASE}/schedule", action="schedule", mode="at", day=day,
                      time="09:00", zone="Mars/Olympus")
    assert code == 400 and "Mars/Olympus" in html
    # the send page refuses a schedule still ahead
    assert "unschedule it first" in ana.get(f"{BASE}/send").text
    code, html = post(ana, f"{BASE}/schedule", action="unschedule")
    assert code == 303 and "3 planned deliveries removed" in html
    assert "deliveries planned" not in html and "Not scheduled" in html
    assert state(db)[0] == "draft"


def test_send_now_in_the_background_and_progress(app: Flask, db: sessionmaker[Session],
                                                 settings: Settings) -> None:
    ana = client_as(app, "ana@example.org")
    confirm = ana.get(f"{BASE}/send").text
    assert "needs approval" in confirm and "Send to 3" not in confirm
    assert post(ana, f"{BASE}/send", confirm="yes")[0] == 400
    approve(app)
    confirm = ana.get(f"{BASE}/send").text
    assert "It goes to 3 subscribers" in confirm and "Send to 3 subscribers now" in confirm
    assert re.search(r"<strong>2</strong>es", confirm)
    assert client_as(app, "ed@example.org").get(f"{BASE}/send").status_code == 403
    response = ana.post(f"{BASE}/send", data={"confirm": "yes",
                                              "csrf_token": token(ana, f"{BASE}/send")})
    assert response.status_code == 303 and "/progress" in response.headers["Location"]
    assert background.join_all(30)
    progress = json.loads(ana.get(f"{BASE}/progress.json").text)
    assert progress["status"] == "sent" and progress["counts"]["sent"] == 3
    assert (progress["total"], progress["done"]) == (3, 3)
    page = ana.get(f"{BASE}/progress")
    assert page.status_code == 200 and 'data-field="status" role="status">sent<' in page.text
    assert "sending.js" in page.text and ">Refresh</a>" in page.text
    assert len(list((settings.resolved_outbox_dir).rglob("*.eml"))) == 3
    # sending again finds nobody new; cancel of a sent issue is refused in the page
    code, html = post(ana, f"{BASE}/control", action="cancel", confirm="yes")
    assert code == 400 and "already sent" in html
    script = ana.get("/admin/static/sending.js")
    assert script.status_code == 200 and "progress" in script.text


def test_pause_resume_cancel_retry(app: Flask, db: sessionmaker[Session]) -> None:
    approve(app)
    ana = client_as(app, "ana@example.org")
    code, html = post(ana, f"{BASE}/control", action="pause")
    assert code == 400 and "only an issue that is sending can become paused" in html
    with db() as session, session.begin():
        get_issue(session, SLUG).status = "sending"
    code, html = post(ana, f"{BASE}/control", action="pause")
    assert code == 303 and "Paused: messages in flight finish" in html
    assert state(db)[0] == "paused"
    assert "resume it first" in ana.get(f"{BASE}/send").text
    code, html = post(ana, f"{BASE}/control", action="resume")
    assert code == 303 and "Resumed." in html
    assert background.join_all(30)
    assert state(db)[0] == "sent"  # nothing was planned: nothing left to send
    code, html = post(ana, f"{BASE}/control", action="retry", status="bounced")
    assert code == 400 and "Retry deferred or failed" in html
    code, html = post(ana, f"{BASE}/control", action="retry", status="failed")
    assert code == 303 and "Retrying 0 messages." in html
    assert background.join_all(30)
    with db() as session, session.begin():
        get_issue(session, SLUG).status = "sending"
    asked = post(ana, f"{BASE}/control", action="cancel")
    assert asked[0] == 200 and 'name="confirm" value="yes"' in asked[1]
    assert state(db)[0] != "cancelled"  # asking changes nothing
    code, html = post(ana, f"{BASE}/control", action="cancel", confirm="yes")
    assert code == 303 and "Cancelled: 0 messages will not go out." in html
    assert state(db)[0] == "cancelled"
    assert post(client_as(app, "ed@example.org"), f"{BASE}/control",
                action="pause")[0] == 403


@SQLITE_ONLY
def test_test_send_to_yourself(app: Flask, db: sessionmaker[Session],
                               settings: Settings) -> None:
    ed = client_as(app, "ed@example.org")
    page = ed.get(f"{BASE}/test-send").text
    assert '<label for="variant">' in page and '<option value="es-CR">' in page
    code, html = post(ed, f"{BASE}/test-send", variant="es-CR")
    assert code == 303 and "es-CR sent to ed@example.org." in html
    assert '<option value="es-CR" selected>' in html  # the variant sent stays chosen
    sent = [p.read_text() for p in settings.resolved_outbox_dir.rglob("*.eml")]
    assert len(sent) == 1 and "[TEST es-CR]" in sent[0] and "ed@example.org" in sent[0]
    code, html = post(ed, f"{BASE}/test-send", variant="xx-YY")
    assert code == 400 and "Choose one of the variants listed." in html


@SQLITE_ONLY
def test_insecure_smtp_settings_are_refused(settings: Settings) -> None:
    unsafe = settings.model_copy(update={
        "smtp_url": "smtp://127.0.0.1:1", "secret_key": DEV_SECRET,
        "public_base_url": "http://localhost:8000"})
    app = create_app(unsafe)
    try:
        with app.extensions["newsletter"].sessions() as session, session.begin():
            users.add_user(session, "ana@example.org", PASSWORD, "admin", now=utcnow())
            store_items(session, parse_text(sample_items_text(), "sample"))
            create_issue(session, SLUG, date(2019, 9, 1), date(2019, 10, 31))
        client = app.test_client()
        client.post("/admin/login", data={"email": "ana@example.org", "password": PASSWORD,
                                          "csrf_token": token(client, "/admin/login")})
        assert "development default" in client.get(f"{BASE}/send").text
        code, html = post(client, f"{BASE}/send", confirm="yes")
        assert code == 400 and "development default" in html
        code, html = post(client, f"{BASE}/test-send", variant="en-regional")
        assert code == 400 and "development default" in html
    finally:
        background.forget_runtime()
        dispose(app)


@SQLITE_ONLY
@pytest.mark.fuzz
@given(form=st.dictionaries(
    st.sampled_from(["action", "note", "mode", "day", "time", "zone", "confirm", "status",
                     "variant", "x"]),
    st.text(max_size=120)))
def test_no_form_ends_in_a_server_error(app: Flask, db: sessionmaker[Session],
                                        form: dict[str, str]) -> None:
    client = app.extensions.setdefault("test-client", client_as(app, "root@example.org"))
    csrf = token(client, "/admin/account")
    for path in ("review", "schedule", "send", "control", "test-send"):
        response = client.post(f"{BASE}/{path}", data={**form, "csrf_token": csrf})
        assert response.status_code < 500, (path, form, response.text[:300])
    assert background.join_all(30)


@SQLITE_ONLY
def test_the_pages_in_spanish(app: Flask, db: sessionmaker[Session]) -> None:
    with db() as session, session.begin():
        users.set_language(session, "ed@example.org", "es")
    ed = client_as(app, "ed@example.org")
    assert "Enviar a revisión" in ed.get(f"{BASE}/review").text
    code, html = post(ed, f"{BASE}/review", action="submit")
    assert code == 303 and "Enviado a revisión." in html
    assert "Enviarme una prueba" in ed.get(f"{BASE}/test-send").text
    assert "Actualizar" in ed.get(f"{BASE}/progress").text


STATUS_WORDS = re.compile(
    r"\b(draft|scheduled|sending|paused|sent|cancelled|in_review|in review|approved|rejected|"
    r"submitted|withdrawn|queued|deferred|bounced|failed|pending|active|unsubscribed|"
    r"complained|unconfirmed|confirmed|subscribed|imported|built|skipped)\b")


def shown_text(html: str) -> str:
    """What a reader sees of a page: no tags, no attributes (values stay English)."""
    return re.sub(r"<[^>]*>", " ", re.sub(r"<(script|style)\b.*?</\1>", " ", html, flags=re.S))


@SQLITE_ONLY
def test_a_spanish_user_sees_no_english_status(app: Flask, db: sessionmaker[Session]) -> None:
    from newsletter.schedules import schedule_issue
    from newsletter.series import SeriesSpec, create_series
    from subscribers.people import unsubscribe
    from worker.delivery import plan_issue

    assert post(client_as(app, "ed@example.org"), f"{BASE}/review", action="submit")[0] == 303
    with db() as session, session.begin():
        users.set_language(session, "root@example.org", "es")
        create_series(session, SeriesSpec("semanal", "America/Costa_Rica",
                                          every="weekly on monday at 09:00"),
                      languages=["en", "es"], now=utcnow())
        unsubscribe(session, "li@example.org", how="admin", by="root@example.org")
    root = client_as(app, "root@example.org")
    assert post(root, f"{BASE}/review", action="approve")[0] == 303
    with db() as session, session.begin():
        issue = get_issue(session, SLUG)
        schedule_issue(session, issue, at=utcnow() + timedelta(days=3), timezone="UTC",
                       now=utcnow())
        plan_issue(app.extensions["newsletter"].settings, session, issue)
    with db() as session:
        li = session.scalars(select(Subscriber).where(
            Subscriber.email == "li@example.org")).one().id
    pages = {path: root.get(path) for path in (
        f"{BASE}/review", f"{BASE}/schedule", f"{BASE}/progress", "/admin/issues",
        "/admin/", "/admin/subscribers", f"/admin/subscribers/{li}", "/admin/series",
        "/admin/series/semanal", BASE, "/admin/calendar")}
    for path, page in pages.items():
        assert page.status_code == 200, path
        # a timeline's details are what the library recorded then, in English
        html = re.sub(r'<td data-label="Detalle">.*?</td>', "", page.text, flags=re.S)
        # and so is the audience's description (audience.audience_report: not a status)
        text = shown_text(html).replace(SLUG, "").replace("every active subscriber", "")
        found = [text[max(0, m.start() - 60):m.end()] for m in STATUS_WORDS.finditer(text)]
        assert found == [], path
    review = shown_text(pages[f"{BASE}/review"].text)
    assert "programado" in review and "aprobado" in review and "enviado a revisión" in review
    assert "en cola" in shown_text(pages[f"{BASE}/progress"].text)
    assert "dado de baja" in shown_text(pages[f"/admin/subscribers/{li}"].text)
    assert "activo" in shown_text(pages["/admin/series"].text)
    assert "programado" in shown_text(pages[BASE].text)
    progress = json.loads(root.get(f"{BASE}/progress.json").text)
    assert (progress["status"], progress["status_label"]) == ("scheduled", "programado")


@SQLITE_ONLY
def test_the_sending_tabs_link_only_pages_the_role_opens(app: Flask,
                                                         db: sessionmaker[Session]) -> None:
    tabs = re.compile(r'<nav class="tabs".*?</nav>', re.S)
    for email, hidden in (("ed@example.org", {"schedule", "send"}),
                          ("ana@example.org", set()), ("root@example.org", set())):
        client = client_as(app, email)
        nav = tabs.search(client.get(f"{BASE}/review").text)
        assert nav
        links = re.findall(r'href="([^"]+)"', nav.group(0))
        assert {f"{BASE}/{page}" for page in hidden}.isdisjoint(links), email
        assert [link for link in links if client.get(link).status_code != 200] == [], email


@SQLITE_ONLY
def test_schedule_reads_times_in_the_series_zone_as_the_cli(app: Flask,
                                                            db: sessionmaker[Session]) -> None:
    from newsletter.series import SeriesSpec, create_series

    with db() as session, session.begin():
        found = create_series(session, SeriesSpec("semanal", "America/Costa_Rica",
                                                  every="weekly on monday at 09:00"),
                              languages=["en", "es"], now=utcnow())
        get_issue(session, SLUG).series_id = found.id
    ana = client_as(app, "ana@example.org")
    assert 'name="zone" value="America/Costa_Rica"' in ana.get(f"{BASE}/schedule").text
    day = (utcnow() + timedelta(days=3)).date().isoformat()
    code, html = post(ana, f"{BASE}/schedule", action="schedule", mode="at", day=day,
                      time="09:00", zone="")
    assert code == 303 and "Scheduled." in html, html
    with db() as session:  # 09:00 in Costa Rica (UTC-6), as `issues schedule --at` reads it
        sent_at = get_issue(session, SLUG).send_at
        assert sent_at is not None and f"{sent_at:%H:%M}" == "15:00"


@SQLITE_ONLY
def test_cancel_asks_only_about_an_issue_there_is(app: Flask, db: sessionmaker[Session]) -> None:
    ana = client_as(app, "ana@example.org")
    assert post(ana, "/admin/issues/nope/control", action="cancel")[0] == 404
    code, html = post(ana, f"{BASE}/control", action="cancel")
    assert code == 200 and f"Cancel issue {SLUG}?" in html
