"""`newsletter issues items|edit|candidates|withdraw`: change an issue after creating it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import click
from sqlalchemy.orm import Session

from newsletter import approval, issue_edits
from newsletter.cli.context import App, pass_app, user_errors
from newsletter.cli.issues import _read_text, language_pairs, one_per_language
from newsletter.cli.output import emit_json, json_option, table
from newsletter.db import utcnow
from newsletter.issue_edits import Edit
from newsletter.issues import get_issue
from newsletter.models import Issue, Item
from newsletter.render import FOCUS_POLICIES

DATE = click.DateTime(["%Y-%m-%d"])
MAX_IDS = 1000


def _parse_ids(raw: str, option: str) -> list[int]:
    """"12,9,15" -> [12, 9, 15]; anything else is a usage error, never a traceback."""
    parts = [p.strip() for p in raw.split(",")]
    if len(parts) > MAX_IDS:
        raise click.BadParameter(f"more than {MAX_IDS} ids", param_hint=option)
    ids = []
    for part in parts:
        if not (part.isascii() and part.isdigit() and len(part) <= 12):
            shown = part if len(part) <= 20 else part[:17] + "..."
            raise click.BadParameter(f"{shown!r} is not an item id: give ids separated by "
                                     "commas, e.g. 12,9,15", param_hint=option)
        ids.append(int(part))
    return ids


def _item_row(position: int | None, item: Item) -> dict[str, Any]:
    row: dict[str, Any] = {"id": item.id, "published": item.published.isoformat(),
                           "title": item.title, "countries": item.country_codes,
                           "language": item.language}
    return {"position": position, **row} if position is not None else row


def _items_of(issue: Issue) -> list[dict[str, Any]]:
    return [_item_row(n, entry.item) for n, entry in enumerate(issue.entries, start=1)]


def _report(edit: Edit, as_json: bool, extra: dict[str, Any]) -> None:
    if as_json:
        emit_json({**edit.as_dict(), **extra})
        return
    for line in edit.lines():
        click.echo(line)
    if edit.unplanned or extra.get("planned"):
        click.echo(f"  {edit.unplanned} planned deliveries dropped, {extra.get('planned', 0)} "
                   "planned again for the schedule")


def _replan(app: App, session: Session, issue: Issue, edit: Edit) -> int:
    """A scheduled issue whose planned deliveries were dropped gets them planned again
    now, as `issues schedule` plans them (`issues deliveries` shows each)."""
    if not edit.unplanned or issue.status != "scheduled":
        return 0
    from worker.delivery import plan_issue

    return plan_issue(app.settings, session, issue)


@click.command("items")
@click.argument("slug")
@click.option("--set", "set_ids", default=None, metavar="ID,ID,...",
              help="The issue holds exactly these items, in this order.")
@click.option("--add", "add_ids", default=None, metavar="ID,ID,...",
              help="Add these items (at the end, or at --at).")
@click.option("--at", "at", type=int, default=None, metavar="N",
              help="With --add: the position of the first added item (1: first).")
@click.option("--remove", "remove_ids", default=None, metavar="ID,ID,...",
              help="Take these items out of the issue (the items stay).")
@click.option("--move", "move_id", type=int, default=None, metavar="ID",
              help="Move this item to the position --to.")
@click.option("--to", "to", type=int, default=None, metavar="N",
              help="With --move: the new position (1: first).")
@click.option("--by", "by", default="", metavar="NAME",
              help="Who makes the change (needed when it withdraws an approval).")
@json_option
@pass_app
@user_errors
def items_cmd(app: App, slug: str, set_ids: str | None, add_ids: str | None, at: int | None,
              remove_ids: str | None, move_id: int | None, to: int | None, by: str,
              as_json: bool) -> None:
    """Show the items of issue SLUG in order, or change them.

    Without an option, lists position, id, date, title and countries. One change at a
    time: --set, --add [--at], --remove, or --move with --to. A change to an issue in
    review or approved withdraws its approval (it must be submitted and approved again);
    a scheduled issue keeps its schedule. Only a draft or a scheduled issue changes.

    \b
    Example:
      newsletter issues items 2026-w49 --json
      newsletter issues items 2026-w49 --set 12,9,15
      newsletter issues items 2026-w49 --add 17 --at 2 --by "Ana Mora"
      newsletter issues items 2026-w49 --remove 9
      newsletter issues items 2026-w49 --move 15 --to 1
    """
    chosen = [name for name, value in (("--set", set_ids), ("--add", add_ids),
                                       ("--remove", remove_ids), ("--move", move_id))
              if value is not None]
    if len(chosen) > 1:
        raise click.UsageError(f"give one change at a time, not {' and '.join(chosen)}")
    if at is not None and add_ids is None:
        raise click.UsageError("--at goes with --add")
    if (to is None) != (move_id is None):
        raise click.UsageError("--move ID goes with --to N")
    now = utcnow()
    with app.transaction() as session:
        issue = get_issue(session, slug)
        edit: Edit | None = None
        if set_ids is not None:
            edit = issue_edits.set_items(session, issue, _parse_ids(set_ids, "--set"),
                                         by=by, now=now)
        elif add_ids is not None:
            edit = issue_edits.add_items(session, issue, _parse_ids(add_ids, "--add"), at=at,
                                         by=by, now=now)
        elif remove_ids is not None:
            edit = issue_edits.remove_items(session, issue,
                                            _parse_ids(remove_ids, "--remove"), by=by, now=now)
        elif move_id is not None and to is not None:
            edit = issue_edits.move_item(session, issue, move_id, to, by=by, now=now)
        planned = _replan(app, session, issue, edit) if edit else 0
        rows = _items_of(issue)
        status = issue.status
    if edit is not None:
        _report(edit, as_json, {"items": rows, "planned": planned})
        if as_json:
            return
    elif as_json:
        emit_json({"issue": slug, "status": status, "items": rows})
        return
    table(None, ["#", "id", "published", "title", "countries"],
          [(r["position"], r["id"], r["published"], r["title"], ",".join(r["countries"]))
           for r in rows])


@click.command("edit")
@click.argument("slug")
@click.option("--title", "titles", multiple=True,
              help="Subject title: LANG=TEXT for one language, or TEXT for every language "
                   "(repeatable); LANG= removes that language's own.")
@click.option("--intro", "intros", multiple=True,
              help="Introduction: LANG=TEXT, or TEXT for every language (repeatable); "
                   "LANG= removes it.")
@click.option("--intro-file", "intro_files", multiple=True,
              help="Introduction read from a UTF-8 file: LANG=FILE, or FILE.")
@click.option("--country-focus", "focus", type=click.Choice(FOCUS_POLICIES), default=None,
              help="first, only or none (see `issues create --help`).")
@click.option("--list", "lists", multiple=True,
              help="Send to this list's confirmed subscribers (repeatable; replaces the "
                   "issue's lists and segments).")
@click.option("--segment", "segments", multiple=True,
              help="Send to this segment (repeatable; replaces the lists and segments).")
@click.option("--everyone", is_flag=True,
              help="Send to every active subscriber (drops the lists and segments).")
@click.option("--by", "by", default="", metavar="NAME",
              help="Who makes the change (needed when it withdraws an approval).")
@json_option
@pass_app
@user_errors
def edit_cmd(app: App, slug: str, titles: tuple[str, ...], intros: tuple[str, ...],
             intro_files: tuple[str, ...], focus: str | None, lists: tuple[str, ...],
             segments: tuple[str, ...], everyone: bool, by: str, as_json: bool) -> None:
    """Change the titles, introductions, country focus or audience of issue SLUG.

    Options not given leave things as they are. A change to an issue in review or
    approved withdraws its approval (it must be submitted and approved again). The
    stored renders are dropped, so previews and the send show the change.

    \b
    Example:
      newsletter issues edit 2026-w49 --title es="Boletín semanal" --intro-file es=intro.txt
      newsletter issues edit 2026-w49 --country-focus only --list partners --by "Ana Mora"
    """
    if everyone and (lists or segments):
        raise click.UsageError("--everyone drops the lists and segments: give it alone")
    languages = app.settings.languages
    title_map = one_per_language(language_pairs(titles, languages), "--title")
    intro_map = one_per_language([*language_pairs(intros, languages),
                                  *((lang, _read_text(path))
                                    for lang, path in language_pairs(intro_files, languages))],
                                 "--intro/--intro-file")
    if not (titles or intro_map or focus or lists or segments or everyone):
        raise click.UsageError("nothing to change: give --title, --intro, --intro-file, "
                               "--country-focus, --list, --segment or --everyone")
    with app.transaction() as session:
        issue = get_issue(session, slug)
        edit = issue_edits.edit_issue(
            session, issue, titles=title_map if titles else None,
            intros=intro_map or None, languages=languages, focus=focus,
            lists=lists if lists or segments or everyone else None,
            segments=segments if lists or segments or everyone else None, by=by, now=utcnow())
        planned = _replan(app, session, issue, edit)
    _report(edit, as_json, {"planned": planned})


@click.command("candidates")
@click.argument("slug")
@click.option("--from", "date_from", type=DATE, default=None, help="First day (YYYY-MM-DD).")
@click.option("--to", "date_to", type=DATE, default=None, help="Last day (YYYY-MM-DD).")
@click.option("--country", default=None, metavar="CC", help="Only items about this country.")
@click.option("--search", default=None, metavar="WORDS",
              help="Only items with every one of these words in their title or text.")
@json_option
@pass_app
@user_errors
def candidates_cmd(app: App, slug: str, date_from: datetime | None, date_to: datetime | None,
                   country: str | None, search: str | None, as_json: bool) -> None:
    """Items one could add to issue SLUG: not in it yet, newest first.

    \b
    Example:
      newsletter issues candidates 2026-w49 --from 2026-11-01 --country CR --search water
      newsletter issues items 2026-w49 --add 17
    """
    with app.sessions() as session:
        issue = get_issue(session, slug)
        found = issue_edits.candidates(
            session, issue, since=date_from.date() if date_from else None,
            until=date_to.date() if date_to else None, country=country, query=search)
        rows = [_item_row(None, item) for item in found]
    if as_json:
        emit_json(rows)
        return
    if not rows:
        click.echo(f"no item to add to issue {slug} matches")
        return
    table(None, ["id", "published", "title", "countries", "language"],
          [(r["id"], r["published"], r["title"], ",".join(r["countries"]), r["language"])
           for r in rows])


@click.command("withdraw")
@click.argument("slug")
@click.option("--by", "by", required=True, metavar="NAME",
              help="Who withdraws it (recorded with the time).")
@click.option("--note", default=None, help="Why (free text, optional).")
@pass_app
@user_errors
def withdraw(app: App, slug: str, by: str, note: str | None) -> None:
    """Take issue SLUG out of review (or withdraw its approval), e.g. to change it.

    It must then be submitted and approved again before it goes out.

    \b
    Example:
      newsletter issues withdraw 2026-w49 --by "Ana Mora" --note "one more item"
    """
    with app.transaction() as session:
        issue = get_issue(session, slug)
        was = issue.review
        record = approval.withdraw(session, issue, by, note, now=utcnow())
    click.echo(f"issue {slug}: APPROVAL WITHDRAWN by {record.by} at "
               f"{record.at:%Y-%m-%d %H:%M} UTC (it was {was.replace('_', ' ')}); submit it "
               f"again with `newsletter issues submit {slug} --by NAME`")


COMMANDS = (items_cmd, edit_cmd, candidates_cmd, withdraw)
