"""When an issue goes out: at one instant, or at a local time in each subscriber's zone.

Scheduling sets the issue's `send_at` (UTC, the moment sending starts) and status
"scheduled"; `newsletter scheduler` starts it then (worker/scheduler.py). Pure
functions take `now`; nothing here reads the clock.
"""

from __future__ import annotations

from datetime import date, datetime, time

from sqlalchemy.orm import Session

from newsletter.errors import NewsletterError
from newsletter.models import Issue


class ScheduleError(NewsletterError):
    """An issue cannot be scheduled (or unscheduled) as asked."""


SCHEDULABLE = ("draft", "scheduled")


def schedule_issue(
    session: Session,
    issue: Issue,
    *,
    at: datetime | None = None,
    local_time: time | None = None,
    on: date | None = None,
    timezone: str,
    now: datetime,
) -> Issue:
    """Schedule `issue`: at `at` (naive UTC), or at `local_time` on `on` in each
    subscriber's own zone (`timezone` for those without one). `now` is naive UTC."""
    if issue.status not in SCHEDULABLE:
        raise ScheduleError(f"issue {issue.slug!r} is {issue.status}: only a draft can be "
                            "scheduled")
    if (at is None) == (local_time is None):
        raise ScheduleError("give a time to send at, or a local time and a date")
    if at is not None:
        issue.send_at, issue.send_local_time, issue.send_on = at, None, None
    else:
        raise ScheduleError("local-time sends are not built yet")  # issue 9, item 3
    issue.schedule_timezone = timezone
    issue.status = "scheduled"
    return issue
