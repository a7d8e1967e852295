"""Content and sending: items, issues, their rendered variants, the delivery ledger."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    JSON,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, attribute_keyed_dict, mapped_column, relationship

from newsletter.db import Base, utcnow

PARAGRAPH_SEPARATOR = "\n\n"


class Item(Base):
    __tablename__ = "items"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source_key: Mapped[str] = mapped_column(String(64), unique=True)
    published: Mapped[date] = mapped_column(Date, index=True)
    title: Mapped[str] = mapped_column(String(300))
    place: Mapped[str | None] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)  # paragraphs joined by a blank line
    language: Mapped[str] = mapped_column(String(8), default="en")
    url: Mapped[str | None] = mapped_column(String(2000))
    countries: Mapped[str] = mapped_column(String(200), default="")  # "CR,NI"
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    # What the source file last said (ParsedItem.content_hash), how to find the item again
    # when its title is corrected there (ParsedItem.fingerprint), and the fields a person
    # changed since ("title,countries,translation:es"), which re-imports leave alone.
    source_hash: Mapped[str | None] = mapped_column(String(64))
    fingerprint: Mapped[str | None] = mapped_column(String(64), index=True)
    edited: Mapped[str] = mapped_column(String(300), default="", server_default="")

    translations: Mapped[dict[str, ItemTranslation]] = relationship(
        collection_class=attribute_keyed_dict("language"),
        cascade="all, delete-orphan",
        lazy="selectin",
    )

    @property
    def paragraphs(self) -> list[str]:
        return self.body.split(PARAGRAPH_SEPARATOR) if self.body else []

    @property
    def country_codes(self) -> list[str]:
        return [c for c in self.countries.split(",") if c]

    @property
    def edited_fields(self) -> set[str]:
        return {f for f in self.edited.split(",") if f}

    def mark_edited(self, *fields: str) -> None:
        """Remember that a person set these fields: a re-import will not undo them."""
        self.edited = ",".join(sorted(self.edited_fields | set(fields)))


class ItemTranslation(Base):
    """An item's title, dateline and paragraphs in another language."""

    __tablename__ = "item_translations"

    item_id: Mapped[int] = mapped_column(
        ForeignKey("items.id", ondelete="CASCADE"), primary_key=True
    )
    language: Mapped[str] = mapped_column(String(8), primary_key=True)
    title: Mapped[str] = mapped_column(String(300))
    place: Mapped[str | None] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)

    @property
    def paragraphs(self) -> list[str]:
        return self.body.split(PARAGRAPH_SEPARATOR) if self.body else []


class Issue(Base):
    __tablename__ = "issues"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    title: Mapped[str] = mapped_column(String(200))  # every language's, unless `titles` has one
    # per-language subject lines {"es": "..."} and introductions ({"": for every language})
    titles: Mapped[dict[str, str] | None] = mapped_column(JSON, default=dict)
    intros: Mapped[dict[str, str] | None] = mapped_column(JSON, default=dict)
    date_from: Mapped[date] = mapped_column(Date)
    date_to: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(16), default="draft")
    # first: the reader's country first; only: just their country; none: regional order
    focus: Mapped[str] = mapped_column(String(8), default="first", server_default="first")
    # why the issue is paused or failed, for `issues status` (e.g. the relay refuses us)
    status_note: Mapped[str] = mapped_column(String(500), default="", server_default="")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime)

    entries: Mapped[list[IssueItem]] = relationship(
        order_by="IssueItem.position", cascade="all, delete-orphan"
    )


class IssueItem(Base):
    __tablename__ = "issue_items"

    issue_id: Mapped[int] = mapped_column(
        ForeignKey("issues.id", ondelete="CASCADE"), primary_key=True
    )
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer)

    item: Mapped[Item] = relationship(lazy="joined")


class IssueVariant(Base):
    """An issue rendered once for a (language, country focus); recipients share it."""

    __tablename__ = "issue_variants"
    __table_args__ = (UniqueConstraint("issue_id", "language", "country"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    issue_id: Mapped[int] = mapped_column(ForeignKey("issues.id", ondelete="CASCADE"))
    language: Mapped[str] = mapped_column(String(8))
    country: Mapped[str] = mapped_column(String(2), default="")  # "" = regional order
    subject: Mapped[str] = mapped_column(String(300))
    html: Mapped[str] = mapped_column(Text)
    text: Mapped[str] = mapped_column(Text)
    rendered_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


DELIVERY_STATUSES = ("queued", "sending", "sent", "deferred", "bounced", "failed", "cancelled")


class Delivery(Base):
    """The ledger: one row per (issue, subscriber), so a send can resume and never repeats."""

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("issue_id", "subscriber_id"),
        Index("ix_deliveries_issue_status", "issue_id", "status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    issue_id: Mapped[int] = mapped_column(ForeignKey("issues.id", ondelete="CASCADE"))
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id", ondelete="CASCADE"))
    language: Mapped[str] = mapped_column(String(8))
    country: Mapped[str] = mapped_column(String(2), default="")
    status: Mapped[str] = mapped_column(String(16), default="queued")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_reply: Mapped[str | None] = mapped_column(String(1000))
    message_id: Mapped[str | None] = mapped_column(String(300))
    lease_until: Mapped[datetime | None] = mapped_column(DateTime)
    # a deferred row is tried again from this time on (exponential backoff)
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime)
    first_attempt_at: Mapped[datetime | None] = mapped_column(DateTime)
    # when a batch task was last queued for this row: the sweeper re-enqueues lost ones
    enqueued_at: Mapped[datetime | None] = mapped_column(DateTime)
    smtp_code: Mapped[int | None] = mapped_column(Integer)
    relay: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime)


class IssueTarget(Base):
    """Who an issue goes to: a list or a segment. An issue with no targets goes to everyone;
    a target whose list or segment was deleted (both NULL) reaches nobody."""

    __tablename__ = "issue_targets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    issue_id: Mapped[int] = mapped_column(ForeignKey("issues.id", ondelete="CASCADE"), index=True)
    list_id: Mapped[int | None] = mapped_column(ForeignKey("lists.id", ondelete="SET NULL"))
    segment_id: Mapped[int | None] = mapped_column(ForeignKey("segments.id", ondelete="SET NULL"))
