"""Every SQL statement about subscribers lives here."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from subscribers.models import Subscriber, email_hash
from subscribers.validate import email_key

if TYPE_CHECKING:
    from subscribers.importer import SubscriberRow

CHUNK = 500


def upsert(
    session: Session, rows: Sequence[SubscriberRow], *, default_language: str
) -> tuple[int, int, int]:
    """Insert new addresses, update changed ones; returns (added, updated, unchanged)."""
    added = updated = unchanged = 0
    for start in range(0, len(rows), CHUNK):
        chunk = rows[start : start + CHUNK]
        keys = [email_key(r.email) for r in chunk]
        existing = {
            s.email_key: s
            for s in session.scalars(select(Subscriber).where(Subscriber.email_key.in_(keys)))
        }
        for row, key in zip(chunk, keys, strict=True):
            current = existing.get(key)
            if current is None:
                session.add(
                    Subscriber(
                        email=row.email,
                        email_key=key,
                        email_hash=email_hash(key),
                        name=row.name,
                        country=row.country,
                        language=row.language or default_language,
                        status="active",
                    )
                )
                added += 1
                continue
            wanted = (
                row.name or current.name,
                row.country or current.country,
                row.language or current.language,
            )
            if (current.name, current.country, current.language) == wanted:
                unchanged += 1
                continue
            current.name, current.country, current.language = wanted
            updated += 1
        session.flush()
    return added, updated, unchanged


def count_by_status(session: Session) -> dict[str, int]:
    rows = session.execute(select(Subscriber.status, func.count()).group_by(Subscriber.status))
    return {status: count for status, count in rows}


def list_subscribers(session: Session, limit: int | None = None) -> list[Subscriber]:
    stmt = select(Subscriber).order_by(Subscriber.id)
    if limit is not None:
        stmt = stmt.limit(limit)
    return list(session.scalars(stmt))


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
