"""Content and sending: items, issues, their rendered variants, the delivery ledger."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    JSON,
    Boolean,
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
    # the feed an item came from (None: a file, or a feed since removed)
    feed_id: Mapped[int | None] = mapped_column(
        ForeignKey("feeds.id", ondelete="SET NULL"), index=True)
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


class DeletedItem(Base):
    """The source key of an item a person deleted: a re-import of its file, or the next
    fetch of its feed, does not bring it back."""

    __tablename__ = "deleted_items"

    source_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    title: Mapped[str] = mapped_column(String(300))  # what it was, for people reading this
    deleted_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


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

    # the calendar (issue 9): which series and period an issue is (No. 12), its approval,
    # and when it goes out. Every datetime column is naive UTC.
    series_id: Mapped[int | None] = mapped_column(
        ForeignKey("series.id", ondelete="SET NULL"), index=True)
    number: Mapped[int | None] = mapped_column(Integer)
    # none: anyone may send it; required: draft -> in_review -> approved before it goes out
    approval: Mapped[str] = mapped_column(String(8), default="none", server_default="none")
    # "" (not submitted), in_review, approved, rejected; the history is in issue_reviews
    review: Mapped[str] = mapped_column(String(16), default="", server_default="")
    # when sending starts: the instant given, or, for a local-time send, the moment the
    # first subscriber's zone reaches the local time
    send_at: Mapped[datetime | None] = mapped_column(DateTime, index=True)
    send_local_time: Mapped[str | None] = mapped_column(String(5))  # "09:00", in each zone
    send_on: Mapped[date | None] = mapped_column(Date)  # the local date of a local-time send
    schedule_timezone: Mapped[str | None] = mapped_column(String(64))

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
    message_id: Mapped[str | None] = mapped_column(String(300))  # not indexed: see 0018
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
    # not claimed before this time: a scheduled send, or 09:00 in the subscriber's zone
    not_before: Mapped[datetime | None] = mapped_column(DateTime)


class MailReport(Base):
    """A bounce, complaint or unsubscribe request that came back by mail, with its
    evidence and what was decided (worker.bounce_record)."""

    __tablename__ = "mail_reports"
    __table_args__ = (
        Index("ux_mail_reports_digest", "digest", unique=True),
        Index("ix_mail_reports_subscriber_id_received_at", "subscriber_id", "received_at"),
        Index("ix_mail_reports_issue_id_kind", "issue_id", "kind"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    received_at: Mapped[datetime] = mapped_column(DateTime)
    source: Mapped[str] = mapped_column(String(32))  # smtp, lmtp, import, mbox, maildir
    digest: Mapped[str] = mapped_column(String(64))  # SHA-256 of the raw message
    kind: Mapped[str] = mapped_column(String(16))
    decision: Mapped[str] = mapped_column(String(300), default="")
    subscriber_id: Mapped[int | None] = mapped_column(
        ForeignKey("subscribers.id", ondelete="CASCADE"))
    delivery_id: Mapped[int | None] = mapped_column(
        ForeignKey("deliveries.id", ondelete="SET NULL"))
    issue_id: Mapped[int | None] = mapped_column(ForeignKey("issues.id", ondelete="SET NULL"))
    status: Mapped[str] = mapped_column(String(16), default="")
    diagnostic: Mapped[str] = mapped_column(String(500), default="")
    raw: Mapped[str | None] = mapped_column(Text)  # cleared after NEWSLETTER_BOUNCE_KEEP_DAYS


class IssueTarget(Base):
    """Who an issue goes to: a list or a segment. An issue with no targets goes to everyone;
    a target whose list or segment was deleted (both NULL) reaches nobody."""

    __tablename__ = "issue_targets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    issue_id: Mapped[int] = mapped_column(ForeignKey("issues.id", ondelete="CASCADE"), index=True)
    list_id: Mapped[int | None] = mapped_column(ForeignKey("lists.id", ondelete="SET NULL"))
    segment_id: Mapped[int | None] = mapped_column(ForeignKey("segments.id", ondelete="SET NULL"))


class IssueReview(Base):
    """One step of an issue's approval: submitted, approved, rejected, withdrawn; by whom."""

    __tablename__ = "issue_reviews"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    issue_id: Mapped[int] = mapped_column(ForeignKey("issues.id", ondelete="CASCADE"), index=True)
    action: Mapped[str] = mapped_column(String(16))
    by: Mapped[str] = mapped_column(String(200))
    note: Mapped[str] = mapped_column(String(2000), default="", server_default="")
    at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Feed(Base):
    """An RSS or Atom feed whose entries become items, fetched every `interval_minutes`."""

    __tablename__ = "feeds"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    url: Mapped[str] = mapped_column(String(2000))
    language: Mapped[str | None] = mapped_column(String(35))  # None: detect per entry
    countries: Mapped[str] = mapped_column(String(200), default="", server_default="")
    interval_minutes: Mapped[int] = mapped_column(Integer, default=60, server_default="60")
    # conditional GET: what the server said last time
    etag: Mapped[str | None] = mapped_column(String(500))
    last_modified: Mapped[str | None] = mapped_column(String(100))
    last_fetched_at: Mapped[datetime | None] = mapped_column(DateTime)
    last_ok_at: Mapped[datetime | None] = mapped_column(DateTime)
    next_fetch_at: Mapped[datetime | None] = mapped_column(DateTime)  # None: due now
    last_error: Mapped[str] = mapped_column(String(1000), default="", server_default="")
    failures: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Series(Base):
    """A newsletter that comes out on a calendar: one issue per period of its rule."""

    __tablename__ = "series"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    rule: Mapped[str] = mapped_column(Text)  # an RFC 5545 RRULE (with its DTSTART)
    every: Mapped[str | None] = mapped_column(String(200))  # as a person wrote it, if so
    timezone: Mapped[str] = mapped_column(String(64))
    lists: Mapped[list[str]] = mapped_column(JSON, default=list)  # names
    segments: Mapped[list[str]] = mapped_column(JSON, default=list)
    feeds: Mapped[list[str]] = mapped_column(JSON, default=list)  # only their items; []: all
    focus: Mapped[str] = mapped_column(String(8), default="first", server_default="first")
    titles: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)  # {"": all, "es": ...}
    intros: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    approval: Mapped[str] = mapped_column(String(8), default="none", server_default="none")
    min_items: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    # period: the items of the period; since-last: everything since the last issue
    window: Mapped[str] = mapped_column(String(16), default="period", server_default="period")
    # send at the occurrence's wall time in each subscriber's own zone
    local_time: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    build_ahead_minutes: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    status: Mapped[str] = mapped_column(String(16), default="active", server_default="active")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    # the current schedule's sends come after this (UTC; set when `series edit` changes
    # the schedule: nothing at or before it is built again). None: since created_at
    schedule_from: Mapped[datetime | None] = mapped_column(DateTime)


class SeriesPeriod(Base):
    """What became of one period of a series: built (its issue), or skipped and why.

    One row per (series, occurrence): building a period twice finds this row."""

    __tablename__ = "series_periods"
    __table_args__ = (UniqueConstraint("series_id", "occurs_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    series_id: Mapped[int] = mapped_column(ForeignKey("series.id", ondelete="CASCADE"))
    occurs_at: Mapped[datetime] = mapped_column(DateTime)  # the occurrence (send time), UTC
    window_from: Mapped[date] = mapped_column(Date)
    window_to: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(16))  # built | skipped
    reason: Mapped[str] = mapped_column(String(500), default="", server_default="")
    issue_id: Mapped[int | None] = mapped_column(ForeignKey("issues.id", ondelete="SET NULL"))
    number: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class SchedulerLease(Base):
    """A named lease the scheduler processes take in turn: whoever holds `tick` until
    `until` does the round; the others wait. A claimed row, so it works on every database."""

    __tablename__ = "scheduler_leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(200))
    until: Mapped[datetime] = mapped_column(DateTime)
    last_round_at: Mapped[datetime | None] = mapped_column(DateTime)
