"""`newsletter issues send|status|pause|resume|cancel|retry|deliveries|test-send`."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import click
from rich.console import Group
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from newsletter.approval import sendable
from newsletter.audience import audience_report
from newsletter.cli.context import App, pass_app, refuse_insecure_mailing, user_errors
from newsletter.cli.filtering import emit_rows, format_options
from newsletter.cli.issues import print_audience
from newsletter.cli.output import console, emit_json, json_option, table
from newsletter.db import utcnow
from newsletter.issues import get_issue
from newsletter.models import DELIVERY_STATUSES, Issue
from newsletter.render import Variant
from newsletter.schedules import iso_utc
from newsletter.variants import UnknownVariant, parse_variant
from newsletter.words import plural
from worker.runtime import Runtime


@contextmanager
def delivering(app: App) -> Iterator[Runtime]:
    """The runtime tasks use in this process, with the Celery app pointed at our broker."""
    from worker.app import app as celery_app
    from worker.app import configure_app
    from worker.runtime import build, configure

    configure_app(celery_app, app.settings)
    runtime = build(app.settings)
    configure(runtime)
    try:
        yield runtime
    finally:
        configure(None)


@click.command("send")
@click.argument("slug")
@click.option("--no-wait", is_flag=True, help="With a broker: enqueue and return at once.")
@click.option("--force", is_flag=True,
              help="Mail by SMTP although `newsletter doctor` reports blockers in the "
                   "settings (a staging relay); never with the development secret key.")
@json_option
@pass_app
@user_errors
def send(app: App, slug: str, no_wait: bool, force: bool, as_json: bool) -> None:
    """Send issue SLUG to every subscriber in its audience who has not had it yet.

    Without NEWSLETTER_BROKER_URL the batches run in this process; with it they go to
    the workers (`newsletter worker`) and this command follows their progress. Sending
    twice is safe: nobody gets the issue twice. By SMTP it refuses while `newsletter
    doctor` finds a blocker in the settings (--force: a staging relay).

    \b
    Example:
      newsletter issues send 2019-10
    """
    from worker.delivery import send_issue

    refuse_insecure_mailing(app, force=force)
    with app.sessions() as session:
        issue = get_issue(session, slug)
        if issue.status == "scheduled" and issue.send_at and issue.send_at > utcnow():
            raise click.ClickException(
                f"issue {slug} is scheduled: sending starts {iso_utc(issue.send_at)} "
                "(`newsletter scheduler` starts it); to send it now, `newsletter issues "
                f"unschedule {slug}` first")
        report = audience_report(session, issue, app.settings.languages,
                                 app.settings.default_language)
    if not as_json and report.recipients:
        print_audience(report)
    with delivering(app) as runtime, Progress(
        TextColumn("sending {task.description}"), BarColumn(), MofNCompleteColumn(),
        TimeRemainingColumn(), console=console, transient=True, disable=as_json,
    ) as bar:
        task = bar.add_task(slug, total=None)

        def show(counts: dict[str, int]) -> None:
            pending = counts["queued"] + counts["sending"]
            bar.update(task, total=sum(counts.values()), completed=sum(counts.values()) - pending)

        summary = send_issue(runtime, slug, progress=show, wait=not no_wait)
    if as_json:
        emit_json({"issue": slug, "planned": summary.planned, "batches": summary.batches,
                   "variants": summary.variants, "counts": summary.counts,
                   "audience": {"recipients": report.recipients, "editions": report.editions,
                                "fallbacks": [f.__dict__ for f in report.fallbacks],
                                "not_reached": report.left_out},
                   "status": summary.status, "note": summary.note})
    else:
        click.echo(f"issue {slug}: {plural(summary.planned, 'new delivery', 'new deliveries')}"
                   f" planned, {plural(summary.batches, 'batch', 'batches')}")
        table(None, ["status", "messages"],
              [(k, v) for k, v in summary.counts.items() if v])
        _advice(slug, summary.counts, bool(app.settings.broker_url))
    if summary.status == "paused":
        raise click.ClickException(summary.note or f"issue {slug} is paused")


def _advice(slug: str, counts: dict[str, int], broker: bool) -> None:
    if counts.get("deferred"):
        later = ("the scheduler hands them to the workers again, with growing delays"
                 if broker else f"`newsletter issues send {slug}` retries them once their "
                 f"delay has passed; `newsletter issues retry {slug}` retries them now")
        click.echo(f"{counts['deferred']} deferred (temporary failures): {later}", err=True)
    if counts.get("bounced"):
        click.echo(f"{counts['bounced']} bounced: `newsletter issues deliveries {slug} "
                   "--status bounced` shows who and why", err=True)
    if counts.get("failed"):
        click.echo(f"{counts['failed']} failed: `newsletter issues deliveries {slug} "
                   "--status failed` shows why", err=True)


def _status_table(slug: str, state: str, note: str, counts: dict[str, int],
                  rate: dict[str, float], due: dict[str, Any]) -> Group:
    t = Table(title=f"issue {slug}: {state}", title_justify="left")
    t.add_column("status")
    t.add_column("messages", justify="right")
    for name in DELIVERY_STATUSES:
        t.add_row(name, str(counts[name]))
    eta = f"{rate['eta_seconds']:.0f} s" if rate["eta_seconds"] >= 0 else "-"
    t.caption = f"{rate['rate']:.1f} messages/s over the last minute; time left: {eta}"
    if note:
        t.caption += f"\n{note}"
    return Group(t, *(Text(line) for line in _due_lines(state, due) + _report_lines(
        counts, due.get("reports", {}))))


def _report_lines(counts: dict[str, int], reports: dict[str, int]) -> list[str]:
    """Bounce and complaint rates from the mail that came back (`newsletter bounces`)."""
    if not reports:
        return []
    reached = sum(counts.values()) - counts.get("queued", 0) - counts.get("cancelled", 0)
    if reached <= 0:
        return []
    hard, soft, complaints = (reports.get(k, 0) for k in ("hard", "soft", "complaint"))
    return [f"came back by mail: {hard} hard bounce(s) ({hard / reached:.2%}), {soft} soft "
            f"({soft / reached:.2%}), {complaints} complaint(s) ({complaints / reached:.3%}; "
            "Gmail and Yahoo want under 0.3%)"]


def _due_lines(state: str, due: dict[str, Any]) -> list[str]:
    """What is due when, one line each, under the table."""
    lines = []
    if due["send_at"] and state == "scheduled":
        when = (f"{due['local_time']} in each subscriber's zone, from {due['send_at']}"
                if due["local_time"] else due["send_at"])
        lines.append(f"scheduled: sending starts {when}")
    lines += [f"{plural(group['deliveries'], 'delivery', 'deliveries')} not before "
              f"{group['not_before']}" for group in due["pending"] if group["not_before"]]
    if due["next_release"]:
        lines.append(f"next release: {due['next_release']}")
    if due["waiting_for"]:
        lines.append(f"it {due['waiting_for']}; unless approved by then it does not go out")
    return lines


@click.command("status")
@click.argument("slug")
@click.option("--watch", is_flag=True, help="Keep the table up to date until nothing is left.")
@click.option("--interval", default=1.0, show_default=True, help="Seconds between updates.")
@json_option
@pass_app
@user_errors
def status(app: App, slug: str, watch: bool, interval: float, as_json: bool) -> None:
    """Show issue SLUG's deliveries by status, the current rate and the time left.

    Also says what is due when: the scheduled start, the untried deliveries grouped by
    the time they may go (not_before, UTC), the next release, and whether approval is
    missing. --json prints one count per status, e.g. {"queued": 0, "sent": 99998,
    "bounced": 2, ...}; for a scheduled issue (or one that needs approval) also "due":
    issue_status, send_at, local_time, timezone, pending: [{not_before, deliveries}],
    next_release and waiting_for (what approval is missing).

    \b
    Example:
      newsletter issues status 2019-10 --watch
    """
    from worker.bounce_record import rates
    from worker.control import progress
    from worker.ledger import PENDING, counts, release_times

    def snapshot() -> tuple[Group, dict[str, int]]:
        with app.sessions() as session:
            issue = get_issue(session, slug)
            by_status = counts(session, issue.id)
            state, note = issue.status, issue.status_note
            plan = _due(issue, release_times(session, issue.id))
            plan["reports"] = rates(session, issue.id)
        return _status_table(slug, state, note, by_status, progress(app.sessions, slug),
                             plan), by_status

    shown, by_status = snapshot()
    if as_json:
        with app.sessions() as session:
            issue = get_issue(session, slug)
            plan = _due(issue, release_times(session, issue.id))
            reports = rates(session, issue.id)
        calendar = (plan["send_at"] or plan["waiting_for"] or issue.approval == "required"
                    or any(group["not_before"] for group in plan["pending"]))
        # an issue sent at once keeps the plain counts (programs compare the whole object);
        # "reports": people reported by kind, once mail came back (`newsletter bounces`)
        found: dict[str, Any] = {**by_status, "due": plan} if calendar else dict(by_status)
        if reports:
            found["reports"] = reports
        emit_json(found)
        return
    if not watch:
        console.print(shown)
        return
    with Live(shown, console=console, refresh_per_second=4) as live:
        while any(by_status[s] for s in PENDING):
            time.sleep(interval)
            shown, by_status = snapshot()
            live.update(shown)


def _due(issue: Issue, times: list[tuple[datetime | None, int]]) -> dict[str, Any]:
    """What is due when: the issue's start, its untried deliveries by release time, the
    next release, and (for an issue that needs approval) why it would not go out."""
    now = utcnow()
    later = [when for when, _n in times if when is not None and when > now]
    return {
        "issue_status": issue.status,
        "send_at": iso_utc(issue.send_at),
        "local_time": issue.send_local_time,
        "timezone": issue.schedule_timezone,
        "pending": [{"not_before": iso_utc(when), "deliveries": n} for when, n in times],
        "next_release": iso_utc(min(later)) if later else None,
        "waiting_for": sendable(issue),
    }


@click.command("pause")
@click.argument("slug")
@pass_app
@user_errors
def pause(app: App, slug: str) -> None:
    """Pause sending issue SLUG (messages in flight finish; `resume` carries on).

    \b
    Example:
      newsletter issues pause 2019-10
    """
    from worker.control import pause as do_pause

    with delivering(app) as runtime:
        do_pause(runtime, slug)
    click.echo(f"issue {slug} paused")


@click.command("resume")
@click.argument("slug")
@pass_app
@user_errors
def resume(app: App, slug: str) -> None:
    """Resume sending a paused issue SLUG.

    \b
    Example:
      newsletter issues resume 2019-10
    """
    from worker.control import resume as do_resume

    refuse_insecure_mailing(app)
    with delivering(app) as runtime:
        batches = do_resume(runtime, slug)
    click.echo(f"issue {slug} resumed: {plural(batches, 'batch', 'batches')} handed to the "
               "workers")


@click.command("cancel")
@click.argument("slug")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_app
@user_errors
def cancel(app: App, slug: str, yes: bool) -> None:
    """Cancel issue SLUG: what has not been sent never will be.

    \b
    Example:
      newsletter issues cancel 2019-10 --yes
    """
    from worker.control import cancel as do_cancel

    if not yes:
        click.confirm(f"Cancel issue {slug}? Unsent messages will never go out.", abort=True)
    with delivering(app) as runtime:
        left = do_cancel(runtime, slug)
    click.echo(f"issue {slug} cancelled: {plural(left, 'message')} will not be sent")


@click.command("retry")
@click.argument("slug")
@click.option("--status", "from_status", type=click.Choice(["deferred", "failed"]),
              default="deferred", show_default=True, help="Which messages to try again.")
@pass_app
@user_errors
def retry(app: App, slug: str, from_status: str) -> None:
    """Try issue SLUG's deferred (or failed) messages again now.

    \b
    Example:
      newsletter issues retry 2019-10 --status failed
    """
    from worker.control import retry as do_retry

    refuse_insecure_mailing(app)
    with delivering(app) as runtime:
        count = do_retry(runtime, slug, from_status)
    click.echo(f"{plural(count, from_status + ' message')} of issue {slug} queued again")


@click.command("deliveries")
@click.argument("slug")
@click.option("--status", "only", type=click.Choice(DELIVERY_STATUSES), default=None,
              help="Only deliveries in this state.")
@click.option("--limit", type=int, default=None, help="Show at most this many.")
@format_options
@pass_app
@user_errors
def deliveries(app: App, slug: str, only: str | None, limit: int | None, as_json: bool,
               as_csv: bool) -> None:
    """List issue SLUG's deliveries: who, in which state, and what the server said.

    `not_before` is the earliest a delivery may go (UTC; ISO 8601 with its offset in
    --json and --csv): the scheduled time, or the local time in the subscriber's zone.

    \b
    Example:
      newsletter issues deliveries 2019-10 --status bounced
    """
    from worker.ledger import deliveries as rows_of
    from worker.replies import queue_id

    with app.sessions() as session:
        issue = get_issue(session, slug)
        rows = [(email, d.status, Variant(d.language, d.country).label, d.attempts,
                 d.smtp_code, d.last_reply, queue_id(d.last_reply or ""), d.relay, d.sent_at,
                 iso_utc(d.not_before) if as_json or as_csv else d.not_before)
                for d, email in rows_of(session, issue.id, only, limit)]
    emit_rows(f"issue {slug}: {len(rows)} deliveries",
              ["email", "status", "variant", "attempts", "code", "reply", "queue_id", "relay",
               "sent_at", "not_before"],
              rows, as_json=as_json, as_csv=as_csv)


@click.command("test-send")
@click.argument("slug")
@click.option("--to", "to", required=True, multiple=True, help="Address to send to.")
@click.option("--variant", default=None,
              help="LANGUAGE or LANGUAGE-COUNTRY as the preview files are named, e.g. es-CR "
                   "(es:CR works too; default: the default language, regional order).")
@pass_app
@user_errors
def test_send(app: App, slug: str, to: tuple[str, ...], variant: str | None) -> None:
    """Send one variant of issue SLUG to test addresses, outside the ledger.

    \b
    Example:
      newsletter issues test-send 2019-10 --to editor@example.org --variant es-CR
    """
    from subscribers.validate import normalise_email
    from worker.control import test_send as do_test_send

    try:
        chosen = parse_variant(variant or app.settings.default_language, app.settings.languages)
    except UnknownVariant as exc:
        raise click.BadParameter(str(exc), param_hint="--variant") from exc
    with delivering(app) as runtime:
        for address in to:
            result = do_test_send(runtime, slug, normalise_email(address), chosen)
            click.echo(f"{result.variant} sent to {result.to}: {result.reply}")
