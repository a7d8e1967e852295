"""Every SQL statement about subscribers lives here."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import exists, func, or_, select
from sqlalchemy.orm import Session

from subscribers.models import Subscriber, Subscription


def audience(session: Session) -> list[tuple[str, str | None]]:
    """The distinct (language, country) pairs of active subscribers."""
    rows = session.execute(
        select(Subscriber.language, Subscriber.country)
        .where(Subscriber.status == "active")
        .distinct()
    )
    return [(language, country) for language, country in rows]


def stats(session: Session) -> list[tuple[str | None, str, str, int]]:
    """Counts by country x language x status, in one GROUP BY over a covering index."""
    rows = session.execute(
        select(Subscriber.country, Subscriber.language, Subscriber.status, func.count())
        .group_by(Subscriber.country, Subscriber.language, Subscriber.status)
        .order_by(Subscriber.country, Subscriber.language, Subscriber.status)
    )
    return [(country, language, status, int(n)) for country, language, status, n in rows]


def awaiting_confirmation(
    session: Session, *, list_id: int | None = None, sent_before: datetime | None = None
) -> list[int]:
    """Ids of people with an unconfirmed subscription (on one list, if given): pending
    newcomers, and active subscribers added to a double opt-in list, who must confirm it
    too; with `sent_before`, only those not asked to confirm since then."""
    waiting = select(Subscription.subscriber_id).where(
        Subscription.subscriber_id == Subscriber.id, Subscription.status == "unconfirmed")
    if list_id is not None:
        waiting = waiting.where(Subscription.list_id == list_id)
    stmt = select(Subscriber.id).where(Subscriber.status.in_(("pending", "active")),
                                       exists(waiting))
    if sent_before is not None:
        stmt = stmt.where(or_(Subscriber.confirmation_sent_at.is_(None),
                              Subscriber.confirmation_sent_at <= sent_before))
    return list(session.scalars(stmt.order_by(Subscriber.id)))
