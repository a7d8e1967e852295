"""Every SQL statement about subscribers lives here."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from subscribers.models import Subscriber


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
