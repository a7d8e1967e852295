"""`newsletter users ...`: the people who log in to the newsroom."""

from __future__ import annotations

import sys

import click

from newsletter.cli.context import App, pass_app, user_errors
from newsletter.cli.output import emit_json, json_option, table
from newsletter.db import utcnow
from newsletter.users import (
    LANGUAGES,
    PERMISSIONS,
    ROLES,
    active_sessions,
    add_user,
    list_users,
    remove_user,
    revoke_sessions,
    set_password,
    set_role,
    view,
)
from newsletter.words import plural

password_stdin_option = click.option(
    "--password-stdin", is_flag=True,
    help="Read the password from the first line of standard input instead of a prompt.")


def read_password(from_stdin: bool) -> str:
    if from_stdin:
        line = sys.stdin.readline()
        return line.rstrip("\r\n")
    return str(click.prompt("Password", hide_input=True, confirmation_prompt=True))


@click.group()
def users() -> None:
    """Manage who can log in to the newsroom (`newsletter serve`, /admin).

    Roles: editor (items, issues, series, feeds), approver (also approves, schedules and
    sends issues), admin (also manages users, changes and exports subscribers). There is
    always at least one admin. `users list` shows each role's permissions.

    \b
    Example:
      newsletter users add ana@example.org --role admin --name "Ana Mora"
      newsletter users list
    """


@users.command("add")
@click.argument("email")
@click.option("--role", type=click.Choice(ROLES), required=True, help="What they may do.")
@click.option("--name", default="", help="Their name, as approvals show it.")
@click.option("--language", type=click.Choice(LANGUAGES), default="en", show_default=True,
              help="The newsroom's language for them.")
@password_stdin_option
@pass_app
@user_errors
def add(app: App, email: str, role: str, name: str, language: str,
        password_stdin: bool) -> None:
    """Add a user EMAIL with a password (at least 12 characters) asked for twice.

    \b
    Example:
      newsletter users add ana@example.org --role admin --name "Ana Mora"
      printf '%s\\n' "$PASSWORD" | newsletter users add bo@example.org --role editor \\
          --password-stdin
    """
    password = read_password(password_stdin)
    with app.transaction() as session:
        user = add_user(session, email, password, role, name=name, language=language,
                        now=utcnow())
        address = user.email
    click.echo(f"user {address} added as {role}")


@users.command("list")
@json_option
@pass_app
@user_errors
def list_(app: App, as_json: bool) -> None:
    """List the users and their roles, then what each role may do (`--json`: each user
    with `permissions`).

    \b
    Example:
      newsletter users list --json
    """
    with app.sessions() as session:
        shown = [view(user) for user in list_users(session)]
    if as_json:
        emit_json([user.as_dict() for user in shown])
        return
    table(None, ["email", "name", "role", "language", "last login"],
          [(u.email, u.name, u.role, u.language, u.last_login_at) for u in shown])
    table("What each role may do", ["permission", *ROLES],
          [(name, *("yes" if role in roles else "no" for role in ROLES))
           for name, roles in PERMISSIONS.items()])


@users.command("remove")
@click.argument("email")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_app
@user_errors
def remove(app: App, email: str, yes: bool) -> None:
    """Remove user EMAIL; they are logged out at their next request. The last admin stays.

    \b
    Example:
      newsletter users remove bo@example.org --yes
    """
    if not yes:
        click.confirm(f"Remove user {email}?", abort=True)
    with app.transaction() as session:
        remove_user(session, email)
    click.echo(f"user {email.strip().lower()} removed")


@users.command("set-role")
@click.argument("email")
@click.argument("role", type=click.Choice(ROLES))
@pass_app
@user_errors
def set_role_(app: App, email: str, role: str) -> None:
    """Give user EMAIL the role ROLE (editor, approver or admin), from their next request.

    \b
    Example:
      newsletter users set-role bo@example.org approver
    """
    with app.transaction() as session:
        address = set_role(session, email, role).email
    click.echo(f"user {address} is now {role}")


@users.command("set-password")
@click.argument("email")
@password_stdin_option
@pass_app
@user_errors
def set_password_(app: App, email: str, password_stdin: bool) -> None:
    """Set a new password for user EMAIL (asked for twice, or read from stdin).

    \b
    Example:
      newsletter users set-password bo@example.org
    """
    password = read_password(password_stdin)
    with app.transaction() as session:
        address = set_password(session, email, password).email
    click.echo(f"password of {address} changed")


@users.command("sessions")
@click.argument("email")
@json_option
@pass_app
@user_errors
def sessions_(app: App, email: str, as_json: bool) -> None:
    """List where user EMAIL is logged in: each live session's start, last request and
    browser (sessions last 12 hours from the login; logged-out ones are not listed).

    \b
    Example:
      newsletter users sessions bo@example.org --json
    """
    with app.sessions() as session:
        shown = active_sessions(session, email, now=utcnow())
    if as_json:
        emit_json([s.as_dict() for s in shown])
        return
    table(None, ["id", "logged in (UTC)", "last seen (UTC)", "browser"],
          [(s.id, s.created_at, s.last_seen_at, s.user_agent) for s in shown])


@users.command("logout")
@click.argument("email")
@pass_app
@user_errors
def logout(app: App, email: str) -> None:
    """Log user EMAIL out everywhere (a lost laptop): every session is revoked at once;
    they can log in again with their password (change it with `users set-password`).

    \b
    Example:
      newsletter users logout bo@example.org
    """
    with app.transaction() as session:
        ended = revoke_sessions(session, email)
    click.echo(f"user {email.strip().lower()} logged out: {plural(ended, 'session')} ended")
