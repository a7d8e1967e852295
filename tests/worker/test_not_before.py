"""A local-time send: each subscriber's row is released exactly at 09:00 in their zone,
by the claim and by the sweep, with the clock moved by time-machine."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta

import pytest
import time_machine
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from newsletter.cli.demo import sample_items_text
from newsletter.db import utcnow
from newsletter.ingest.text import parse_text
from newsletter.issues import create_issue, get_issue
from newsletter.items import store_items
from newsletter.models import Delivery, Issue
from newsletter.schedules import schedule_issue
from newsletter.settings import Settings
from subscribers.importer import import_csv
from subscribers.models import Subscriber
from tests.worker.conftest import runtime_with
from worker import control
from worker.delivery import plan_issue, send_issue
from worker.runtime import Runtime, configure
from worker.transports import MemoryTransport

# the rows due first and last bracket the others, so a batch's id range covers rows
# that are not due yet: they must neither be sent nor be marked as enqueued
PEOPLE = """email,name,country,language,timezone
madrid@example.org,Pepa,ES,es,
ana@example.org,Ana,US,es,America/Costa_Rica
nobody@example.org,Dan,,en,
eva@example.org,Eva,MX,es,
tijuana@example.org,Tito,MX,es,america/tijuana
mars@example.org,Marta,ES,es,Mars/Olympus_Mons
"""
SLUG = "2026-w49"
DAY = date(2026, 12, 7)
# 09:00 local on 2026-12-07 in UTC: Madrid is UTC+1, Costa Rica and Mexico City UTC-6,
# Tijuana UTC-8; the issue's own zone (for Dan, who has no country) is UTC
EXPECTED = {
    "madrid@example.org": datetime(2026, 12, 7, 8, 0),
    "mars@example.org": datetime(2026, 12, 7, 8, 0),
    "nobody@example.org": datetime(2026, 12, 7, 9, 0),
    "ana@example.org": datetime(2026, 12, 7, 15, 0),
    "eva@example.org": datetime(2026, 12, 7, 15, 0),
    "tijuana@example.org": datetime(2026, 12, 7, 17, 0),
}


@pytest.fixture
def runtime(settings: Settings, sessions: sessionmaker[Session]) -> Iterator[Runtime]:
    rt = runtime_with(settings, sessions, MemoryTransport())
    configure(rt)
    yield rt
    configure(None)


def at(hour: int, minute: int = 0, second: int = 0) -> datetime:
    return datetime(2026, 12, 7, hour, minute, second, tzinfo=UTC)


def not_before(sessions: sessionmaker[Session]) -> dict[str, datetime | None]:
    with sessions() as session:
        rows = session.execute(select(Subscriber.email, Delivery.not_before)
                               .join(Delivery, Delivery.subscriber_id == Subscriber.id))
        return {email: when for email, when in rows}


def test_each_zone_is_released_at_its_hour(runtime: Runtime, settings: Settings,
                                           sessions: sessionmaker[Session]) -> None:
    memory = runtime.transport
    assert isinstance(memory, MemoryTransport)
    with time_machine.travel(datetime(2026, 12, 6, 12, 0, tzinfo=UTC), tick=False) as clock:
        with sessions() as session, session.begin():
            store_items(session, parse_text(sample_items_text(), "sample"))
            import_csv(session, PEOPLE, default_language=settings.default_language)
            issue = create_issue(session, SLUG, date(2019, 9, 1), date(2019, 10, 31))
            planned = schedule_issue(session, issue, local_time=time(9, 0), on=DAY,
                                     timezone="UTC", now=utcnow())
            assert planned.send_at == datetime(2026, 12, 7, 8, 0)
            assert plan_issue(settings, session, issue) == 6
        assert not_before(sessions) == EXPECTED
        # someone in Costa Rica joins after the plan: the start of the send plans them
        with sessions() as session, session.begin():
            import_csv(session, "email,country\nlate@example.org,CR\n",
                       default_language="es")

        def sent() -> list[str]:
            return sorted(e.recipient for e in memory.sent)

        clock.move_to(at(7, 59, 59))
        summary = send_issue(runtime, SLUG)
        assert summary.planned == 1 and sent() == [] and summary.status == "sending"
        assert not_before(sessions)["late@example.org"] == datetime(2026, 12, 7, 15, 0)

        clock.move_to(at(8))
        control.sweep(runtime)
        assert sent() == ["madrid@example.org", "mars@example.org"]
        with sessions() as session:  # the batch's range spans them: none is marked
            waiting = session.scalars(select(Delivery.enqueued_at)
                                      .where(Delivery.status == "queued")).all()
            assert len(waiting) == 5 and waiting == [None] * 5

        expected_by_then = 2
        for hour, who in ((9, ["nobody@example.org"]),
                          (15, ["ana@example.org", "eva@example.org", "late@example.org"]),
                          (17, ["tijuana@example.org"])):
            clock.move_to(at(hour - 1, 59, 59))
            control.sweep(runtime)
            assert len(sent()) == expected_by_then, f"something went before {hour}:00"
            clock.move_to(at(hour))
            control.sweep(runtime)
            expected_by_then += len(who)
            assert len(sent()) == expected_by_then
            assert set(who) <= set(sent())
        assert len(set(sent())) == len(sent()) == 7
        with sessions() as session:
            assert get_issue(session, SLUG).status == "sent"


def test_a_row_enqueued_before_its_hour_is_swept_at_its_hour(
    runtime: Runtime, settings: Settings, sessions: sessionmaker[Session]
) -> None:
    """A batch queued for rows not due yet (an older enqueue) does not hold them back
    for the requeue delay: the sweeper hands each out as soon as its not_before comes."""
    from worker import ledger

    with time_machine.travel(datetime(2026, 12, 6, 12, 0, tzinfo=UTC), tick=False) as clock:
        with sessions() as session, session.begin():
            store_items(session, parse_text(sample_items_text(), "sample"))
            import_csv(session, PEOPLE, default_language=settings.default_language)
            issue = create_issue(session, SLUG, date(2019, 9, 1), date(2019, 10, 31))
            schedule_issue(session, issue, local_time=time(9, 0), on=DAY, timezone="UTC",
                           now=utcnow())
            plan_issue(settings, session, issue)
            issue.status = "sending"
            # as if a task had been queued for every row a minute before 09:00 UTC
            for row in session.scalars(select(Delivery)):
                row.enqueued_at = datetime(2026, 12, 7, 8, 59)
        clock.move_to(at(9))
        with sessions() as session:
            issue_id = session.scalars(select(Issue.id)).one()
            lost = ledger.lost_ranges(session, issue_id, 100,
                                      timedelta(seconds=settings.requeue_after_seconds))
            ids = [i for lo, hi in lost for i in range(lo, hi + 1)]
            emails = set(session.scalars(
                select(Subscriber.email).join(Delivery, Delivery.subscriber_id == Subscriber.id)
                .where(Delivery.id.in_(ids))))
        # Dan's row became due after its task was queued: that task skipped it. Madrid's
        # were due when queued, and the task is still on its way (within requeue_after)
        assert emails == {"nobody@example.org"}
