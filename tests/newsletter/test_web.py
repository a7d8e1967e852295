"""The subscriber web app, served by a real HTTP server and spoken to with urllib.

The links come from where an email's links come from (`subscriber_links` with the
settings' base URL and secret, or the headers of a message the delivery code sent), so
these tests prove that the links in sent emails work. No test client, no mocks.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from email import message_from_bytes, policy
from email.message import EmailMessage, Message
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.serving import make_server

from newsletter.cli import cli
from newsletter.cli.demo import sample_items_text
from newsletter.i18n import translated_in
from newsletter.ingest.text import parse_text
from newsletter.issues import audience_of, create_issue, get_issue
from newsletter.items import store_items
from newsletter.models import IssueVariant
from newsletter.render import PREFERENCES, UNSUBSCRIBE
from newsletter.settings import DEV_SECRET, Settings
from newsletter.templating import extract_messages, package_dir
from newsletter.web import WebConfigError, create_app, dispose
from subscribers.importer import import_csv
from subscribers.lists import create_list
from subscribers.models import Subscriber, Subscription
from subscribers.people import NewSubscriber, add, find, unsubscribe, update_subscriber
from subscribers.report import history
from subscribers.tokens import confirm_link, make_token, subscriber_links
from tests.newsletter.test_accessibility import html_validate, summary
from tests.worker.conftest import PEOPLE, SLUG, runtime_with
from worker.confirmations import send_confirmations
from worker.delivery import send_issue
from worker.runtime import configure
from worker.transports import MemoryTransport

ONE_CLICK = b"List-Unsubscribe=One-Click"
FORM = "application/x-www-form-urlencoded"


@dataclass(frozen=True)
class Reply:
    status: int
    headers: Message
    body: str


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect comes back as the 3xx it is, so a test can see it."""

    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


# no cookie jar and no proxy: a bare client, like a mail provider's one-click POST
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirects)


@dataclass(frozen=True)
class Site:
    base: str  # where the test server listens
    settings: Settings
    sessions: sessionmaker[Session]

    def url(self, link: str) -> str:
        """A link as mailed (https://news.example.org/...), pointed at the test server."""
        assert link.startswith(self.settings.public_base_url + "/"), link
        return self.base + link.removeprefix(self.settings.public_base_url)

    def get(self, link: str) -> Reply:
        return fetch(self.url(link))

    def post(self, link: str, body: bytes = b"", content_type: str = FORM) -> Reply:
        return fetch(self.url(link), body, {"Content-Type": content_type})


def fetch(url: str, body: bytes | None = None, headers: dict[str, str] | None = None) -> Reply:
    request = urllib.request.Request(url, data=body, headers=headers or {})
    try:
        with _opener.open(request, timeout=30) as response:
            return Reply(response.status, response.headers, response.read().decode())
    except urllib.error.HTTPError as error:
        return Reply(error.code, error.headers, error.read().decode())


@pytest.fixture
def people(sessions: sessionmaker[Session], settings: Settings) -> dict[str, int]:
    """The delivery tests' people and issue; Ana is also on two lists. Ids by address."""
    with sessions() as session, session.begin():
        store_items(session, parse_text(sample_items_text(), "sample"))
        import_csv(session, PEOPLE, default_language=settings.default_language)
        create_issue(session, SLUG, date(2019, 9, 1), date(2019, 10, 31))
        create_list(session, "alerts")
        create_list(session, "partners")
        update_subscriber(session, "ana@example.org", default_language=settings.default_language,
                          add_lists=("alerts", "partners"))
        return {p.email: p.id for p in session.scalars(select(Subscriber))}


@pytest.fixture
def site(
    settings: Settings, sessions: sessionmaker[Session], people: dict[str, int]
) -> Iterator[Site]:
    app = create_app(settings)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Site(f"http://127.0.0.1:{server.port}", settings, sessions)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
        dispose(app)


@pytest.fixture(autouse=True)
def _reset_runtime() -> Iterator[None]:
    yield
    configure(None)


def salt_of(sessions: sessionmaker[Session], subscriber_id: int) -> str:
    with sessions() as session:
        person = session.get(Subscriber, subscriber_id)
        assert person is not None
        return person.token_salt


def links(site: Site, subscriber_id: int) -> tuple[str, str]:
    s = site.settings
    return subscriber_links(s.public_base_url, s.secret_key, subscriber_id,
                            salt_of(site.sessions, subscriber_id))


def token(site: Site, subscriber_id: int, purpose: str, secret: str = "") -> str:
    """The token an email to this subscriber carries (signed with `secret` if given)."""
    return make_token(secret or site.settings.secret_key, subscriber_id, purpose,
                      salt_of(site.sessions, subscriber_id))


def confirm_url(site: Site, subscriber_id: int) -> str:
    s = site.settings
    return confirm_link(s.public_base_url, s.secret_key, subscriber_id,
                        salt_of(site.sessions, subscriber_id))


def status_of(sessions: sessionmaker[Session], email: str) -> tuple[str, list[str]]:
    with sessions() as session:
        person = find(session, email)
        subs = session.scalars(select(Subscription.status)
                               .where(Subscription.subscriber_id == person.id))
        return person.status, sorted(subs)


def send(settings: Settings, sessions: sessionmaker[Session], slug: str) -> list[EmailMessage]:
    memory = MemoryTransport()
    runtime = runtime_with(settings, sessions, memory)
    configure(runtime)
    send_issue(runtime, slug)
    return [message_from_bytes(e.message, policy=policy.default)
            for e in memory.sent]


def assert_private(reply: Reply) -> None:
    assert reply.headers["Cache-Control"] == "no-store"
    assert reply.headers["Referrer-Policy"] == "no-referrer"
    csp = reply.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "script-src" not in csp
    assert reply.headers.get("Set-Cookie") is None
    assert not re.search(r"<script|src=\"https?:|href=\"https?:", reply.body)


# --- one-click unsubscribe ----------------------------------------------------------


def test_get_asks_and_unsubscribes_nobody(
    site: Site, sessions: sessionmaker[Session], people: dict[str, int]
) -> None:
    unsubscribe, preferences = links(site, people["ana@example.org"])
    reply = site.get(unsubscribe)
    assert reply.status == 200
    assert_private(reply)
    assert reply.headers["Content-Type"] == "text/html; charset=utf-8"
    path = site.url(unsubscribe).removeprefix(site.base)
    assert re.search(rf'<form method="post" action="{re.escape(path)}">', reply.body)
    assert '<html lang="es">' in reply.body and "Cancelar la suscripción" in reply.body
    assert "a***@example.org" in reply.body and "ana@example.org" not in reply.body
    assert preferences.removeprefix(site.settings.public_base_url) in reply.body
    assert status_of(sessions, "ana@example.org") == ("active", ["confirmed", "confirmed"])


def test_one_click_post_unsubscribes_without_cookies_or_redirect_and_is_idempotent(
    site: Site, sessions: sessionmaker[Session], people: dict[str, int]
) -> None:
    unsubscribe, _ = links(site, people["ana@example.org"])
    for _attempt in range(2):
        reply = site.post(unsubscribe, ONE_CLICK)
        assert reply.status == 200, reply.body
        assert reply.headers.get("Location") is None
        assert_private(reply)
        assert "a***@example.org" in reply.body and '<html lang="es">' in reply.body
        assert status_of(sessions, "ana@example.org") == (
            "unsubscribed", ["unsubscribed", "unsubscribed"])
    # the page's own button: a plain form post, with an empty body
    bob, _ = links(site, people["bob@example.org"])
    reply = site.post(bob)
    assert reply.status == 200 and '<html lang="en">' in reply.body
    assert "You are unsubscribed" in reply.body
    assert status_of(sessions, "bob@example.org")[0] == "unsubscribed"


def test_links_that_do_not_verify_are_404_and_name_no_address(
    site: Site, sessions: sessionmaker[Session], people: dict[str, int]
) -> None:
    s, ana = site.settings, people["ana@example.org"]
    good = token(site, ana, "unsubscribe")
    tokens = [
        token(site, ana, "unsubscribe", "another-secret"),
        token(site, ana, "preferences"),  # another purpose
        good[:-1] + ("A" if good[-1] != "A" else "B"),  # tampered signature
        f"{people['bob@example.org']}.{good.partition('.')[2]}",  # another subscriber's id
        make_token(s.secret_key, 999_999, "unsubscribe", ""),  # nobody (erased)
        "not-a-token",
    ]
    for bad in tokens:
        link = f"{s.public_base_url}/u/{bad}"
        for reply in (site.get(link), site.post(link, ONE_CLICK)):
            assert reply.status == 404, bad
            assert "This link is not valid" in reply.body
            assert "example.org" not in reply.body and "***" not in reply.body
            assert_private(reply)
    assert status_of(sessions, "ana@example.org")[0] == "active"
    assert status_of(sessions, "bob@example.org")[0] == "active"
    # preferences tokens are checked the same way
    reply = site.get(f"{s.public_base_url}/p/{token(site, ana, 'unsubscribe')}")
    assert reply.status == 404


def test_unsubscribing_from_a_sent_email_leaves_the_person_out_of_the_next_send(
    site: Site, settings: Settings, sessions: sessionmaker[Session]
) -> None:
    sent = {str(m["To"]): m for m in send(settings, sessions, SLUG)}
    ana = next(m for to, m in sent.items() if "ana@example.org" in to)
    assert ana["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    link = str(ana["List-Unsubscribe"]).split(",")[0].strip("<>")  # then the mailto
    reply = site.post(link, ONE_CLICK)  # what a mail provider does for its "unsubscribe"
    assert reply.status == 200 and reply.headers.get("Location") is None
    with sessions() as session, session.begin():
        create_issue(session, "2019-11", date(2019, 9, 1), date(2019, 10, 31))
    again = [str(m["To"]) for m in send(settings, sessions, "2019-11")]
    assert len(again) == len(sent) - 1
    assert not any("ana@example.org" in to for to in again)


# --- double opt-in confirmation -----------------------------------------------------


@pytest.fixture
def fay(sessions: sessionmaker[Session], settings: Settings, people: dict[str, int]) -> int:
    """Fay subscribed to a double opt-in list only: pending, her subscription unconfirmed."""
    with sessions() as session, session.begin():
        create_list(session, "digest", opt_in="double")
        person = add(session, NewSubscriber("fay@example.org", "Fay Solís", "NI", "es",
                                            ("digest",)),
                     default_language=settings.default_language)
        return person.id


def planned(sessions: sessionmaker[Session], slug: str = SLUG) -> set[str]:
    """Who the issue would be sent to now."""
    with sessions() as session:
        issue = get_issue(session, slug)
        return set(session.scalars(select(Subscriber.email).where(audience_of(session, issue))))


def test_confirm_get_only_asks_and_post_confirms_without_redirect(
    site: Site, sessions: sessionmaker[Session], fay: int
) -> None:
    link = confirm_url(site, fay)
    assert "fay@example.org" not in planned(sessions)
    for _scanner in range(2):
        asked = site.get(link)
        assert asked.status == 200
        assert_private(asked)
        path = site.url(link).removeprefix(site.base)
        assert re.search(rf'<form method="post" action="{re.escape(path)}">', asked.body)
        assert '<html lang="es">' in asked.body and "Confirmar mi suscripción" in asked.body
        assert "f***@example.org" in asked.body and "fay@example.org" not in asked.body
    assert status_of(sessions, "fay@example.org") == ("pending", ["unconfirmed"])
    assert "fay@example.org" not in planned(sessions)

    for _attempt in range(2):  # idempotent
        done = site.post(link)
        assert done.status == 200, done.body
        assert done.headers.get("Location") is None
        assert_private(done)
        assert "Su suscripción está confirmada" in done.body
        assert status_of(sessions, "fay@example.org") == ("active", ["confirmed"])
    with sessions() as session:
        person = find(session, "fay@example.org")
        # how they were added stays their consent; the confirmation is an event, once
        assert person.consent_method == "cli:add"
        confirmed = [e for e in history(session, "fay@example.org").timeline
                     if e.kind == "confirmed"]
        assert len(confirmed) == 1
        assert confirmed[0].detail.startswith("double opt-in confirmation; lists: ")
    assert "fay@example.org" in planned(sessions)


def test_an_old_confirmation_link_does_not_resubscribe(
    site: Site, sessions: sessionmaker[Session], fay: int
) -> None:
    with sessions() as session, session.begin():
        unsubscribe(session, "fay@example.org")
    link = confirm_url(site, fay)
    reply = site.post(link)
    assert reply.status == 200 and "Su suscripción está confirmada" not in reply.body
    assert status_of(sessions, "fay@example.org") == ("unsubscribed", ["unsubscribed"])
    assert "fay@example.org" not in planned(sessions)


def test_the_link_in_the_confirmation_email_confirms(
    site: Site, settings: Settings, sessions: sessionmaker[Session], fay: int
) -> None:
    memory = MemoryTransport()
    assert send_confirmations(settings, sessions, transport=memory).sent == 1
    message = message_from_bytes(memory.sent[0].message, policy=policy.default)
    assert isinstance(message, EmailMessage)
    text = message.get_body(("plain",))
    assert text is not None
    found = re.search(r"https://\S+/c/\S+", text.get_content())
    assert found is not None
    assert site.get(found.group()).status == 200
    assert status_of(sessions, "fay@example.org")[0] == "pending"
    assert site.post(found.group()).status == 200
    assert status_of(sessions, "fay@example.org") == ("active", ["confirmed"])
    sent = [str(m["To"]) for m in send(settings, sessions, SLUG)]
    assert any("fay@example.org" in to for to in sent)


def test_confirmation_links_that_do_not_verify_are_404(
    site: Site, sessions: sessionmaker[Session], fay: int, people: dict[str, int]
) -> None:
    s = site.settings
    good = token(site, fay, "confirm")
    for bad in (token(site, fay, "unsubscribe"),
                token(site, fay, "confirm", "another-secret"),
                good[:-1] + ("A" if good[-1] != "A" else "B"),
                f"{people['bob@example.org']}.{good.partition('.')[2]}",
                make_token(s.secret_key, 999_999, "confirm", ""), "not-a-token"):
        link = f"{s.public_base_url}/c/{bad}"
        for reply in (site.get(link), site.post(link)):
            assert reply.status == 404, bad
            assert "This link is not valid" in reply.body
            assert_private(reply)
    assert status_of(sessions, "fay@example.org") == ("pending", ["unconfirmed"])


# --- preferences --------------------------------------------------------------------


def test_preferences_change_language_country_and_lists(
    site: Site, sessions: sessionmaker[Session], people: dict[str, int]
) -> None:
    unsubscribe, preferences = links(site, people["ana@example.org"])
    form = site.get(preferences)
    assert form.status == 200
    assert_private(form)
    assert '<html lang="es">' in form.body and "Sus preferencias" in form.body
    assert '<option value="es" lang="es" selected>Español</option>' in form.body
    assert '<option value="CR" selected>Costa Rica</option>' in form.body
    assert '<option value="DE">Alemania</option>' in form.body  # every ISO country
    assert re.search(r'name="list" value="alerts"[^>]* checked', form.body)
    assert unsubscribe.removeprefix(site.settings.public_base_url) in form.body

    body = b"language=en&country=NI&lists-shown=1&list=partners"
    saved = site.post(preferences, body)
    assert saved.status == 200 and saved.headers.get("Location") is None
    assert "Your preferences have been saved." in saved.body
    assert '<html lang="en">' in saved.body  # the page follows the new language
    assert '<option value="NI" selected>Nicaragua</option>' in saved.body
    assert not re.search(r'value="alerts"[^>]* checked', saved.body)
    with sessions() as session:
        person = find(session, "ana@example.org")
        assert (person.language, person.country, person.status) == ("en", "NI", "active")
    assert status_of(sessions, "ana@example.org")[1] == ["confirmed", "unsubscribed"]

    # checking it again brings the list back; a post without the form's lists keeps them
    assert site.post(preferences, b"lists-shown=1&list=partners&list=alerts").status == 200
    assert site.post(preferences, b"language=es").status == 200
    assert status_of(sessions, "ana@example.org")[1] == ["confirmed", "confirmed"]


@pytest.mark.parametrize(("body", "message"), [
    (b"language=en&country=ZZ", "Choose a country from the list."),
    (b"language=deutsch&country=NI", "Choose a language from the list."),  # not a tag
])
def test_preferences_refuse_bad_values_with_400_and_change_nothing(
    site: Site, sessions: sessionmaker[Session], people: dict[str, int],
    body: bytes, message: str,
) -> None:
    _, preferences = links(site, people["bob@example.org"])
    reply = site.post(preferences, body)
    assert reply.status == 400
    assert message in reply.body and 'role="alert"' in reply.body
    with sessions() as session:
        person = find(session, "bob@example.org")
        assert (person.language, person.country) == ("en", "BZ")


# --- the web copy, health, settings -------------------------------------------------


def test_the_view_link_serves_the_stored_variant_without_personal_links(
    site: Site, settings: Settings, sessions: sessionmaker[Session]
) -> None:
    sent = send(settings, sessions, SLUG)
    ana = next(m for m in sent if "ana@example.org" in str(m["To"]))
    html = ana.get_body(("html",)).get_content()  # type: ignore[union-attr]
    view = re.search(r'href="([^"]*/v/[^"]*)"', html)
    assert view is not None and view.group(1).endswith(f"/v/{SLUG}/es-CR")
    with sessions() as session:
        stored = session.scalar(select(IssueVariant.html).where(
            IssueVariant.language == "es", IssueVariant.country == "CR"))
    assert stored is not None and UNSUBSCRIBE in stored

    reply = site.get(view.group(1))
    assert reply.status == 200
    assert reply.headers["Content-Type"] == "text/html; charset=utf-8"
    csp = reply.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "script-src" not in csp
    assert reply.headers["Referrer-Policy"] == "no-referrer"
    assert UNSUBSCRIBE not in reply.body and PREFERENCES not in reply.body
    assert "%%" not in reply.body and "/u/" not in reply.body and "/p/" not in reply.body
    assert 'href="/links?lang=es"' in reply.body and 'lang="es"' in reply.body
    about = fetch(site.base + "/links?lang=es")
    assert about.status == 200 and "no son personales" in about.body

    base = site.settings.public_base_url
    for missing in (f"/v/{SLUG}/es-NI", f"/v/{SLUG}/fr-regional", "/v/1999-01/es-CR",
                    f"/v/{SLUG}/es-cr", f"/v/{SLUG}/es"):
        assert site.get(base + missing).status == 404, missing


def test_healthz_answers_when_the_database_does(site: Site) -> None:
    reply = fetch(site.base + "/healthz")
    assert (reply.status, reply.body.strip()) == (200, "ok")


def test_the_development_secret_is_refused_unless_the_links_point_at_localhost(
    settings: Settings,
) -> None:
    public = settings.model_copy(update={"secret_key": DEV_SECRET})
    with pytest.raises(WebConfigError, match="NEWSLETTER_SECRET_KEY"):
        create_app(public)
    local = settings.model_copy(update={"secret_key": DEV_SECRET,
                                        "public_base_url": "http://localhost:8000"})
    dispose(create_app(local))
    result = CliRunner(env={"NEWSLETTER_DATABASE_URL": settings.resolved_database_url,
                            "NEWSLETTER_SECRET_KEY": DEV_SECRET,
                            "NEWSLETTER_PUBLIC_BASE_URL": "https://news.example.org"}
                       ).invoke(cli, ["serve"])
    assert result.exit_code == 1 and "NEWSLETTER_SECRET_KEY" in result.output


def test_every_page_string_is_translated_in_spanish_and_french() -> None:
    web = {m.id for m in extract_messages(package_dir())
           if m.id and any(path.startswith("web/") for path, _ in m.locations)}
    assert len(web) > 15
    for language in ("es", "fr"):
        assert web <= translated_in(language), web - translated_in(language)


def test_newsletter_serve_serves(settings: Settings, tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "NEWSLETTER_DATABASE_URL": settings.resolved_database_url,
           "NEWSLETTER_SECRET_KEY": settings.secret_key,
           "NEWSLETTER_PUBLIC_BASE_URL": settings.public_base_url}
    process = subprocess.Popen(
        [sys.executable, "-m", "newsletter", "serve", "--port", str(port)],
        env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                reply = fetch(f"http://127.0.0.1:{port}/healthz")
                break
            except urllib.error.URLError:
                assert process.poll() is None, process.communicate()[0]
                assert time.monotonic() < deadline, "newsletter serve did not answer"
                time.sleep(0.1)
        assert (reply.status, reply.body) == (200, "ok\n")
    finally:
        process.terminate()
        process.wait(10)


def test_every_page_passes_html_validate_with_the_accessibility_rules(
    site: Site, people: dict[str, int], tmp_path: Path
) -> None:
    unsubscribe, preferences = links(site, people["carla@example.org"])
    confirm = confirm_url(site, people["carla@example.org"])
    pages = {
        "unsubscribe.html": site.get(unsubscribe),
        "preferences.html": site.get(preferences),
        "refused.html": site.post(preferences, b"country=ZZ"),
        "saved.html": site.post(preferences, b"country=SV&language=es"),
        "confirm.html": site.get(confirm),
        "confirmed.html": site.post(confirm),
        "unsubscribed.html": site.post(unsubscribe, ONE_CLICK),
        "not_found.html": fetch(site.base + "/u/nothing"),
        "links.html": fetch(site.base + "/links?lang=en"),
    }
    paths = []
    for name, reply in pages.items():
        (tmp_path / name).write_text(reply.body, encoding="utf-8")
        paths.append(tmp_path / name)
    config = {"extends": ["html-validate:recommended", "html-validate:a11y",
                          "html-validate:document"]}
    found = html_validate(paths, config, tmp_path)
    assert {name: summary(messages) for name, messages in found.items() if messages} == {}
