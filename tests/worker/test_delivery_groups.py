"""Replies recorded in groups behind the journal: nothing lost, nothing sent twice, and
a pause or a cancel still seen within a second, on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, true, update
from sqlalchemy.orm import Session, sessionmaker

from newsletter.db import make_engine, session_factory, utcnow
from newsletter.issues import get_issue
from newsletter.models import Delivery
from newsletter.settings import Settings
from subscribers.importer import import_csv
from tests.servers import SmtpServer
from tests.worker.cluster import newsletter, people_csv, populate, received, service_env
from tests.worker.conftest import runtime_with
from worker import control, ledger
from worker.delivery import _prepare, deliver_range
from worker.journal import SUFFIX, Reply
from worker.runtime import Runtime, configure
from worker.transports import Envelope

SLUG = "2019-10"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Limited:
    """A transport whose rate limit costs `wait` seconds of the test's clock a message;
    `before(n)` runs as the n-th wait begins, `after(n)` once the n-th message is sent."""

    name = "memory"
    last_relay = "memory"

    def __init__(self, clock: Clock, wait: float, before: Callable[[int], None],
                 after: Callable[[int], None]) -> None:
        self.clock, self.wait, self.before, self.after = clock, wait, before, after
        self.sent: list[Envelope] = []
        self.waits = 0

    def ready(self) -> None:
        self.waits += 1
        self.before(self.waits)
        self.clock.now += self.wait

    def send(self, envelope: Envelope) -> str:
        self.sent.append(envelope)
        self.after(len(self.sent))
        return "250 kept"

    def close(self) -> None:
        return None


def prepared(settings: Settings, sessions: sessionmaker[Session], issue_slug: str,
             transport: object, people: int = 40) -> tuple[Runtime, int, int, int]:
    """`people` more subscribers, and the issue planned and sending, as `issues send`
    leaves it before its batches run; returns the runtime, the issue and its one range."""
    csv_text, _ = people_csv(people)
    runtime = runtime_with(settings.model_copy(update={"batch_size": 1000}), sessions,
                           transport)  # type: ignore[arg-type]
    configure(runtime)
    with sessions() as session, session.begin():
        import_csv(session, csv_text, default_language="en")
        issue = get_issue(session, issue_slug)
        _, _, ranges = _prepare(runtime, session, issue)
        issue_id = issue.id
    ((lo, hi),) = ranges
    return runtime, issue_id, lo, hi


@pytest.fixture(autouse=True)
def _reset_runtime() -> object:
    yield
    configure(None)


@pytest.mark.parametrize("action", ["pause", "cancel"])
def test_a_pause_or_a_cancel_is_seen_within_a_second_at_any_rate(
    settings: Settings, sessions: sessionmaker[Session], issue_slug: str, action: str
) -> None:
    clock = Clock()
    acted_at: list[int] = []

    def after(n: int) -> None:
        if n == 5:  # a slow rate: 4 messages a second of the test's clock
            getattr(control, action)(runtime, issue_slug)
            acted_at.append(n)

    transport = Limited(clock, 0.25, before=lambda n: None, after=after)
    runtime, issue_id, lo, hi = prepared(settings, sessions, issue_slug, transport)
    outcome = deliver_range(runtime, issue_id, lo, hi, clock=clock)
    after_it = len(transport.sent) - acted_at[0]
    assert after_it <= 4, f"{after_it} messages went out in the second after the {action}"
    with sessions() as session:
        counts = ledger.counts(session, issue_id)
    assert counts["sent"] == len(transport.sent) and counts["sending"] == 0
    if action == "pause":
        assert counts["queued"] == 45 - len(transport.sent) == outcome["released"]
    else:
        assert counts["cancelled"] == 45 - len(transport.sent)


def test_a_pause_during_a_long_rate_limit_wait_stops_the_held_message(
    settings: Settings, sessions: sessionmaker[Session], issue_slug: str
) -> None:
    clock = Clock()

    def before(n: int) -> None:
        if n == 8:  # the hour's quota is spent: the 8th message waits an hour...
            clock.now += 3600
            control.pause(runtime, issue_slug)  # ...and the issue is paused meanwhile

    transport = Limited(clock, 0.01, before=before, after=lambda n: None)
    runtime, issue_id, lo, hi = prepared(settings, sessions, issue_slug, transport)
    deliver_range(runtime, issue_id, lo, hi, clock=clock)
    assert len(transport.sent) == 7, "nothing goes out after the wait that saw the pause"


def test_a_group_is_recorded_once_and_only_on_rows_still_held(
    settings: Settings, sessions: sessionmaker[Session], issue_slug: str
) -> None:
    with sessions() as session, session.begin():
        issue = get_issue(session, issue_slug)
        ledger.plan(session, issue.id, languages=["en", "es"], default_language="en",
                    focus_countries=[], audience=true())
        ((lo, hi),) = ledger.batch_ranges(session, issue.id, 100)
        rows = ledger.claim(session, issue.id, lo, hi, timedelta(minutes=5))
    now = utcnow()
    group = [Reply(r.delivery_id, r.attempts, "sent", "250 ok", f"<{r.delivery_id}@x>", 250,
                   "relay", None, now) for r in rows[:2]]
    later = now + timedelta(minutes=5)  # a deferral: every optional field empty but one
    group.append(Reply(rows[2].delivery_id, rows[2].attempts, "deferred", "connection lost",
                       None, None, None, later, now))
    stale = Reply(rows[3].delivery_id, rows[3].attempts - 1, "sent", "250 late", None, 250,
                  "relay", None, now)  # a claim that is no longer the row's
    with sessions() as session, session.begin():
        ledger.record_replies(session, [*group, stale])
        ledger.record_replies(session, group)  # again: a journal recovered twice
    with sessions() as session:
        statuses = {i: s for i, s in session.execute(select(Delivery.id, Delivery.status))}
        sent_at = session.scalar(select(func.count()).where(Delivery.sent_at == now))
        deferred = session.get(Delivery, rows[2].delivery_id)
        assert deferred is not None
        assert (deferred.next_attempt_at, deferred.smtp_code, deferred.message_id,
                deferred.lease_until, deferred.sent_at) == (later, None, None, None, None)
    assert [statuses[r.delivery_id] for r in rows] == ["sent"] * 2 + ["deferred"] + [
        "sending"] * 2
    assert sent_at == 2


def test_a_sender_killed_before_its_group_is_recorded_sends_nobody_twice(
    tmp_path: Path, db_url: str, smtp_server: SmtpServer
) -> None:
    emails = populate(db_url, 150)
    # no reply reaches the ledger before the batch ends: only the journal knows them
    env = service_env(tmp_path, db_url, "", smtp_server.url, record_every="10000",
                      record_seconds="3600", batch_size="1000")
    sender = subprocess.Popen(
        [sys.executable, "-m", "newsletter", "issues", "send", SLUG], env=env, cwd=tmp_path,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        while len(smtp_server.messages) < 30 and sender.poll() is None:
            pass
    finally:
        os.killpg(sender.pid, signal.SIGKILL)
        sender.wait()
    first = received(smtp_server)
    assert 30 <= sum(first.values()) < len(emails), "killed in the middle of its batch"
    engine = make_engine(db_url)
    sessions = session_factory(engine)
    with sessions() as session, session.begin():
        assert ledger.counts(session, 1)["sent"] == 0
        # its lease runs out (what the sweep waits for before handing the rows out again)
        session.execute(update(Delivery).values(lease_until=utcnow() - timedelta(seconds=1)))
    assert len(list((tmp_path / "var" / "journal").rglob(f"*{SUFFIX}"))) == 1
    newsletter(env, tmp_path, "issues", "send", SLUG)
    got = received(smtp_server)
    assert set(got) == set(emails)
    duplicates = sum(n - 1 for n in got.values())
    assert duplicates <= 1, f"{duplicates} sent twice after one SIGKILL"
    with sessions() as session:
        assert ledger.counts(session, 1)["sent"] == len(emails)
    engine.dispose()
    assert list((tmp_path / "var" / "journal").rglob(f"*{SUFFIX}")) == []
