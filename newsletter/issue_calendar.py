"""The calendar `issues list` shows: every issue with its schedule, approval, series and
number, and the series periods that were skipped, and why."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from newsletter.models import Issue, IssueItem, Series, SeriesPeriod
from newsletter.schedules import iso_utc


@dataclass(frozen=True)
class CalendarIssue:
    """An issue as `issues list` shows it: what it is, and when it goes out."""

    slug: str
    title: str
    date_from: date
    date_to: date
    status: str
    items: int
    approval: str
    review: str
    send_at: datetime | None
    local_time: str | None
    on: date | None
    timezone: str | None
    series: str | None
    number: int | None
    sent_at: datetime | None

    def as_dict(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        data["send_at"], data["sent_at"] = iso_utc(self.send_at), iso_utc(self.sent_at)
        return data


@dataclass(frozen=True)
class SkippedPeriod:
    """A series period with no issue: why (fewer items than its minimum, say)."""

    series: str
    occurs_at: datetime
    window_from: date
    window_to: date
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "occurs_at": iso_utc(self.occurs_at)}


def calendar(session: Session) -> tuple[list[CalendarIssue], list[SkippedPeriod]]:
    """Every issue (newest window first) with its schedule and approval, and every
    skipped series period (most recent first)."""
    item_counts = (select(IssueItem.issue_id, func.count().label("n"))
                   .group_by(IssueItem.issue_id).subquery())
    rows = session.execute(
        select(Issue.slug, Issue.title, Issue.date_from, Issue.date_to, Issue.status,
               func.coalesce(item_counts.c.n, 0), Issue.approval, Issue.review, Issue.send_at,
               Issue.send_local_time, Issue.send_on, Issue.schedule_timezone, Series.slug,
               Issue.number, Issue.sent_at)
        .outerjoin(item_counts, item_counts.c.issue_id == Issue.id)
        .outerjoin(Series, Series.id == Issue.series_id)
        .order_by(Issue.date_from.desc(), Issue.id.desc()))
    issues = [CalendarIssue(slug, title, start, end, status, int(n), approval, review, send_at,
                            local, on, zone, series, number, sent_at)
              for (slug, title, start, end, status, n, approval, review, send_at, local, on,
                   zone, series, number, sent_at) in rows]
    skipped = session.execute(
        select(Series.slug, SeriesPeriod.occurs_at, SeriesPeriod.window_from,
               SeriesPeriod.window_to, SeriesPeriod.reason)
        .join(Series, Series.id == SeriesPeriod.series_id)
        .where(SeriesPeriod.status == "skipped")
        .order_by(SeriesPeriod.occurs_at.desc(), SeriesPeriod.id.desc()))
    return issues, [SkippedPeriod(*row) for row in skipped]


def series_of(session: Session, issue: Issue) -> tuple[str | None, str | None]:
    """The slug and zone of the series the issue belongs to (None, None: none)."""
    if issue.series_id is None:
        return None, None
    found = session.get(Series, issue.series_id)
    return (found.slug, found.timezone) if found else (None, None)
