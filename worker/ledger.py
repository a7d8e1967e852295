"""Every SQL statement about deliveries: plan, claim, record, count, sweep.

The ledger holds one row per (issue, subscriber). Rows move
queued -> sending (claimed, with a lease) -> sent | deferred | bounced | failed;
a deferred row whose retry time has come, or a row whose lease expired (its worker
died), can be claimed again; cancelling an issue turns what is left into cancelled.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    DateTime,
    Table,
    and_,
    bindparam,
    case,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from newsletter.db import utcnow
from newsletter.models import DELIVERY_STATUSES, Delivery, Issue
from newsletter.render import Variant
from newsletter.schedules import LocalTimes, timezone_attribute
from subscribers.events import record_event
from subscribers.models import Subscriber
from subscribers.validate import best_edition
from worker.journal import Reply

PENDING = ("queued", "sending", "deferred")
FINAL = ("sent", "bounced", "failed", "cancelled")


@dataclass(frozen=True)
class Claimed:
    delivery_id: int
    email: str
    name: str
    subscriber_id: int
    token_salt: str  # signed into the subscriber's links (subscribers.tokens)
    variant: Variant
    attempts: int
    first_attempt_at: datetime


def plan(
    session: Session,
    issue_id: int,
    *,
    languages: Sequence[str],
    default_language: str,
    focus_countries: Sequence[str],
    audience: ColumnElement[bool],
    not_before: datetime | LocalTimes | None = None,
) -> int:
    """Add a queued row for everyone in `audience` without one, in one INSERT ... SELECT.

    The variant is fixed here: the best edition for the subscriber's language (`best_edition`:
    the tag, its primary language, else the default), and their country only if some item
    of the issue is about it (everyone else shares the regional order). `not_before` is
    when a row may first be claimed: None (now), one instant, or a local time in each
    subscriber's zone (`LocalTimes`).
    """
    now = utcnow()
    # a few dozen distinct tags at most: map them here, the same on every database
    tags = session.scalars(select(Subscriber.language).where(audience).distinct())
    editions = {tag: best_edition(tag, languages, default_language) for tag in tags if tag}
    source = select(
        literal(issue_id),
        Subscriber.id,
        case(editions, value=Subscriber.language, else_=literal(default_language))
        if editions else literal(default_language),
        case((Subscriber.country.in_(list(focus_countries)), Subscriber.country),
             else_=literal("")),
        literal("queued"),
        literal(0),
        literal(now),
        literal(now),
        _not_before(session, audience, not_before),
    ).where(audience)
    columns = ["issue_id", "subscriber_id", "language", "country", "status", "attempts",
               "created_at", "updated_at", "not_before"]
    postgres = session.get_bind().dialect.name == "postgresql"
    if postgres:  # one planner of an issue at a time (`issues send` and the scheduler)
        session.execute(select(Issue.id).where(Issue.id == issue_id)
                        .with_for_update(key_share=True))  # FOR NO KEY UPDATE
    before = total(session, issue_id)
    if postgres and not before:
        # The issue's first plan, and no other planner can add rows until this commits:
        # a plain INSERT. ON CONFLICT's speculative insertion (a probe of the unique index
        # and one more WAL record a row) cost 1.2 s of 9.5 s at 1M subscribers. The
        # audience is a condition on `subscribers`, so each person comes once.
        session.execute(insert(Delivery).from_select(columns, source))
    else:
        # Those who have a row already are left out by the unique (issue_id,
        # subscriber_id), not by NOT EXISTS: once PostgreSQL has statistics saying
        # `deliveries` is empty, it plans NOT EXISTS as a nested loop that scans the table
        # once per subscriber, and the table grows as the statement runs (1M
        # subscribers: not done after 10 minutes).
        upsert = postgresql.insert if postgres else sqlite.insert
        session.execute(upsert(Delivery).from_select(columns, source)
                        .on_conflict_do_nothing(index_elements=["issue_id", "subscriber_id"]))
    # rowcount of INSERT ... SELECT is not reliable across drivers (psycopg may say -1)
    return total(session, issue_id) - before


def _not_before(
    session: Session, audience: ColumnElement[bool], when: datetime | LocalTimes | None
) -> ColumnElement[Any]:
    """The not_before column of a plan. For a local-time send, a CASE over the audience's
    distinct `timezone` attributes and countries, mapped to instants here (the same on
    every database): a valid attribute first, then the country's zone, else the fallback."""
    if not isinstance(when, LocalTimes):
        return cast(ColumnElement[Any], literal(when, DateTime()))
    attribute = timezone_attribute()
    by_attribute: defaultdict[datetime, list[str]] = defaultdict(list)
    for value in session.scalars(select(attribute).where(audience).distinct()):
        instant = when.for_attribute(value)
        if instant is not None and isinstance(value, str):
            by_attribute[instant].append(value)
    by_country: defaultdict[datetime, list[str]] = defaultdict(list)
    for code in session.scalars(select(Subscriber.country).where(audience).distinct()):
        if code:
            by_country[when.for_country(code)].append(code)
    whens: list[tuple[ColumnElement[bool], Any]] = [
        (attribute.in_(values), literal(instant, DateTime()))
        for instant, values in sorted(by_attribute.items())]
    whens += [(Subscriber.country.in_(codes), literal(instant, DateTime()))
              for instant, codes in sorted(by_country.items())]
    fallback = literal(when.for_country(None), DateTime())
    return case(*whens, else_=fallback) if whens else fallback


def total(session: Session, issue_id: int) -> int:
    return session.scalar(
        select(func.count()).select_from(Delivery).where(Delivery.issue_id == issue_id)
    ) or 0


def variants(session: Session, issue_id: int) -> list[Variant]:
    rows = session.execute(
        select(Delivery.language, Delivery.country)
        .where(Delivery.issue_id == issue_id)
        .distinct()
        .order_by(Delivery.language, Delivery.country)
    )
    return [Variant(language, country) for language, country in rows]


def due(now: datetime) -> ColumnElement[bool]:
    """A row whose time has come: no not_before, or it has passed."""
    return or_(Delivery.not_before.is_(None), Delivery.not_before <= now)


def claimable(issue_id: int, now: datetime) -> ColumnElement[bool]:
    return and_(
        Delivery.issue_id == issue_id,
        due(now),
        or_(
            Delivery.status == "queued",
            and_(Delivery.status == "deferred",
                 or_(Delivery.next_attempt_at.is_(None), Delivery.next_attempt_at <= now)),
            and_(Delivery.status == "sending", Delivery.lease_until < now),
        ),
    )


def ranges(session: Session, where: ColumnElement[bool], size: int) -> list[tuple[int, int]]:
    """Keyset ranges of about `size` rows each matching `where`: (first id, last id)."""
    numbered = (
        select(
            Delivery.id.label("id"),
            # "/" on two integers divides without remainder on SQLite and PostgreSQL
            (func.row_number().over(order_by=Delivery.id) - 1).self_group().op("/")(size)
            .label("bucket"),
        )
        .where(where)
        .subquery()
    )
    rows = session.execute(
        select(func.min(numbered.c.id), func.max(numbered.c.id))
        .group_by(numbered.c.bucket)
        .order_by(func.min(numbered.c.id))
    )
    return [(lo, hi) for lo, hi in rows]


def batch_ranges(session: Session, issue_id: int, size: int) -> list[tuple[int, int]]:
    """Ranges of everything claimable now."""
    return ranges(session, claimable(issue_id, utcnow()), size)


def lost_ranges(
    session: Session, issue_id: int, size: int, requeue_after: timedelta
) -> list[tuple[int, int]]:
    """What the sweeper enqueues: expired leases, retries that are due, and queued rows
    whose task has not claimed them for `requeue_after` (lost with a broker restart), or
    whose not_before has come since (a local-time row released at its hour)."""
    now = utcnow()
    where = and_(
        Delivery.issue_id == issue_id,
        or_(
            and_(Delivery.status == "sending", Delivery.lease_until < now,
                 or_(Delivery.enqueued_at.is_(None),
                     Delivery.enqueued_at < Delivery.lease_until,
                     Delivery.enqueued_at < now - requeue_after)),
            and_(Delivery.status == "deferred",
                 or_(Delivery.next_attempt_at.is_(None), Delivery.next_attempt_at <= now),
                 or_(Delivery.enqueued_at.is_(None),
                     Delivery.enqueued_at < Delivery.next_attempt_at,
                     Delivery.enqueued_at < now - requeue_after)),
            and_(Delivery.status == "queued", due(now),
                 or_(Delivery.enqueued_at.is_(None),
                     Delivery.enqueued_at < Delivery.not_before,
                     Delivery.enqueued_at < now - requeue_after)),
        ),
    )
    return ranges(session, where, size)


def mark_enqueued(session: Session, issue_id: int, lo: int, hi: int) -> None:
    """Note that a task is on its way for the rows of [lo, hi] it can take (a row whose
    not_before is still ahead stays unmarked: the sweeper hands it out at its hour)."""
    now = utcnow()
    session.execute(
        update(Delivery)
        .where(Delivery.issue_id == issue_id, Delivery.id.between(lo, hi),
               Delivery.status.in_(PENDING), due(now))
        .values(enqueued_at=now)
    )


def claim(
    session: Session, issue_id: int, lo: int, hi: int, lease: timedelta
) -> list[Claimed]:
    """Take the claimable rows in [lo, hi] for this worker; a concurrent claim gets none."""
    now = utcnow()
    ids = session.scalars(
        update(Delivery)
        .where(claimable(issue_id, now), Delivery.id.between(lo, hi))
        .values(status="sending", lease_until=now + lease, attempts=Delivery.attempts + 1,
                first_attempt_at=func.coalesce(Delivery.first_attempt_at, now),
                updated_at=now)
        .returning(Delivery.id)
    ).all()
    if not ids:
        return []
    rows = session.execute(
        select(Delivery.id, Subscriber.email, Subscriber.name, Subscriber.id,
               Subscriber.token_salt, Delivery.language, Delivery.country,
               Delivery.attempts, Delivery.first_attempt_at)
        .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
        .where(Delivery.id.in_(ids))
        .order_by(Delivery.id)
    )
    return [
        Claimed(did, email, name, sid, salt, Variant(language, country), attempts,
                first or now)
        for did, email, name, sid, salt, language, country, attempts, first in rows
    ]


def record(
    session: Session,
    delivery_id: int,
    status: str,
    reply: str,
    message_id: str | None = None,
    *,
    code: int | None = None,
    relay: str | None = None,
    next_attempt_at: datetime | None = None,
    attempts: int | None = None,
) -> None:
    """Write what the server said about one message; only a row we hold can change
    (`attempts` is the claim's fencing token: a row claimed again since is not ours)."""
    session.connection().execute(_record_statement(attempts is not None), [_record_params(
        delivery_id, attempts, status, reply, message_id, code, relay, next_attempt_at,
        utcnow())])


def record_replies(session: Session, replies: Sequence[Reply]) -> None:
    """Write a group of replies at once: one UPDATE over arrays on PostgreSQL, one
    transaction of UPDATEs on SQLite. Applying a group twice changes nothing the second
    time (each reply is fenced by its claim)."""
    if not replies:
        return
    conn = session.connection()
    if conn.dialect.name == "postgresql":
        # one statement over arrays: atomic by itself, one round trip, planned once
        conn.execute(_RECORD_ARRAYS, {
            "ids": [r.delivery_id for r in replies], "attempts": [r.attempts for r in replies],
            "statuses": [r.status for r in replies], "replies": [r.reply[:1000] for r in replies],
            "message_ids": [r.message_id for r in replies], "codes": [r.code for r in replies],
            "relays": [r.relay for r in replies],
            "nexts": [r.next_attempt_at for r in replies], "ats": [r.at for r in replies],
            "sent_ats": [r.at if r.status == "sent" else None for r in replies],
        })
        return
    params = [_record_params(r.delivery_id, r.attempts, r.status, r.reply, r.message_id,
                             r.code, r.relay, r.next_attempt_at, r.at) for r in replies]
    if conn.get_execution_options().get("isolation_level") != "AUTOCOMMIT":
        conn.execute(_record_statement(True), params)  # within the caller's transaction
        return
    # a batch session is in autocommit: make the group one transaction by hand
    conn.exec_driver_sql("BEGIN")
    try:
        conn.execute(_record_statement(True), params)
    except BaseException:
        conn.exec_driver_sql("ROLLBACK")
        raise
    conn.exec_driver_sql("COMMIT")


_RECORD_ARRAYS = text("""
    UPDATE deliveries AS d
    SET status = r.status, last_reply = r.reply, message_id = r.message_id,
        smtp_code = r.code, relay = r.relay, lease_until = NULL,
        next_attempt_at = r.next_attempt_at, updated_at = r.at, sent_at = r.sent_at
    FROM unnest(CAST(:ids AS integer[]), CAST(:attempts AS integer[]),
                CAST(:statuses AS varchar[]), CAST(:replies AS varchar[]),
                CAST(:message_ids AS varchar[]), CAST(:codes AS integer[]),
                CAST(:relays AS varchar[]), CAST(:nexts AS timestamp[]),
                CAST(:ats AS timestamp[]), CAST(:sent_ats AS timestamp[]))
         AS r(id, attempts, status, reply, message_id, code, relay, next_attempt_at, at,
              sent_at)
    WHERE d.id = r.id AND d.status = 'sending' AND d.attempts = r.attempts
""")


def _record_params(
    delivery_id: int, attempts: int | None, status: str, reply: str,
    message_id: str | None, code: int | None, relay: str | None,
    next_attempt_at: datetime | None, at: datetime,
) -> dict[str, Any]:
    return {
        "b_id": delivery_id, "b_attempts": attempts, "b_status": status,
        "b_reply": reply[:1000], "b_message_id": message_id, "b_code": code,
        "b_relay": relay, "b_next": next_attempt_at, "b_now": at,
        "b_sent_at": at if status == "sent" else None,
    }


@lru_cache(maxsize=2)
def _record_statement(fenced: bool) -> Any:
    """`record`'s UPDATE, built once: it runs once per message, and building a Core
    statement each time cost more than the database round trip (bench/delivery.py's
    profile: SQLAlchemy's coercions were a third of a worker's time)."""
    table = cast(Table, Delivery.__table__)
    held = [table.c.id == bindparam("b_id"), table.c.status == "sending"]
    if fenced:
        held.append(table.c.attempts == bindparam("b_attempts"))
    return update(table).where(*held).values(
        status=bindparam("b_status"), last_reply=bindparam("b_reply"),
        message_id=bindparam("b_message_id"), smtp_code=bindparam("b_code"),
        relay=bindparam("b_relay"), lease_until=None,
        next_attempt_at=bindparam("b_next", type_=DateTime()),
        updated_at=bindparam("b_now", type_=DateTime()),
        sent_at=bindparam("b_sent_at", type_=DateTime()))


def drop_ineligible(
    session: Session, issue_id: int, lo: int, hi: int, audience: ColumnElement[bool]
) -> int:
    """Cancel claimable rows in [lo, hi] whose subscriber left the audience since the
    plan (unsubscribed, bounced, suppressed, off the list): they must not be mailed."""
    now = utcnow()
    # correlated, so the database looks up the batch's own subscribers by key (a NOT IN
    # over the whole audience read every subscriber once per batch: 100 us a message)
    still_in = exists().where(Subscriber.id == Delivery.subscriber_id, audience)
    result = session.execute(
        update(Delivery)
        .where(claimable(issue_id, now), Delivery.id.between(lo, hi), ~still_in)
        .values(status="cancelled", updated_at=now, lease_until=None,
                last_reply="not sent: unsubscribed, suppressed or no longer in the audience")
        .returning(Delivery.id)
    )
    return len(result.all())


def mark_bounced(
    session: Session, subscriber_id: int, *, delivery_id: int | None = None, reply: str = ""
) -> None:
    """The person's mailbox refused us for good; their history keeps which delivery and
    what the server said."""
    now = utcnow()
    changed = session.execute(
        update(Subscriber).where(Subscriber.id == subscriber_id,
                                 Subscriber.status.not_in(("bounced", "complained")))
        .values(status="bounced", updated_at=now)).rowcount  # type: ignore[attr-defined]
    if not changed:
        return
    detail = reply
    if delivery_id is not None:
        found = session.execute(
            select(Issue.slug, Delivery.language, Delivery.country)
            .join(Issue, Issue.id == Delivery.issue_id).where(Delivery.id == delivery_id)
        ).first()
        if found is not None:
            slug, language, country = found
            label = Variant(language, country).label
            detail = f"issue {slug} ({label}), delivery {delivery_id}: {reply}"
    record_event(session, subscriber_id, "bounced", detail, "worker", now)


def bounced_later(session: Session, delivery_id: int | None, reply: str, now: datetime) -> None:
    """A delivery the relay accepted (sent) bounced afterwards, by mail: it counts as
    bounced, with what the bounce said."""
    if delivery_id is None:
        return
    session.execute(update(Delivery).where(Delivery.id == delivery_id,
                                           Delivery.status == "sent")
                    .values(status="bounced", last_reply=reply[:1000], updated_at=now))


def renew(
    session: Session, held: Sequence[tuple[int, int]], lease: timedelta
) -> set[int]:
    """Extend the lease of rows this batch still holds, given as (id, attempts); returns
    the ids still ours (a row whose lease ran out may have been claimed by another)."""
    if not held:
        return set()
    result = session.execute(
        update(Delivery)
        .where(tuple_(Delivery.id, Delivery.attempts).in_(list(held)),
               Delivery.status == "sending")
        .values(lease_until=utcnow() + lease)
        .returning(Delivery.id)
    )
    return {row[0] for row in result}


def release(session: Session, delivery_ids: Sequence[int]) -> None:
    """Give claimed rows back untouched (the transport went away before trying them):
    the claim's attempt is undone, and the sweeper hands them out at its next round."""
    if delivery_ids:
        session.execute(
            update(Delivery)
            .where(Delivery.id.in_(list(delivery_ids)), Delivery.status == "sending")
            .values(
                status="queued", lease_until=None, enqueued_at=None,
                attempts=Delivery.attempts - 1,
                first_attempt_at=case((Delivery.attempts <= 1, None),
                                      else_=Delivery.first_attempt_at),
            )
        )


def cancel(session: Session, issue_id: int) -> int:
    """Everything not yet sent will not be: returns how many rows were cancelled."""
    now = utcnow()
    result = session.execute(
        update(Delivery)
        .where(Delivery.issue_id == issue_id,
               or_(Delivery.status.in_(("queued", "deferred")),
                   and_(Delivery.status == "sending", Delivery.lease_until < now)))
        .values(status="cancelled", updated_at=now, lease_until=None)
        .returning(Delivery.id)
    )
    return len(result.all())


def retry(session: Session, issue_id: int, status: str) -> int:
    """Make rows in `status` (deferred or failed) claimable now; returns how many."""
    result = session.execute(
        update(Delivery)
        .where(Delivery.issue_id == issue_id, Delivery.status == status)
        .values(status="queued", next_attempt_at=None, enqueued_at=None, attempts=0,
                first_attempt_at=None, updated_at=utcnow())
        .returning(Delivery.id)
    )
    return len(result.all())


def counts(session: Session, issue_id: int) -> dict[str, int]:
    """Rows per status, every status named (zero when none)."""
    rows = session.execute(
        select(Delivery.status, func.count())
        .where(Delivery.issue_id == issue_id)
        .group_by(Delivery.status)
    )
    found = {status: count for status, count in rows}
    return {status: int(found.get(status, 0)) for status in DELIVERY_STATUSES}


def sent_since(session: Session, issue_id: int, since: datetime) -> int:
    return session.scalar(
        select(func.count()).select_from(Delivery)
        .where(Delivery.issue_id == issue_id, Delivery.status == "sent",
               Delivery.sent_at >= since)
    ) or 0


def deliveries(
    session: Session, issue_id: int, status: str | None = None, limit: int | None = None
) -> list[tuple[Delivery, str]]:
    stmt = (
        select(Delivery, Subscriber.email)
        .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
        .where(Delivery.issue_id == issue_id)
        .order_by(Delivery.id)
    )
    if status:
        stmt = stmt.where(Delivery.status == status)
    if limit is not None:
        stmt = stmt.limit(limit)
    return [(d, email) for d, email in session.execute(stmt)]


def has_pending(session: Session, issue_id: int) -> bool:
    return bool(session.scalar(
        select(exists().where(Delivery.issue_id == issue_id, Delivery.status.in_(PENDING)))
    ))


def release_times(session: Session, issue_id: int) -> list[tuple[datetime | None, int]]:
    """Rows never tried yet, by the time they may go (None: at once), earliest first."""
    rows = session.execute(
        select(Delivery.not_before, func.count())
        .where(Delivery.issue_id == issue_id, Delivery.status == "queued")
        .group_by(Delivery.not_before)
        .order_by(Delivery.not_before.is_not(None), Delivery.not_before))
    return [(when, int(n)) for when, n in rows]
