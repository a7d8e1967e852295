"""`newsletter items ...`"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import TextIO

import click

from newsletter.cli.context import App, pass_app, user_errors
from newsletter.cli.output import emit_json, json_option, table
from newsletter.ingest.text import split_paragraphs
from newsletter.item_edits import ItemChanges, delete_item, edit_item
from newsletter.items import (
    import_summary,
    list_items,
    read_items,
    store_items,
    tag_item,
    translate_item,
)


@click.group()
def items() -> None:
    """Import and list news items.

    \b
    Example:
      newsletter items import news.txt && newsletter items list
    """


@items.command("import")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--language", default=None,
              help="Language the items are written in (default: detected for each item, "
                   "among the configured languages).")
@pass_app
@user_errors
def import_items(app: App, files: tuple[Path, ...], language: str | None) -> None:
    """Import items from text-format or .json FILES.

    The text format is: a date line ("10 October, 2019"), a title line, then
    paragraphs separated by blank lines; the first paragraph may start with a
    dateline ("San José. "). Each item's language is detected unless --language
    (or a JSON item's "language") says it. Re-importing a file adds nothing, and
    keeps what a person changed with `items edit`, `tag` or `translate`. A file
    with an error imports nothing and the message names the line.

    \b
    Example:
      newsletter items import news-2019-10.txt more.json
      newsletter items import noticias.txt --language es
    """
    among = app.settings.languages
    parsed = [item for path in files
              for item in read_items(path, language=language, among=among)]
    with app.transaction() as session:
        report = store_items(session, parsed)
    click.echo(import_summary(len(parsed), report))
    detected = Counter(item.language for item in parsed if item.detected)
    if detected:
        counts = ", ".join(f"{n} {lang}" for lang, n in sorted(detected.items()))
        click.echo(f"languages detected: {counts} (--language sets it instead)")


@items.command("list")
@click.option("--from", "since", type=click.DateTime(["%Y-%m-%d"]), help="Published on or after.")
@click.option("--to", "until", type=click.DateTime(["%Y-%m-%d"]), help="Published on or before.")
@click.option("--country", default=None, help="Only items about this country (ISO code).")
@json_option
@pass_app
@user_errors
def list_cmd(app: App, since: datetime | None, until: datetime | None, country: str | None,
             as_json: bool) -> None:
    """List items, newest first.

    \b
    Example:
      newsletter items list --from 2019-10-01 --country CR --json
    """
    with app.sessions() as session:
        rows = list_items(
            session,
            since=since.date() if since else None,
            until=until.date() if until else None,
            country=country,
        )
        if as_json:
            emit_json([
                {"id": i.id, "published": i.published, "title": i.title, "place": i.place,
                 "countries": i.country_codes, "language": i.language,
                 "paragraphs": i.paragraphs, "translations": sorted(i.translations)}
                for i in rows
            ])
            return
        table(f"{len(rows)} items", ["id", "date", "place", "countries", "languages", "title"],
              [(i.id, i.published, i.place, ",".join(i.country_codes),
                ",".join([i.language, *sorted(i.translations)]), i.title) for i in rows])


@items.command("tag")
@click.argument("item_id", type=int)
@click.option("--country", "countries", default="",
              help="Countries the item is about, comma-separated ISO codes (CR,NI).")
@click.option("--clear", is_flag=True, help="The item is about no country in particular.")
@pass_app
@user_errors
def tag(app: App, item_id: int, countries: str, clear: bool) -> None:
    """Set the countries item ITEM_ID is about (replacing what import detected).

    \b
    Example:
      newsletter items tag 12 --country CR,NI
      newsletter items tag 13 --clear
    """
    codes = [c for c in countries.split(",") if c.strip()]
    if bool(codes) == clear:
        raise click.UsageError("give either --country CODES or --clear")
    with app.transaction() as session:
        item = tag_item(session, item_id, codes)
        shown = item.countries or "no country"
    click.echo(f"item {item_id}: {shown}")


@items.command("translate")
@click.argument("item_id", type=int)
@click.option("--language", required=True, help="Language of the translation (es, fr).")
@click.option("--title", required=True, help="The translated title.")
@click.option("--body-file", type=click.File("r", encoding="utf-8"), required=True,
              help="The translated paragraphs, separated by blank lines (- for stdin).")
@click.option("--place", default=None, help="The dateline place, if it is spelled differently.")
@pass_app
@user_errors
def translate(app: App, item_id: int, language: str, title: str, body_file: TextIO,
              place: str | None) -> None:
    """Add or replace the translation of item ITEM_ID in one language.

    Readers of that language get it; the others keep the source text.

    \b
    Example:
      newsletter items translate 12 --language es --title "Estudio sobre..." --body-file es.txt
    """
    paragraphs = split_paragraphs(body_file.read())
    with app.transaction() as session:
        translate_item(session, item_id, language, title=title, paragraphs=paragraphs,
                       place=place)
    click.echo(f"item {item_id}: {language} translation saved")


@items.command("edit")
@click.argument("item_id", type=int)
@click.option("--title", default=None, help="The corrected title.")
@click.option("--place", default=None, help='The dateline place ("" removes it).')
@click.option("--body-file", type=click.File("r", encoding="utf-8"), default=None,
              help="The paragraphs, separated by blank lines (- for stdin).")
@click.option("--date", "published", default=None, help="Published on (2019-10-10).")
@click.option("--url", default=None, help='The "Read more" address ("" removes it).')
@click.option("--language", default=None, help="The language the item is written in.")
@pass_app
@user_errors
def edit(app: App, item_id: int, title: str | None, place: str | None,
         body_file: TextIO | None, published: str | None, url: str | None,
         language: str | None) -> None:
    """Correct item ITEM_ID; re-importing its file will not undo the change.

    Issues already sent keep the text they were sent with.

    \b
    Example:
      newsletter items edit 12 --title "Drought ends in Guanacaste" --place "Liberia"
      newsletter items edit 12 --body-file fixed.txt
    """
    paragraphs = split_paragraphs(body_file.read()) if body_file else None
    changes = ItemChanges(title=title, place=place, paragraphs=paragraphs,
                          published=published, url=url, language=language)
    if changes == ItemChanges():
        raise click.UsageError("say what to change: --title, --place, --body-file, --date, "
                               "--url or --language")
    with app.transaction() as session:
        changed = edit_item(session, item_id, changes)
    shown = ", ".join(changed) if changed else "nothing (the values were already so)"
    click.echo(f"item {item_id}: changed {shown}")


@items.command("delete")
@click.argument("item_id", type=int)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_app
@user_errors
def delete(app: App, item_id: int, yes: bool) -> None:
    """Delete item ITEM_ID (and its translations).

    An item in an issue that was approved, scheduled or sent cannot be deleted, so
    what readers received stays as it was; a draft issue just loses the item. A deleted
    item stays deleted: importing its file again, or fetching its feed, skips it.

    \b
    Example:
      newsletter items delete 12 --yes
    """
    if not yes:
        click.confirm(f"Delete item {item_id}?", abort=True)
    with app.transaction() as session:
        item, drafts = delete_item(session, item_id)
        title = item.title
    click.echo(f"item {item_id} deleted: {title!r}")
    if drafts:
        click.echo(f"taken out of draft issue(s): {', '.join(drafts)}")
