"""Pause, resume, cancel, retry, test-send and the sweep, in-process on both databases."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from email import message_from_bytes, policy

import pytest
from sqlalchemy import select, true, update
from sqlalchemy.orm import Session, sessionmaker

from newsletter.models import Delivery, Issue
from newsletter.render import Variant
from newsletter.settings import Settings
from tests.servers import SmtpServer
from tests.worker.conftest import runtime_with
from worker import control, ledger
from worker.delivery import render_missing_variants, send_issue
from worker.runtime import Runtime, configure
from worker.transports import MemoryTransport, SMTPTransport


@pytest.fixture
def runtime(settings: Settings, sessions: sessionmaker[Session]) -> Iterator[Runtime]:
    rt = runtime_with(settings, sessions, MemoryTransport())
    configure(rt)
    yield rt
    configure(None)


def issue_state(sessions: sessionmaker[Session], slug: str) -> tuple[str, str]:
    with sessions() as session:
        issue = session.scalar(select(Issue).where(Issue.slug == slug))
        assert issue is not None
        return issue.status, issue.status_note


def test_pause_resume_cancel(runtime: Runtime, sessions: sessionmaker[Session],
                             issue_slug: str) -> None:
    memory = runtime.transport
    assert isinstance(memory, MemoryTransport)
    with pytest.raises(control.ControlError, match="only an issue that is sending"):
        control.pause(runtime, issue_slug)
    send_issue(runtime, issue_slug)
    assert issue_state(sessions, issue_slug)[0] == "sent"
    with pytest.raises(control.ControlError, match="already sent"):
        control.cancel(runtime, issue_slug)


def test_paused_issue_sends_nothing_until_resumed(
    runtime: Runtime, sessions: sessionmaker[Session], issue_slug: str
) -> None:
    memory = runtime.transport
    assert isinstance(memory, MemoryTransport)
    with sessions() as session, session.begin():
        session.execute(update(Issue).values(status="sending"))
    control.pause(runtime, issue_slug)
    with pytest.raises(Exception, match="paused"):
        send_issue(runtime, issue_slug)
    assert memory.sent == []
    control.resume(runtime, issue_slug)  # nothing planned yet: resume hands out nothing
    assert issue_state(sessions, issue_slug)[0] == "sent"
    send_issue(runtime, issue_slug)
    assert len(memory.sent) == 5


def test_cancel_leaves_the_rest_unsent(
    runtime: Runtime, sessions: sessionmaker[Session], issue_slug: str
) -> None:
    memory = runtime.transport
    assert isinstance(memory, MemoryTransport)
    with sessions() as session, session.begin():
        issue = session.scalar(select(Issue).where(Issue.slug == issue_slug))
        assert issue is not None
        ledger.plan(session, issue.id, languages=["en", "es"], default_language="en",
                    focus_countries=[], audience=true())
        issue.status = "sending"
    assert control.cancel(runtime, issue_slug) == 5
    with pytest.raises(Exception, match="cancelled"):
        send_issue(runtime, issue_slug)
    assert memory.sent == []
    with sessions() as session:
        assert set(session.scalars(select(Delivery.status))) == {"cancelled"}


def test_sender_configuration_problem_pauses_the_issue(
    settings: Settings, sessions: sessionmaker[Session], smtp_server: SmtpServer,
    issue_slug: str,
) -> None:
    smtp_server.fail_next(5, "550 5.7.1 Relaying denied", stage="RCPT")
    rt = runtime_with(settings, sessions, SMTPTransport(smtp_server.url))
    configure(rt)
    try:
        summary = send_issue(rt, issue_slug)
    finally:
        configure(None)
    assert summary.counts["failed"] == 3 and summary.counts["queued"] == 2
    assert summary.counts["bounced"] == 0  # not the subscribers' fault
    state, note = issue_state(sessions, issue_slug)
    assert state == "paused" and "5.7.1" in note and "retry" in note
    with sessions() as session:
        statuses = set(session.scalars(select(Issue.status)))
    assert statuses == {"paused"}


def test_test_send_goes_outside_the_ledger(
    settings: Settings, sessions: sessionmaker[Session], smtp_server: SmtpServer,
    issue_slug: str,
) -> None:
    rt = runtime_with(settings, sessions, SMTPTransport(smtp_server.url))
    result = control.test_send(rt, issue_slug, "editor@example.org", Variant("es", "CR"))
    assert result.variant == "es-CR" and result.reply.startswith("250")
    (got,) = smtp_server.messages
    msg = message_from_bytes(got.content, policy=policy.default)
    assert str(msg["Subject"]).startswith("[TEST es-CR] ")
    text = msg.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "EN COSTA RICA" in text
    with sessions() as session:
        assert session.scalar(select(Delivery.id)) is None


def test_sweep_requeues_expired_leases(
    runtime: Runtime, sessions: sessionmaker[Session], issue_slug: str
) -> None:
    memory = runtime.transport
    assert isinstance(memory, MemoryTransport)
    with sessions() as session, session.begin():
        issue = session.scalar(select(Issue).where(Issue.slug == issue_slug))
        assert issue is not None
        ledger.plan(session, issue.id, languages=["en", "es"], default_language="en",
                    focus_countries=[], audience=true())
        issue.status = "sending"
        issue_id = issue.id
    # a worker claimed everything and died: its lease has expired
    with sessions() as session, session.begin():
        ((lo, hi),) = ledger.batch_ranges(session, issue_id, 100)
        ledger.claim(session, issue_id, lo, hi, timedelta(seconds=-1))
    with sessions() as session, session.begin():
        issue = session.get(Issue, issue_id)
        assert issue is not None
        render_missing_variants(runtime, session, issue)
    assert control.sweep(runtime) == {issue_slug: 1}
    assert len(memory.sent) == 5
    assert issue_state(sessions, issue_slug)[0] == "sent"
    assert control.sweep(runtime) == {}
