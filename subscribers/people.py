"""One subscriber at a time: add, find, change, unsubscribe, delete; privacy requests."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from newsletter.db import utcnow
from newsletter.errors import NewsletterError
from subscribers.events import describe_lists, record_event
from subscribers.filters import Filter, condition
from subscribers.lists import get_list
from subscribers.models import (
    STATUSES,
    MailingList,
    Subscriber,
    Subscription,
    email_hash,
)
from subscribers.suppressions import is_suppressed
from subscribers.validate import (
    clean_name,
    email_key,
    normalise_country,
    normalise_email,
    normalise_language,
)


class SubscriberError(NewsletterError):
    """A subscriber cannot be found or changed as asked."""


@dataclass(frozen=True)
class NewSubscriber:
    email: str
    name: str = ""
    country: str = ""
    language: str = ""
    lists: tuple[str, ...] = ()
    attributes: tuple[tuple[str, str], ...] = ()
    consent_method: str = "cli:add"
    consent_text: str | None = None
    preconfirm: bool = False


def find(session: Session, address: str) -> Subscriber:
    key = email_key(address.strip())
    found = session.scalar(select(Subscriber).where(Subscriber.email_key == key))
    if found is None:
        raise SubscriberError(
            f"no subscriber with the address {address.strip()!r}: "
            "`newsletter subscribers list --email PART` searches"
        )
    return found


def add(
    session: Session, new: NewSubscriber, *, default_language: str, by: str = ""
) -> Subscriber:
    """Add one person, with consent recorded; refuses a suppressed or existing address."""
    email = normalise_email(new.email)
    key = email_key(email)
    if session.scalar(select(Subscriber.id).where(Subscriber.email_key == key)) is not None:
        raise SubscriberError(
            f"{email} is already a subscriber: use `newsletter subscribers update`"
        )
    if is_suppressed(session, email):
        raise SubscriberError(
            f"{email} is suppressed and must not be mailed: lift it with "
            "`newsletter suppressions remove` only if the person asked to subscribe again"
        )
    targets = [get_list(session, name) for name in new.lists]
    # pending only when every list asks for confirmation: a single opt-in list is enough
    double = bool(targets) and all(m.opt_in == "double" for m in targets) and not new.preconfirm
    person = Subscriber(
        email=email,
        email_key=key,
        email_hash=email_hash(key),
        name=clean_name(new.name),
        country=normalise_country(new.country),
        language=normalise_language(new.language, default_language),
        status="pending" if double else "active",
        attributes=dict(new.attributes),
        consent_at=(now := utcnow()),
        consent_method=new.consent_method,
        consent_text=new.consent_text,
    )
    session.add(person)
    session.flush()
    joined: list[tuple[str, str]] = []
    for m in targets:
        confirmed = m.opt_in == "single" or new.preconfirm
        joined.append((m.name, "confirmed" if confirmed else "unconfirmed"))
        session.add(Subscription(list_id=m.id, subscriber_id=person.id, status=joined[-1][1]))
    session.flush()
    record_event(session, person.id, "subscribed",
                 f"{person.status}; consent: {new.consent_method}"
                 + (f" ({new.consent_text})" if new.consent_text else "")
                 + (f"; lists: {describe_lists(joined)}" if joined else ""), by, now)
    return person


def update_subscriber(
    session: Session,
    address: str,
    *,
    default_language: str,
    name: str | None = None,
    country: str | None = None,
    language: str | None = None,
    status: str | None = None,
    attributes: dict[str, str] | None = None,
    add_lists: tuple[str, ...] = (),
    remove_lists: tuple[str, ...] = (),
    by: str = "",
) -> Subscriber:
    """Change the fields given; each change of profile, status or list is recorded."""
    person = find(session, address)
    now = utcnow()
    before = (person.name, person.country, person.language, person.status)
    changed: list[str] = []
    if name is not None:
        person.name = clean_name(name)
    if country is not None:
        person.country = normalise_country(country)
    if language is not None:
        person.language = normalise_language(language, default_language)
    for label, old, new_value in zip(("name", "country", "language"), before[:3],
                                     (person.name, person.country, person.language),
                                     strict=True):
        if old != new_value:
            changed.append(f"{label}: {old or '(none)'} -> {new_value or '(none)'}")
    if changed:
        record_event(session, person.id, "changed", "; ".join(changed), by, now)
    if status is not None:
        if status not in STATUSES:
            raise SubscriberError(f"unknown status {status!r}: use one of {', '.join(STATUSES)}")
        if status == "active" and is_suppressed(session, person.email):
            raise SubscriberError(
                f"{person.email} is suppressed: `newsletter suppressions remove` it first"
            )
        person.status = status
        if status != before[3]:
            record_event(session, person.id, "status", f"{before[3]} -> {status}", by, now)
    if attributes:
        person.attributes = {**(person.attributes or {}), **attributes}
    for list_name in add_lists:
        m = get_list(session, list_name)
        existing = session.get(Subscription, (m.id, person.id))
        if existing is None:
            session.add(Subscription(list_id=m.id, subscriber_id=person.id, status="confirmed"))
            record_event(session, person.id, "list-added", f"{m.name} (confirmed)", by, now)
        elif existing.status != "confirmed":
            record_event(session, person.id, "list-added",
                         f"{m.name} (confirmed, was {existing.status})", by, now)
            existing.status = "confirmed"
    for list_name in remove_lists:
        m = get_list(session, list_name)
        left = session.execute(update(Subscription).where(
            Subscription.list_id == m.id, Subscription.subscriber_id == person.id,
            Subscription.status != "unsubscribed",
        ).values(status="unsubscribed", updated_at=now))
        if left.rowcount:  # type: ignore[attr-defined]
            record_event(session, person.id, "list-removed", m.name, by, now)
    session.flush()
    return person


UNSUBSCRIBE_WAYS = ("admin", "link", "one-click", "mailto")


def unsubscribe(
    session: Session, address: str, *, list_name: str | None = None, how: str = "admin",
    by: str = "",
) -> Subscriber:
    """From one list, or from everything (the subscriber's status becomes unsubscribed).

    `how`: admin (a person in the team), link (the page in an email) or one-click
    (RFC 8058); recorded when something changed, so repeating it adds nothing."""
    if how not in UNSUBSCRIBE_WAYS:
        raise SubscriberError(f"unsubscribe how {how!r}: use one of {', '.join(UNSUBSCRIBE_WAYS)}")
    person = find(session, address)
    now = utcnow()
    stmt = update(Subscription).where(Subscription.subscriber_id == person.id,
                                      Subscription.status != "unsubscribed")
    was = person.status
    if list_name is not None:
        stmt = stmt.where(Subscription.list_id == get_list(session, list_name).id)
    else:
        person.status = "unsubscribed"
    result = session.execute(stmt.values(status="unsubscribed", updated_at=now))
    left = result.rowcount  # type: ignore[attr-defined]
    if was != person.status or left:
        scope = f"from {list_name}" if list_name is not None else f"from everything (was {was})"
        record_event(session, person.id, "unsubscribed", f"{scope}, by {how}", by, now)
    session.flush()
    return person


def delete_subscriber(session: Session, address: str) -> None:
    """Delete the record (a later import could add the person again: see `erase`)."""
    session.delete(find(session, address))
    session.flush()


def select_subscribers(
    session: Session, f: Filter, *, limit: int | None = None, offset: int = 0
) -> list[Subscriber]:
    stmt = select(Subscriber).where(condition(session, f)).order_by(Subscriber.id)
    if limit is not None:
        stmt = stmt.limit(limit).offset(offset)
    return list(session.scalars(stmt))


def lists_of(session: Session, subscriber_id: int) -> list[tuple[str, str]]:
    rows = session.execute(
        select(MailingList.name, Subscription.status)
        .join(Subscription, Subscription.list_id == MailingList.id)
        .where(Subscription.subscriber_id == subscriber_id)
        .order_by(MailingList.name)
    )
    return [(name, status) for name, status in rows]


CONFIRMATION_METHOD = "double opt-in confirmation"


def confirm(session: Session, subscriber_id: int, *, by: str = "") -> Subscriber:
    """The person followed their confirmation link: pending becomes active and every
    unconfirmed subscription confirmed. The consent recorded when they signed up (how,
    which wording, when) stays as it was; the confirmation is recorded beside it, as a
    `confirmed` event with its moment.

    Idempotent, and it undoes no other choice: someone who unsubscribed since stays so.
    """
    person = session.get(Subscriber, subscriber_id)
    if person is None:
        raise SubscriberError(f"no subscriber with the id {subscriber_id}")
    waiting = list(session.scalars(select(Subscription).where(
        Subscription.subscriber_id == person.id, Subscription.status == "unconfirmed")))
    if person.status != "pending" and not waiting:
        return person
    if person.status in ("pending", "active"):
        now = utcnow()
        for subscription in waiting:
            subscription.status = "confirmed"
            subscription.updated_at = now
        if person.status == "pending":
            person.status = "active"
        lists = ", ".join(session.scalars(select(MailingList.name).where(
            MailingList.id.in_([w.list_id for w in waiting])).order_by(MailingList.name)))
        record_event(session, person.id, "confirmed",
                     f"{CONFIRMATION_METHOD}; lists: {lists or '(none)'}", by, now)
    session.flush()
    return person
