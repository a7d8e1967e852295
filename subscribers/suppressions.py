"""Suppressions: addresses never mailed again, kept only as a hash."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.db import utcnow
from newsletter.errors import NewsletterError
from subscribers.events import record_event
from subscribers.models import Subscriber, Suppression, email_hash
from subscribers.validate import email_key, normalise_email

REASONS = ("manual", "erased", "unsubscribed", "bounced", "complained")


class SuppressionError(NewsletterError):
    """A suppression cannot be added or removed as asked."""


def hash_of(address: str) -> str:
    """The hash under which an address is suppressed (normalised first, so case is moot)."""
    return email_hash(email_key(normalise_email(address)))


def _holder(session: Session, digest: str) -> int | None:
    """The id of the subscriber with this address, if one still has it."""
    return session.scalar(select(Subscriber.id).where(Subscriber.email_hash == digest))


def suppress(
    session: Session, address: str, *, reason: str = "manual", note: str = "", by: str = ""
) -> bool:
    """Suppress an address; returns False if it already was. Its subscriber stops receiving."""
    if reason not in REASONS:
        raise SuppressionError(f"reason {reason!r}: use one of {', '.join(REASONS)}")
    digest = hash_of(address)
    if session.get(Suppression, digest) is not None:
        return False
    session.add(Suppression(email_hash=digest, reason=reason, note=note))
    session.flush()
    holder = _holder(session, digest)
    if holder is not None:
        record_event(session, holder, "suppressed", f"{reason}" + (f": {note}" if note else ""),
                     by, utcnow())
    return True


def unsuppress(session: Session, address: str, *, by: str = "") -> bool:
    """Lift a suppression (the person asked to hear from us again); False if there was none."""
    found = session.get(Suppression, hash_of(address))
    if found is None:
        return False
    session.delete(found)
    session.flush()
    holder = _holder(session, found.email_hash)
    if holder is not None:
        record_event(session, holder, "unsuppressed", f"was {found.reason}", by, utcnow())
    return True


def is_suppressed(session: Session, address: str) -> bool:
    return session.get(Suppression, hash_of(address)) is not None


def list_suppressions(session: Session) -> list[tuple[Suppression, str | None]]:
    """Each suppression with the address when a subscriber still holds it (else None)."""
    rows = session.execute(
        select(Suppression, Subscriber.email)
        .outerjoin(Subscriber, Subscriber.email_hash == Suppression.email_hash)
        .order_by(Suppression.created_at, Suppression.email_hash)
    )
    return [(s, email) for s, email in rows]
