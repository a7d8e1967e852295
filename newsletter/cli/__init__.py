"""The `newsletter` command: a thin layer over the library.

Settings come from NEWSLETTER_* environment variables (see `newsletter.settings`).
"""

from __future__ import annotations

import logging

import click

from newsletter.cli.bounces import bounces
from newsletter.cli.calendar import approve, reject, schedule, show, submit, unschedule
from newsletter.cli.context import App, pass_app, user_errors
from newsletter.cli.demo import demo
from newsletter.cli.dkim import dkim
from newsletter.cli.doctor import doctor
from newsletter.cli.feeds import feeds
from newsletter.cli.i18n import i18n
from newsletter.cli.issue_edit import COMMANDS as EDIT_COMMANDS
from newsletter.cli.issues import issues
from newsletter.cli.items import items
from newsletter.cli.lists import lists
from newsletter.cli.operations import limits, scheduler, worker
from newsletter.cli.segments import segments
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
from newsletter.cli.series import series
from newsletter.cli.subscribers import subscribers
from newsletter.cli.suppressions import suppressions
from newsletter.cli.users import users
from newsletter.cli.web import serve
from newsletter.db import upgrade
from newsletter.settings import SettingsError, load_settings


@click.group(
    name="newsletter",
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


for command in (send, status, pause, resume, cancel, retry, deliveries, test_send,
                schedule, unschedule, submit, approve, reject, show, *EDIT_COMMANDS):
    issues.add_command(command)
cli.add_command(items)
cli.add_command(worker)
cli.add_command(scheduler)
cli.add_command(limits)
cli.add_command(subscribers)
cli.add_command(lists)
cli.add_command(segments)
cli.add_command(suppressions)
cli.add_command(issues)
cli.add_command(demo)
cli.add_command(i18n)
cli.add_command(serve)
cli.add_command(feeds)
cli.add_command(series)
cli.add_command(users)
cli.add_command(dkim)
cli.add_command(bounces)
cli.add_command(doctor)


def main() -> None:
    cli(prog_name="newsletter")
