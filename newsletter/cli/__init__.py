"""The `newsletter` command: a thin layer over the library.

Settings come from NEWSLETTER_* environment variables (see `newsletter.settings`).
"""

from __future__ import annotations

import importlib
import logging

import click

from newsletter.cli.context import App, pass_app, user_errors
from newsletter.db import upgrade
from newsletter.settings import SettingsError, load_settings

# name -> "module:attribute" of each top-level command, imported when it is run or listed:
# one command loads what it needs, not the whole program (`subscribers import` of a
# million rows stays ~50 MB smaller, and `newsletter --help` starts faster)
_COMMANDS = {
    "items": "newsletter.cli.items:items",
    "worker": "newsletter.cli.operations:worker",
    "scheduler": "newsletter.cli.operations:scheduler",
    "limits": "newsletter.cli.operations:limits",
    "subscribers": "newsletter.cli.subscribers:subscribers",
    "lists": "newsletter.cli.lists:lists",
    "segments": "newsletter.cli.segments:segments",
    "suppressions": "newsletter.cli.suppressions:suppressions",
    "issues": "newsletter.cli:_issues",
    "demo": "newsletter.cli.demo:demo",
    "i18n": "newsletter.cli.i18n:i18n",
    "serve": "newsletter.cli.web:serve",
    "feeds": "newsletter.cli.feeds:feeds",
    "series": "newsletter.cli.series:series",
    "users": "newsletter.cli.users:users",
    "dkim": "newsletter.cli.dkim:dkim",
    "bounces": "newsletter.cli.bounces:bounces",
    "doctor": "newsletter.cli.doctor:doctor",
}


class _LazyGroup(click.Group):
    """A group whose subcommands (`_COMMANDS`) are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *_COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in _COMMANDS:
            module, attribute = _COMMANDS[cmd_name].split(":")
            found = getattr(importlib.import_module(module), attribute)
            command = found() if attribute.startswith("_") else found
            self.add_command(command, cmd_name)
        return super().get_command(ctx, cmd_name)


def _issues() -> click.Group:
    """`newsletter issues`, with the commands kept in their own modules."""
    from newsletter.cli.calendar import approve, reject, schedule, show, submit, unschedule
    from newsletter.cli.issue_edit import COMMANDS as EDIT_COMMANDS
    from newsletter.cli.issues import issues
    from newsletter.cli.sending import (
        cancel,
        deliveries,
        pause,
        resume,
        retry,
        send,
        status,
        test_send,
    )

    for command in (send, status, pause, resume, cancel, retry, deliveries, test_send,
                    schedule, unschedule, submit, approve, reject, show, *EDIT_COMMANDS):
        issues.add_command(command)
    return issues


@click.group(
    name="newsletter", cls=_LazyGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.option("-v", "--verbose", is_flag=True, help="Log what happens underneath.")
@click.version_option(package_name="newsletter")
@click.pass_context
def cli(ctx: click.Context, verbose: bool) -> None:
    """Build and send the regional newsletter.

    Import news items, import subscribers, collect items into an issue, preview it,
    and send it to every subscriber in their language, their country's news first.

    \b
    Example:
      newsletter items import news.txt
      newsletter subscribers import people.csv
      newsletter issues create 2019-10 --from 2019-10-01 --to 2019-10-31
      newsletter issues preview 2019-10
      newsletter issues send 2019-10

    Configuration is read from NEWSLETTER_* environment variables: NEWSLETTER_DATABASE_URL,
    NEWSLETTER_BROKER_URL, NEWSLETTER_SMTP_URL, NEWSLETTER_OUTBOX_DIR, and more (README).
    """
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        settings = load_settings()
    except SettingsError as exc:  # which NEWSLETTER_* variable, and why: no traceback
        raise click.ClickException(str(exc)) from exc
    ctx.obj = App(settings)


@cli.group()
def db() -> None:
    """Manage the database schema.

    \b
    Example:
      newsletter db upgrade
    """


@db.command("upgrade")
@pass_app
@user_errors
def db_upgrade(app: App) -> None:
    """Apply database migrations (also done automatically on first use).

    \b
    Example:
      NEWSLETTER_DATABASE_URL=postgresql://localhost/news newsletter db upgrade
    """
    upgrade(app.engine)
    click.echo(f"database at {app.engine.url.render_as_string(hide_password=True)} is up to date")


def main() -> None:
    cli(prog_name="newsletter")
