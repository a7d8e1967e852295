"""A person's corrections to a stored item, and deleting one.

Every field set here is marked as edited on the item, so re-importing its file (which
still says the old thing) leaves the correction alone: see `newsletter.items.store_items`.
An issue that was sent keeps what it sent: its rendered variants (the emails and the
web copy) are stored apart from the items, so an edit never changes them, and an item
in an issue past the draft stage cannot be deleted.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from newsletter.errors import N_, NewsletterError
from newsletter.ingest.model import (
    LANGUAGE_CODE,
    MAX_PLACE_LENGTH,
    MAX_URL_LENGTH,
    check_characters,
    check_length,
)
from newsletter.ingest.text import MAX_TITLE_LENGTH, parse_date, typed_paragraphs
from newsletter.items import get_item
from newsletter.models import (
    PARAGRAPH_SEPARATOR,
    DeletedItem,
    Issue,
    IssueItem,
    IssueVariant,
    Item,
)


class ItemEditError(NewsletterError):
    """An edit or a deletion that cannot be done as asked."""


@dataclass(frozen=True)
class ItemChanges:
    """What to change; None leaves a field as it is ("" clears place and url)."""

    title: str | None = None
    place: str | None = None
    paragraphs: Sequence[str] | None = None
    published: str | None = None
    url: str | None = None
    language: str | None = None


def edit_item(session: Session, item_id: int, changes: ItemChanges) -> list[str]:
    """Apply a person's corrections; returns the names of the fields that changed."""
    item = get_item(session, item_id)
    values = _checked(item_id, changes)
    if values.get("language") in item.translations:
        # its readers would get the source text and the translation never (see in_language)
        raise ItemEditError.translatable(
            N_("item %(id)s has a translation in %(language)s: a translation is in another "
               "language than the item, so one of the two is wrong"), id=item_id,
            language=values["language"],
            hint=" (a new `items translate` replaces the translation)")
    changed = [name for name, value in values.items() if getattr(item, name) != value]
    for name in changed:
        setattr(item, name, values[name])
    item.mark_edited(*changed)
    session.flush()
    return changed


def _checked(item_id: int, changes: ItemChanges) -> dict[str, object]:
    """The new values, each checked as an import would check it."""
    where = f"item {item_id}"
    values: dict[str, object] = {}
    if changes.title is not None:
        title = " ".join(changes.title.split())
        if not title or len(title) > MAX_TITLE_LENGTH:
            raise ItemEditError.translatable(
                N_("the title must be one line of 1 to %(max)s characters"),
                max=MAX_TITLE_LENGTH)
        check_characters(where, "--title", "the title", title)
        values["title"] = title
    if changes.paragraphs is not None:
        dateline, paragraphs = typed_paragraphs(where, "--body-file", list(changes.paragraphs))
        if not paragraphs:
            raise ItemEditError.translatable(
                N_("the body has no paragraph: separate paragraphs by blank lines"))
        if dateline is not None and changes.place is None:
            values["place"] = dateline
        values["body"] = PARAGRAPH_SEPARATOR.join(paragraphs)
    if changes.place is not None:
        place = " ".join(changes.place.split())
        check_characters(where, "--place", "the place", place)
        check_length(where, "--place", "the place", place, MAX_PLACE_LENGTH)
        values["place"] = place or None
    if changes.published is not None:
        try:
            values["published"] = parse_date(changes.published)
        except ValueError as exc:
            raise ItemEditError.translatable(
                N_("the date cannot be read (%(problem)s): write dates like '10 October, "
                   "2019', 'October 10, 2019' or '2019-10-10'"), problem=str(exc),
                hint=" (--date)") from None
    if changes.url is not None:
        url = changes.url.strip()
        if url and not re.match(r"https?://\S+$", url):
            raise ItemEditError.translatable(
                N_("%(url)r is not an http(s) address: write the full address, starting "
                   "with https://"), url=url, hint=' (--url; "" removes it)')
        check_characters(where, "--url", "the address", url)
        check_length(where, "--url", "the address", url, MAX_URL_LENGTH)
        values["url"] = url or None
    if changes.language is not None:
        language = changes.language.strip().lower()
        if not LANGUAGE_CODE.fullmatch(language):
            raise ItemEditError.translatable(
                N_("%(language)r is not a language code: use a code such as 'en' or 'es'"),
                language=language, hint=" (--language)")
        values["language"] = language
    return values


def delete_item(session: Session, item_id: int) -> tuple[Item, list[str]]:
    """Delete an item, taking it out of the draft issues that hold it (their stored
    renders are dropped, to be made again); returns the item and those drafts' names.

    An item in an issue that is approved, scheduled, sending, sent (or paused or
    cancelled part-way) stays: what readers got, and its web copy, must not change.
    A deleted item stays deleted: re-imports and feed fetches skip its source key.
    """
    item = get_item(session, item_id)
    issues = list(session.scalars(
        select(Issue).join(IssueItem, IssueItem.issue_id == Issue.id)
        .where(IssueItem.item_id == item_id).order_by(Issue.slug)
    ))
    kept = [f"{issue.slug} ({issue.status})" for issue in issues if issue.status != "draft"]
    if kept:
        raise ItemEditError.translatable(
            N_("item %(id)s is in issue %(issues)s, which readers may have received: it "
               "stays, so that what was sent and its web copy do not change; correct its "
               "text instead (sent copies keep theirs)"), id=item_id, issues=", ".join(kept),
            hint=f" (`newsletter items edit {item_id}`)")
    drafts = [issue.id for issue in issues]
    if drafts:
        session.execute(delete(IssueItem).where(IssueItem.item_id == item_id))
        session.execute(delete(IssueVariant).where(IssueVariant.issue_id.in_(drafts)))
        for issue in issues:
            session.expire(issue, ["entries"])
    session.delete(item)
    # remembered, so that importing its file again or the next fetch of its feed does not
    # bring it back (`store_items` skips deleted keys)
    session.merge(DeletedItem(source_key=item.source_key, title=item.title[:300]))
    session.flush()
    return item, [issue.slug for issue in issues]

