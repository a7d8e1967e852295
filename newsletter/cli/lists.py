"""`newsletter lists ...`"""

from __future__ import annotations

import click

from newsletter.cli.context import App, pass_app, user_errors
from newsletter.cli.filtering import emit_rows, format_options
from subscribers.lists import (
    create_list,
    delete_list,
    get_list,
    list_summaries,
    rename_list,
    update_list,
)

OPT_IN = click.Choice(["single", "double"])
COLUMNS = ["name", "opt_in", "confirmed", "unconfirmed", "unsubscribed", "description"]


@click.group()
def lists() -> None:
    """Manage mailing lists.

    \b
    Example:
      newsletter lists create partners --opt-in double --description "Partner NGOs"
    """


@lists.command("create")
@click.argument("name")
@click.option("--opt-in", type=OPT_IN, default="single", show_default=True,
              help="double: new subscribers must confirm before they are mailed.")
@click.option("--description", default="", help="What the list is for.")
@click.option("--public", is_flag=True,
              help="Offer the list on the public sign-up form (/signup).")
@pass_app
@user_errors
def create(app: App, name: str, opt_in: str, description: str, public: bool) -> None:
    """Create list NAME.

    \b
    Example:
      newsletter lists create partners --opt-in double
      newsletter lists create alerts --opt-in double --public
    """
    with app.transaction() as session:
        create_list(session, name, opt_in=opt_in, description=description, public=public)
    click.echo(f"list {name!r} created ({opt_in} opt-in)")


@lists.command("list")
@format_options
@pass_app
@user_errors
def list_cmd(app: App, as_json: bool, as_csv: bool) -> None:
    """List the lists with their subscription counts.

    \b
    Example:
      newsletter lists list --json
    """
    with app.sessions() as session:
        rows = [(s.name, s.opt_in, s.confirmed, s.unconfirmed, s.unsubscribed, s.description)
                for s in list_summaries(session)]
    emit_rows(None, COLUMNS, rows, as_json=as_json, as_csv=as_csv)


@lists.command("show")
@click.argument("name")
@format_options
@pass_app
@user_errors
def show(app: App, name: str, as_json: bool, as_csv: bool) -> None:
    """Show list NAME.

    \b
    Example:
      newsletter lists show partners
    """
    with app.sessions() as session:
        get_list(session, name)
        rows = [(s.name, s.opt_in, s.confirmed, s.unconfirmed, s.unsubscribed, s.description)
                for s in list_summaries(session) if s.name == name]
    emit_rows(f"list {name}", COLUMNS, rows, as_json=as_json, as_csv=as_csv)


@lists.command("rename")
@click.argument("name")
@click.argument("new_name")
@pass_app
@user_errors
def rename(app: App, name: str, new_name: str) -> None:
    """Rename list NAME to NEW_NAME (segments naming it must be recreated).

    \b
    Example:
      newsletter lists rename partners partner-ngos
    """
    with app.transaction() as session:
        rename_list(session, name, new_name)
    click.echo(f"list {name!r} is now {new_name!r}")


@lists.command("update")
@click.argument("name")
@click.option("--opt-in", type=OPT_IN, default=None, help="Change the opt-in mode.")
@click.option("--description", default=None, help="Change the description.")
@click.option("--public/--private", default=None,
              help="Offer the list on the public sign-up form (/signup), or stop.")
@pass_app
@user_errors
def update(
    app: App, name: str, opt_in: str | None, description: str | None, public: bool | None
) -> None:
    """Change list NAME's opt-in mode, description or visibility on the sign-up form.

    \b
    Example:
      newsletter lists update partners --opt-in single
      newsletter lists update alerts --public
    """
    with app.transaction() as session:
        update_list(session, name, opt_in=opt_in, description=description, public=public)
    click.echo(f"list {name!r} updated")


@lists.command("delete")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_app
@user_errors
def delete(app: App, name: str, yes: bool) -> None:
    """Delete list NAME and its subscriptions (the subscribers stay).

    \b
    Example:
      newsletter lists delete old-list --yes
    """
    if not yes:
        click.confirm(f"Delete list {name!r} and all its subscriptions?", abort=True)
    with app.transaction() as session:
        count = delete_list(session, name)
    click.echo(f"list {name!r} deleted with its {count} subscriptions")
