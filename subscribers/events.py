"""A person's history of status and list changes: one helper every writer calls.

Single changes go through the ORM session (`record_event`); an import writes its events
per batch with the SQL in `subscribers.bulk`, never row by row.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import insert
from sqlalchemy.orm import Session

from subscribers.models import SubscriberEvent

DETAIL_MAX = 1000
BY_MAX = 200


def record_event(
    session: Session, subscriber_id: int, kind: str, detail: str, by: str, now: datetime
) -> None:
    """Write one event in the session's transaction (a Core INSERT: no object to track)."""
    session.execute(insert(SubscriberEvent).values(
        subscriber_id=subscriber_id, at=now, kind=kind, detail=detail[:DETAIL_MAX],
        by=by[:BY_MAX]))


def describe_lists(lists: list[tuple[str, str]]) -> str:
    """`partners (unconfirmed), news (confirmed)`: a list membership as one phrase."""
    return ", ".join(f"{name} ({status})" for name, status in lists)
