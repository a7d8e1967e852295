"""The Series pages and the calendar: list, create, one series (its next sends and its
periods), change it (`series edit`), pause, resume, delete, build the next period now;
and the next 8 weeks of what goes out and what was skipped. newsletter.series,
newsletter.issue_calendar and worker.delivery do the work. Who may change them is
users.PERMISSIONS["series.change"] (today every role: editor, approver, admin); everyone
reads. Every POST that changes something answers 303 with a notice (Post/Redirect/Get);
a refused one shows the page again (400) with the form as sent."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from flask import Response, abort, request
from werkzeug.wrappers import Response as BaseResponse

from newsletter import series as library
from newsletter.db import transaction, utcnow
from newsletter.errors import NewsletterError
from newsletter.feeds import list_feeds
from newsletter.issue_calendar import calendar
from newsletter.render import FOCUS_POLICIES
from newsletter.web.admin.core import explain, gettext, render, see_other, sessions, settings
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
                  approvals=library.APPROVALS, windows=library.WINDOWS)


@require("newsroom.read")
def series_page() -> Response:
    return _list_page()


def _names(text: str) -> list[str]:
    return [n.strip() for n in text.replace("\n", ",").split(",") if n.strip()]


def _number(form: Mapping[str, str], name: str, flag: str,
            kind: type[int] | type[float]) -> float | None:
    """A number field ("" : None); one that is none is an error that names its field
    (raised as SeriesError, so it shows at the field)."""
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


def _cadence(form: Mapping[str, str]) -> tuple[str | None, str | None]:
    """(every, rrule): the one the form's cadence choice names."""
    every = form.get("every", "").strip() or None
    rrule = form.get("rrule", "").strip().replace("\r\n", "\n") or None
    return (None, rrule) if form.get("cadence", "every") == "rrule" else (every, None)


def _titles(form: Mapping[str, str]) -> dict[str, str]:
    titles = {"": form.get("title", "")}
    titles.update({lang: form.get(f"title-{lang}", "") for lang in settings().languages})
    return titles


def _spec(form: Mapping[str, str], feeds: list[str]) -> library.SeriesSpec:
    """The form as `series create` would take it."""
    every, rrule = _cadence(form)
    titles = _titles(form)
    min_items = _number(form, "min_items", "--min-items", int)
    return library.SeriesSpec(
        slug=form.get("slug", "").strip(), timezone=form.get("timezone", "").strip(),
        every=every, rrule=rrule, lists=_names(form.get("lists", "")),
        segments=_names(form.get("segments", "")), feeds=feeds,
        focus=form.get("focus", "first"), titles={k: v for k, v in titles.items() if v.strip()},
        approval=form.get("approval", "none"),
        min_items=1 if min_items is None else int(min_items),
        window=form.get("window", "period"), local_time=form.get("local_time") == "yes",
        build_ahead_hours=_number(form, "build_ahead", "--build-ahead", float))


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
        return _list_page(400, form=kept, problem=explain(exc), field=field_of(str(exc)))
    return see_other(gettext("The series was created."), "admin.series_one", slug=slug)


# --- one series --------------------------------------------------------------------------

def _one_page(slug: str, code: int = 200, *, problem: str = "", field: str = "",
              form: Mapping[str, object] | None = None,
              result: library.PeriodResult | None = None) -> Response:
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
                  waiting=waiting, problem=problem, field=field, form=form or {},
                  result=result, may_change=may_change(), now=now, feeds=_feed_names(),
                  rule_body=library.rule_body(found.rule),
                  languages=settings().languages, focuses=FOCUS_POLICIES,
                  approvals=library.APPROVALS, windows=library.WINDOWS)


@require("newsroom.read")
def series_one(slug: str) -> Response:
    return _one_page(slug)


def _changes(form: Mapping[str, str], feeds: list[str]) -> library.SeriesChanges:
    """The edit form (pre-filled with the series as it is) as `series edit` takes it:
    every part given; the library says what changed."""
    every, rrule = _cadence(form)
    min_items = _number(form, "min_items", "--min-items", int)
    return library.SeriesChanges(
        every=every, rrule=rrule, timezone=form.get("timezone", "").strip(),
        lists=_names(form.get("lists", "")), segments=_names(form.get("segments", "")),
        feeds=feeds, focus=form.get("focus", "first"), titles=_titles(form),
        approval=form.get("approval", "none"),
        min_items=1 if min_items is None else int(min_items),
        window=form.get("window", "period"), local_time=form.get("local_time") == "yes",
        build_ahead_hours=_number(form, "build_ahead", "--build-ahead", float) or 0.0)


@require("series.change")
def edit(slug: str) -> BaseResponse:
    """Change the series, as `series edit`; the notice says when the next send is."""
    form = request.form
    feeds = form.getlist("feeds")
    kept: dict[str, object] = {k: v[:2000] for k, v in form.items() if k != "csrf_token"}
    kept["feeds"] = feeds
    try:
        with transaction(sessions()) as db:
            done = library.edit_series(db, slug, _changes(form, feeds),
                                       languages=settings().languages, now=utcnow())
    except library.SeriesNotFound:
        abort(404)
    except NewsletterError as exc:
        return _one_page(slug, 400, problem=explain(exc), field=field_of(str(exc)), form=kept)
    if not done.changed:
        return see_other(gettext("Nothing changed."), "admin.series_one", slug=slug)
    parts = [gettext("Saved: %(changes)s.", changes="; ".join(done.changes))]
    if done.next_send is None:
        parts.append(gettext("No send to come."))
    else:
        local = done.next_send.local.strftime("%Y-%m-%d %H:%M")
        utc = done.next_send.utc.strftime("%Y-%m-%d %H:%M")
        parts.append(gettext("Next send: %(local)s %(zone)s (%(utc)s UTC).", local=local,
                             zone=done.timezone, utc=utc))
    if done.schedule_changed:
        parts.append(gettext("The new schedule starts after the periods already built or "
                             "skipped: none is built again."))
    if done.kept:
        parts.append(gettext("Issues built already keep their send time and settings: "
                             "%(issues)s (change them on their pages).",
                             issues=", ".join(done.kept)))
    return see_other(" ".join(parts), "admin.series_one", slug=slug)


@require("series.change")
def pause(slug: str) -> BaseResponse:
    try:
        with transaction(sessions()) as db:
            library.pause_series(db, slug)
    except library.SeriesNotFound:
        abort(404)
    except NewsletterError as exc:
        return _one_page(slug, 400, problem=explain(exc))
    return see_other(gettext("The series was paused."), "admin.series_one", slug=slug)


@require("series.change")
def resume(slug: str) -> BaseResponse:
    try:
        with transaction(sessions()) as db:
            library.resume_series(db, slug, now=utcnow())
    except library.SeriesNotFound:
        abort(404)
    except NewsletterError as exc:
        return _one_page(slug, 400, problem=explain(exc))
    return see_other(gettext("The series was resumed."), "admin.series_one", slug=slug)


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
        return _one_page(slug, 400, problem=explain(exc))
    return see_other(gettext("Series %(slug)s was deleted.", slug=slug), "admin.series")


@require("series.change")
def build(slug: str) -> BaseResponse:
    """Build the next period now, as `newsletter series build SLUG`, and plan its
    deliveries when the issue was scheduled."""
    from worker.delivery import plan_scheduled

    try:
        result = library.build_series(sessions(), settings(), slug, now=utcnow())
    except library.SeriesNotFound:
        abort(404)
    except NewsletterError as exc:
        return _one_page(slug, 400, problem=explain(exc))
    if result.status == "failed":
        return _one_page(slug, 400, result=result)
    if result.status == "skipped":
        message = gettext("The period was skipped:") + " " + result.reason
    elif result.status == "exists":
        message = gettext("Nothing to build:") + " " + result.reason
    else:
        message = gettext("Issue %(issue)s (No. %(number)s) was built with the items from "
                          "%(start)s to %(end)s.", issue=result.issue, number=result.number,
                          start=result.window_from, end=result.window_to)
        if result.send_at is not None and result.issue:
            planned = plan_scheduled(settings(), sessions(), result.issue)
            message += " " + gettext("It goes out %(when)s UTC.",
                                     when=result.send_at.strftime("%Y-%m-%d %H:%M"))
            message += " " + gettext("Deliveries planned: %(count)d.", count=planned)
        if result.reason:
            message += f" {result.reason}"
    return see_other(message, "admin.series_one", slug=slug)


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
