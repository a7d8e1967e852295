"""Whose link it is: a personal link acts on the person it was mailed to, or on nobody.

Ids are reused (SQLite hands out the highest id again after an erase or a delete; a
database reset hands them all out again), so a link names a subscriber by id AND by
the subscriber's own salt. The scenario of issue 8, item 1, through the real CLI, the
real outbox and the real web app, on SQLite and PostgreSQL; then what becomes of links
mailed before the upgrade that introduced salts; then any string at all as a token.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from newsletter.cli import cli
from newsletter.cli.demo import sample_items_text
from newsletter.db import make_engine, session_factory, upgrade
from newsletter.models import Issue, IssueVariant
from newsletter.settings import Settings
from newsletter.web import create_app, dispose
from subscribers.models import Subscriber
from subscribers.people import find
from subscribers.tokens import MAX_ID, make_token, subscriber_links

NOT_VALID = "This link is not valid"
ONE_CLICK = b"List-Unsubscribe=One-Click"


def run(runner: CliRunner, *args: str) -> str:
    result = runner.invoke(cli, list(args))
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture
def app(settings: Settings, engine: Engine) -> Iterator[Flask]:
    app = create_app(settings)
    yield app
    dispose(app)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def path_of(link: str, settings: Settings) -> str:
    assert link.startswith(settings.public_base_url + "/"), link
    return link.removeprefix(settings.public_base_url)


def mailed_links(outbox: Path, address: str) -> tuple[str, str]:
    """(unsubscribe, preferences) links of the message the outbox holds for `address`."""
    for path in outbox.glob("*.eml"):
        message = message_from_bytes(path.read_bytes(), policy=policy.default)
        assert isinstance(message, EmailMessage)
        if message["To"].addresses[0].addr_spec != address:
            continue
        unsubscribe = str(message["List-Unsubscribe"]).split(",")[0].strip("<>")
        plain = message.get_body(("plain",))
        assert plain is not None
        found = re.search(r"https://\S+/p/[\w.-]+", plain.get_content())
        assert found is not None
        return unsubscribe, found.group()
    raise AssertionError(f"nothing was mailed to {address}")


def state(sessions: sessionmaker[Session], address: str) -> tuple[int, str, str, str | None]:
    with sessions() as session:
        person = find(session, address)
        return person.id, person.status, person.language, person.country


def test_an_erased_subscribers_links_do_not_act_on_the_next_holder_of_the_id(
    runner: CliRunner, settings: Settings, sessions: sessionmaker[Session], engine: Engine,
    client: FlaskClient, tmp_path: Path,
) -> None:
    items = tmp_path / "items.txt"
    items.write_text(sample_items_text(), encoding="utf-8")
    run(runner, "items", "import", str(items))
    run(runner, "issues", "create", "2019-10", "--from", "2019-10-01", "--to", "2019-10-31")
    run(runner, "subscribers", "add", "alice@example.org", "--name", "Alice")
    run(runner, "subscribers", "add", "mallory@example.org", "--name", "Mallory")
    run(runner, "issues", "send", "2019-10")
    outbox = settings.resolved_outbox_dir
    mallory_id = state(sessions, "mallory@example.org")[0]
    unsubscribe, preferences = mailed_links(outbox, "mallory@example.org")
    alice_unsubscribe, alice_preferences = mailed_links(outbox, "alice@example.org")

    run(runner, "subscribers", "erase", "mallory@example.org", "--yes")
    if engine.dialect.name == "postgresql":  # a sequence never goes back, but a reset does
        with engine.begin() as conn:
            conn.execute(text("SELECT setval('subscribers_id_seq', :n, false)"),
                         {"n": mallory_id})
    run(runner, "subscribers", "add", "carol@example.org", "--name", "Carol", "--country",
        "CR", "--language", "en")
    carol = state(sessions, "carol@example.org")
    assert carol == (mallory_id, "active", "en", "CR")  # the id was reused

    for link in (unsubscribe, preferences):
        reply = client.get(path_of(link, settings))
        assert reply.status_code == 404 and NOT_VALID in reply.text, link
        assert "c***@example.org" not in reply.text
    reply = client.post(path_of(unsubscribe, settings), data=ONE_CLICK,
                        content_type="application/x-www-form-urlencoded")
    assert reply.status_code == 404 and NOT_VALID in reply.text
    reply = client.post(path_of(preferences, settings),
                        data={"language": "es", "country": "NI", "lists-shown": "1"})
    assert reply.status_code == 404 and NOT_VALID in reply.text
    assert state(sessions, "carol@example.org") == carol  # untouched

    # carol's own links work, and so do alice's, mailed with the same issue
    with sessions() as session:
        salt = find(session, "carol@example.org").token_salt
    own, _ = subscriber_links(settings.public_base_url, settings.secret_key, carol[0], salt)
    assert client.get(path_of(own, settings)).status_code == 200
    assert client.get(path_of(alice_preferences, settings)).status_code == 200
    assert client.post(path_of(alice_unsubscribe, settings), data=ONE_CLICK).status_code == 200
    assert state(sessions, "alice@example.org")[1] == "unsubscribed"
    assert state(sessions, "carol@example.org") == carol


@pytest.mark.empty_database
def test_links_mailed_before_the_upgrade_keep_working_for_their_people(
    db_url: str, settings: Settings
) -> None:
    """Rows that existed at the upgrade get the empty salt, which signs what their links
    were signed with; everyone added afterwards gets a random salt."""
    engine = make_engine(db_url)
    try:
        upgrade(engine, "0005")
        with engine.begin() as conn:
            conn.execute(text(
                "INSERT INTO subscribers (email, email_key, email_hash, name, language, "
                "status, attributes, created_at, updated_at) VALUES ('old@example.org', "
                "'old@example.org', '', 'Old', 'en', 'active', '{}', :now, :now)"
            ), {"now": "2019-10-01 00:00:00"})
            old_id = conn.execute(text("SELECT id FROM subscribers")).scalar_one()
        upgrade(engine)
        sessions = session_factory(engine)
        with sessions() as session, session.begin():
            session.add(Subscriber(email="new@example.org", email_key="new@example.org",
                                   name="New"))
        with sessions() as session:
            salts = dict(session.execute(select(Subscriber.email, Subscriber.token_salt)).all())
        assert salts["old@example.org"] == ""
        assert len(salts["new@example.org"]) == 22
    finally:
        engine.dispose()
    # the link as the code before the upgrade signed it: `unsubscribe:<id>`
    mailed = make_token(settings.secret_key, old_id, "unsubscribe", "")
    app = create_app(settings)
    try:
        client = app.test_client()
        assert client.get(f"/u/{mailed}").status_code == 200
        assert client.post(f"/u/{mailed}").status_code == 200
    finally:
        dispose(app)


def test_a_validly_signed_token_with_an_id_beyond_any_column_is_404(
    client: FlaskClient, settings: Settings
) -> None:
    for subscriber_id in (2**63, 2**64 + 5, 2**31, MAX_ID):
        for purpose, route in (("unsubscribe", "u"), ("preferences", "p"), ("confirm", "c")):
            token = make_token(settings.secret_key, subscriber_id, purpose, "")
            for method in (client.get, client.post):
                reply = method(f"/{route}/{token}")
                assert reply.status_code == 404, (route, subscriber_id, method)
                assert NOT_VALID in reply.text


_SEGMENT = st.text(st.characters(codec="utf-8", exclude_characters="/?#"), max_size=60)
_TOKENS = st.one_of(
    _SEGMENT,
    st.builds(lambda n, sig: f"{n}.{sig}", st.integers(min_value=-1, max_value=2**70), _SEGMENT),
    st.builds(lambda a, b: f"{a}.{b}", _SEGMENT, _SEGMENT),
).filter(lambda t: t not in ("", ".", ".."))


@pytest.mark.fuzz
@given(token=_TOKENS, route=st.sampled_from(["u", "p", "c", "v"]),
       post=st.booleans())
def test_no_token_string_makes_a_server_error(
    client: FlaskClient, token: str, route: str, post: bool
) -> None:
    path = f"/v/{token}/{token}" if route == "v" else f"/{route}/{token}"
    method = client.post if post and route != "v" else client.get
    reply = method(path)
    assert reply.status_code in (200, 404, 405), (path, reply.status_code)


def test_the_web_copy_of_an_edition_with_a_region_in_its_tag_is_served(
    client: FlaskClient, sessions: sessionmaker[Session]
) -> None:
    """NEWSLETTER_LANGUAGES may name pt-BR or zh-Hant: the view link of such an edition
    (`/v/<slug>/pt-BR-regional`, `/v/<slug>/zh-Hant-TW`) finds its variant."""
    with sessions() as session, session.begin():
        issue = Issue(slug="2019-10", title="", date_from=date(2019, 10, 1),
                      date_to=date(2019, 10, 31))
        session.add(issue)
        session.flush()
        for language, country in (("pt-BR", ""), ("zh-Hant", "TW")):
            session.add(IssueVariant(issue_id=issue.id, language=language, country=country,
                                     subject="s", html=f"<p>{language}</p>", text="t"))
    assert client.get("/v/2019-10/pt-BR-regional").text == "<p>pt-BR</p>"
    assert client.get("/v/2019-10/zh-Hant-TW").text == "<p>zh-Hant</p>"
    for missing in ("pt-BR", "pt-regional", "pt-BR-br", "zh-Hant-", "-regional", "pt--regional",
                    "pt-BR\x00-regional"):
        assert client.get(f"/v/2019-10/{missing}").status_code == 404, missing
