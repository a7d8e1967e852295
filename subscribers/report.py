"""What the newsroom's subscriber screen shows: counts by any of country, language and
status, and one person's whole history (profile, lists, consent, events, deliveries)
merged into one timeline, newest first. Reads only; the CLI and the web call the same."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from newsletter.models import Delivery, Issue, MailReport
from newsletter.render import Variant
from subscribers.filters import Filter, condition
from subscribers.models import MailingList, Subscriber, SubscriberEvent, Subscription
from subscribers.people import SubscriberError, find, lists_of
from subscribers.suppressions import is_suppressed

NO_COUNTRY_LABEL = "(none)"
DIMENSIONS = ("country", "language", "status")


class ReportError(SubscriberError):
    """A count or history cannot be made as asked."""


@dataclass(frozen=True)
class CountRow:
    """One group: its values in the order of `by`, and how many people are in it."""

    values: tuple[str, ...]
    count: int


def _column(name: str) -> ColumnElement[str] | InstrumentedAttribute[str]:
    if name == "country":
        # NULL grouped and shown as a label, the same on SQLite and PostgreSQL
        return func.coalesce(Subscriber.country, NO_COUNTRY_LABEL)
    if name == "language":
        return Subscriber.language
    if name == "status":
        return Subscriber.status
    raise ReportError(f"cannot count by {name!r}: use any of {', '.join(DIMENSIONS)}")


def counts(
    session: Session, *, by: Sequence[str] = DIMENSIONS, filters: Filter | None = None
) -> list[CountRow]:
    """People per group of `by` (one GROUP BY), among those `filters` selects."""
    if not by:
        raise ReportError(f"count by at least one of {', '.join(DIMENSIONS)}")
    if len(set(by)) != len(by):
        raise ReportError(f"count by each of {', '.join(by)} once")
    columns = [_column(name).label(name) for name in by]
    stmt = select(*columns, func.count()).group_by(*columns).order_by(*columns)
    if filters is not None and not filters.is_empty():
        stmt = stmt.where(condition(session, filters))
    return [CountRow(tuple(str(v) for v in row[:-1]), int(row[-1]))
            for row in session.execute(stmt)]


@dataclass(frozen=True)
class Entry:
    """One line of a timeline: an event, a delivery, or the consent on record."""

    at: datetime
    kind: str  # an event kind (subscribed, bounced...), "delivery" or "consent"
    detail: str
    by: str = ""


@dataclass(frozen=True)
class DeliveryRecord:
    issue: str  # the slug
    variant: str  # es-CR
    status: str
    attempts: int
    last_reply: str | None
    smtp_code: int | None
    created_at: datetime
    sent_at: datetime | None
    not_before: datetime | None
    updated_at: datetime

    def entry(self) -> Entry:
        when = self.sent_at or self.updated_at or self.created_at
        parts = [f"issue {self.issue} ({self.variant}): {self.status}",
                 f"{self.attempts} attempt{'s' if self.attempts != 1 else ''}"]
        if self.not_before is not None and self.sent_at is None:
            parts.append(f"not before {self.not_before:%Y-%m-%d %H:%M} UTC")
        if self.last_reply:
            parts.append(f"reply: {self.last_reply}")
        return Entry(when, "delivery", "; ".join(parts))


@dataclass(frozen=True)
class History:
    id: int
    email: str
    name: str
    country: str | None
    language: str
    status: str
    suppressed: bool
    attributes: dict[str, Any]
    lists: list[tuple[str, str]]  # (list, subscription status)
    consent_at: datetime | None
    consent_method: str | None
    consent_text: str | None
    created_at: datetime
    events: list[Entry] = field(default_factory=list)  # oldest first
    deliveries: list[DeliveryRecord] = field(default_factory=list)
    timeline: list[Entry] = field(default_factory=list)  # newest first

    def to_json(self) -> dict[str, Any]:
        """Plain values (datetimes as ISO text) for `--json` and the web."""
        def when(value: datetime | None) -> str | None:
            return value.isoformat() if value is not None else None

        def entry(e: Entry) -> dict[str, Any]:
            return {"at": when(e.at), "kind": e.kind, "detail": e.detail, "by": e.by}

        return {
            "id": self.id, "email": self.email, "name": self.name, "country": self.country,
            "language": self.language, "status": self.status, "suppressed": self.suppressed,
            "attributes": self.attributes,
            "lists": [{"list": name, "status": status} for name, status in self.lists],
            "consent": {"at": when(self.consent_at), "method": self.consent_method,
                        "text": self.consent_text},
            "created_at": when(self.created_at),
            "deliveries": [
                {"issue": d.issue, "variant": d.variant, "status": d.status,
                 "attempts": d.attempts, "last_reply": d.last_reply, "smtp_code": d.smtp_code,
                 "sent_at": when(d.sent_at), "not_before": when(d.not_before),
                 "created_at": when(d.created_at)}
                for d in self.deliveries],
            "timeline": [entry(e) for e in self.timeline],
        }


def _person(session: Session, email_or_id: str | int) -> Subscriber:
    if isinstance(email_or_id, int) or email_or_id.strip().isdigit():
        found = session.get(Subscriber, int(email_or_id))
        if found is None:
            raise ReportError(f"no subscriber with the id {email_or_id}")
        return found
    return find(session, email_or_id)


def _arrival(session: Session, person: Subscriber) -> Entry:
    """The `subscribed` line of someone an import added (or added before migration 0014):
    from their row, the consent on record and the subscriptions made at the same instant."""
    lists = session.execute(
        select(MailingList.name).join(Subscription, Subscription.list_id == MailingList.id)
        .where(Subscription.subscriber_id == person.id,
               Subscription.created_at == person.created_at)
        .order_by(MailingList.name)).scalars().all()
    detail = f"consent: {person.consent_method or 'not recorded'}"
    if person.consent_text:
        detail += f" ({person.consent_text})"
    return Entry(person.created_at, "subscribed",
                 detail + (f"; lists: {', '.join(lists)}" if lists else ""))


def history(session: Session, email_or_id: str | int) -> History:
    """Everything that happened to one person, from their events and the delivery ledger.

    Someone a bulk import added has no `subscribed` event (an import writes none per new
    row, to stay as fast as before): their line is made from their row."""
    person = _person(session, email_or_id)
    events = [Entry(e.at, e.kind, e.detail, e.by) for e in session.scalars(
        select(SubscriberEvent).where(SubscriberEvent.subscriber_id == person.id)
        .order_by(SubscriberEvent.at, SubscriberEvent.id))]
    deliveries = [
        DeliveryRecord(slug, Variant(d.language, d.country).label, d.status, d.attempts,
                       d.last_reply, d.smtp_code, d.created_at, d.sent_at, d.not_before,
                       d.updated_at)
        for d, slug in session.execute(
            select(Delivery, Issue.slug).join(Issue, Issue.id == Delivery.issue_id)
            .where(Delivery.subscriber_id == person.id)
            .order_by(Delivery.created_at, Delivery.id))
    ]
    merged = list(events)
    if not any(e.kind == "subscribed" for e in events):
        merged.insert(0, _arrival(session, person))
    # stable sort: within one instant, events keep the order they were written in, after
    # a delivery (whose reply is what they react to)
    merged += [d.entry() for d in deliveries]
    merged += [Entry(r.received_at, f"mail {r.kind}", " ".join(
        p for p in (r.status, r.diagnostic, f"-> {r.decision}") if p), r.source)
        for r in session.scalars(select(MailReport).where(
            MailReport.subscriber_id == person.id))]
    merged.sort(key=lambda e: (e.at, e.kind != "delivery"))
    return History(
        id=person.id, email=person.email, name=person.name, country=person.country,
        language=person.language, status=person.status,
        suppressed=is_suppressed(session, person.email),
        attributes=dict(person.attributes or {}), lists=lists_of(session, person.id),
        consent_at=person.consent_at, consent_method=person.consent_method,
        consent_text=person.consent_text, created_at=person.created_at,
        events=events, deliveries=deliveries, timeline=merged[::-1],
    )
