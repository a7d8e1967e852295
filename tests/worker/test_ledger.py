"""The ledger's SQL on SQLite and PostgreSQL: planning, claiming, ranges."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import event, select, text, update
from sqlalchemy.orm import Session, sessionmaker

from newsletter.issues import audience_of, get_issue
from newsletter.models import Delivery, Issue
from subscribers.importer import import_csv
from subscribers.models import Subscriber
from tests.concurrency import someone_waits_for_a_lock
from worker import ledger


def plan(session: Session, issue_id: int) -> int:
    issue = session.get(Issue, issue_id)
    assert issue is not None
    return ledger.plan(session, issue_id, languages=["en", "es"], default_language="en",
                       focus_countries=["CR", "SV"], audience=audience_of(session, issue))


def test_plan_adds_a_row_per_active_subscriber_once(
    sessions: sessionmaker[Session], issue_slug: str
) -> None:
    with sessions() as session, session.begin():
        session.execute(update(Subscriber).where(Subscriber.email == "eva@example.org")
                        .values(status="unsubscribed"))
        issue = get_issue(session, issue_slug)
        assert plan(session, issue.id) == 4
        assert plan(session, issue.id) == 0
        counts = ledger.counts(session, issue.id)
        assert counts == {"queued": 4, "sending": 0, "sent": 0, "deferred": 0, "bounced": 0,
                          "failed": 0, "cancelled": 0}
        variants = {(v.language, v.country) for v in ledger.variants(session, issue.id)}
    # BZ is not in the focus list given here, so Bob shares the regional English variant
    assert variants == {("es", "CR"), ("en", ""), ("es", "SV")}


def test_a_second_plan_adds_only_the_newcomers(
    sessions: sessionmaker[Session], issue_slug: str
) -> None:
    """The first plan of an issue is a plain INSERT (PostgreSQL); a later one leaves out
    everyone who has a row already and adds the people who joined since."""
    with sessions() as session, session.begin():
        assert plan(session, get_issue(session, issue_slug).id) == 5
    with sessions() as session, session.begin():
        import_csv(session, "email,name,country,language\nzoe@example.org,Zoe,SV,es\n",
                   default_language="en")
    with sessions() as session, session.begin():
        issue_id = get_issue(session, issue_slug).id
        assert plan(session, issue_id) == 1
        assert plan(session, issue_id) == 0
        assert ledger.total(session, issue_id) == 6


def test_two_planners_of_one_issue_wait_for_each_other(
    sessions: sessionmaker[Session], issue_slug: str
) -> None:
    """`issues send` and the scheduler may plan the same issue at once. The second waits
    for the first to commit, then finds its rows and adds nobody twice (without the lock
    on the issue, it would see an empty ledger, INSERT plainly and fail on the key)."""
    with sessions() as session:
        if session.get_bind().dialect.name != "postgresql":
            pytest.skip("SQLite lets one writer in at a time anyway")
        issue_id = get_issue(session, issue_slug).id
    first = sessions()
    first.begin()
    assert plan(first, issue_id) == 5  # planned, not committed
    outcome: list[object] = []

    def second() -> None:
        try:
            with sessions() as session, session.begin():
                outcome.append(plan(session, issue_id))
        except Exception as exc:  # reported below, with its type
            outcome.append(exc)

    thread = threading.Thread(target=second)
    thread.start()
    try:
        assert someone_waits_for_a_lock(sessions, 10), "the second planner never waited"
        assert outcome == []
    finally:
        first.commit()
        first.close()
        thread.join(timeout=10)
    assert outcome == [0]
    with sessions() as session:
        assert ledger.total(session, issue_id) == 5


def test_a_range_is_claimed_by_one_worker_only(
    sessions: sessionmaker[Session], issue_slug: str
) -> None:
    with sessions() as session, session.begin():
        issue_id = get_issue(session, issue_slug).id
        plan(session, issue_id)
        ranges = ledger.batch_ranges(session, issue_id, 2)
    assert len(ranges) == 3 and ranges[0][0] <= ranges[0][1] < ranges[1][0]
    lo, hi = ranges[0][0], ranges[-1][1]
    with sessions() as session, session.begin():
        first = ledger.claim(session, issue_id, lo, hi, timedelta(minutes=10))
    with sessions() as session, session.begin():
        second = ledger.claim(session, issue_id, lo, hi, timedelta(minutes=10))
        assert ledger.batch_ranges(session, issue_id, 2) == []
    assert len(first) == 5 and second == []


def test_an_expired_lease_can_be_claimed_again(
    sessions: sessionmaker[Session], issue_slug: str
) -> None:
    with sessions() as session, session.begin():
        issue_id = get_issue(session, issue_slug).id
        plan(session, issue_id)
        ((lo, hi),) = ledger.batch_ranges(session, issue_id, 100)
        claimed = ledger.claim(session, issue_id, lo, hi, timedelta(seconds=-1))
    with sessions() as session, session.begin():
        again = ledger.claim(session, issue_id, lo, hi, timedelta(minutes=10))
        attempts = set(session.scalars(select(Delivery.attempts)
                                       .where(Delivery.issue_id == issue_id)))
    assert [c.delivery_id for c in again] == [c.delivery_id for c in claimed]
    assert attempts == {2}


def test_record_only_changes_rows_being_sent(
    sessions: sessionmaker[Session], issue_slug: str
) -> None:
    with sessions() as session, session.begin():
        issue_id = get_issue(session, issue_slug).id
        plan(session, issue_id)
        ((lo, hi),) = ledger.batch_ranges(session, issue_id, 100)
        claimed = ledger.claim(session, issue_id, lo, hi, timedelta(minutes=10))
        ledger.record(session, claimed[0].delivery_id, "sent", "250 ok", "<m@x>")
        ledger.record(session, claimed[0].delivery_id, "bounced", "550 late")  # not ours now
        ledger.release(session, [c.delivery_id for c in claimed[1:]])
        counts = ledger.counts(session, issue_id)
        rows = ledger.deliveries(session, issue_id, "sent")
    assert counts["sent"] == 1 and counts["queued"] == 4 and counts["sending"] == 0
    assert rows[0][0].last_reply == "250 ok" and rows[0][0].sent_at is not None


def test_planning_never_scans_the_ledger_per_subscriber(
    sessions: sessionmaker[Session], issue_slug: str
) -> None:
    """With statistics saying `deliveries` is empty, PostgreSQL planned the old NOT EXISTS
    as a nested loop scanning the table once per subscriber, while the statement made it
    grow: quadratic (20,000 subscribers: 2.0 s instead of 0.3 s; 1M: not done in 10 min).
    The plan statement, explained as PostgreSQL would run it then, reads `deliveries`
    only to insert into it (those already planned are left out by the unique key)."""
    with sessions() as session:
        if session.get_bind().dialect.name != "postgresql":
            pytest.skip("PostgreSQL's planner")
    with sessions() as session, session.begin():
        session.execute(text("TRUNCATE deliveries CASCADE"))  # no page left: surely empty
        session.execute(text("ANALYZE"))
    seen: list[tuple[str, object]] = []

    def keep(conn: object, cursor: object, statement: str, parameters: object,
             context: object, executemany: bool) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO DELIVERIES"):
            seen.append((statement, parameters))

    engine = sessions.kw["bind"]
    event.listen(engine, "before_cursor_execute", keep)
    try:
        with sessions() as session, session.begin():
            assert plan(session, get_issue(session, issue_slug).id) == 5
    finally:
        event.remove(engine, "before_cursor_execute", keep)
    ((statement, parameters),) = seen
    with engine.connect() as conn:
        cursor = conn.connection.cursor()
        cursor.execute("EXPLAIN " + statement, parameters)
        lines = [row[0] for row in cursor.fetchall()]
    assert lines[0].lstrip().startswith("Insert on deliveries"), lines
    assert not [line for line in lines[1:] if " on deliveries" in line], "\n".join(lines)
