"""VERP: each delivery's envelope sender names it, signed; a bounce address parses back."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from newsletter.models import Delivery, Issue
from newsletter.settings import Settings, SettingsError, load_settings
from subscribers.models import Subscriber
from tests.servers import SmtpServer
from tests.worker.conftest import runtime_with
from worker.delivery import send_issue
from worker.mime import issue_key
from worker.runtime import configure
from worker.transports import SMTPTransport
from worker.verp import Token, bounce_address, check, parse

KEY = issue_key("secret", 1, datetime(2026, 12, 6, 9, 0, tzinfo=UTC))


def test_an_address_round_trips_and_only_its_own_mac_checks() -> None:
    address = bounce_address("secret", "example.org", 42, KEY)
    assert re.fullmatch(r"bounces\+42\.[a-z2-7]{10}@example\.org", address)
    token = parse(address, "example.org")
    assert token is not None and token.delivery_id == 42 and check("secret", token, KEY)
    # mail systems that upper-case or bracket it on the way back
    assert parse(f"<{address.upper()}>", "EXAMPLE.ORG") == token
    assert not check("other secret", token, KEY)
    assert not check("secret", token, issue_key("secret", 1, datetime(2027, 1, 1, tzinfo=UTC)))
    assert not check("secret", Token(43, token.mac), KEY)  # another delivery's number


@pytest.mark.parametrize("address", [
    "news@example.org", "bounces@example.org", "bounces+42@example.org",
    "bounces+42.abcdefghij@other.example", "bounces+x.abcdefghij@example.org",
    "bounces+42.abcdefghi1@example.org", "", "@", "bounces+42.abcdefghij",
    "bounces+" + "9" * 40 + ".abcdefghij@example.org",
])
def test_what_is_not_one_of_ours_is_none(address: str) -> None:
    assert parse(address, "example.org") is None


@settings(max_examples=200)
@given(st.text(max_size=120))
def test_no_address_makes_parse_fail(address: str) -> None:
    found = parse(address, "example.org")
    assert found is None or (isinstance(found, Token) and found.delivery_id >= 0)


def test_the_bounce_domain_setting_is_checked() -> None:
    assert load_settings(sender_email="news@Example.org").resolved_bounce_domain == "example.org"
    assert load_settings(bounce_domain="Bounces.Example.org.").resolved_bounce_domain == (
        "bounces.example.org")
    with pytest.raises(SettingsError, match="NEWSLETTER_BOUNCE_DOMAIN"):
        load_settings(bounce_domain="not a domain")


def test_each_delivery_is_sent_from_its_own_address(
    settings: Settings, sessions: sessionmaker[Session], smtp_server: SmtpServer,
    issue_slug: str,
) -> None:
    verp = settings.model_copy(update={"bounce_domain": "bounces.example.org"})
    runtime = runtime_with(verp, sessions, SMTPTransport(smtp_server.url))
    configure(runtime)
    try:
        assert send_issue(runtime, issue_slug).counts["sent"] == 5
    finally:
        configure(None)
        runtime.transport.close()
    with sessions() as session:
        issue = session.scalars(select(Issue).where(Issue.slug == issue_slug)).one()
        key = issue_key(verp.secret_key, issue.id, issue.created_at)
        by_email = {email: delivery_id for email, delivery_id in session.execute(
            select(Subscriber.email, Delivery.id).join(Delivery)
            .where(Delivery.issue_id == issue.id))}
    for message in smtp_server.messages:
        token = parse(message.mail_from, "bounces.example.org")
        assert token is not None and check(verp.secret_key, token, key)
        assert token.delivery_id == by_email[message.rcpt_tos[0]]
