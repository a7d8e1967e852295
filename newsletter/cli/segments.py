"""`newsletter segments ...`"""

from __future__ import annotations

from typing import Any

import click

from newsletter.cli.context import App, pass_app, user_errors
from newsletter.cli.filtering import build_filter, emit_rows, filter_options, format_options
from newsletter.cli.output import emit_json, table
from subscribers.segments import create_segment, delete_segment, list_segments, preview_segment


@click.group()
def segments() -> None:
    """Stored, named filters over subscribers; issues can be sent to them.

    \b
    Example:
      newsletter segments create central-es --country CR,NI,SV --language es --status active
    """


@segments.command("create")
@click.argument("name")
@filter_options
@pass_app
@user_errors
def create(app: App, /, name: str, **kwargs: Any) -> None:
    """Create segment NAME from filter options.

    Conditions of different kinds must all hold; values of one kind are alternatives
    (--country CR,NI means Costa Rica or Nicaragua).

    \b
    Example:
      newsletter segments create cr-ni-es --country CR,NI --language es --list partners
    """
    definition = build_filter(kwargs)
    with app.transaction() as session:
        create_segment(session, name, definition)
        count = preview_segment(session, name, 0).count
    click.echo(f"segment {name!r} created: {definition.describe()} ({count} subscribers now)")


@segments.command("list")
@format_options
@pass_app
@user_errors
def list_cmd(app: App, as_json: bool, as_csv: bool) -> None:
    """List segments and what they select.

    \b
    Example:
      newsletter segments list
    """
    with app.sessions() as session:
        rows = [(s.name, f.describe(), preview_segment(session, s.name, 0).count)
                for s, f in list_segments(session)]
    emit_rows(None, ["name", "filter", "subscribers"], rows, as_json=as_json, as_csv=as_csv)


@segments.command("show")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_app
@user_errors
def show(app: App, name: str, as_json: bool) -> None:
    """Show segment NAME's definition and size.

    \b
    Example:
      newsletter segments show cr-ni-es --json
    """
    _preview(app, name, 0, as_json)


@segments.command("preview")
@click.argument("name")
@click.option("--sample", default=10, show_default=True, help="How many people to show.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_app
@user_errors
def preview(app: App, name: str, sample: int, as_json: bool) -> None:
    """Count segment NAME's subscribers and show a sample of them.

    \b
    Example:
      newsletter segments preview cr-ni-es --sample 5
    """
    _preview(app, name, sample, as_json)


def _preview(app: App, name: str, sample: int, as_json: bool) -> None:
    with app.sessions() as session:
        p = preview_segment(session, name, sample)
        people = [(s.email, s.name, s.country, s.language, s.status) for s in p.sample]
    if as_json:
        emit_json({"name": p.name, "filter": p.filter.to_json(), "count": p.count,
                   "sample": [dict(zip(("email", "name", "country", "language", "status"),
                                       row, strict=True)) for row in people]})
        return
    click.echo(f"segment {p.name}: {p.filter.describe()}: {p.count} subscribers")
    if people:
        table(None, ["email", "name", "country", "language", "status"], people)


@segments.command("delete")
@click.argument("name")
@pass_app
@user_errors
def delete(app: App, name: str) -> None:
    """Delete segment NAME (issues that targeted it keep what was already planned).

    \b
    Example:
      newsletter segments delete cr-ni-es
    """
    with app.transaction() as session:
        delete_segment(session, name)
    click.echo(f"segment {name!r} deleted")
