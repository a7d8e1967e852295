"""The first page: what goes out when, what waits for approval, how much there is."""

from __future__ import annotations

from flask import Response

from newsletter.issue_calendar import calendar
from newsletter.items import count_items
from newsletter.web.admin.core import render, sessions
from newsletter.web.auth import require
from subscribers.queries import stats

UPCOMING = ("draft", "scheduled", "sending", "paused")


@require("newsroom.read")
def dashboard() -> Response:
    with sessions()() as db:
        issues, skipped = calendar(db)
        items = count_items(db)
        by_status: dict[str, int] = {}
        for _country, _language, status, n in stats(db):
            by_status[status] = by_status.get(status, 0) + n
    scheduled = sorted((i for i in issues if i.status in UPCOMING and
                        (i.send_at or i.on or i.local_time)),
                       key=lambda i: str(i.send_at or i.on or ""))
    waiting = [i for i in issues if i.review == "in_review"]
    return render("dashboard", scheduled=scheduled, waiting=waiting, skipped=skipped[:10],
                  items=items, subscribers=sum(by_status.values()),
                  active=by_status.get("active", 0))
