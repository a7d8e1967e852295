"""The Items screen: search and filter, an item's page (edit, countries, translations side
by side), deleting after a confirmation, uploading an item file.

Every change is the library's (`newsletter.item_edits`, `newsletter.items`), with the
rules of `newsletter items edit|tag|translate|delete|import`. Who may change is
`users.PERMISSIONS["items.change"]` (every role); the others would get 403.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from flask import Response, abort, request
from werkzeug.wrappers import Response as BaseResponse

from newsletter import items as library
from newsletter.db import transaction
from newsletter.errors import NewsletterError
from newsletter.ingest.text import split_paragraphs
from newsletter.item_edits import ItemChanges, delete_item, edit_item
from newsletter.models import Item
from newsletter.web.admin.core import explain, gettext, render, see_other, sessions, settings
from newsletter.web.auth import require

PER_PAGE = 25
MAX_UPLOAD_NAME = 200


def _id(raw: str) -> int:
    """The item id of a URL (a string converter, so that a link with anything else in it
    still meets the login check first): 404 unless it is a number."""
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 12):
        abort(404)
    return int(raw)


def _date(name: str, problems: list[str]) -> date | None:
    value = request.args.get(name, "").strip()
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        problems.append(gettext("%(value)s is not a date: write it as 2019-10-10.",
                                value=value[:40]))
        return None


@require("newsroom.read")
def items_page(code: int = 200, problem: str = "", language: str = "") -> Response:
    """The list: words in title or body, published from/to, country, language; paged."""
    args = request.args
    problems: list[str] = [problem] if problem else []
    since, until = _date("from", problems), _date("to", problems)
    try:
        page = int(args.get("page", "1"))
    except ValueError:
        page = 1
    query = {"q": args.get("q", "")[:200], "from": args.get("from", "")[:40],
             "to": args.get("to", "")[:40], "country": args.get("country", "")[:10],
             "language": args.get("language", "")[:10]}
    with sessions()() as db:
        found = library.search_items(
            db, words=query["q"], since=since, until=until, country=query["country"],
            language=query["language"], page=page, per_page=PER_PAGE)
        rows = [_row(item) for item in found.items]
    return render("items", code, found=found, rows=rows, query=query,
                  paging={k: v for k, v in query.items() if v},
                  languages=settings().languages,
                  upload_language=language, message="", problems=problems)


def _row(item: Item) -> dict[str, Any]:
    return {"id": item.id, "published": item.published, "title": item.title,
            "place": item.place or "", "countries": ", ".join(item.country_codes),
            "languages": ", ".join([item.language, *sorted(item.translations)])}


def _values(item: Item) -> dict[str, str]:
    """The edit form's fields as the page shows them."""
    return {"title": item.title, "place": item.place or "", "body": "\n\n".join(item.paragraphs),
            "published": item.published.isoformat(), "url": item.url or "",
            "language": item.language, "countries": ",".join(item.country_codes)}


def _item_page(item_id: int, code: int = 200, *, problem: str = "",
               form: dict[str, str] | None = None,
               translation: dict[str, str] | None = None) -> Response:
    with sessions()() as db:
        item = library.get_item(db, item_id)
        values = _values(item)
        texts = [{"language": lang, "title": t.title, "place": t.place or "",
                  "body": "\n\n".join(t.paragraphs)}
                 for lang, t in sorted(item.translations.items())]
        source = {"language": item.language, "title": item.title, "place": item.place or "",
                  "paragraphs": item.paragraphs}
        edited = sorted(item.edited_fields)
    if form is not None:
        values = {**values, **form}
    choices = [lang for lang in settings().languages if lang != source["language"]]
    return render("items_item", code, item_id=item_id, values=values, source=source,
                  texts=texts, edited=edited, choices=choices,
                  translation=translation or {},
                  message="", problem=problem)


@require("newsroom.read")
def item_page(raw_id: str) -> Response:
    item_id = _id(raw_id)
    try:
        return _item_page(item_id)
    except library.ItemNotFound:
        abort(404)


def _form(*names: str) -> dict[str, str]:
    return {name: request.form.get(name, "") for name in names}


@require("items.change")
def edit(raw_id: str) -> BaseResponse:
    item_id = _id(raw_id)
    """Save the fields whose value differs from what the page showed (as `items edit`
    with only those options; the countries as `items tag`)."""
    sent = _form("title", "place", "body", "published", "url", "language", "countries")
    try:
        with transaction(sessions()) as db:
            current = _values(library.get_item(db, item_id))

            def changed(name: str) -> str | None:
                value = sent[name].replace("\r\n", "\n")
                return value if value.strip() != current[name].strip() else None

            body = changed("body")
            changes = ItemChanges(
                title=changed("title"), place=changed("place"),
                paragraphs=split_paragraphs(body) if body is not None else None,
                published=changed("published"), url=changed("url"),
                language=changed("language"))
            done = edit_item(db, item_id, changes) if changes != ItemChanges() else []
            countries = [c.strip() for c in sent["countries"].split(",") if c.strip()]
            if [c.upper() for c in countries] != current["countries"].split(",") and (
                    countries or current["countries"]):
                library.tag_item(db, item_id, countries)
                done.append("countries")
    except library.ItemNotFound:
        abort(404)
    except NewsletterError as exc:
        return _item_page(item_id, 400, problem=explain(exc), form=sent)
    message = (gettext("Saved: %(fields)s.", fields=", ".join(done)) if done
               else gettext("Nothing changed: the values were already so."))
    return see_other(message, "admin.item", raw_id=item_id)


@require("items.change")
def translate(raw_id: str) -> BaseResponse:
    item_id = _id(raw_id)
    """Add or replace a translation (as `items translate`)."""
    sent = _form("language", "title", "place", "body")
    try:
        with transaction(sessions()) as db:
            library.translate_item(db, item_id, sent["language"], title=sent["title"],
                                   paragraphs=split_paragraphs(sent["body"]),
                                   place=sent["place"].strip() or None)
    except library.ItemNotFound:
        abort(404)
    except NewsletterError as exc:
        return _item_page(item_id, 400, problem=explain(exc), translation=sent)
    return see_other(gettext("Translation saved: %(language)s.",
                             language=sent["language"].strip().lower()), "admin.item",
                     raw_id=item_id)


@require("items.change")
def delete(raw_id: str) -> BaseResponse:
    item_id = _id(raw_id)
    """The first POST asks (showing the item); the second, with confirm=yes, deletes."""
    if request.form.get("confirm") != "yes":
        with sessions()() as db:
            try:
                item = library.get_item(db, item_id)
            except library.ItemNotFound:
                abort(404)
            shown = {"id": item.id, "title": item.title, "published": item.published}
        return render("items_delete", item=shown)
    try:
        with transaction(sessions()) as db:
            item, drafts = delete_item(db, item_id)
            title = item.title
    except library.ItemNotFound:
        abort(404)
    except NewsletterError as exc:
        return _item_page(item_id, 400, problem=explain(exc))
    message = gettext("Item %(id)s deleted: %(title)s.", id=item_id, title=title)
    if drafts:
        message += " " + gettext("Taken out of draft issue(s): %(issues)s.",
                                 issues=", ".join(drafts))
    return see_other(message, "admin.items")


@require("items.change")
def upload() -> BaseResponse:
    """Read an item file as `items import` does (.json by its name, anything else the text
    format) and store it; a file with an error stores nothing and the message names the
    line."""
    sent = request.files.get("file")
    if sent is None or not sent.filename:
        return items_page(400, problem=gettext("Choose a file to upload."))
    name = sent.filename[:MAX_UPLOAD_NAME]
    language = request.form.get("language", "").strip() or None
    try:
        if language is not None and language not in settings().languages:
            raise NewsletterError(gettext(
                "%(language)s is not one of the languages: %(languages)s",
                language=repr(language[:20]), languages=", ".join(settings().languages)))
        parsed = library.parse_bytes(sent.read(), name, language=language,
                                     json=name.lower().endswith(".json"),
                                     among=settings().languages)
        with transaction(sessions()) as db:
            report = library.store_items(db, parsed)
    except NewsletterError as exc:
        return items_page(400, problem=explain(exc), language=language or "")
    return see_other(upload_summary(len(parsed), report), "admin.items")


def upload_summary(read: int, report: library.ItemImportReport) -> str:
    """`items import`'s summary line (library.import_summary) in the reader's language."""
    parts = [gettext("%(read)s items read: %(added)s added, %(updated)s updated, "
                     "%(unchanged)s already there", read=read, added=report.added,
                     updated=report.updated, unchanged=report.unchanged)]
    if report.refound:
        parts.append(gettext("%(n)s found again by date and first paragraph (their title "
                             "changed in the file)", n=report.refound))
    if report.lookalikes:
        parts.append(gettext("new items share their date and place with item(s) %(ids)s: if "
                             "a new one replaces an old one, delete the old one",
                             ids=", ".join(map(str, report.lookalikes))))
    if report.kept:
        parts.append(gettext("%(n)s kept a person's edits where the file changed the same "
                             "field", n=report.kept))
    if report.withheld:
        parts.append(gettext("%(n)s deleted earlier, not brought back", n=report.withheld))
    return "; ".join(parts)
