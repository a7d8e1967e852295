"""People who receive the newsletter, the lists they are on, segments and suppressions."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column

from newsletter.db import Base, utcnow
from subscribers.tokens import new_salt

STATUSES = ("pending", "active", "unsubscribed", "bounced", "complained")
# a re-import never undoes these: the person asked, or their mailbox refused us
STICKY_STATUSES = ("unsubscribed", "bounced", "complained")
SUBSCRIPTION_STATUSES = ("unconfirmed", "confirmed", "unsubscribed")
OPT_IN_MODES = ("single", "double")


def email_hash(email_key: str) -> str:
    """The address's fingerprint: what a suppression keeps after the address is erased."""
    return hashlib.sha256(email_key.encode()).hexdigest()


class Subscriber(Base):
    __tablename__ = "subscribers"
    __table_args__ = (
        Index("ix_subscribers_country_language_status", "country", "language", "status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(320))
    # lower-cased address: one person per address, however it was capitalised
    email_key: Mapped[str] = mapped_column(String(320), unique=True)
    email_hash: Mapped[str] = mapped_column(String(64), index=True, default="")
    name: Mapped[str] = mapped_column(String(200), default="")
    # looked up through ix_subscribers_country_language_status, which starts with it
    country: Mapped[str | None] = mapped_column(String(2))
    # a BCP 47 tag as the person gave it (normalised): es, pt-BR, zh-Hant-TW
    language: Mapped[str] = mapped_column(String(35), default="en")
    status: Mapped[str] = mapped_column(String(16), default="active", index=True)
    attributes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    consent_at: Mapped[datetime | None] = mapped_column(DateTime)
    consent_method: Mapped[str | None] = mapped_column(String(200))
    consent_text: Mapped[str | None] = mapped_column(String(50))  # version of the wording
    # when the last double opt-in request went out (None: never)
    confirmation_sent_at: Mapped[datetime | None] = mapped_column(DateTime)
    # signed into this person's links (subscribers.tokens): ids are reused, salts are not.
    # No server default: an INSERT that forgets it fails instead of making guessable links
    token_salt: Mapped[str] = mapped_column(String(32), default=new_salt)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)


class MailingList(Base):
    __tablename__ = "lists"
    __table_args__ = (CheckConstraint("opt_in IN ('single', 'double')", name="opt_in"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    description: Mapped[str] = mapped_column(String(500), default="")
    opt_in: Mapped[str] = mapped_column(String(8), default="single")
    # offered on the public sign-up form (/signup)
    public: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Subscription(Base):
    __tablename__ = "subscriptions"

    list_id: Mapped[int] = mapped_column(
        ForeignKey("lists.id", ondelete="CASCADE"), primary_key=True
    )
    subscriber_id: Mapped[int] = mapped_column(
        ForeignKey("subscribers.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    status: Mapped[str] = mapped_column(String(16), default="confirmed")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)


class Segment(Base):
    """A stored, named filter (see `subscribers.filters.Filter`)."""

    __tablename__ = "segments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    definition: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)


class Suppression(Base):
    """An address that is never mailed again; only its hash is kept."""

    __tablename__ = "suppressions"

    email_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    reason: Mapped[str] = mapped_column(String(32))
    note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class SignupAttempt(Base):
    """One request of the public sign-up form, kept for its rate limits (subscribers/signup.py):
    keyed hashes of the client and the address, never either itself."""

    __tablename__ = "signup_attempts"
    __table_args__ = (
        Index("ix_signup_attempts_client_at", "client_hash", "at"),
        Index("ix_signup_attempts_address_at", "address_hash", "at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    client_hash: Mapped[str] = mapped_column(String(64))
    address_hash: Mapped[str] = mapped_column(String(64))
    mailed: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    at: Mapped[datetime] = mapped_column(DateTime)


EVENT_KINDS = (
    "subscribed", "imported", "confirmation-sent", "confirmed", "status", "changed",
    "unsubscribed", "list-added", "list-removed", "suppressed", "unsuppressed", "bounced",
)


class SubscriberEvent(Base):
    """One change to a person's status or lists: when, what, why (`detail`), and by whom
    (`cli`, `web`, `worker`, `import`, a newsroom user's address). Gone with the person."""

    __tablename__ = "subscriber_events"
    __table_args__ = (Index("ix_subscriber_events_subscriber_id_at", "subscriber_id", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(
        ForeignKey("subscribers.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(DateTime)
    kind: Mapped[str] = mapped_column(String(32))
    detail: Mapped[str] = mapped_column(String(1000), default="", server_default="")
    by: Mapped[str] = mapped_column(String(200), default="", server_default="")
