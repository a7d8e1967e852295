"""Double opt-in requests: who gets one, in which language, how often, and refusals."""

from __future__ import annotations

import json
from datetime import timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage

import pytest
from click.testing import CliRunner
from sqlalchemy.orm import Session, sessionmaker

from newsletter.cli import cli
from newsletter.settings import DEV_SECRET, Settings
from subscribers.lists import create_list
from subscribers.people import NewSubscriber, add, find
from subscribers.tokens import confirm_link, subscriber_links
from tests.servers import SmtpServer
from worker.confirmations import send_confirmations
from worker.transports import MemoryTransport

# (address, name, language, lists): Ana and Bob wait on double opt-in lists only
PEOPLE = [
    ("ana@example.org", "Ana Rodríguez", "es", ("partners",)),
    ("bob@example.org", "Bob Young", "en", ("partners", "board")),
    ("carla@example.org", "Carla Núñez", "es", ("alerts",)),  # single opt-in: active
    # active through a single opt-in list, but partners (double) waits for his confirmation
    ("dan@example.org", "Dan Pierre", "en", ("alerts", "partners")),
    ("eva@example.org", "Eva Morales", "es", ("board",)),
]


@pytest.fixture
def people(sessions: sessionmaker[Session], settings: Settings) -> dict[str, int]:
    with sessions() as session, session.begin():
        create_list(session, "alerts")
        create_list(session, "partners", opt_in="double")
        create_list(session, "board", opt_in="double")
        ids = {}
        for email, name, language, lists in PEOPLE:
            person = add(session, NewSubscriber(email, name, "CR", language, lists),
                         default_language=settings.default_language)
            ids[email] = person.id
        return ids


def parsed(memory: MemoryTransport) -> dict[str, EmailMessage]:
    messages = [message_from_bytes(e.message, policy=policy.default) for e in memory.sent]
    return {m["To"].addresses[0].addr_spec: m for m in messages}


def body(message: EmailMessage, kind: str) -> str:
    part = message.get_body((kind,))
    assert part is not None
    return str(part.get_content())


def test_pending_people_get_one_request_in_their_language_with_their_link(
    settings: Settings, sessions: sessionmaker[Session], people: dict[str, int]
) -> None:
    memory = MemoryTransport()
    report = send_confirmations(settings, sessions, transport=memory)
    assert (report.sent, report.skipped, report.failed) == (4, 0, [])
    sent = parsed(memory)
    # Dan is active, but not on partners until he confirms it: he is asked too (issue 8,
    # item 16: `issues send` advises this command for such people, so it must reach them)
    assert sorted(sent) == ["ana@example.org", "bob@example.org", "dan@example.org",
                            "eva@example.org"]
    assert [e.recipient for e in memory.sent].count("ana@example.org") == 1

    ana = sent["ana@example.org"]
    assert ana["Subject"] == "Confirme su suscripción a Boletín Regional"
    with sessions() as session:
        salts = {email: find(session, email).token_salt for email in people}
    link = confirm_link(settings.public_base_url, settings.secret_key, people["ana@example.org"],
                        salts["ana@example.org"])
    assert link.startswith("https://news.example.org/c/")
    assert link in body(ana, "plain") and f'href="{link}"' in body(ana, "html")
    assert "Hola, Ana Rodríguez:" in body(ana, "plain")
    assert '<html lang="es">' in body(ana, "html")
    unsubscribe, _ = subscriber_links(settings.public_base_url, settings.secret_key,
                                      people["ana@example.org"], salts["ana@example.org"])
    assert ana["List-Unsubscribe"] == f"<{unsubscribe}>"

    bob = sent["bob@example.org"]
    assert bob["Subject"] == "Please confirm your subscription to Boletín Regional"
    bob_link = confirm_link(settings.public_base_url, settings.secret_key,
                            people["bob@example.org"], salts["bob@example.org"])
    assert bob_link in body(bob, "plain") and link not in body(bob, "plain")
    with sessions() as session:
        assert find(session, "ana@example.org").confirmation_sent_at is not None
        assert find(session, "carla@example.org").confirmation_sent_at is None


def test_a_second_run_waits_for_resend_after_and_then_asks_again(
    settings: Settings, sessions: sessionmaker[Session], people: dict[str, int]
) -> None:
    first = MemoryTransport()
    assert send_confirmations(settings, sessions, transport=first).sent == 4
    again = MemoryTransport()
    report = send_confirmations(settings, sessions, transport=again)
    assert (report.sent, report.skipped, again.sent) == (0, 4, [])
    later = MemoryTransport()
    report = send_confirmations(settings, sessions, transport=later,
                                resend_after=timedelta(0))
    assert report.sent == 4 and len(later.sent) == 4


def test_one_list_only(
    settings: Settings, sessions: sessionmaker[Session], people: dict[str, int]
) -> None:
    memory = MemoryTransport()
    report = send_confirmations(settings, sessions, list_name="board", transport=memory)
    assert report.sent == 2
    assert sorted(parsed(memory)) == ["bob@example.org", "eva@example.org"]
    with sessions() as session:
        assert find(session, "dan@example.org").confirmation_sent_at is None  # not on board
        assert find(session, "carla@example.org").status == "active"
    everyone = MemoryTransport()
    send_confirmations(settings, sessions, transport=everyone)
    assert sorted(parsed(everyone)) == ["ana@example.org", "dan@example.org"]


def test_an_smtp_refusal_is_reported_with_the_address_not_raised(
    settings: Settings, sessions: sessionmaker[Session], people: dict[str, int],
    smtp_server: SmtpServer,
) -> None:
    smtp = settings.model_copy(update={"smtp_url": smtp_server.url})
    smtp_server.reject_recipients(["bob@example.org"])
    try:
        report = send_confirmations(smtp, sessions)  # the configured transport: SMTP
        assert report.sent == 3 and report.skipped == 0
        assert len(report.failed) == 1
        address, reason = report.failed[0]
        assert address == "bob@example.org" and "550" in reason
        received = sorted(r for m in smtp_server.messages for r in m.rcpt_tos)
        assert received == ["ana@example.org", "dan@example.org", "eva@example.org"]
        with sessions() as session:  # not recorded as asked: the next run tries again
            assert find(session, "bob@example.org").confirmation_sent_at is None
    finally:
        smtp_server.clear()


def test_the_command_sends_to_the_outbox_and_refuses_smtp_with_the_dev_secret(
    settings: Settings, people: dict[str, int], cli_env: dict[str, str]
) -> None:
    result = CliRunner(env=cli_env).invoke(
        cli, ["subscribers", "send-confirmations", "--list", "partners", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {"sent": 3, "skipped": 0, "failed": []}  # Dan too
    outbox = sorted(settings.resolved_outbox_dir.rglob("*.eml"))
    assert len(outbox) == 3
    assert all(b"/c/" in p.read_bytes() for p in outbox)

    insecure = {**cli_env, "NEWSLETTER_SECRET_KEY": DEV_SECRET,
                "NEWSLETTER_SMTP_URL": "smtp://127.0.0.1:1"}
    refused = CliRunner(env=insecure).invoke(cli, ["subscribers", "send-confirmations"])
    assert refused.exit_code == 1 and "NEWSLETTER_SECRET_KEY" in refused.output
