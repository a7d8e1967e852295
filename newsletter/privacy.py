"""Privacy requests: everything we hold about a person, and erasing it.

These span subscribers and the delivery ledger, so they live above both.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from newsletter.models import Delivery, Issue
from newsletter.render import Variant
from subscribers.models import SubscriberEvent, Subscription
from subscribers.people import find, lists_of
from subscribers.suppressions import is_suppressed, suppress


def export_data(session: Session, address: str) -> dict[str, Any]:
    """Everything held about a person (subject access request), as JSON-ready data."""
    person = find(session, address)
    deliveries = session.execute(
        select(Issue.slug, Delivery.status, Delivery.language, Delivery.country,
               Delivery.attempts, Delivery.last_reply, Delivery.message_id,
               Delivery.created_at, Delivery.sent_at)
        .join(Issue, Issue.id == Delivery.issue_id)
        .where(Delivery.subscriber_id == person.id)
        .order_by(Delivery.id)
    )
    return {
        "subscriber": {
            "email": person.email,
            "name": person.name,
            "country": person.country,
            "language": person.language,
            "status": person.status,
            "attributes": person.attributes or {},
            "created_at": person.created_at.isoformat(),
            "updated_at": person.updated_at.isoformat(),
        },
        "consent": {
            "at": person.consent_at.isoformat() if person.consent_at else None,
            "method": person.consent_method,
            "text_version": person.consent_text,
        },
        "lists": [{"list": name, "status": status}
                  for name, status in lists_of(session, person.id)],
        "deliveries": [
            {"issue": slug, "status": status, "variant": Variant(lang, country).label,
             "attempts": attempts, "last_reply": reply, "message_id": mid,
             "planned_at": planned.isoformat(), "sent_at": sent.isoformat() if sent else None}
            for slug, status, lang, country, attempts, reply, mid, planned, sent in deliveries
        ],
        "suppressed": is_suppressed(session, person.email),
    }


def erase(session: Session, address: str) -> None:
    """Delete everything about a person; keep only a hashed suppression so we never mail
    the address again (right to erasure, without the risk of a re-import re-adding it)."""
    person = find(session, address)
    suppress(session, person.email, reason="erased")
    session.execute(delete(Delivery).where(Delivery.subscriber_id == person.id))
    session.execute(delete(Subscription).where(Subscription.subscriber_id == person.id))
    session.execute(delete(SubscriberEvent).where(SubscriberEvent.subscriber_id == person.id))
    session.delete(person)
    session.flush()
