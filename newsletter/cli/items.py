"""`newsletter items ...`"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import click

from newsletter.cli.context import App, pass_app, user_errors
from newsletter.cli.output import emit_json, json_option, table
from newsletter.items import list_items, read_items, store_items


@click.group()
def items() -> None:
    """Import and list news items.

    \b
    Example:
      newsletter items import news.txt && newsletter items list
    """


@items.command("import")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--language", default="en", show_default=True,
              help="Language the items are written in.")
@pass_app
@user_errors
def import_items(app: App, files: tuple[Path, ...], language: str) -> None:
    """Import items from text-format or .json FILES.

    The text format is: a date line ("10 October, 2019"), a title line, then
    paragraphs separated by blank lines; the first paragraph may start with a
    dateline ("San José. "). Re-importing a file adds nothing. A file with an
    error imports nothing and the message names the line.

    \b
    Example:
      newsletter items import news-2019-10.txt more.json
    """
    parsed = [item for path in files for item in read_items(path, language=language)]
    with app.transaction() as session:
        report = store_items(session, parsed)
    click.echo(
        f"{len(parsed)} items read: {report.added} added, {report.updated} updated, "
        f"{report.unchanged} already there"
    )


@items.command("list")
@click.option("--from", "since", type=click.DateTime(["%Y-%m-%d"]), help="Published on or after.")
@click.option("--to", "until", type=click.DateTime(["%Y-%m-%d"]), help="Published on or before.")
@json_option
@pass_app
@user_errors
def list_cmd(app: App, since: date | None, until: date | None, as_json: bool) -> None:
    """List items, newest first.

    \b
    Example:
      newsletter items list --from 2019-10-01 --json
    """
    with app.sessions() as session:
        rows = list_items(
            session,
            since=since.date() if since else None,  # type: ignore[attr-defined]
            until=until.date() if until else None,  # type: ignore[attr-defined]
        )
        if as_json:
            emit_json([
                {"id": i.id, "published": i.published, "title": i.title, "place": i.place,
                 "countries": i.country_codes, "language": i.language,
                 "paragraphs": i.paragraphs}
                for i in rows
            ])
            return
        table(f"{len(rows)} items", ["id", "date", "place", "countries", "title"],
              [(i.id, i.published, i.place, ",".join(i.country_codes), i.title) for i in rows])
