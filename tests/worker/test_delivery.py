"""Sending in-process (no broker): the ledger, replies, and sending twice."""

from __future__ import annotations

import re
from datetime import timedelta
from email import message_from_bytes, policy

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from newsletter.db import utcnow
from newsletter.models import Delivery, Issue
from newsletter.settings import Settings
from subscribers.models import Subscriber
from tests.servers import SmtpServer
from tests.worker.conftest import runtime_with
from worker import ledger
from worker.control import retry
from worker.delivery import SendError, send_issue
from worker.runtime import configure
from worker.transports import MemoryTransport, SMTPTransport


@pytest.fixture(autouse=True)
def _reset_runtime() -> object:
    yield
    configure(None)


def send(settings: Settings, sessions: sessionmaker[Session], transport: object,
         slug: str) -> dict[str, int]:
    runtime = runtime_with(settings, sessions, transport)  # type: ignore[arg-type]
    configure(runtime)
    return send_issue(runtime, slug).counts


def test_every_active_subscriber_gets_one_message_in_their_variant(
    settings: Settings, sessions: sessionmaker[Session], memory: MemoryTransport,
    issue_slug: str,
) -> None:
    with sessions() as session, session.begin():
        session.execute(update(Subscriber).where(Subscriber.email == "eva@example.org")
                        .values(status="unsubscribed"))
    counts = send(settings, sessions, memory, issue_slug)
    assert counts["sent"] == 4 and counts["queued"] == counts["sending"] == 0
    recipients = sorted(e.recipient for e in memory.sent)
    assert recipients == ["ana@example.org", "bob@example.org", "carla@example.org",
                          "dan@example.org"]
    by_rcpt = {e.recipient: message_from_bytes(e.message, policy=policy.default)
               for e in memory.sent}
    ana = by_rcpt["ana@example.org"]
    # no item in Spanish in this issue: the subject names the period, in Spanish
    assert str(ana["Subject"]) == "Noticias del 1 de septiembre de 2019 al 31 de octubre de 2019"
    text = ana.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert text.index("EN COSTA RICA") < text.index("EN LA REGIÓN")
    dan_text = by_rcpt["dan@example.org"].get_body(("plain",)).get_content()  # type: ignore[union-attr]
    # no country, no country heading: the regional order
    assert not re.search(r"^IN [A-Z]", dan_text, re.M) and "ACROSS THE REGION" not in dan_text
    # each message has its own signed links, and the header matches the body's link
    for msg in by_rcpt.values():
        # the https link (RFC 8058 one-click) first, then the delivery's mailto
        link, mailto = (u.strip().strip("<>") for u in str(msg["List-Unsubscribe"]).split(","))
        assert link.startswith("https://news.example.org/u/")
        assert link in msg.get_body(("plain",)).get_content()  # type: ignore[union-attr]
        assert re.fullmatch(r"mailto:unsubscribe\+\d+\.[a-z2-7]{10}@example\.org"
                            r"\?subject=unsubscribe", mailto)
    assert len({str(m["List-Unsubscribe"]) for m in by_rcpt.values()}) == 4
    with sessions() as session:
        issue = session.scalar(select(Issue).where(Issue.slug == issue_slug))
        assert issue is not None and issue.status == "sent" and issue.sent_at is not None
        variants = {(v.language, v.country) for v in ledger.variants(session, issue.id)}
    # BZ has an item in the sample, MX (unsubscribed) is gone, no country -> regional
    assert variants == {("es", "CR"), ("en", "BZ"), ("es", "SV"), ("en", "")}


def test_sending_twice_sends_nothing_the_second_time(
    settings: Settings, sessions: sessionmaker[Session], memory: MemoryTransport,
    issue_slug: str,
) -> None:
    send(settings, sessions, memory, issue_slug)
    first = len(memory.sent)
    counts = send(settings, sessions, memory, issue_slug)
    assert len(memory.sent) == first == 5
    assert counts["sent"] == 5


def test_a_new_subscriber_after_a_send_gets_only_their_own_copy(
    settings: Settings, sessions: sessionmaker[Session], memory: MemoryTransport,
    issue_slug: str,
) -> None:
    send(settings, sessions, memory, issue_slug)
    with sessions() as session, session.begin():
        session.add(Subscriber(email="new@example.org", email_key="new@example.org",
                               name="New", country="HN", language="es", status="active"))
    memory.sent.clear()
    send(settings, sessions, memory, issue_slug)
    assert [e.recipient for e in memory.sent] == ["new@example.org"]


def test_no_subscribers_is_a_clear_error(
    settings: Settings, sessions: sessionmaker[Session], memory: MemoryTransport,
    issue_slug: str,
) -> None:
    with sessions() as session, session.begin():
        session.execute(update(Subscriber).values(status="bounced"))
    # the reason comes from the counts (issue 8, item 16): everyone bounced
    with pytest.raises(SendError, match="5 people bounced"):
        send(settings, sessions, memory, issue_slug)


def test_smtp_replies_are_recorded_and_deferred_ones_retried(
    settings: Settings, sessions: sessionmaker[Session], smtp_server: SmtpServer,
    issue_slug: str,
) -> None:
    smtp_server.reject_recipients({"bob@example.org": "550 5.1.1 No such user"})
    smtp_server.fail_next(1, "451 4.3.0 Try again later")
    transport = SMTPTransport(smtp_server.url)
    counts = send(settings, sessions, transport, issue_slug)
    assert counts["sent"] == 3 and counts["bounced"] == 1 and counts["deferred"] == 1
    with sessions() as session:
        rows = {email: d for d, email in ledger.deliveries(session, 1)}
    assert rows["bob@example.org"].last_reply == "550 5.1.1 No such user"
    deferred = [e for e, d in rows.items() if d.status == "deferred"]
    assert rows[deferred[0]].last_reply == "451 4.3.0 Try again later"
    assert sorted(smtp_server.messages[i].rcpt_tos[0] for i in range(3)) == sorted(
        e for e, d in rows.items() if d.status == "sent")
    # a deferred message waits for its backoff: sending again now sends nothing
    retry_at = rows[deferred[0]].next_attempt_at
    assert retry_at is not None and retry_at > utcnow() + timedelta(seconds=50)
    assert rows["bob@example.org"].smtp_code == 550 and rows[deferred[0]].smtp_code == 451
    counts = send(settings, sessions, transport, issue_slug)
    assert counts["deferred"] == 1 and len(smtp_server.messages) == 3
    # `issues retry` makes it due now; the bounce is never retried
    runtime = runtime_with(settings, sessions, transport)
    configure(runtime)
    assert retry(runtime, issue_slug, "deferred") == 1
    counts = ledger_counts(sessions)
    assert counts["sent"] == 4 and counts["bounced"] == 1 and counts["deferred"] == 0
    received = [m.rcpt_tos[0] for m in smtp_server.messages]
    assert len(received) == len(set(received)) == 4
    assert "bob@example.org" not in received
    transport.close()


def ledger_counts(sessions: sessionmaker[Session]) -> dict[str, int]:
    with sessions() as session:
        return ledger.counts(session, 1)


def test_server_going_away_defers_and_releases_the_rest(
    settings: Settings, sessions: sessionmaker[Session], smtp_server: SmtpServer,
    issue_slug: str,
) -> None:
    url = smtp_server.url
    smtp_server.stop()
    counts = send(settings, sessions, SMTPTransport(url, timeout=2), issue_slug)
    # nothing was sent, one message saw the failure, the others were given back untried
    assert counts["sent"] == 0
    assert counts["deferred"] == 1 and counts["queued"] == 4
    with sessions() as session:
        attempts = sorted(session.scalars(select(Delivery.attempts)))
    assert attempts == [0, 0, 0, 0, 1]


def test_someone_who_unsubscribes_after_the_plan_is_not_mailed(
    settings: Settings, sessions: sessionmaker[Session], memory: MemoryTransport,
    issue_slug: str,
) -> None:
    from newsletter.issues import audience_of, countries_of, get_issue

    with sessions() as session, session.begin():
        issue = get_issue(session, issue_slug)
        ledger.plan(session, issue.id, languages=["en", "es"], default_language="en",
                    focus_countries=sorted(countries_of(issue)),
                    audience=audience_of(session, issue))
        session.execute(update(Subscriber).where(Subscriber.email == "ana@example.org")
                        .values(status="unsubscribed"))
    counts = send(settings, sessions, memory, issue_slug)
    assert "ana@example.org" not in [e.recipient for e in memory.sent]
    assert counts["sent"] == 4 and counts["cancelled"] == 1
    with sessions() as session:
        (row, _), = ledger.deliveries(session, 1, "cancelled")
        assert row.last_reply is not None and "unsubscribed" in row.last_reply


def test_a_message_that_cannot_be_built_fails_alone(
    settings: Settings, sessions: sessionmaker[Session], memory: MemoryTransport,
    issue_slug: str,
) -> None:
    with sessions() as session, session.begin():
        session.execute(update(Subscriber).where(Subscriber.email == "bob@example.org")
                        .values(email="bob@exa mple.örg"))  # a corrupt row
    counts = send(settings, sessions, memory, issue_slug)
    assert counts["sent"] == 4 and counts["failed"] == 1 and counts["sending"] == 0
    with sessions() as session:
        (row, email), = ledger.deliveries(session, 1, "failed")
    assert email == "bob@exa mple.örg" and "could not build the message" in (row.last_reply or "")
