"""`newsletter suppressions ...`"""

from __future__ import annotations

import click

from newsletter.cli.context import App, pass_app, user_errors
from newsletter.cli.filtering import emit_rows, format_options
from subscribers.suppressions import REASONS, list_suppressions, suppress, unsuppress


@click.group()
def suppressions() -> None:
    """Addresses that must never be mailed, whatever any list says.

    \b
    Example:
      newsletter suppressions add spamtrap@example.org --note "reported by our ESP"
    """


@suppressions.command("add")
@click.argument("emails", nargs=-1, required=True)
@click.option("--reason", type=click.Choice(REASONS), default="manual", show_default=True)
@click.option("--note", default="", help="Why, for whoever reads this later.")
@pass_app
@user_errors
def add(app: App, emails: tuple[str, ...], reason: str, note: str) -> None:
    """Suppress EMAILS: they get no further issue, even if imported again.

    \b
    Example:
      newsletter suppressions add a@example.org b@example.org --reason complained
    """
    with app.transaction() as session:
        added = sum(suppress(session, e, reason=reason, note=note, by="cli") for e in emails)
    click.echo(f"{added} suppressed, {len(emails) - added} already were")


@suppressions.command("remove")
@click.argument("emails", nargs=-1, required=True)
@pass_app
@user_errors
def remove(app: App, emails: tuple[str, ...]) -> None:
    """Lift the suppression of EMAILS (only when the person asked to hear from you again).

    \b
    Example:
      newsletter suppressions remove a@example.org
    """
    with app.transaction() as session:
        removed = sum(unsuppress(session, e, by="cli") for e in emails)
    click.echo(f"{removed} removed, {len(emails) - removed} were not suppressed")


@suppressions.command("list")
@format_options
@pass_app
@user_errors
def list_cmd(app: App, as_json: bool, as_csv: bool) -> None:
    """List suppressions (erased addresses show only as a hash).

    \b
    Example:
      newsletter suppressions list --csv > suppressions.csv
    """
    with app.sessions() as session:
        rows = [(email or "", s.email_hash[:16], s.reason, s.note, s.created_at)
                for s, email in list_suppressions(session)]
    emit_rows(None, ["email", "hash", "reason", "note", "since"], rows,
              as_json=as_json, as_csv=as_csv)
