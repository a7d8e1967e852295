"""`newsletter subscribers ...`"""

from __future__ import annotations

import click

from newsletter.cli.context import App, pass_app, user_errors
from newsletter.cli.output import emit_json, json_option, table
from newsletter.cli.transfer import import_cmd
from subscribers.queries import list_subscribers


@click.group()
def subscribers() -> None:
    """Import and list subscribers.

    \b
    Example:
      newsletter subscribers import people.csv && newsletter subscribers list
    """


@subscribers.command("list")
@click.option("--limit", type=int, default=None, help="Show at most this many.")
@json_option
@pass_app
@user_errors
def list_cmd(app: App, limit: int | None, as_json: bool) -> None:
    """List subscribers.

    \b
    Example:
      newsletter subscribers list --limit 20
    """
    with app.sessions() as session:
        rows = list_subscribers(session, limit)
    if as_json:
        emit_json([
            {"email": s.email, "name": s.name, "country": s.country, "language": s.language,
             "status": s.status}
            for s in rows
        ])
        return
    table(f"{len(rows)} subscribers", ["email", "name", "country", "language", "status"],
          [(s.email, s.name, s.country, s.language, s.status) for s in rows])


subscribers.add_command(import_cmd, "import")
