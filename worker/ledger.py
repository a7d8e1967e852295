"""Every SQL statement about deliveries: plan, claim, record, count, sweep.

The ledger holds one row per (issue, subscriber). Rows move
queued -> sending (claimed, with a lease) -> sent | deferred | bounced | failed;
a deferred row whose retry time has come, or a row whose lease expired (its worker
died), can be claimed again; cancelling an issue turns what is left into cancelled.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import (
    ColumnElement,
    Table,
    and_,
    case,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from newsletter.db import utcnow
from newsletter.models import DELIVERY_STATUSES, Delivery
from newsletter.render import Variant
from subscribers.models import Subscriber, Suppression

PENDING = ("queued", "sending", "deferred")
FINAL = ("sent", "bounced", "failed", "cancelled")


@dataclass(frozen=True)
class Claimed:
    delivery_id: int
    email: str
    name: str
    subscriber_id: int
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
) -> int:
    """Add a queued row for everyone in `audience` without one, in one INSERT ... SELECT.

    The variant is fixed here: the subscriber's language if supported, and their country
    only if some item of the issue is about it (everyone else shares the regional order).
    """
    now = utcnow()
    existing = select(Delivery.id).where(
        Delivery.issue_id == issue_id, Delivery.subscriber_id == Subscriber.id
    )
    source = select(
        literal(issue_id),
        Subscriber.id,
        case((Subscriber.language.in_(list(languages)), Subscriber.language),
             else_=literal(default_language)),
        case((Subscriber.country.in_(list(focus_countries)), Subscriber.country),
             else_=literal("")),
        literal("queued"),
        literal(0),
        literal(now),
        literal(now),
    ).where(audience, ~existing.exists())
    columns = ["issue_id", "subscriber_id", "language", "country", "status", "attempts",
               "created_at", "updated_at"]
    before = total(session, issue_id)
    session.execute(insert(Delivery).from_select(columns, source))
    # rowcount of INSERT ... SELECT is not reliable across drivers (psycopg may say -1)
    return total(session, issue_id) - before


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


def claimable(issue_id: int, now: datetime) -> ColumnElement[bool]:
    return and_(
        Delivery.issue_id == issue_id,
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
            ((func.row_number().over(order_by=Delivery.id) - 1) // size).label("bucket"),
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
    whose task has not claimed them for `requeue_after` (lost with a broker restart)."""
    now = utcnow()
    where = and_(
        Delivery.issue_id == issue_id,
        or_(
            and_(Delivery.status == "sending", Delivery.lease_until < now),
            and_(Delivery.status == "deferred",
                 or_(Delivery.next_attempt_at.is_(None), Delivery.next_attempt_at <= now),
                 or_(Delivery.enqueued_at.is_(None),
                     Delivery.enqueued_at < Delivery.next_attempt_at,
                     Delivery.enqueued_at < now - requeue_after)),
            and_(Delivery.status == "queued",
                 or_(Delivery.enqueued_at.is_(None),
                     Delivery.enqueued_at < now - requeue_after)),
        ),
    )
    return ranges(session, where, size)


def mark_enqueued(session: Session, issue_id: int, lo: int, hi: int) -> None:
    session.execute(
        update(Delivery)
        .where(Delivery.issue_id == issue_id, Delivery.id.between(lo, hi),
               Delivery.status.in_(PENDING))
        .values(enqueued_at=utcnow())
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
               Delivery.language, Delivery.country, Delivery.attempts,
               Delivery.first_attempt_at)
        .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
        .where(Delivery.id.in_(ids))
        .order_by(Delivery.id)
    )
    return [
        Claimed(did, email, name, sid, Variant(language, country), attempts, first or now)
        for did, email, name, sid, language, country, attempts, first in rows
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
) -> None:
    """Write what the server said about one message; only a row we hold can change."""
    now = utcnow()
    # Core, not ORM, UPDATE: this runs once per message, and the ORM layer costs more
    # than the database round trip
    table = cast(Table, Delivery.__table__)
    session.connection().execute(
        update(table)
        .where(table.c.id == delivery_id, table.c.status == "sending")
        .values(
            status=status,
            last_reply=reply[:1000],
            message_id=message_id,
            smtp_code=code,
            relay=relay,
            lease_until=None,
            next_attempt_at=next_attempt_at,
            updated_at=now,
            sent_at=now if status == "sent" else None,
        )
    )


def suppress_recipient(session: Session, delivery_id: int) -> None:
    """The mailbox does not exist: mark the subscriber bounced and never mail it again.

    Runs on the autocommit connection of a batch; a suppression that another worker
    wrote a moment earlier is not an error."""
    subscriber_id = select(Delivery.subscriber_id).where(Delivery.id == delivery_id)
    session.execute(
        update(Subscriber).where(Subscriber.id.in_(subscriber_id)).values(status="bounced")
    )
    digest = session.scalar(
        select(Subscriber.email_hash).where(Subscriber.id.in_(subscriber_id))
    )
    if not digest or session.get(Suppression, digest) is not None:
        return
    try:
        session.connection().execute(
            insert(cast(Table, Suppression.__table__)).values(
                email_hash=digest, reason="bounced", created_at=utcnow(),
                note=f"5.1.x reply to delivery {delivery_id}",
            )
        )
    except IntegrityError:
        pass  # suppressed by someone else meanwhile: the outcome we wanted


def release(session: Session, delivery_ids: Sequence[int]) -> None:
    """Give claimed rows back untouched (the transport went away before trying them)."""
    if delivery_ids:
        session.execute(
            update(Delivery)
            .where(Delivery.id.in_(list(delivery_ids)), Delivery.status == "sending")
            .values(status="queued", lease_until=None, attempts=Delivery.attempts - 1)
        )


def cancel(session: Session, issue_id: int) -> int:
    """Everything not yet sent will not be: returns how many rows were cancelled."""
    result = session.execute(
        update(Delivery)
        .where(Delivery.issue_id == issue_id, Delivery.status.in_(("queued", "deferred")))
        .values(status="cancelled", updated_at=utcnow())
        .returning(Delivery.id)
    )
    return len(result.all())


def retry(session: Session, issue_id: int, status: str) -> int:
    """Make rows in `status` (deferred or failed) claimable now; returns how many."""
    result = session.execute(
        update(Delivery)
        .where(Delivery.issue_id == issue_id, Delivery.status == status)
        .values(status="queued", next_attempt_at=None, enqueued_at=None,
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
