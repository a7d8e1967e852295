"""The public sign-up form's library: who gets a confirmation request, and how often.

Anyone on the internet can type any address into a sign-up form, so the form must not
become a way to mail strangers (subscription bombing) or to learn who subscribes. This
module decides, in one transaction, what a request does; the web page shows the same
answer whatever it decided:

- a newcomer becomes a *pending* subscriber (on the public lists they chose, unconfirmed)
  with their consent recorded (method `web:signup`, the version of the text shown, the
  time); nothing is mailed until they follow the confirmation link;
- someone still pending is asked again;
- someone who unsubscribed signs up again: a new double opt-in, as for a newcomer (pending,
  the chosen public lists unconfirmed, a new consent recorded with its own `subscribed`
  event); nothing changes for them until they follow the new confirmation link;
- anyone else already known (active, bounced, complained) and every suppressed address is
  left alone and not mailed;
- a client (IP address) gets `Limits.per_client` requests per `client_window`, an address
  `Limits.mails_per_address` confirmation requests per `address_window`; past either the
  request is recorded and does nothing.

Counting and recording a request is one step across processes (`newsletter.db.serialise`
on the client's and the address's keys, held until the transaction commits), so requests
sent together to several `newsletter serve` processes cannot all count the same.

The throttle keeps keyed hashes (HMAC with the secret key) of the client and the address,
never either itself, so the table tells nobody who asked.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from newsletter.db import serialise
from subscribers.events import describe_lists, record_event
from subscribers.lists import public_lists
from subscribers.models import MailingList, SignupAttempt, Subscriber, Subscription
from subscribers.people import NewSubscriber, add
from subscribers.suppressions import is_suppressed
from subscribers.validate import email_key, normalise_email

METHOD = "web:signup"


@dataclass(frozen=True)
class Limits:
    per_client: int = 5
    client_window: timedelta = timedelta(hours=1)
    mails_per_address: int = 3
    address_window: timedelta = timedelta(days=1)


DEFAULT_LIMITS = Limits()


@dataclass(frozen=True)
class SignupRequest:
    """What the form sent, already checked field by field (`email` still raw)."""

    email: str
    name: str = ""
    language: str = ""
    country: str = ""
    lists: tuple[str, ...] = ()
    consent_version: str = ""  # `consent_version(text)` of the consent text shown


def consent_version(text: str) -> str:
    """A short, stable name for the exact wording shown ('signup-3f2a...'): the subscriber
    row keeps 50 characters, the template and catalog keep the text."""
    return "signup-" + hashlib.sha256(" ".join(text.split()).encode()).hexdigest()[:16]


def _keyed(secret: str, kind: str, value: str) -> str:
    return hmac.new(secret.encode(), f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()


def _count(session: Session, *conditions: object) -> int:
    return session.scalar(select(func.count()).select_from(SignupAttempt)
                          .where(*conditions)) or 0  # type: ignore[arg-type]


def request_signup(
    session: Session,
    form: SignupRequest,
    *,
    client: str,
    secret: str,
    now: datetime,
    default_language: str,
    limits: Limits = DEFAULT_LIMITS,
) -> int | None:
    """Record one sign-up request; the id of the person to ask to confirm, or None.

    Raises `InvalidValue` for an address that is not one (the only answer that differs,
    and it depends on the text typed, not on who is subscribed). The caller commits, then
    mails the person (`worker.confirmations.ask_to_confirm`). Call it first in its
    transaction: requests for the same client or address wait for each other's commit
    (`newsletter.db.serialise`), in every process on the database.
    """
    email = normalise_email(form.email)
    key = email_key(email)
    client_hash = _keyed(secret, "client", client)
    address_hash = _keyed(secret, "address", key)
    # count and record as one step for every process on the database (held to commit)
    serialise(session, "signup-client:" + client_hash, "signup-address:" + address_hash)
    forget_attempts(session, before=now - max(limits.client_window, limits.address_window))
    asked = _count(session, SignupAttempt.client_hash == client_hash,
                   SignupAttempt.at > now - limits.client_window)
    mailed = _count(session, SignupAttempt.address_hash == address_hash,
                    SignupAttempt.mailed.is_(True),
                    SignupAttempt.at > now - limits.address_window)
    attempt = SignupAttempt(client_hash=client_hash, address_hash=address_hash,
                            mailed=False, at=now)
    session.add(attempt)
    session.flush()
    if asked >= limits.per_client:
        return None
    person = session.scalar(select(Subscriber).where(Subscriber.email_key == key))
    if person is None:
        if is_suppressed(session, email):
            return None
        offered = {m.name for m in public_lists(session)}
        person = add(session, NewSubscriber(
            email=email, name=form.name, country=form.country, language=form.language,
            lists=tuple(name for name in dict.fromkeys(form.lists) if name in offered),
            consent_method=METHOD, consent_text=form.consent_version,
        ), default_language=default_language)
        # double opt-in whatever the lists' modes: a stranger typed this address
        person.status = "pending"
        person.consent_at = now
        for subscription in session.scalars(
                select(Subscription).where(Subscription.subscriber_id == person.id)):
            subscription.status = "unconfirmed"
    elif is_suppressed(session, email):
        return None
    elif person.status == "unsubscribed":
        _rejoin(session, person, form, now)
    elif person.status != "pending":
        return None
    if mailed >= limits.mails_per_address:
        return None
    attempt.mailed = True
    session.flush()
    return person.id


def _rejoin(session: Session, person: Subscriber, form: SignupRequest, now: datetime) -> None:
    """Someone who unsubscribed asks to join again: pending until they confirm, with the
    consent of this request recorded; their other lists and details stay as they were."""
    offered = {m.name: m.id for m in public_lists(session)}
    chosen = [name for name in dict.fromkeys(form.lists) if name in offered]
    held = {s.list_id: s for s in session.scalars(
        select(Subscription).where(Subscription.subscriber_id == person.id))}
    for name in chosen:
        subscription = held.get(offered[name])
        if subscription is None:
            session.add(Subscription(list_id=offered[name], subscriber_id=person.id,
                                     status="unconfirmed", created_at=now, updated_at=now))
        else:
            subscription.status, subscription.updated_at = "unconfirmed", now
    person.status = "pending"
    person.consent_at, person.consent_method = now, METHOD
    person.consent_text = form.consent_version or None
    session.flush()
    lists = session.execute(
        select(MailingList.name, Subscription.status)
        .join(Subscription, Subscription.list_id == MailingList.id)
        .where(Subscription.subscriber_id == person.id, MailingList.name.in_(chosen))
        .order_by(MailingList.name)).all()
    record_event(session, person.id, "subscribed",
                 f"signed up again after unsubscribing: pending; consent: {METHOD}"
                 + (f" ({form.consent_version})" if form.consent_version else "")
                 + f"; lists: {describe_lists([(n, s) for n, s in lists]) or '(none)'}",
                 "web", now)


def forget_attempts(session: Session, *, before: datetime) -> int:
    """Delete throttle rows older than `before`: each request clears what no limit looks
    at any more, so the table holds about a day of requests."""
    result = session.execute(delete(SignupAttempt).where(SignupAttempt.at < before))
    return int(getattr(result, "rowcount", 0) or 0)
