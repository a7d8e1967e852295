"""Every SQL statement about deliveries: plan, claim, record, count.

The ledger holds one row per (issue, subscriber). Rows move
queued -> sending (claimed, with a lease) -> sent | deferred | bounced | failed;
a deferred row or a row whose lease expired can be claimed again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, case, func, insert, literal, or_, select, update
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from newsletter.db import utcnow
from newsletter.models import DELIVERY_STATUSES, Delivery
from newsletter.render import Variant
from subscribers.models import Subscriber

CLAIMABLE = ("queued", "deferred")
FINAL = ("sent", "bounced", "failed")


@dataclass(frozen=True)
class Claimed:
    delivery_id: int
    email: str
    name: str
    subscriber_id: int
    variant: Variant


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
    before = _total(session, issue_id)
    session.execute(insert(Delivery).from_select(columns, source))
    # rowcount of INSERT ... SELECT is not reliable across drivers (psycopg may say -1)
    return _total(session, issue_id) - before


def _total(session: Session, issue_id: int) -> int:
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


def _claimable(issue_id: int, now: datetime) -> list[ColumnElement[bool]]:
    return [
        Delivery.issue_id == issue_id,
        or_(
            Delivery.status.in_(CLAIMABLE),
            and_(Delivery.status == "sending", Delivery.lease_until < now),
        ),
    ]


def batch_ranges(session: Session, issue_id: int, size: int) -> list[tuple[int, int]]:
    """Keyset ranges of about `size` claimable rows each: (first id, last id)."""
    now = utcnow()
    numbered = (
        select(
            Delivery.id.label("id"),
            ((func.row_number().over(order_by=Delivery.id) - 1) // size).label("bucket"),
        )
        .where(*_claimable(issue_id, now))
        .subquery()
    )
    rows = session.execute(
        select(func.min(numbered.c.id), func.max(numbered.c.id))
        .group_by(numbered.c.bucket)
        .order_by(func.min(numbered.c.id))
    )
    return [(lo, hi) for lo, hi in rows]


def claim(
    session: Session, issue_id: int, lo: int, hi: int, lease: timedelta
) -> list[Claimed]:
    """Take the claimable rows in [lo, hi] for this worker; a concurrent claim gets none."""
    now = utcnow()
    ids = session.scalars(
        update(Delivery)
        .where(*_claimable(issue_id, now), Delivery.id.between(lo, hi))
        .values(status="sending", lease_until=now + lease, attempts=Delivery.attempts + 1,
                updated_at=now)
        .returning(Delivery.id)
    ).all()
    if not ids:
        return []
    rows = session.execute(
        select(Delivery.id, Subscriber.email, Subscriber.name, Subscriber.id,
               Delivery.language, Delivery.country)
        .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
        .where(Delivery.id.in_(ids))
        .order_by(Delivery.id)
    )
    return [
        Claimed(did, email, name, sid, Variant(language, country))
        for did, email, name, sid, language, country in rows
    ]


def record(
    session: Session,
    delivery_id: int,
    status: str,
    reply: str,
    message_id: str | None = None,
) -> None:
    """Write what the server said about one message; only a row we hold can change."""
    now = utcnow()
    session.execute(
        update(Delivery)
        .where(Delivery.id == delivery_id, Delivery.status == "sending")
        .values(
            status=status,
            last_reply=reply[:1000],
            message_id=message_id,
            lease_until=None,
            updated_at=now,
            sent_at=now if status == "sent" else None,
        )
    )


def release(session: Session, delivery_ids: Sequence[int]) -> None:
    """Give claimed rows back untouched (the transport went away before trying them)."""
    if delivery_ids:
        session.execute(
            update(Delivery)
            .where(Delivery.id.in_(list(delivery_ids)), Delivery.status == "sending")
            .values(status="queued", lease_until=None, attempts=Delivery.attempts - 1)
        )


def counts(session: Session, issue_id: int) -> dict[str, int]:
    """Rows per status, every status named (zero when none)."""
    rows = session.execute(
        select(Delivery.status, func.count())
        .where(Delivery.issue_id == issue_id)
        .group_by(Delivery.status)
    )
    found = {status: count for status, count in rows}
    return {status: int(found.get(status, 0)) for status in DELIVERY_STATUSES}


def deliveries(
    session: Session, issue_id: int, status: str | None = None
) -> list[tuple[Delivery, str]]:
    stmt = (
        select(Delivery, Subscriber.email)
        .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
        .where(Delivery.issue_id == issue_id)
        .order_by(Delivery.id)
    )
    if status:
        stmt = stmt.where(Delivery.status == status)
    return [(d, email) for d, email in session.execute(stmt)]
