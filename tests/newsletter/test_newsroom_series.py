"""The Series, Feeds and Calendar pages through Flask's test client, on both databases:
create (errors at their field, the form kept), a series' page, pause, resume, build now,
delete; feeds added (private addresses refused), fetched, removed; roles; the calendar."""

from __future__ import annotations

import functools
import html
import re
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest
import time_machine
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from newsletter import series as series_library
from newsletter.feeds import add_feed, get_feed, list_feeds
from newsletter.models import Delivery, Issue, SeriesPeriod
from newsletter.settings import Settings
from newsletter.web import create_app, dispose
from newsletter.web.admin.series import field_of
from subscribers.people import NewSubscriber, add
from tests.conftest import FIXTURES
from tests.newsletter.test_newsroom_auth import PASSWORD, client_of, log_in, make_user, token
from tests.newsroom import cheap_argon2  # noqa: F401 (a fixture)

pytestmark = pytest.mark.usefixtures("cheap_argon2")
SQLITE_ONLY = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
THURSDAY = datetime(2026, 12, 3, 18, 0)  # the feed fixture's items: Dec 1 to 3
CR = "America/Costa_Rica"


class QuietFiles(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def feed_url() -> Iterator[str]:
    """The feed fixtures, served by a real HTTP server on loopback."""
    handler = functools.partial(QuietFiles, directory=str(FIXTURES / "feeds"))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/rss20-es.xml"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def clock() -> Iterator[None]:
    with time_machine.travel(THURSDAY.replace(tzinfo=UTC), tick=False):
        yield


@pytest.fixture
def app(settings: Settings) -> Iterator[Flask]:
    """Feeds served on 127.0.0.1 in these tests: NEWSLETTER_FEED_ALLOW_PRIVATE lets them in
    (one test checks what happens without it)."""
    app = create_app(settings.model_copy(update={"feed_allow_private": True,
                                                 "languages": ["en", "es"]}))
    yield app
    dispose(app)


@pytest.fixture
def app_sessions(app: Flask) -> sessionmaker[Session]:
    found: sessionmaker[Session] = app.extensions["newsletter"].sessions
    return found


def editor(app: Flask, app_sessions: sessionmaker[Session], role: str = "editor",
           email: str = "ed@example.org") -> FlaskClient:
    make_user(app_sessions, email, role)
    client = client_of(app)
    assert log_in(client, email, PASSWORD) == 303
    return client


def post(client: FlaskClient, path: str, **data: str | list[str]) -> tuple[int, str]:
    response = client.post(path, data={**data, "csrf_token": token(client, "/admin/series")})
    location = response.headers.get("Location")
    if response.status_code == 303 and location:
        followed = client.get(location)
        return followed.status_code, html.unescape(followed.text)
    return response.status_code, html.unescape(response.text)


def done(client: FlaskClient, path: str, **data: str | list[str]) -> str:
    """A POST that succeeds: 303 (Post/Redirect/Get), and the page it leads to, once."""
    response = client.post(path, data={**data, "csrf_token": token(client, "/admin/series")})
    assert response.status_code == 303, response.text
    page = client.get(response.headers["Location"])
    assert page.status_code == 200
    return html.unescape(page.text)


def text_of(page: str) -> str:
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page)))


def test_a_series_from_the_form_to_its_built_issue(
        app: Flask, app_sessions: sessionmaker[Session], feed_url: str, clock: None) -> None:
    client = editor(app, app_sessions)
    with app_sessions() as session, session.begin():
        add(session, NewSubscriber("ana@example.org", country="CR", language="es"),
            default_language="es")
    page = done(client, "/admin/feeds/add", url=feed_url, name="noticias",
                language="es", countries="CR, Nicaragua", interval="30")
    assert "The feed was added" in page
    page = done(client, "/admin/feeds/noticias/fetch")
    assert "Fetched. Entries: 3; new items: 3; updated: 0." in text_of(page)

    page = done(client, "/admin/series/create", slug="semanal", cadence="every",
                every="weekly on monday at 09:00", timezone="america/costa_rica",
                feeds=["noticias"], focus="first", title="Weekly",
                **{"title-es": "Boletín semanal"}, approval="none", min_items="2",
                window="period", build_ahead="")
    assert "The series was created." in page
    shown = text_of(page)
    assert "2026-12-07 09:00 America/Costa_Rica (2026-12-07 15:00 UTC)" in shown
    assert "es: Boletín semanal" in shown and "No period has come yet." in shown
    listed = text_of(client.get("/admin/series").text)
    assert "semanal weekly on monday at 09:00 2026-12-07 09:00 America/Costa_Rica active" \
        in listed

    shown = text_of(done(client, "/admin/series/semanal/build"))
    assert ("Issue semanal-2026-12-07 (No. 1) was built with the items from 2026-11-30 to "
            "2026-12-06. It goes out 2026-12-07 15:00 UTC. Deliveries planned: 1.") in shown
    # its period is listed; the issue page is linked only where that endpoint exists
    assert "2026-12-07 15:00 2026-11-30 2026-12-06 built semanal-2026-12-07 (No. 1)" in shown
    assert 'href="/admin/issues/' not in page or "admin.issue" in app.view_functions
    with app_sessions() as session:
        issue = session.scalars(select(Issue).where(Issue.slug == "semanal-2026-12-07")).one()
        assert (issue.status, len(issue.entries), issue.title) == ("scheduled", 3, "Weekly No. 1")
        assert session.scalar(select(func.count()).select_from(Delivery)
                              .where(Delivery.issue_id == issue.id)) == 1
    page = done(client, "/admin/series/semanal/build")  # the same period again
    assert "Nothing to build: built already as issue semanal-2026-12-07" in text_of(page)

    # the calendar: the scheduled issue (not twice), the sends to come after it
    shown = text_of(client.get("/admin/calendar").text)
    assert "2026-12-07" in shown and "15:00 UTC scheduled semanal-2026-12-07 : Weekly No. 1" \
        in shown
    assert shown.count("semanal · 2026-12-07 09:00") == 0
    assert "15:00 UTC to be built semanal · 2026-12-14 09:00 America/Costa_Rica" in shown
    assert "semanal · 2027-01-25 09:00" in shown  # 7 weeks on; 8 weeks is the end
    assert "2027-02-01" not in shown

    # pause, resume, delete (asked first; the scheduled issue stays, and it says so)
    page = done(client, "/admin/series/semanal/pause")
    assert "The series was paused." in page and "Build the next issue now" not in page
    code, page = post(client, "/admin/series/semanal/pause")
    assert code == 400 and "already paused" in text_of(page)
    assert "to be built semanal" not in text_of(client.get("/admin/calendar").text)
    page = done(client, "/admin/series/semanal/resume")
    assert "The series was resumed." in page
    code, page = post(client, "/admin/series/semanal/delete")
    assert "Delete series semanal?" in page and "stay scheduled" in page
    with app_sessions() as session:
        assert series_library.get_series(session, "semanal")
    page = done(client, "/admin/series/semanal/delete", confirm="yes")
    assert "Series semanal was deleted." in page
    with app_sessions() as session:
        assert series_library.list_series(session) == []
        assert session.scalar(select(Issue.status).where(
            Issue.slug == "semanal-2026-12-07")) == "scheduled"


def test_a_series_and_a_feed_are_changed_from_their_pages(
        app: Flask, app_sessions: sessionmaker[Session], clock: None) -> None:
    client = editor(app, app_sessions)
    done(client, "/admin/feeds/add", url="https://news.example.org/feed.xml",
         name="noticias", interval="30")
    done(client, "/admin/series/create", slug="semanal", cadence="every",
         every="weekly on monday at 09:00", timezone=CR, title="Weekly",
         **{"title-es": "Boletín"}, approval="required", min_items="2", window="period",
         build_ahead="")
    page = client.get("/admin/series/semanal").text
    # the form holds the series as it is
    for shown in ('name="every" value="weekly on monday at 09:00"',
                  f'name="timezone" required value="{CR}"', 'name="title-es" lang="es" '
                  'value="Boletín"', 'name="min_items" type="number" min="1" max="1000" '
                  'inputmode="numeric" value="2"', 'name="build_ahead" inputmode="decimal" '
                  'value="24"', '<option value="required" selected>'):
        assert shown in page, shown
    form = {"cadence": "every", "every": "weekly on tuesday at 08:00", "timezone": CR,
            "lists": "", "segments": "", "feeds": ["noticias"], "focus": "only",
            "title": "Weekly", "title-es": "", "approval": "required", "min_items": "2",
            "window": "period", "build_ahead": "24"}
    shown = text_of(done(client, "/admin/series/semanal/edit", **form))
    assert ("Saved: schedule changed: weekly on monday at 09:00 -> weekly on tuesday at "
            "08:00; feeds changed: (none) -> noticias; country focus changed: first -> "
            "only; titles changed: *: Weekly; es: Boletín -> *: Weekly.") in shown
    assert ("Next send: 2026-12-08 08:00 America/Costa_Rica (2026-12-08 14:00 UTC). The new "
            "schedule starts after the periods already built or skipped: none is built "
            "again.") in shown
    with app_sessions() as session:
        found = series_library.get_series(session, "semanal")
        assert (found.every, found.feeds, found.titles) == (
            "weekly on tuesday at 08:00", ["noticias"], {"": "Weekly"})
    page = done(client, "/admin/series/semanal/edit", **form)
    assert "Nothing changed." in page
    # refused: at its field, with the form as sent, and nothing changed
    response = client.post("/admin/series/semanal/edit", data={
        **form, "min_items": "0", "title": "Semanal",
        "csrf_token": token(client, "/admin/series")})
    assert response.status_code == 400
    page = html.unescape(response.text)
    assert 'id="min_items-problem" role="alert">--min-items 0' in page
    assert 'value="Semanal"' in page and 'value="0"' in page
    with app_sessions() as session:
        assert series_library.get_series(session, "semanal").titles == {"": "Weekly"}
    assert client.post("/admin/series/nope/edit", data={
        **form, "csrf_token": token(client, "/admin/series")}).status_code == 404

    page = client.get("/admin/feeds/noticias").text
    assert 'name="url" type="url" required maxlength="2000" ' \
           'value="https://news.example.org/feed.xml"' in page
    with app_sessions() as session, session.begin():
        feed = get_feed(session, "noticias")
        feed.etag, feed.failures, feed.last_error = '"v1"', 2, "answered 503"
    shown = text_of(done(client, "/admin/feeds/noticias/edit",
                         url="https://news.example.org/rss", language="es",
                         countries="CR", interval="30"))
    assert ("Saved: address changed: https://news.example.org/feed.xml -> "
            "https://news.example.org/rss; language changed: detected -> es; countries "
            "changed: (none) -> CR. A new address:") in shown
    with app_sessions() as session:
        feed = get_feed(session, "noticias")
        assert (feed.url, feed.etag, feed.failures, feed.last_error, feed.language) == (
            "https://news.example.org/rss", None, 0, "", "es")
    response = client.post("/admin/feeds/noticias/edit", data={
        "url": "https://news.example.org/rss", "language": "es", "countries": "Atlantis",
        "interval": "30", "csrf_token": token(client, "/admin/series")})
    assert response.status_code == 400
    assert "not a known country" in response.text and 'value="Atlantis"' in response.text
    assert client.post("/admin/feeds/nope/edit", data={
        "url": "https://x.example.org/", "csrf_token": token(client, "/admin/series")}
    ).status_code == 404


def test_create_errors_show_at_their_field_with_the_form_kept(
        app: Flask, app_sessions: sessionmaker[Session]) -> None:
    client = editor(app, app_sessions)
    cases = [
        ({"every": "every blue moon"}, "every", "--every 'every blue moon': not understood"),
        ({"cadence": "rrule", "rrule": "FREQ=SOMETIMES"}, "rrule", "FREQ=SOMETIMES is not"),
        ({"timezone": "Mars/Olympus"}, "timezone", "time zone 'Mars/Olympus' is not one"),
        ({"slug": "Bad Name"}, "slug", "is not a usable series name"),
        ({"min_items": "lots"}, "min_items", "--min-items 'lots': give a number"),
        ({"min_items": "0"}, "min_items", "--min-items 0"),
        ({"build_ahead": "nan"}, "build_ahead", "--build-ahead 'nan': give a number"),
        ({"feeds": ["nope"]}, "feeds", "no feed called 'nope'"),
        ({"lists": "nope"}, "lists", "nope"),
    ]
    for change, field, message in cases:
        form = {"slug": "semanal", "cadence": "every", "every": "weekly on monday at 09:00",
                "timezone": CR, "title-es": "Boletín", **change}
        code, page = post(client, "/admin/series/create", **form)  # type: ignore[arg-type]
        assert code == 400, change
        assert f'id="{field}-problem"' in page, (change, text_of(page))
        problem = re.search(rf'id="{field}-problem" role="alert">([^<]*)<', page)
        assert problem and message in problem.group(1), change
        assert 'aria-invalid="true"' in page
        assert 'value="Boletín"' in page  # what was typed stays
    with app_sessions() as session:
        assert series_library.list_series(session) == []
    assert field_of("something else entirely") == ""


def test_approvers_change_as_editors_do_and_strangers_nothing(
        app: Flask, app_sessions: sessionmaker[Session], feed_url: str) -> None:
    with app_sessions() as session, session.begin():
        series_library.create_series(session, series_library.SeriesSpec(
            slug="semanal", timezone=CR, every="weekly on monday at 09:00"),
            languages=["en", "es"], now=datetime.now(UTC).replace(tzinfo=None))
    # an approver is an editor who may also approve (users.PERMISSIONS): same forms
    approver = editor(app, app_sessions, "approver", "ap@example.org")
    for path in ("/admin/series", "/admin/feeds"):
        page = approver.get(path)
        assert page.status_code == 200, path
    assert '<form method="post" action="/admin/series/create"' in approver.get(
        "/admin/series").text
    assert "/admin/feeds/add" in approver.get("/admin/feeds").text
    assert approver.get("/admin/calendar").status_code == 200
    code, page = post(approver, "/admin/series/semanal/pause")
    assert code == 200 and "The series was paused." in page
    with app_sessions() as session:
        assert series_library.get_series(session, "semanal").status == "paused"
    admin = editor(app, app_sessions, "admin", "ad@example.org")
    code, page = post(admin, "/admin/series/semanal/resume")
    assert code == 200 and "The series was resumed." in page
    anonymous = client_of(app)
    assert anonymous.get("/admin/calendar").status_code == 302
    assert anonymous.post("/admin/series/semanal/resume").status_code == 400  # no token
    assert client_of(app).get("/admin/series/nope").status_code in (302, 404)
    assert admin.get("/admin/series/nope").status_code == 404
    assert admin.get("/admin/feeds/nope").status_code == 404


def test_feeds_private_addresses_fetch_errors_and_removal(
        settings: Settings, feed_url: str) -> None:
    # the default: an address on this machine (or any private network) is refused
    strict = create_app(settings)
    try:
        client = editor(strict, strict.extensions["newsletter"].sessions)
        code, page = post(client, "/admin/feeds/add", url=feed_url, name="noticias")
        assert code == 400 and "private or link-local" in page
        assert f'value="{feed_url}"' in page  # the form kept
        code, page = post(client, "/admin/feeds/add",
                          url="http://169.254.169.254/latest/meta-data/")
        assert code == 400 and "private or link-local" in page
    finally:
        dispose(strict)

    app = create_app(settings.model_copy(update={"feed_allow_private": True}))
    try:
        sessions: sessionmaker[Session] = app.extensions["newsletter"].sessions
        client = editor(app, sessions, "admin", "ad@example.org")
        code, page = post(client, "/admin/feeds/add", url=feed_url, name="noticias",
                          language="es", countries="CR", interval="30")
        assert code == 200
        code, page = post(client, "/admin/feeds/add", url=feed_url.replace("rss20-es", "gone"),
                          name="rota", interval="often")
        assert code == 400 and "--interval 'often'" in page and 'value="often"' in page
        for url, interval, message in (("http://[::1", "60", "is not a usable address"),
                                       (feed_url + "?2", "²", "--interval '²'")):
            code, page = post(client, "/admin/feeds/add", url=url, interval=interval)
            assert code == 400 and message in page
        code, page = post(client, "/admin/feeds/add", url=feed_url.replace("rss20-es", "gone"),
                          name="rota")
        page = done(client, "/admin/feeds/rota/fetch")
        assert "The fetch failed:" in page and "404" in page
        listed = text_of(client.get("/admin/feeds").text)
        assert "rota" in listed and "answered 404" in listed and "never" in listed  # noticias
        code, page = post(client, "/admin/feeds/noticias/fetch")
        shown = text_of(client.get("/admin/feeds/noticias").text)
        assert "Items 3" in shown and "2026-12-03" in shown and "Last error –" in shown
        with sessions() as session, session.begin():
            series_library.create_series(session, series_library.SeriesSpec(
                slug="boletin", timezone=CR, every="weekly on monday at 09:00",
                feeds=("noticias",)), languages=["en"],
                now=datetime.now(UTC).replace(tzinfo=None))
        code, page = post(client, "/admin/feeds/noticias/remove")
        shown = text_of(page)
        assert "Stop following noticias? The items it brought (3) stay." in shown
        assert "These series take their items from it" in shown and "boletin" in shown
        with sessions() as session:
            assert get_feed(session, "noticias")
        page = done(client, "/admin/feeds/noticias/remove", confirm="yes")
        assert "Feed noticias was removed; the items it brought (3) stay." in page
        assert "/admin/feeds/noticias" not in page
    finally:
        dispose(app)


@SQLITE_ONLY
def test_the_calendar_shows_skipped_periods_with_their_reason(
        app: Flask, app_sessions: sessionmaker[Session]) -> None:
    now = datetime.now(UTC).replace(tzinfo=None)
    with app_sessions() as session, session.begin():
        created = series_library.create_series(session, series_library.SeriesSpec(
            slug="diario", timezone="UTC", every="daily at 07:00", min_items=5),
            languages=["en"], now=now - timedelta(days=3))
        session.add(SeriesPeriod(series_id=created.id, occurs_at=now - timedelta(days=2),
                                 window_from=(now - timedelta(days=3)).date(),
                                 window_to=(now - timedelta(days=3)).date(),
                                 status="skipped", reason="0 items, fewer than 5"))
        session.add(SeriesPeriod(series_id=created.id, occurs_at=now - timedelta(weeks=9),
                                 window_from=now.date(), window_to=now.date(),
                                 status="skipped", reason="too old to show"))
    client = editor(app, app_sessions)
    shown = text_of(client.get("/admin/calendar").text)
    assert "skipped diario : 0 items, fewer than 5" in shown, shown[:1500]
    assert "too old to show" not in shown
    assert shown.count("to be built diario") == 56  # every day for 8 weeks
    page = text_of(client.get("/admin/series/diario").text)
    assert "skipped 0 items, fewer than 5" in page


@SQLITE_ONLY
def test_the_pages_speak_spanish(app: Flask, app_sessions: sessionmaker[Session]) -> None:
    make_user(app_sessions, "es@example.org", "editor", language="es")
    client = client_of(app)
    log_in(client, "es@example.org")
    assert "Crear una serie" in client.get("/admin/series").text
    assert "Añadir un canal" in client.get("/admin/feeds").text
    assert "Calendario" in client.get("/admin/calendar").text


@SQLITE_ONLY
@pytest.mark.fuzz
@given(form=st.dictionaries(
    st.sampled_from(["slug", "cadence", "every", "rrule", "timezone", "lists", "segments",
                     "feeds", "focus", "title", "title-es", "approval", "min_items", "window",
                     "local_time", "build_ahead", "url", "name", "language", "countries",
                     "interval", "confirm"]),
    st.one_of(st.text(max_size=200), st.sampled_from(
        ["weekly on monday at 09:00", CR, "1e309", "-1", "99999999999999999999", "nan",
         "http://[::1", "https://example.org:99999/f", "yes", "rrule", "required"]))))
def test_no_form_ends_in_a_server_error(app: Flask, app_sessions: sessionmaker[Session],
                                        form: dict[str, str]) -> None:
    client = app.extensions.get("test-editor-client")
    if client is None:
        client = app.extensions["test-editor-client"] = editor(app, app_sessions)
    with app_sessions() as session, session.begin():  # one series and one feed to change
        series_library.create_series(session, series_library.SeriesSpec(
            slug="fixed", timezone=CR, every="daily at 07:00"), languages=["en", "es"],
            now=datetime.now(UTC).replace(tzinfo=None))
        if not list_feeds(session):
            add_feed(session, "https://fixed.example.org/feed.xml", name="fixed")
    csrf = token(client, "/admin/series")
    for path in ("/admin/series/create", "/admin/feeds/add", "/admin/series/fixed/edit",
                 "/admin/feeds/fixed/edit"):
        response = client.post(path, data={**form, "csrf_token": csrf})
        assert response.status_code in (200, 303, 400), (path, response.status_code)
        assert "Traceback" not in response.text
    with app_sessions() as session, session.begin():  # the next example starts afresh
        for found in series_library.list_series(session):
            session.delete(found)
