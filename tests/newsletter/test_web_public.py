"""The public pages (newsletter/web/public.py): sign-up with double opt-in, the archive,
its Atom feed. Flask's test client on both databases; the confirmation mail goes through
the real outbox transport and its link is followed."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import feedparser
import pytest
import time_machine
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import given
from hypothesis import strategies as st
from playwright.sync_api import sync_playwright
from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.serving import make_server
from werkzeug.test import TestResponse

from newsletter.cli import cli
from newsletter.db import transaction
from newsletter.models import Issue, IssueVariant
from newsletter.screenshots import CHROMIUM_ARGS, find_chromium
from newsletter.settings import Settings
from newsletter.web import create_app, dispose
from subscribers.lists import create_list, public_lists
from subscribers.models import MailingList, SignupAttempt, Subscriber, Subscription
from subscribers.people import NewSubscriber, add, find, unsubscribe, update_subscriber
from subscribers.report import history
from subscribers.signup import Limits
from subscribers.suppressions import is_suppressed, suppress
from tests.newsletter.test_accessibility import html_validate, summary

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
TOKEN = re.compile(r'name="token" value="([^"]+)"')


class Browser(FlaskClient):
    """Reads each answer whole and then closes it, as a WSGI server does: what the app
    does after answering (the confirmation mail) has happened when a call returns."""

    def open(self, *args: Any, **kwargs: Any) -> TestResponse:
        kwargs.setdefault("buffered", True)
        return super().open(*args, **kwargs)


@pytest.fixture
def app(settings: Settings, sessions: sessionmaker[Session]) -> Iterator[Flask]:
    app = create_app(settings)
    app.config["TESTING"] = True
    app.test_client_class = Browser
    yield app
    dispose(app)


def client(app: Flask, ip: str = "192.0.2.1") -> FlaskClient:
    c = app.test_client()
    c.environ_base["REMOTE_ADDR"] = ip
    return c


def sign_up(c: FlaskClient, email: str, path: str = "/signup", **fields: str | list[str]
            ) -> tuple[int, str]:
    """Load the form (for its token), fill it in, send it: (status, body)."""
    page = c.get(path)
    found = TOKEN.search(page.text)
    assert found, page.text
    data: dict[str, str | list[str]] = {"token": found.group(1), "email": email, **fields}
    reply = c.post(path, data=data)
    return reply.status_code, reply.text


def outbox(settings: Settings) -> list[EmailMessage]:
    directory = settings.resolved_outbox_dir
    files = sorted(directory.glob("*.eml")) if directory.exists() else []
    return [message_from_bytes(p.read_bytes(), policy=policy.default)  # type: ignore[misc]
            for p in files]


def recipients(settings: Settings) -> list[str]:
    return [str(m["To"].addresses[0].addr_spec) for m in outbox(settings)]


def confirm_path(message: EmailMessage, settings: Settings) -> str:
    body = message.get_body(("plain",))
    assert body is not None
    link = re.search(re.escape(settings.public_base_url) + r"(/c/\S+)", body.get_content())
    assert link, body.get_content()
    return link.group(1)


def test_sign_up_confirms_through_the_mailed_link(
    app: Flask, settings: Settings, sessions: sessionmaker[Session]
) -> None:
    with transaction(sessions) as session:
        create_list(session, "alerts", opt_in="single", public=True)
        create_list(session, "staff", opt_in="single")  # not public: not offered
    c = client(app)
    page = c.get("/es/signup")
    assert 'name="list" value="alerts"' in page.text and "staff" not in page.text
    assert '<label for="email">' in page.text and '<html lang="es">' in page.text
    status, body = sign_up(c, "Rosa@Example.org", "/es/signup", name="Rosa", language="es",
                           country="CR", list=["alerts", "staff"])
    assert status == 200 and 'role="status"' in body
    with sessions() as session:
        person = find(session, "rosa@example.org")
        assert (person.status, person.language, person.country) == ("pending", "es", "CR")
        assert person.consent_method == "web:signup"
        assert (person.consent_text or "").startswith("signup-")
        subs = {s.list_id: s.status for s in session.scalars(
            select(Subscription).where(Subscription.subscriber_id == person.id))}
        assert list(subs.values()) == ["unconfirmed"]  # alerts only, and unconfirmed
    [mail] = outbox(settings)
    assert mail["To"].addresses[0].addr_spec == "Rosa@example.org"
    link = confirm_path(mail, settings)
    assert c.get(link).status_code == 200  # a GET confirms nothing
    with sessions() as session:
        assert find(session, "rosa@example.org").status == "pending"
    assert c.post(link).status_code == 200
    with sessions() as session:
        person = find(session, "rosa@example.org")
        assert person.status == "active"
        assert {s.status for s in session.scalars(
            select(Subscription).where(Subscription.subscriber_id == person.id))} == {
            "confirmed"}


def test_every_kind_of_address_gets_the_same_answer(
    app: Flask, settings: Settings, sessions: sessionmaker[Session]
) -> None:
    default = settings.default_language
    with transaction(sessions) as session:
        add(session, NewSubscriber("active@example.org"), default_language=default)
        add(session, NewSubscriber("gone@example.org"), default_language=default)
        unsubscribe(session, "gone@example.org")
        suppress(session, "blocked@example.org")
    bodies = {}
    for n, address in enumerate(["new@example.org", "active@example.org", "gone@example.org",
                                 "blocked@example.org", "new@example.org"]):
        status, body = sign_up(client(app, f"198.51.100.{n}"), address)
        bodies[f"{n}:{address}"] = (status, body)
    assert len(set(bodies.values())) == 1, bodies.keys()
    # the newcomer was asked (twice: it is still pending) and the one who unsubscribed
    # (signing up again is a new double opt-in); nobody else was mailed
    assert sorted(recipients(settings)) == ["gone@example.org", *["new@example.org"] * 2]
    with sessions() as session:
        assert find(session, "active@example.org").status == "active"
        assert find(session, "gone@example.org").status == "pending"
        assert session.scalar(select(Subscriber).where(
            Subscriber.email_key == "blocked@example.org")) is None


def test_someone_who_unsubscribed_signs_up_again_through_a_new_double_opt_in(
    app: Flask, settings: Settings, sessions: sessionmaker[Session]
) -> None:
    default = settings.default_language
    with transaction(sessions) as session:
        create_list(session, "alerts", opt_in="single", public=True)
        create_list(session, "staff", opt_in="single")
        add(session, NewSubscriber("gone@example.org", lists=("alerts", "staff"),
                                   consent_method="cli:add"), default_language=default)
        unsubscribe(session, "gone@example.org")
        for address, status in (("bounced@example.org", "bounced"),
                                ("angry@example.org", "complained")):
            add(session, NewSubscriber(address), default_language=default)
            update_subscriber(session, address, status=status, default_language=default)
        add(session, NewSubscriber("quiet@example.org"), default_language=default)
        unsubscribe(session, "quiet@example.org")
        suppress(session, "quiet@example.org", reason="unsubscribed")
    answers = set()
    for n, address in enumerate(["gone@example.org", "bounced@example.org",
                                 "angry@example.org", "quiet@example.org",
                                 "stranger@example.org"]):
        answers.add(sign_up(client(app, f"198.51.100.{n}"), address, list=["alerts"]))
    assert len(answers) == 1  # the page says the same for every one of them
    # a bounced, complained or suppressed address gets no mail, and stays as it was
    assert sorted(recipients(settings)) == ["gone@example.org", "stranger@example.org"]
    with sessions() as session:
        assert {a: find(session, a).status for a in (
            "bounced@example.org", "angry@example.org", "quiet@example.org")} == {
            "bounced@example.org": "bounced", "angry@example.org": "complained",
            "quiet@example.org": "unsubscribed"}
        person = find(session, "gone@example.org")
        assert (person.status, person.consent_method) == ("pending", "web:signup")
        assert (person.consent_text or "").startswith("signup-")
        signed_at = person.consent_at
        subs = {name: status for name, status in session.execute(
            select(MailingList.name, Subscription.status).join(Subscription).where(
                Subscription.subscriber_id == person.id))}
        # only the public list asked for comes back; staff stays unsubscribed
        assert subs == {"alerts": "unconfirmed", "staff": "unsubscribed"}
    # the limits per address still hold: three mails a day at most
    for n in range(4):
        sign_up(client(app, f"203.0.113.{n}"), "gone@example.org", list=["alerts"])
    assert recipients(settings).count("gone@example.org") == 3
    mail = [m for m in outbox(settings) if m["To"].addresses[0].addr_spec == "gone@example.org"]
    assert client(app).post(confirm_path(mail[-1], settings)).status_code == 200
    with sessions() as session:
        person = find(session, "gone@example.org")
        assert person.status == "active"
        # how they signed up is kept; the confirmation is an event of its own
        assert (person.consent_method, person.consent_at) == ("web:signup", signed_at)
        found = history(session, "gone@example.org")
        kinds = [e.kind for e in found.timeline]
        assert kinds[0] == "confirmed" and kinds[1:].count("subscribed") == 2
        again = [e for e in found.timeline if e.kind == "subscribed"][0]
        assert again.detail.startswith("signed up again after unsubscribing: pending; "
                                       "consent: web:signup (signup-")
        assert again.detail.endswith("lists: alerts (unconfirmed)")
        assert dict(found.lists) == {"alerts": "confirmed", "staff": "unsubscribed"}


def test_the_honeypot_pretends_and_does_nothing(
    app: Flask, settings: Settings, sessions: sessionmaker[Session]
) -> None:
    c = client(app)
    _, real = sign_up(c, "one@example.org")
    status, trapped = sign_up(c, "bot@example.org", website="http://spam.example")
    assert (status, trapped) == (200, real)
    with sessions() as session:
        assert session.scalar(select(Subscriber).where(
            Subscriber.email_key == "bot@example.org")) is None
    assert recipients(settings) == ["one@example.org"]


def test_an_invalid_address_gets_the_form_back_with_the_reason(app: Flask) -> None:
    status, body = sign_up(client(app), "not an address", name="Ana")
    assert status == 400
    assert 'role="alert"' in body and 'aria-invalid="true"' in body
    assert 'value="not an address"' in body and 'value="Ana"' in body


def test_rate_limits_per_client_and_per_address(
    app: Flask, settings: Settings, sessions: sessionmaker[Session]
) -> None:
    with time_machine.travel(START, tick=False) as clock:
        c = client(app)
        for n in range(5):
            sign_up(c, f"p{n}@example.org")
        _, answer = sign_up(c, "p5@example.org")  # the sixth from this client this hour
        assert 'role="status"' in answer
        with sessions() as session:
            assert session.scalar(select(Subscriber).where(
                Subscriber.email_key == "p5@example.org")) is None
        clock.shift(timedelta(minutes=61))
        sign_up(c, "p5@example.org")
        with sessions() as session:
            assert find(session, "p5@example.org").status == "pending"

        # one address, from many clients: three confirmation mails a day, then none
        for n in range(5):
            clock.shift(timedelta(seconds=1))  # the outbox names a file by the millisecond
            sign_up(client(app, f"203.0.113.{n}"), "target@example.org")
        assert recipients(settings).count("target@example.org") == 3
        clock.shift(timedelta(hours=24, minutes=1))
        sign_up(client(app, "203.0.113.99"), "target@example.org")
        assert recipients(settings).count("target@example.org") == 4
        with sessions() as session:  # the throttle keeps no address, no IP, no old rows
            rows = session.execute(select(SignupAttempt.client_hash,
                                          SignupAttempt.address_hash, SignupAttempt.at)).all()
            assert len(rows) == 1  # the day before was cleared by this request
            assert all("@" not in a and "203." not in c_ for c_, a, _ in rows)


def test_sign_ups_sent_together_do_not_outrun_the_limits(
    app: Flask, sessions: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Requests for one address sent at once, from many clients: still three confirmation
    mails at most. A barrier after the throttle's counts lets every request through
    together when nothing serialises them (on PostgreSQL they all counted none mailed)."""
    import subscribers.signup as signup

    sign_up(client(app, "198.51.100.1"), "bombed@example.org")  # pending, mailed once
    together = threading.Barrier(8)

    def slow_is_suppressed(session: Session, email: str) -> bool:
        try:
            together.wait(timeout=0.5)
        except threading.BrokenBarrierError:
            pass
        return is_suppressed(session, email)

    monkeypatch.setattr(signup, "is_suppressed", slow_is_suppressed)
    forms = []
    for n in range(8):
        c = client(app, f"198.51.100.{n + 10}")
        found = TOKEN.search(c.get("/signup").text)
        assert found
        forms.append((c, found.group(1)))

    def send(n: int) -> int:
        c, token = forms[n]
        return c.post("/signup", data={"token": token, "email": "bombed@example.org"}
                      ).status_code

    threads = [threading.Thread(target=send, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with sessions() as session:
        mailed = session.scalar(select(func.count()).select_from(SignupAttempt)
                                .where(SignupAttempt.mailed.is_(True)))
    assert mailed == Limits().mails_per_address


def test_csrf_needs_a_fresh_token_from_this_client_and_no_foreign_origin(
    app: Flask, settings: Settings, sessions: sessionmaker[Session]
) -> None:
    with time_machine.travel(START, tick=False) as clock:
        c = client(app)
        token = TOKEN.search(c.get("/signup").text).group(1)  # type: ignore[union-attr]
        other = client(app, "192.0.2.200")
        refused = [
            c.post("/signup", data={"email": "a@example.org"}),  # no token
            c.post("/signup", data={"email": "a@example.org", "token": token + "x"}),
            other.post("/signup", data={"email": "a@example.org", "token": token}),
            c.post("/signup", data={"email": "a@example.org", "token": token},
                   headers={"Origin": "https://evil.example"}),
        ]
        clock.shift(timedelta(hours=2, minutes=1))
        refused.append(c.post("/signup", data={"email": "a@example.org", "token": token}))
        for reply in refused:
            assert reply.status_code == 403
            assert 'role="alert"' in reply.text and TOKEN.search(reply.text)
        with sessions() as session:
            assert session.scalar(select(Subscriber.id)) is None
        assert outbox(settings) == []
        fresh = TOKEN.search(c.get("/signup").text).group(1)  # type: ignore[union-attr]
        ok = c.post("/signup", data={"email": "a@example.org", "token": fresh},
                    headers={"Origin": settings.public_base_url})
        assert ok.status_code == 200 and len(outbox(settings)) == 1
        clock.shift(timedelta(seconds=1))
        # what Chromium sends from our own no-referrer page (test_sign_up_in_chromium)
        fresh = TOKEN.search(c.get("/signup").text).group(1)  # type: ignore[union-attr]
        ok = c.post("/signup", data={"email": "b@example.org", "token": fresh},
                    headers={"Origin": "null"})
        assert ok.status_code == 200 and len(outbox(settings)) == 2


def _issue(session: Session, slug: str, status: str, sent: datetime | None,
           variants: dict[tuple[str, str], str]) -> None:
    issue = Issue(slug=slug, title=slug, date_from=START.date(), date_to=START.date(),
                  status=status, sent_at=sent)
    session.add(issue)
    session.flush()
    for (language, country), subject in variants.items():
        session.add(IssueVariant(issue_id=issue.id, language=language, country=country,
                                 subject=subject, html=f"<p>{subject}</p>", text=subject))


def test_archive_and_feed_list_the_sent_issues_per_language(
    app: Flask, settings: Settings, sessions: sessionmaker[Session]
) -> None:
    old, new = datetime(2026, 2, 1, 8), datetime(2026, 3, 1, 8)
    with transaction(sessions) as session:
        _issue(session, "2026-02", "sent", old, {("es", ""): "Febrero", ("es", "CR"): "Feb CR",
                                                 ("en", ""): "February"})
        _issue(session, "2026-03", "sent", new, {("es", "CR"): "Marzo CR"})
        _issue(session, "2026-04", "draft", None, {("es", ""): "Abril borrador"})
    c = client(app)
    page = c.get("/archive/es").text
    assert page.index("Marzo CR") < page.index("Febrero")
    assert 'href="/v/2026-02/es-regional"' in page and 'href="/v/2026-03/es-CR"' in page
    assert "Abril" not in page and "February" not in page and "Feb CR" not in page
    english = c.get("/archive/en").text
    assert "February" in english and "Febrero" not in english and "Marzo" not in english
    assert c.get("/v/2026-02/es-regional").status_code == 200  # the links lead somewhere

    reply = c.get("/archive/es.atom")
    assert reply.status_code == 200 and reply.mimetype == "application/atom+xml"
    feed = feedparser.parse(reply.data)
    assert not feed.bozo, feed.bozo_exception
    assert feed.version == "atom10"
    assert feed.feed.id == "https://news.example.org/archive/es"
    assert feed.feed.author == settings.sender_name
    links = {link.rel: link.href for link in feed.feed.links}
    assert links == {"self": "https://news.example.org/archive/es.atom",
                     "alternate": "https://news.example.org/archive/es"}
    assert feed.feed.updated == "2026-03-01T08:00:00Z"
    assert [(e.title, e.link) for e in feed.entries] == [
        ("Marzo CR", "https://news.example.org/v/2026-03/es-CR"),
        ("Febrero", "https://news.example.org/v/2026-02/es-regional")]
    assert all(e.id and e.updated for e in feed.entries)
    assert c.get("/archive/xx.atom").status_code == 404


def test_the_page_language_comes_from_the_path_the_query_or_the_browser(app: Flask) -> None:
    c = client(app)
    assert '<html lang="es">' in c.get("/signup?lang=es").text
    assert '<html lang="fr">' in c.get("/signup", headers={"Accept-Language": "fr"}).text
    assert '<html lang="en">' in c.get("/archive", headers={"Accept-Language": "de"}).text


text_field = st.text(max_size=60)
field = st.one_of(text_field, st.emails(), st.sampled_from(["es", "en", "CR", "Costa Rica"]))


@pytest.mark.fuzz
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@given(fields=st.dictionaries(st.sampled_from(
    ["email", "name", "language", "country", "list", "website", "token", "x"]), field),
    query=st.dictionaries(st.sampled_from(["lang", "q", ""]), text_field),
    path=st.sampled_from(["/signup", "/es/signup", "/archive", "/archive/es.atom"]),
    ip=st.ip_addresses())
def test_no_form_or_query_string_gives_a_server_error(
    app: Flask, fields: dict[str, str], query: dict[str, str], path: str, ip: object
) -> None:
    c = client(app, str(ip))
    for reply in (c.get(path, query_string=query), c.post(path, data=fields),
                  c.post("/signup", data={**fields, "token": TOKEN.search(
                      c.get("/signup").text).group(1)})):  # type: ignore[union-attr]
        assert reply.status_code < 500, reply.text
        assert "Traceback" not in reply.text


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_every_public_page_passes_html_validate_with_the_accessibility_rules(
    app: Flask, sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    with transaction(sessions) as session:
        create_list(session, "alerts", public=True, description="Storms & floods")
        _issue(session, "2026-02", "sent", datetime(2026, 2, 1, 8), {("es", ""): "Febrero"})
    c = client(app)
    pages = {
        "signup.html": c.get("/es/signup").text,
        "refused.html": sign_up(c, "nobody", "/es/signup")[1],
        "expired.html": c.post("/signup", data={"email": "a@example.org"}).text,
        "done.html": sign_up(c, "a@example.org")[1],
        "archive.html": c.get("/archive/es").text,
        "empty.html": c.get("/archive/fr").text,
    }
    for name, body in pages.items():
        (tmp_path / name).write_text(body, encoding="utf-8")
    config = {"extends": ["html-validate:recommended", "html-validate:a11y",
                          "html-validate:document"]}
    found = html_validate([tmp_path / name for name in pages], config, tmp_path)
    assert {name: summary(messages) for name, messages in found.items() if messages} == {}


def test_lists_create_and_update_choose_what_the_form_offers(
    runner: CliRunner, engine: Engine, app: Flask, sessions: sessionmaker[Session]
) -> None:
    assert runner.invoke(cli, ["lists", "create", "alerts", "--public"]).exit_code == 0
    assert runner.invoke(cli, ["lists", "create", "staff"]).exit_code == 0
    assert 'value="alerts"' in client(app).get("/signup").text
    assert runner.invoke(cli, ["lists", "update", "alerts", "--private"]).exit_code == 0
    assert runner.invoke(cli, ["lists", "update", "staff", "--public"]).exit_code == 0
    with sessions() as session:
        assert [m.name for m in public_lists(session)] == ["staff"]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_sign_up_in_chromium(app: Flask, settings: Settings) -> None:
    """The form as a browser sends it (its Origin header, its fields) is accepted."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    args = [a for a in CHROMIUM_ARGS if not a.startswith("--proxy")]  # loopback only
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=str(find_chromium()), args=args, headless=True)
            try:
                page = browser.new_page(java_script_enabled=False)
                page.goto(f"http://127.0.0.1:{server.port}/es/signup")
                page.get_by_label("Correo electrónico").fill("web@example.org")
                page.get_by_label("País").select_option("CR")
                page.get_by_role("button", name="Suscribirse").click()
                page.wait_for_load_state()
                assert page.get_by_role("status").is_visible()
            finally:
                browser.close()
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
    assert recipients(settings) == ["web@example.org"]
