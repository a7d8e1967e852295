"""`newsletter subscribers ...`"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import click

from newsletter.cli.context import App, pass_app, refuse_insecure_mailing, user_errors
from newsletter.cli.filtering import (
    build_filter,
    emit_rows,
    filter_options,
    format_options,
    parse_attributes,
)
from newsletter.cli.output import cell, emit_json
from newsletter.cli.transfer import export_cmd, import_cmd
from newsletter.privacy import erase, export_data
from subscribers.filters import Filter
from subscribers.models import STATUSES, Subscriber
from subscribers.people import (
    NewSubscriber,
    add,
    delete_subscriber,
    find,
    lists_of,
    select_subscribers,
    unsubscribe,
    update_subscriber,
)
from subscribers.queries import stats
from subscribers.report import DIMENSIONS, counts, history
from worker.bounce_record import reports_of

COLUMNS = ["email", "name", "country", "language", "status", "created_at"]


def _row(s: Subscriber) -> tuple[Any, ...]:
    return (s.email, s.name, s.country, s.language, s.status, s.created_at)


@click.group()
def subscribers() -> None:
    """Add, import, find, change and remove subscribers.

    \b
    Example:
      newsletter subscribers import people.csv --list partners
      newsletter subscribers list --country CR,NI --language es
    """


@subscribers.command("add")
@click.argument("email")
@click.option("--name", default="")
@click.option("--country", default="", help="ISO code or name (CR, Costa Rica).")
@click.option("--language", default="", help="Language tag (es, es-CR); default: the default.")
@click.option("--list", "lists", multiple=True, help="Subscribe to this list (repeatable).")
@click.option("--attr", multiple=True, help="An attribute, KEY=VALUE (repeatable).")
@click.option("--consent", "consent_method", default="cli:add", show_default=True,
              help="How the person gave consent (form, event, phone...).")
@click.option("--consent-text", default=None, help="Version of the consent wording shown.")
@click.option("--preconfirm", is_flag=True, help="Skip double opt-in confirmation.")
@pass_app
@user_errors
def add_cmd(app: App, email: str, name: str, country: str, language: str,
            lists: tuple[str, ...], attr: tuple[str, ...], consent_method: str,
            consent_text: str | None, preconfirm: bool) -> None:
    """Add one subscriber, recording their consent.

    \b
    Example:
      newsletter subscribers add ana@example.org --name "Ana Mora" --country CR \\
          --language es --list partners --consent "form:2019-10"
    """
    attributes = parse_attributes(attr)
    settings = app.settings
    with app.transaction() as session:
        person = add(
            session,
            NewSubscriber(email, name, country, language, lists, attributes,
                          consent_method, consent_text, preconfirm),
            default_language=settings.default_language, by="cli",
        )
        status = person.status
        address = person.email
    click.echo(f"{address} added ({status})")


@subscribers.command("list")
@filter_options
@click.option("--limit", type=int, default=None, help="Show at most this many.")
@click.option("--offset", type=int, default=0, help="Skip this many first.")
@format_options
@pass_app
@user_errors
def list_cmd(app: App, /, limit: int | None, offset: int, as_json: bool, as_csv: bool,
             **kwargs: Any) -> None:
    """List subscribers matching the filters.

    \b
    Example:
      newsletter subscribers list --country CR,NI --status active --limit 20
    """
    flt = build_filter(kwargs)
    with app.sessions() as session:
        rows = [_row(s) for s in select_subscribers(session, flt, limit=limit, offset=offset)]
    emit_rows(f"{len(rows)} subscribers ({flt.describe()})", COLUMNS, rows,
              as_json=as_json, as_csv=as_csv)


@subscribers.command("show")
@click.argument("email")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_app
@user_errors
def show(app: App, email: str, as_json: bool) -> None:
    """Show one subscriber, their lists and consent (--json for programs).

    \b
    Example:
      newsletter subscribers show ana@example.org
    """
    with app.sessions() as session:
        s = find(session, email)
        data = {
            "email": s.email, "name": s.name, "country": s.country, "language": s.language,
            "status": s.status, "attributes": s.attributes or {},
            "lists": {name: status for name, status in lists_of(session, s.id)},
            "consent_at": s.consent_at, "consent_method": s.consent_method,
            "consent_text": s.consent_text, "created_at": s.created_at,
        }
        reports: list[dict[str, Any]] = [
            {"received_at": r.received_at, "kind": r.kind, "status": r.status,
             "diagnostic": r.diagnostic, "decision": r.decision, "report": r.id}
            for r in reports_of(session, s.email)]
    if as_json:
        emit_json({**data, "mail_reports": reports})
        return
    for key, value in data.items():
        if isinstance(value, dict):  # lists and attributes: one "name: value" line each
            click.echo(f"{key:>15}:{'' if value else ' (none)'}")
            for name, inner in sorted(value.items()):
                click.echo(f"{'':>17}{name}: {cell(inner)}")
        else:
            click.echo(f"{key:>15}: {cell(value)}")
    # bounces and complaints that came back by mail, with their evidence
    click.echo(f"{'mail reports':>15}:{'' if reports else ' (none)'}")
    for r in reports:
        click.echo(f"{'':>17}{r['received_at']:%Y-%m-%d %H:%M} {r['kind']} {r['status']} "
                   f"{r['diagnostic']}".replace("  ", " ")
                   + f" -> {r['decision']} (report {r['report']})")


@subscribers.command("update")
@click.argument("email")
@click.option("--name", default=None)
@click.option("--country", default=None)
@click.option("--language", default=None)
@click.option("--status", type=click.Choice(STATUSES), default=None)
@click.option("--attr", multiple=True, help="Set an attribute, KEY=VALUE (repeatable).")
@click.option("--add-list", multiple=True, help="Subscribe to this list.")
@click.option("--remove-list", multiple=True, help="Unsubscribe from this list.")
@pass_app
@user_errors
def update(app: App, email: str, name: str | None, country: str | None,
           language: str | None, status: str | None, attr: tuple[str, ...],
           add_list: tuple[str, ...], remove_list: tuple[str, ...]) -> None:
    """Change one subscriber.

    \b
    Example:
      newsletter subscribers update ana@example.org --language en --add-list partners
    """
    attributes = dict(parse_attributes(attr))
    with app.transaction() as session:
        update_subscriber(
            session, email, default_language=app.settings.default_language, name=name,
            country=country, language=language, status=status, attributes=attributes,
            add_lists=add_list, remove_lists=remove_list, by="cli",
        )
    click.echo(f"{email} updated")


def _targets(app: App, emails: tuple[str, ...], flt: Filter, yes: bool, verb: str) -> list[str]:
    """The addresses a bulk command acts on: those named, or those the filters select."""
    if emails and not flt.is_empty():
        raise click.UsageError("give addresses or filters, not both")
    if emails:
        return list(emails)
    if flt.is_empty():
        raise click.UsageError(f"name the addresses to {verb}, or select them with filters")
    with app.sessions() as session:
        found = [s.email for s in select_subscribers(session, flt)]
    if found and not yes:
        click.confirm(f"{verb.capitalize()} {len(found)} subscribers ({flt.describe()})?",
                      abort=True)
    return found


@subscribers.command("unsubscribe")
@click.argument("emails", nargs=-1)
@filter_options
@click.option("--from-list", default=None, help="Only from this list.")
@click.option("--yes", is_flag=True, help="Do not ask before acting on a filter's result.")
@pass_app
@user_errors
def unsubscribe_cmd(app: App, /, emails: tuple[str, ...], from_list: str | None, yes: bool,
                    **kwargs: Any) -> None:
    """Unsubscribe people, from everything or from one list.

    \b
    Example:
      newsletter subscribers unsubscribe ana@example.org --from-list partners
      newsletter subscribers unsubscribe --status bounced --yes
    """
    targets = _targets(app, emails, build_filter(kwargs), yes, "unsubscribe")
    with app.transaction() as session:
        for address in targets:
            unsubscribe(session, address, list_name=from_list, how="admin", by="cli")
    click.echo(f"{len(targets)} unsubscribed" + (f" from {from_list}" if from_list else ""))


@subscribers.command("delete")
@click.argument("emails", nargs=-1)
@filter_options
@click.option("--yes", is_flag=True, help="Do not ask before acting on a filter's result.")
@pass_app
@user_errors
def delete(app: App, /, emails: tuple[str, ...], yes: bool, **kwargs: Any) -> None:
    """Delete subscriber records (to forget a person for good, use `erase`).

    \b
    Example:
      newsletter subscribers delete --status pending --yes
    """
    targets = _targets(app, emails, build_filter(kwargs), yes, "delete")
    with app.transaction() as session:
        for address in targets:
            delete_subscriber(session, address)
    click.echo(f"{len(targets)} deleted")


@subscribers.command("stats")
@format_options
@pass_app
@user_errors
def stats_cmd(app: App, as_json: bool, as_csv: bool) -> None:
    """Count subscribers by country x language x status.

    \b
    Example:
      newsletter subscribers stats --csv
    """
    with app.sessions() as session:
        rows = stats(session)
    total = sum(r[3] for r in rows)
    emit_rows(f"{total} subscribers", ["country", "language", "status", "count"], rows,
              as_json=as_json, as_csv=as_csv)


@subscribers.command("counts")
@filter_options
@click.option("--by", "by", default=",".join(DIMENSIONS), show_default=True,
              help="Group by these, comma-separated, in this order: country, language, "
                   "status.")
@format_options
@pass_app
@user_errors
def counts_cmd(app: App, /, by: str, as_json: bool, as_csv: bool, **kwargs: Any) -> None:
    """Count subscribers by country, language and status (any of them, in any order),
    among those the filters select; people without a country count as "(none)".

    The table ends with a total row; --json gives {"by", "groups", "total"}, --csv the
    groups only.

    \b
    Example:
      newsletter subscribers counts --by country,status --list partners
      newsletter subscribers counts --by language --status active --json
    """
    dims = tuple(d.strip() for d in by.split(",") if d.strip())
    flt = build_filter(kwargs)
    with app.sessions() as session:
        groups = counts(session, by=dims, filters=flt)
    total = sum(g.count for g in groups)
    columns = [*dims, "count"]
    rows = [(*g.values, g.count) for g in groups]
    if as_json:
        emit_json({"by": list(dims), "total": total,
                   "groups": [dict(zip(columns, row, strict=True)) for row in rows]})
        return
    if not as_csv:
        rows.append(("total", *([""] * (len(dims) - 1)), total))
    emit_rows(f"{total} subscribers ({flt.describe()})", columns, rows,
              as_json=False, as_csv=as_csv)


@subscribers.command("history")
@click.argument("email")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_app
@user_errors
def history_cmd(app: App, email: str, as_json: bool) -> None:
    """One person's history, newest first: sign-up and consent, confirmations, list and
    status changes (how and by whom), suppressions, bounces (with the server's reply) and
    every delivery. EMAIL may also be the subscriber's id.

    \b
    Example:
      newsletter subscribers history ana@example.org
      newsletter subscribers history ana@example.org --json | jq '.timeline[0]'
    """
    with app.sessions() as session:
        found = history(session, email)
    if as_json:
        emit_json(found.to_json())
        return
    lists = ", ".join(f"{name} ({status})" for name, status in found.lists) or "(none)"
    click.echo(f"{found.email} (id {found.id}): {found.status}"
               + (", suppressed" if found.suppressed else "")
               + f"; {found.language}, {found.country or 'no country'}; lists: {lists}")
    click.echo(f"consent: {cell(found.consent_at)} {found.consent_method or ''}"
               + (f" ({found.consent_text})" if found.consent_text else ""))
    emit_rows(None, ["at", "what", "detail", "by"],
              [(e.at, e.kind, e.detail, e.by) for e in found.timeline],
              as_json=False, as_csv=False)


@subscribers.command("export-data")
@click.argument("email")
@pass_app
@user_errors
def export_data_cmd(app: App, email: str) -> None:
    """Print everything held about one person, as JSON (a subject access request).

    \b
    Example:
      newsletter subscribers export-data ana@example.org > ana.json
    """
    with app.sessions() as session:
        emit_json(export_data(session, email))


@subscribers.command("erase")
@click.argument("email")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_app
@user_errors
def erase_cmd(app: App, email: str, yes: bool) -> None:
    """Erase a person's data; only a hash stays, so the address is never mailed again.

    \b
    Example:
      newsletter subscribers erase ana@example.org --yes
    """
    if not yes:
        click.confirm(f"Erase everything about {email}? This cannot be undone.", abort=True)
    with app.transaction() as session:
        erase(session, email)
    click.echo(f"{email} erased; a hashed suppression keeps it from being mailed again")


@subscribers.command("send-confirmations")
@click.option("--list", "list_name", default=None, help="Only people waiting on this list.")
@click.option("--resend-after-hours", type=click.FloatRange(min=0), default=24.0,
              show_default=True, help="Ask again people last asked at least this long ago.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_app
@user_errors
def send_confirmations_cmd(app: App, list_name: str | None, resend_after_hours: float,
                           as_json: bool) -> None:
    """Email pending people on double opt-in lists their confirmation link.

    Safe to repeat: nobody is asked again within --resend-after-hours.

    \b
    Example:
      newsletter subscribers send-confirmations --list partners
      newsletter subscribers send-confirmations --resend-after-hours 72 --json
    """
    refuse_insecure_mailing(app)
    from worker.confirmations import send_confirmations

    report = send_confirmations(app.settings, app.sessions, list_name=list_name,
                                resend_after=timedelta(hours=resend_after_hours))
    if as_json:
        emit_json({"sent": report.sent, "skipped": report.skipped,
                   "failed": [{"email": e, "reason": r} for e, r in report.failed]})
    else:
        click.echo(f"{report.sent} sent, {report.skipped} skipped, "
                   f"{len(report.failed)} failed")
        for address, reason in report.failed:
            click.echo(f"  {address}: {reason}")


subscribers.add_command(import_cmd, "import")
subscribers.add_command(export_cmd, "export")
