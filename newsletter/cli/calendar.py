"""`newsletter issues schedule|unschedule|submit|approve|reject|show`: when an issue goes
out, and who approved it."""

from __future__ import annotations

from typing import Any

import click
from sqlalchemy.orm import Session

from newsletter import approval, schedules
from newsletter.audience import audience_report
from newsletter.cli.context import App, pass_app, user_errors
from newsletter.cli.output import emit_json, json_option, table
from newsletter.db import utcnow
from newsletter.issue_calendar import series_of
from newsletter.issues import get_issue, targets_of
from newsletter.models import Issue
from newsletter.words import plural


def _zone(session: Session, issue: Issue, given: str | None) -> tuple[str, str]:
    """The zone times are read in, and where it came from (said to the user)."""
    if given is not None:
        return schedules.parse_zone(given), "--timezone"
    series, zone = series_of(session, issue)
    if zone:
        return zone, f"the zone of series {series}"
    return "UTC", "no --timezone given and no series"


@click.command("schedule")
@click.argument("slug")
@click.option("--at", "at_text", default=None, metavar="'YYYY-MM-DD HH:MM'",
              help="Send at this date and time in --timezone.")
@click.option("--local-time", "local_text", default=None, metavar="HH:MM",
              help="Send at this time in each subscriber's own zone (with --on).")
@click.option("--on", "on_text", default=None, metavar="YYYY-MM-DD",
              help="The date of a --local-time send.")
@click.option("--timezone", "zone_text", default=None, metavar="ZONE",
              help="IANA zone of --at, and of subscribers with no zone of their own for "
                   "--local-time. Default: the issue's series' zone, else UTC.")
@json_option
@pass_app
@user_errors
def schedule(app: App, slug: str, at_text: str | None, local_text: str | None,
             on_text: str | None, zone_text: str | None, as_json: bool) -> None:
    """Schedule issue SLUG: at one moment, or at a local time in each subscriber's zone.

    With --local-time and --on, each subscriber gets it at that hour in their own zone:
    their `timezone` attribute when it names a zone, else their country's (for a
    country with several zones, such as Mexico, the capital's: the output says which),
    else --timezone. Sending starts when the first zone reaches the hour; the others
    are released as their hour comes (`newsletter scheduler` does this). The
    deliveries are planned at once: `issues deliveries SLUG --json` shows each one's
    `not_before`. An issue that needs approval is not sent unless approved by then.

    \b
    Example:
      newsletter issues schedule 2026-w49 --at "2026-12-07 09:00" --timezone America/Costa_Rica
      newsletter issues schedule 2026-w49 --local-time 09:00 --on 2026-12-07 \\
          --timezone America/Costa_Rica
    """
    from worker.delivery import plan_issue

    if at_text is not None and (local_text is not None or on_text is not None):
        raise click.UsageError("give --at, or --local-time with --on, not both")
    if at_text is None and local_text is None:
        raise click.UsageError("give --at 'YYYY-MM-DD HH:MM', or --local-time HH:MM --on "
                               "YYYY-MM-DD")
    with app.transaction() as session:
        issue = get_issue(session, slug)
        zone, source = _zone(session, issue, zone_text)
        at = schedules.parse_instant(at_text, zone) if at_text is not None else None
        wall = schedules.parse_wall_time(local_text) if local_text is not None else None
        if wall is not None and on_text is None:
            raise click.UsageError("--local-time needs --on YYYY-MM-DD")
        on = schedules.parse_day(on_text) if on_text is not None else None
        result = schedules.schedule_issue(session, issue, at=at, local_time=wall, on=on,
                                          timezone=zone, now=utcnow())
        planned = plan_issue(app.settings, session, issue)
    if as_json:
        emit_json({**result.as_dict(), "timezone_from": source, "planned": planned})
        return
    for line in result.lines():
        click.echo(line)
    click.echo(f"times read in {zone} ({source}); "
               f"{plural(planned, 'delivery', 'deliveries')} planned: `newsletter issues "
               f"deliveries {slug}` shows when each goes")


@click.command("unschedule")
@click.argument("slug")
@pass_app
@user_errors
def unschedule(app: App, slug: str) -> None:
    """Take issue SLUG off the calendar: it becomes a draft again.

    The deliveries planned for the schedule (never tried) are removed.

    \b
    Example:
      newsletter issues unschedule 2026-w49
    """
    with app.transaction() as session:
        removed = schedules.unschedule_issue(session, get_issue(session, slug))
    click.echo(f"issue {slug} is a draft again; "
               f"{plural(removed, 'planned delivery', 'planned deliveries')} removed")


def _review_command(name: str, step: str, note_required: bool) -> click.Command:
    doc = {
        "submit": """Ask for approval of issue SLUG (created with --approval required).

    A draft, or an issue that was rejected and changed since, goes into review.

    \b
    Example:
      newsletter issues submit 2026-w49 --by "Ana Mora" --note "ready for review"
    """,
        "approve": """Approve issue SLUG, in review; it may then go out at its time.

    Somebody other than the person who submitted it must approve it.

    \b
    Example:
      newsletter issues approve 2026-w49 --by "Luis Soto" --note "ok"
    """,
        "reject": """Reject issue SLUG, in review, saying what has to change (--note).

    It can be changed and submitted again; until approved it does not go out.

    \b
    Example:
      newsletter issues reject 2026-w49 --by "Luis Soto" --note "the Panama item is outdated"
    """,
    }[name]
    act = {"submit": approval.submit, "approve": approval.approve, "reject": approval.reject}[name]

    @click.command(name, help=doc)
    @click.argument("slug")
    @click.option("--by", "by", required=True, metavar="NAME",
                  help="Who takes this step (recorded with the time).")
    @click.option("--note", default=None,
                  help="Why (free text); required to reject." if note_required
                  else "Why (free text, optional).")
    @pass_app
    @user_errors
    def command(app: App, slug: str, by: str, note: str | None) -> None:
        with app.transaction() as session:
            issue = get_issue(session, slug)
            record = act(session, issue, by, note, now=utcnow())
            why = approval.sendable(issue)
        click.echo(f"issue {slug} {step} by {record.by} at {record.at:%Y-%m-%d %H:%M} UTC"
                   + (f"; it {why}" if why and name != "submit" else ""))

    return command


submit = _review_command("submit", "submitted for approval", False)
approve = _review_command("approve", "approved", False)
reject = _review_command("reject", "rejected", True)


def describe_issue(app: App, slug: str) -> dict[str, Any]:
    """Everything `issues show` tells about an issue, as JSON-ready data."""
    settings = app.settings
    with app.sessions() as session:
        issue = get_issue(session, slug)
        series, _zone = series_of(session, issue)
        lists, segments = targets_of(session, issue)
        report = audience_report(session, issue, settings.languages, settings.default_language)
        steps = approval.history(session, issue)
        return {
            "issue": issue.slug,
            "title": issue.title,
            "titles": dict(issue.titles or {}),
            "window": {"from": issue.date_from.isoformat(), "to": issue.date_to.isoformat()},
            "status": issue.status,
            "status_note": issue.status_note,
            "series": series,
            "number": issue.number,
            "items": [{"id": e.item.id, "published": e.item.published.isoformat(),
                       "title": e.item.title, "countries": e.item.country_codes}
                      for e in issue.entries],
            "approval": {"policy": issue.approval, "state": issue.review or None,
                         "sendable": approval.sendable(issue) is None,
                         "waiting_for": approval.sendable(issue),
                         "history": [{"action": s.action, "by": s.by, "note": s.note,
                                      "at": schedules.iso_utc(s.at)} for s in steps]},
            "schedule": schedules.describe(issue),
            "sent_at": schedules.iso_utc(issue.sent_at),
            "targets": {"lists": lists, "segments": segments},
            "audience": {"target": report.target, "recipients": report.recipients,
                         "editions": report.editions},
        }


@click.command("show")
@click.argument("slug")
@json_option
@pass_app
@user_errors
def show(app: App, slug: str, as_json: bool) -> None:
    """Show issue SLUG: titles, window, items, status, series, approval and its history,
    schedule (UTC and local), targets and audience.

    \b
    Example:
      newsletter issues show 2026-w49 --json
    """
    data = describe_issue(app, slug)
    if as_json:
        emit_json(data)
        return
    number = f" No. {data['number']}" if data["number"] is not None else ""
    click.echo(f"issue {slug}: {data['status']}"
               + (f" ({data['status_note']})" if data["status_note"] else ""))
    click.echo(f"  title: {data['title'] or '(the default subject line)'}")
    for language, title in sorted(data["titles"].items()):
        click.echo(f"  title ({language}): {title}")
    click.echo(f"  window: {data['window']['from']} to {data['window']['to']}, "
               f"{plural(len(data['items']), 'item')}")
    if data["series"]:
        click.echo(f"  series: {data['series']}{number}")
    sched = data["schedule"]
    if sched:
        when = (f"{sched['local_time']} on {sched['on']} in each subscriber's zone "
                f"(from {sched['send_at']}; others: {sched['timezone']})"
                if sched["local_time"] else
                f"{sched['local'].replace('T', ' ')} {sched['timezone']} = {sched['send_at']}")
        click.echo(f"  goes out: {when}")
    if data["sent_at"]:
        click.echo(f"  sent: {data['sent_at']}")
    targets = data["targets"]
    click.echo(f"  audience: {plural(data['audience']['recipients'], 'subscriber')}, "
               f"{data['audience']['target']}"
               + (f" (lists: {', '.join(targets['lists'])})" if targets["lists"] else "")
               + (f" (segments: {', '.join(targets['segments'])})" if targets["segments"]
                  else ""))
    review = data["approval"]
    if review["policy"] == "required":
        click.echo(f"  approval: required; {review['state'] or 'not submitted'}"
                   + (f" - it {review['waiting_for']}" if review["waiting_for"] else ""))
        if review["history"]:
            table(None, ["at (UTC)", "step", "by", "note"],
                  [(s["at"][:16].replace("T", " "), s["action"], s["by"], s["note"])
                   for s in review["history"]])
    else:
        click.echo("  approval: not required")
    table(None, ["published", "item", "countries"],
          [(i["published"], i["title"], ",".join(i["countries"])) for i in data["items"]])
