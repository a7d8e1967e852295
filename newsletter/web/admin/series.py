"""The Series pages and the calendar: list, create, one series (its next sends and its
periods), pause, resume, delete, build the next period now; and the next 8 weeks of what
goes out and what was skipped. newsletter.series, newsletter.issue_calendar and
worker.delivery do the work. Editors and admins change; approvers read."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from flask import Response, abort, redirect, request, url_for
from werkzeug.wrappers import Response as BaseResponse

from newsletter import series as library
from newsletter.db import transaction, utcnow
from newsletter.errors import NewsletterError
from newsletter.feeds import list_feeds
from newsletter.issue_calendar import calendar
from newsletter.render import FOCUS_POLICIES
from newsletter.web.admin.core import N_, gettext, render, sessions, settings
from newsletter.web.auth import current_user, require

CALENDAR_WEEKS = 8
MAX_SENDS_SHOWN = 60  # per series in the calendar (an hourly series has 1344 in 8 weeks)
SHOWN_PERIODS = 50
FORM_FIELDS = ("slug", "every", "rrule", "timezone", "lists", "segments", "focus", "approval",
               "min_items", "window", "build_ahead")


def may_change() -> bool:
    """Whether the user may change series (users.PERMISSIONS)."""
    return current_user().may("series.change")


# --- the list and the form -----------------------------------------------------------------

def field_of(message: str) -> str:
    """The form field a library error is about ("" when none is): shown beside it."""
    starts = (("--every", "every"), ("give the cadence", "every"), ("--rrule", "rrule"),
              ("time zone", "timezone"), ("--min-items", "min_items"),
              ("--build-ahead", "build_ahead"), ("country focus", "focus"),
              ("approval", "approval"), ("window", "window"), ("no feed called", "feeds"),
              ("the series title", "titles"), ("no list", "lists"), ("no segment", "segments"))
    for start, field in starts:
        if message.startswith(start):
            return field
    if "series name" in message or "a series called" in message:
        return "slug"
    if "list" in message.split(":")[0]:
        return "lists"
    if "segment" in message.split(":")[0]:
        return "segments"
    return ""


def _rows() -> list[dict[str, object]]:
    now = utcnow()
    with sessions()() as db:
        found = library.list_series(db)
        rows: list[dict[str, object]] = []
        for one in found:
            following = library.upcoming(one, now, 1)
            rows.append({"slug": one.slug, "status": one.status,
                         "cadence": one.every or one.rule, "timezone": one.timezone,
                         "next": following[0] if following else None})
        return rows


def _feed_names() -> list[str]:
    with sessions()() as db:
        return [f.name for f in list_feeds(db)]


def _list_page(code: int = 200, *, form: Mapping[str, object] | None = None,
               problem: str = "", field: str = "", message: str = "") -> Response:
    return render("series", code, series=_rows(), form=form or {}, problem=problem,
                  field=field, message=message, feeds=_feed_names(),
                  languages=settings().languages, focuses=FOCUS_POLICIES,
                  approvals=library.APPROVALS, windows=library.WINDOWS,
                  may_change=may_change())


@require("newsroom.read")
def series_page() -> Response:
    return _list_page()


def _names(text: str) -> list[str]:
    return [n.strip() for n in text.replace("\n", ",").split(",") if n.strip()]


def _spec(form: Mapping[str, str], feeds: list[str]) -> library.SeriesSpec:
    """The form as `series create` would take it; a number that is none is an error that
    names its field (raised as SeriesError, so it shows at the field)."""
    def number(name: str, flag: str, kind: type[int] | type[float]) -> float | None:
        text = form.get(name, "").strip()
        if not text:
            return None
        try:
            value = kind(text)
        except ValueError:
            raise library.SeriesError(f"{flag} {text[:20]!r}: give a number") from None
        if value != value or value in (float("inf"), float("-inf")):  # NaN, infinities
            raise library.SeriesError(f"{flag} {text[:20]!r}: give a number")
        return value

    cadence = form.get("cadence", "every")
    every = form.get("every", "").strip() or None
    rrule = form.get("rrule", "").strip().replace("\r\n", "\n") or None
    if cadence == "rrule":
        every = None
    else:
        rrule = None
    titles = {"": form.get("title", "")}
    titles.update({lang: form.get(f"title-{lang}", "") for lang in settings().languages})
    min_items = number("min_items", "--min-items", int)
    return library.SeriesSpec(
        slug=form.get("slug", "").strip(), timezone=form.get("timezone", "").strip(),
        every=every, rrule=rrule, lists=_names(form.get("lists", "")),
        segments=_names(form.get("segments", "")), feeds=feeds,
        focus=form.get("focus", "first"), titles={k: v for k, v in titles.items() if v.strip()},
        approval=form.get("approval", "none"),
        min_items=1 if min_items is None else int(min_items),
        window=form.get("window", "period"), local_time=form.get("local_time") == "yes",
        build_ahead_hours=number("build_ahead", "--build-ahead", float))


@require("series.change")
def create() -> BaseResponse:
    form = request.form
    feeds = form.getlist("feeds")
    kept: dict[str, object] = {k: v[:2000] for k, v in form.items() if k != "csrf_token"}
    kept["feeds"] = feeds
    try:
        spec = _spec(form, feeds)
        with transaction(sessions()) as db:
            created = library.create_series(db, spec, languages=settings().languages,
                                            now=utcnow())
            slug = created.slug
    except NewsletterError as exc:
        return _list_page(400, form=kept, problem=str(exc), field=field_of(str(exc)))
    return redirect(url_for("admin.series_one", slug=slug, done="created"), 303)


# --- one series --------------------------------------------------------------------------

DONE = {
    "created": N_("The series was created."),
    "paused": N_("The series was paused."),
    "resumed": N_("The series was resumed."),
}


def _one_page(slug: str, code: int = 200, *, message: str = "", problem: str = "",
              result: library.PeriodResult | None = None,
              planned: int | None = None) -> Response:
    now = utcnow()
    with sessions()() as db:
        try:
            found = library.get_series(db, slug)
        except library.SeriesNotFound:
            abort(404)
        periods = library.periods_of(db, found)[:SHOWN_PERIODS]
        next_sends = library.upcoming(found, now)
        waiting = library.scheduled_issues(db, found)
        db.expunge_all()
    return render("series_one", code, series=found, periods=periods, next_sends=next_sends,
                  waiting=waiting, message=message, problem=problem, result=result,
                  planned=planned, may_change=may_change(), now=now)


@require("newsroom.read")
def series_one(slug: str) -> Response:
    done = DONE.get(request.args.get("done", ""))
    return _one_page(slug, message=gettext(done) if done else "")


@require("series.change")
def pause(slug: str) -> BaseResponse:
    try:
        with transaction(sessions()) as db:
            library.pause_series(db, slug)
    except library.SeriesNotFound:
        abort(404)
    except NewsletterError as exc:
        return _one_page(slug, 400, problem=str(exc))
    return redirect(url_for("admin.series_one", slug=slug, done="paused"), 303)


@require("series.change")
def resume(slug: str) -> BaseResponse:
    try:
        with transaction(sessions()) as db:
            library.resume_series(db, slug, now=utcnow())
    except library.SeriesNotFound:
        abort(404)
    except NewsletterError as exc:
        return _one_page(slug, 400, problem=str(exc))
    return redirect(url_for("admin.series_one", slug=slug, done="resumed"), 303)


@require("series.change")
def delete(slug: str) -> BaseResponse:
    """The first POST asks (and says which issues stay scheduled); the second deletes."""
    with sessions()() as db:
        try:
            found = library.get_series(db, slug)
        except library.SeriesNotFound:
            abort(404)
        waiting = library.scheduled_issues(db, found)
    if request.form.get("confirm") != "yes":
        return render("series_delete", slug=slug, waiting=waiting)
    try:
        with transaction(sessions()) as db:
            library.delete_series(db, slug, force=True)
    except library.SeriesNotFound:
        abort(404)
    except NewsletterError as exc:
        return _one_page(slug, 400, problem=str(exc))
    return _list_page(message=gettext("Series %(slug)s was deleted.", slug=slug))


@require("series.change")
def build(slug: str) -> Response:
    """Build the next period now, as `newsletter series build SLUG`, and plan its
    deliveries when the issue was scheduled."""
    from worker.delivery import plan_scheduled

    try:
        result = library.build_series(sessions(), settings(), slug, now=utcnow())
    except library.SeriesNotFound:
        abort(404)
    except NewsletterError as exc:
        return _one_page(slug, 400, problem=str(exc))
    planned = None
    if result.status == "built" and result.send_at is not None and result.issue:
        planned = plan_scheduled(settings(), sessions(), result.issue)
    return _one_page(slug, 400 if result.status == "failed" else 200, result=result,
                     planned=planned)


# --- the calendar ------------------------------------------------------------------------

@dataclass(frozen=True)
class Entry:
    """One line of the calendar: a scheduled issue, a send to come, or a skipped period."""

    at: datetime  # UTC (a local-time issue: its day and hour, as written)
    kind: str  # "issue", "upcoming", "skipped"
    series: str | None
    title: str
    detail: str
    issue: str | None = None


def calendar_entries(now: datetime, weeks: int = CALENDAR_WEEKS) -> list[Entry]:
    """What goes out in the next `weeks` weeks, and what was skipped in the last ones,
    in time order."""
    end, start = now + timedelta(weeks=weeks), now - timedelta(weeks=weeks)
    entries: list[Entry] = []
    with sessions()() as db:
        issues, skipped = calendar(db)
        built = {(i.series, i.send_at) for i in issues if i.status == "scheduled"}
        for issue in issues:
            if issue.status != "scheduled":
                continue
            if issue.send_at is not None:
                at, detail = issue.send_at, ""
            elif issue.on is not None and issue.local_time:
                hour, minute = (int(p) for p in issue.local_time.split(":")[:2])
                at = datetime.combine(issue.on, datetime.min.time()).replace(
                    hour=hour, minute=minute)
                detail = "local"
            else:
                continue
            if at <= end:
                entries.append(Entry(at, "issue", issue.series, issue.title, detail,
                                     issue.slug))
        for found in library.list_series(db):
            if found.status != "active":
                continue
            for occurrence in library.upcoming(found, now, MAX_SENDS_SHOWN):
                if occurrence.utc > end:
                    break
                if (found.slug, occurrence.utc) in built:  # its issue is listed already
                    continue
                entries.append(Entry(occurrence.utc, "upcoming", found.slug, found.slug,
                                     f"{occurrence.local:%Y-%m-%d %H:%M} {found.timezone}"))
    for period in skipped:
        if period.occurs_at >= start:
            entries.append(Entry(period.occurs_at, "skipped", period.series, period.series,
                                 period.reason))
    return sorted(entries, key=lambda e: (e.at, e.kind, e.title))


@require("newsroom.read")
def calendar_page() -> Response:
    now = utcnow()
    days: dict[date, list[Entry]] = {}
    for entry in calendar_entries(now):
        days.setdefault(entry.at.date(), []).append(entry)
    return render("calendar", days=sorted(days.items()), weeks=CALENDAR_WEEKS, now=now)
