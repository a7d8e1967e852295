"""`newsletter series ...`: newsletters that come out on a calendar."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Any

import click
from sqlalchemy.orm import Session

from newsletter.cadence import describe
from newsletter.cli.context import App, pass_app, user_errors
from newsletter.cli.issues import language_pairs, one_per_language
from newsletter.cli.output import emit_json, json_option, table
from newsletter.db import utcnow
from newsletter.models import Series
from newsletter.render import FOCUS_POLICIES
from newsletter.series import (
    APPROVALS,
    WINDOWS,
    PeriodResult,
    SeriesChanges,
    SeriesSpec,
    build_series,
    create_series,
    delete_series,
    edit_series,
    get_series,
    list_series,
    pause_series,
    periods_of,
    resume_series,
    upcoming,
)
from newsletter.words import plural

DATE = click.DateTime(["%Y-%m-%d"])


@click.group()
def series() -> None:
    """Newsletters that come out on a calendar: one issue per period.

    Each occurrence of the series' rule is a send time in its zone. When a period's
    build time comes (the send time, or --build-ahead hours before), `newsletter
    scheduler` collects the period's items into a numbered issue and schedules it; a
    period with fewer than --min-items items is skipped, and the reason recorded.

    \b
    Example (a weekly Spanish digest, Costa Rica first, fed from a feed, approved first):
      newsletter series create semanal --every "weekly on monday at 09:00" \\
          --timezone America/Costa_Rica --list boletin --feed noticias \\
          --title es="Boletín semanal" --approval required --local-time
      newsletter series show semanal
      newsletter series build semanal
    """


@series.command("create")
@click.argument("slug")
@click.option("--every", default=None,
              help='When it goes out, in words: "daily at 07:30", "weekly on monday at 09:00", '
                   '"weekly on monday, thursday at 09:00", "every 2 weeks on friday at 16:00", '
                   '"monthly on the 1st at 09:00", "monthly on the first monday at 09:00", '
                   '"monthly on the last friday at 17:00".')
@click.option("--rrule", "rrule_text", default=None,
              help='Or an RFC 5545 rule, in the series\' wall time: "FREQ=WEEKLY;BYDAY=MO;'
                   'BYHOUR=9;BYMINUTE=0", optionally "DTSTART:20261207T090000\\nRRULE:...".')
@click.option("--timezone", "timezone", required=True,
              help="The zone of the send times (IANA name, e.g. America/Costa_Rica).")
@click.option("--list", "lists", multiple=True,
              help="Send to this list's confirmed subscribers (repeatable).")
@click.option("--segment", "segments", multiple=True,
              help="Send to this segment (repeatable). Default: every active subscriber.")
@click.option("--feed", "feeds", multiple=True,
              help="Only items from this feed (repeatable). Default: every item.")
@click.option("--country-focus", "focus", type=click.Choice(FOCUS_POLICIES), default="first",
              show_default=True,
              help="first: the reader's country first; only: just their country; none: "
                   "the regional order.")
@click.option("--title", "titles", multiple=True,
              help='Title: LANG=TEXT (repeatable) or TEXT for every language. "{number}" and '
                   '"{date}" are filled in; without them " No. 12" is appended. Default: the '
                   "sender's name and the number.")
@click.option("--intro", "intros", multiple=True,
              help="Introduction of every issue: LANG=TEXT, or TEXT for every language.")
@click.option("--approval", type=click.Choice(APPROVALS), default="none", show_default=True,
              help="required: each issue must be approved before its time, or it does not "
                   "go out.")
@click.option("--min-items", type=int, default=1, show_default=True,
              help="Skip a period with fewer items (and record why): never an empty issue.")
@click.option("--window", type=click.Choice(WINDOWS), default="period", show_default=True,
              help="period: the items of the period; since-last: everything since the last "
                   "issue's window (a skipped period's items roll forward).")
@click.option("--local-time", is_flag=True,
              help="Send at the occurrence's wall time in each subscriber's own zone.")
@click.option("--build-ahead", "build_ahead", type=float, default=None,
              help="Build each issue this many hours before it goes out [default: 0; 24 "
                   "with --approval required or --local-time].")
@pass_app
@user_errors
def create(app: App, slug: str, every: str | None, rrule_text: str | None, timezone: str,
           lists: tuple[str, ...], segments: tuple[str, ...], feeds: tuple[str, ...],
           focus: str, titles: tuple[str, ...], intros: tuple[str, ...], approval: str,
           min_items: int, window: str, local_time: bool, build_ahead: float | None) -> None:
    """Create series SLUG: an issue for every period of its rule.

    The rule's occurrences are send times, on the wall clock of --timezone (09:00 stays
    09:00 across daylight-saving changes). Each issue holds the items dated from the
    previous period's build day to the day before its own build day, is numbered (No. 1,
    No. 2, ...) and is called SLUG-YYYY-MM-DD. The first period is the first occurrence
    from now on.

    \b
    Example:
      newsletter series create semanal --every "weekly on monday at 09:00" \\
          --timezone America/Costa_Rica --list boletin --feed noticias \\
          --title es="Boletín semanal" --title en="Weekly news" \\
          --approval required --local-time
      newsletter series create mensual --rrule "FREQ=MONTHLY;BYDAY=-1FR;BYHOUR=17;BYMINUTE=0" \\
          --timezone Europe/Madrid --min-items 3
    """
    languages = app.settings.languages
    spec = SeriesSpec(
        slug=slug, timezone=timezone, every=every, rrule=rrule_text, lists=lists,
        segments=segments, feeds=feeds, focus=focus,
        titles=one_per_language(language_pairs(titles, languages), "--title"),
        intros=one_per_language(language_pairs(intros, languages), "--intro"), approval=approval,
        min_items=min_items, window=window, local_time=local_time,
        build_ahead_hours=build_ahead)
    now = utcnow()
    with app.transaction() as session:
        created = create_series(session, spec, languages=languages, now=now)
        first = upcoming(created, now, 1)
        ahead = created.build_ahead_minutes
        timezone = created.timezone
    click.echo(f"series {slug} created: {created.every or created.rule} ({timezone})")
    if first:
        built = first[0].utc - timedelta(minutes=ahead)
        click.echo(f"  first issue goes out {first[0].local:%Y-%m-%d %H:%M} {timezone} "
                   f"({first[0].utc:%Y-%m-%d %H:%M} UTC), built {built:%Y-%m-%d %H:%M} UTC")


@series.command("edit")
@click.argument("slug")
@click.option("--every", default=None, help="A new schedule, in words (see `series create`).")
@click.option("--rrule", "rrule_text", default=None, help="Or a new RFC 5545 rule.")
@click.option("--timezone", "timezone", default=None,
              help="A new zone (alone: the same rule on that zone's wall clock).")
@click.option("--list", "lists", multiple=True,
              help="Send to this list (repeatable; replaces the lists).")
@click.option("--segment", "segments", multiple=True,
              help="Send to this segment (repeatable; replaces the segments).")
@click.option("--everyone", is_flag=True, help="Drop the lists and segments.")
@click.option("--feed", "feeds", multiple=True,
              help="Only items from this feed (repeatable; replaces the feeds).")
@click.option("--all-items", is_flag=True, help="Drop the feeds: every item.")
@click.option("--country-focus", "focus", type=click.Choice(FOCUS_POLICIES), default=None,
              help="first, only or none.")
@click.option("--title", "titles", multiple=True,
              help="Title: LANG=TEXT or TEXT for every language (repeatable); LANG= removes "
                   "that language's own.")
@click.option("--intro", "intros", multiple=True,
              help="Introduction: LANG=TEXT or TEXT (repeatable); LANG= removes it.")
@click.option("--approval", type=click.Choice(APPROVALS), default=None, help="none or required.")
@click.option("--min-items", type=int, default=None, help="Skip a period with fewer items.")
@click.option("--window", type=click.Choice(WINDOWS), default=None,
              help="period or since-last.")
@click.option("--local-time/--series-time", "local_time", default=None,
              help="Send at the wall time in each subscriber's zone, or in the series' zone.")
@click.option("--build-ahead", "build_ahead", type=float, default=None,
              help="Build each issue this many hours before it goes out.")
@json_option
@pass_app
@user_errors
def edit(app: App, slug: str, every: str | None, rrule_text: str | None,
         timezone: str | None, lists: tuple[str, ...], segments: tuple[str, ...],
         everyone: bool, feeds: tuple[str, ...], all_items: bool, focus: str | None,
         titles: tuple[str, ...], intros: tuple[str, ...], approval: str | None,
         min_items: int | None, window: str | None, local_time: bool | None,
         build_ahead: float | None, as_json: bool) -> None:
    """Change series SLUG: any of what `series create` takes.

    Options not given leave things as they are; each is checked as `series create`
    checks it. Issues built already keep their send time and settings (`issues edit`
    changes them). A new schedule (--every, --rrule, --timezone) starts after the
    periods already built or skipped: none is built again, and the first new window
    starts after the last built one. The output says when the next send is.

    \b
    Example:
      newsletter series edit semanal --every "weekly on tuesday at 08:00"
      newsletter series edit semanal --list boletin --list socios --title es="Boletín"
      newsletter series edit semanal --everyone --all-items --approval none --json
    """
    if everyone and (lists or segments):
        raise click.UsageError("--everyone drops the lists and segments: give it alone")
    if all_items and feeds:
        raise click.UsageError("--all-items drops the feeds: give it without --feed")
    languages = app.settings.languages
    targets = bool(lists or segments or everyone)
    changes = SeriesChanges(
        every=every, rrule=rrule_text, timezone=timezone,
        lists=lists if targets else None, segments=segments if targets else None,
        feeds=feeds if feeds or all_items else None, focus=focus,
        titles=one_per_language(language_pairs(titles, languages), "--title")
        if titles else None,
        intros=one_per_language(language_pairs(intros, languages), "--intro")
        if intros else None,
        approval=approval, min_items=min_items, window=window, local_time=local_time,
        build_ahead_hours=build_ahead)
    if changes == SeriesChanges():
        raise click.UsageError("nothing to change: give an option (`newsletter series edit "
                               "--help` lists them)")
    with app.transaction() as session:
        done = edit_series(session, slug, changes, languages=languages, now=utcnow())
    if as_json:
        emit_json(done.as_dict())
        return
    for line in done.lines():
        click.echo(line)


@series.command("list")
@json_option
@pass_app
@user_errors
def list_cmd(app: App, as_json: bool) -> None:
    """List the series with their next send time.

    \b
    Example:
      newsletter series list --json
    """
    now = utcnow()
    with app.sessions() as session:
        rows = []
        for found in list_series(session):
            upcoming_ = upcoming(found, now, 1) if found.status == "active" else []
            periods = periods_of(session, found)
            rows.append({
                "slug": found.slug, "status": found.status,
                "every": found.every or describe(found.rule), "timezone": found.timezone,
                "approval": found.approval,
                "next_local": upcoming_[0].local if upcoming_ else None,
                "next_utc": upcoming_[0].utc if upcoming_ else None,
                "built": sum(1 for p, _ in periods if p.status == "built"),
                "skipped": sum(1 for p, _ in periods if p.status == "skipped"),
            })
    if as_json:
        emit_json(rows)
        return
    table(None, ["series", "status", "every", "zone", "approval", "next (local)",
                 "next (UTC)", "built", "skipped"], [list(r.values()) for r in rows])


def _details(session: Session, found: Series, now: datetime) -> dict[str, Any]:
    return {
        "slug": found.slug, "status": found.status, "every": found.every,
        "rule": found.rule, "timezone": found.timezone, "lists": found.lists,
        "segments": found.segments, "feeds": found.feeds, "country_focus": found.focus,
        "titles": found.titles, "intros": found.intros, "approval": found.approval,
        "min_items": found.min_items, "window": found.window, "local_time": found.local_time,
        "build_ahead_hours": found.build_ahead_minutes / 60, "created_at": found.created_at,
        "schedule_from": found.schedule_from,
        "next": [{"local": o.local, "utc": o.utc} for o in upcoming(found, now)],
        "periods": [{"occurs_at": p.occurs_at, "window_from": p.window_from,
                     "window_to": p.window_to, "status": p.status, "number": p.number,
                     "issue": slug, "reason": p.reason} for p, slug in periods_of(session, found)],
    }


@series.command("show")
@click.argument("slug")
@json_option
@pass_app
@user_errors
def show(app: App, slug: str, as_json: bool) -> None:
    """Show series SLUG: its rule, targets, titles, the next 5 send times (in its zone and
    in UTC) and every period so far, built (its issue) or skipped (why).

    \b
    Example:
      newsletter series show semanal --json
    """
    with app.sessions() as session:
        data = _details(session, get_series(session, slug), utcnow())
    if as_json:
        emit_json(data)
        return
    for key in ("slug", "status", "every", "rule", "timezone", "lists", "segments", "feeds",
                "country_focus", "titles", "intros", "approval", "min_items", "window",
                "local_time", "build_ahead_hours"):
        value = data[key]
        shown = ", ".join(f"{k or '*'}={v}" for k, v in value.items()) \
            if isinstance(value, dict) else ", ".join(value) if isinstance(value, list) \
            else " ".join(str(value).split()) if value is not None else ""
        click.echo(f"{key.replace('_', ' ')}: {shown}")
    zone_name = data["timezone"]
    table("next send times", [f"local ({zone_name})", "UTC"],
          [(o["local"], o["utc"]) for o in data["next"]])
    table("periods", ["send time (UTC)", "from", "to", "status", "No.", "issue", "reason"],
          [(p["occurs_at"], p["window_from"], p["window_to"], p["status"], p["number"],
            p["issue"], p["reason"]) for p in data["periods"]])


@series.command("pause")
@click.argument("slug")
@pass_app
@user_errors
def pause(app: App, slug: str) -> None:
    """Stop building issues of series SLUG; issues already built stay scheduled.

    \b
    Example:
      newsletter series pause semanal
    """
    with app.transaction() as session:
        pause_series(session, slug)
    click.echo(f"series {slug} paused: no issue is built until `newsletter series resume "
               f"{slug}`")


@series.command("resume")
@click.argument("slug")
@pass_app
@user_errors
def resume(app: App, slug: str) -> None:
    """Build issues of series SLUG again, from the next period on; the periods that passed
    while it was paused are recorded as skipped, not sent late.

    \b
    Example:
      newsletter series resume semanal
    """
    with app.transaction() as session:
        skipped = resume_series(session, slug, now=utcnow())
    click.echo(f"series {slug} resumed" + (
        f"; {plural(len(skipped), 'period')} that passed while it was paused recorded as "
        "skipped" if skipped else ""))


@series.command("delete")
@click.argument("slug")
@click.option("--yes", is_flag=True,
              help="Delete even if some of its issues are scheduled (they stay scheduled).")
@pass_app
@user_errors
def delete(app: App, slug: str, yes: bool) -> None:
    """Delete series SLUG and its period records. Its issues stay, outside any series.

    Refused while some of its issues are scheduled, unless --yes.

    \b
    Example:
      newsletter series delete semanal --yes
    """
    with app.transaction() as session:
        waiting = delete_series(session, slug, force=yes)
    click.echo(f"series {slug} deleted" + (
        f"; still scheduled: {', '.join(waiting)}" if waiting else ""))


@series.command("build")
@click.argument("slug")
@click.option("--for", "day", type=DATE, default=None,
              help="A date in the period to build (YYYY-MM-DD; default: the period of "
                   "the next send).")
@json_option
@pass_app
@user_errors
def build(app: App, slug: str, day: datetime | None, as_json: bool) -> None:
    """Build now the issue of the next send (or of the period containing a date), even
    before its build time.

    Building twice gives one issue (the second time says which). A period skipped before
    is tried again; one with too few items before its build time is not recorded, so the
    scheduler tries again then. An issue whose send time has already passed is left a
    draft. A paused series is refused. A scheduled issue's deliveries are planned at once,
    as with `issues schedule`: `issues deliveries ISSUE --json` shows each one's
    not_before.

    \b
    Example:
      newsletter series build semanal
      newsletter series build semanal --for 2026-11-30 --json
    """
    result = build_series(app.sessions, app.settings, slug,
                          day=day.date() if day else None, now=utcnow())
    planned = _plan(app, result)
    if as_json:
        emit_json({**asdict(result), "planned": planned})
        if result.status == "failed":
            raise click.exceptions.Exit(1)
        return
    if result.status == "failed":
        raise click.ClickException(describe_result(result))
    click.echo(describe_result(result) + (
        f"; {plural(planned, 'delivery', 'deliveries')} planned: `newsletter issues "
        f"deliveries {result.issue}` shows when each goes" if planned is not None else ""))


def _plan(app: App, result: PeriodResult) -> int | None:
    """Plan the deliveries of an issue the build scheduled, as `issues schedule` does (each
    row with its not_before); None when nothing was scheduled. Sending plans again."""
    from worker.delivery import plan_scheduled

    if result.status != "built" or result.send_at is None or result.issue is None:
        return None
    return plan_scheduled(app.settings, app.sessions, result.issue)


def describe_result(result: PeriodResult) -> str:
    """One line a person reads: what became of the period."""
    when = f"{result.occurs_at:%Y-%m-%d %H:%M} UTC" if result.occurs_at else ""
    window = f" (items {result.window_from} to {result.window_to})" \
        if result.window_from else ""
    if result.status == "built":
        sent = f"scheduled for {result.send_at:%Y-%m-%d %H:%M} UTC" if result.send_at \
            else result.reason
        return (f"{result.series}: issue {result.issue} (No. {result.number}) built"
                f"{window}; {sent}")
    if result.status == "skipped":
        return f"{result.series}: the period sent {when} was skipped: {result.reason}"
    if result.status == "exists":
        return f"{result.series}: the period sent {when} was {result.reason}"
    return f"{result.series}: building the period sent {when} failed: {result.reason}"
