"""News items: reading files into the database, and listing what is there."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter import geo
from newsletter.errors import NewsletterError
from newsletter.ingest.jsonfile import parse_json
from newsletter.ingest.model import ItemFormatError, ParsedItem, ParsedText
from newsletter.ingest.text import parse_text
from newsletter.models import PARAGRAPH_SEPARATOR, Item, ItemTranslation


@dataclass(frozen=True)
class ItemImportReport:
    added: int
    updated: int
    unchanged: int


def read_items(path: Path, *, language: str = "en") -> list[ParsedItem]:
    """Parse an item file by its extension (`.json`, anything else: the text format)."""
    source = str(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ItemFormatError(source, "file", f"cannot be read: {exc.strerror}") from exc
    return parse_bytes(raw, source, language=language, json=path.suffix.lower() == ".json")


def parse_bytes(raw: bytes, source: str, *, language: str, json: bool) -> list[ParsedItem]:
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ItemFormatError(
            source, f"line {line}", "is not valid UTF-8", "save the file as UTF-8"
        ) from exc
    if json:
        return parse_json(text, source, default_language=language)
    return parse_text(text, source, language=language)


def store_items(session: Session, parsed: Sequence[ParsedItem]) -> ItemImportReport:
    """Add new items and refresh changed ones; the same item twice is stored once."""
    by_key = {p.source_key: p for p in parsed}
    existing = {
        item.source_key: item
        for item in session.scalars(select(Item).where(Item.source_key.in_(list(by_key))))
    }
    added = updated = unchanged = 0
    for key, p in by_key.items():
        fields = {
            "published": p.published,
            "title": p.title,
            "place": p.place,
            "body": PARAGRAPH_SEPARATOR.join(p.paragraphs),
            "language": p.language,
            "url": p.url,
            "countries": ",".join(p.countries),
        }
        item = existing.get(key)
        if item is None:
            item = Item(source_key=key, **fields)
            session.add(item)
            _set_translations(item, p.translations)
            added += 1
        elif all(getattr(item, k) == v for k, v in fields.items()) and not _set_translations(
            item, p.translations
        ):
            unchanged += 1
        else:
            for k, v in fields.items():
                setattr(item, k, v)
            updated += 1
    session.flush()
    return ItemImportReport(added, updated, unchanged)


def _set_translations(item: Item, translations: Sequence[tuple[str, ParsedText]]) -> bool:
    """Add or refresh translations; True if anything changed."""
    changed = False
    for language, text in translations:
        body = PARAGRAPH_SEPARATOR.join(text.paragraphs)
        current = item.translations.get(language)
        if current is None:
            item.translations[language] = ItemTranslation(
                language=language, title=text.title, place=text.place, body=body
            )
            changed = True
        elif (current.title, current.place, current.body) != (text.title, text.place, body):
            current.title, current.place, current.body = text.title, text.place, body
            changed = True
    return changed


class ItemNotFound(NewsletterError):
    def __init__(self, item_id: int) -> None:
        super().__init__(f"no item with id {item_id}: `newsletter items list` shows the ids")


def get_item(session: Session, item_id: int) -> Item:
    item = session.get(Item, item_id)
    if item is None:
        raise ItemNotFound(item_id)
    return item


def find_item(session: Session, published: date, title: str) -> Item:
    """The item with this date and title (matched as re-imports match: case, spacing aside)."""
    key = ParsedItem(published, title, ()).source_key
    item = session.scalar(select(Item).where(Item.source_key == key))
    if item is None:
        raise NewsletterError(f"no item titled {title!r} on {published}: import it first")
    return item


def tag_item(session: Session, item_id: int, countries: Sequence[str]) -> Item:
    """Set the countries an item is about (empty: none), replacing what detection found."""
    item = get_item(session, item_id)
    codes: list[str] = []
    for value in countries:
        code = geo.country_code(value)
        if code is None:
            raise NewsletterError(
                f"{value!r} is not a known country: use an ISO 3166-1 code such as CR or NI"
            )
        if code not in codes:
            codes.append(code)
    item.countries = ",".join(codes)
    session.flush()
    return item


def translate_item(
    session: Session,
    item_id: int,
    language: str,
    *,
    title: str,
    paragraphs: Sequence[str],
    place: str | None = None,
) -> Item:
    """Add or replace an item's text in `language`."""
    item = get_item(session, item_id)
    language = language.strip().lower().split("-")[0]
    if language == item.language:
        raise NewsletterError(
            f"item {item_id} is written in {language}: a translation must be in another language"
        )
    title = " ".join(title.split())
    clean = [" ".join(p.split()) for p in paragraphs if p.strip()]
    if not title or not clean:
        raise NewsletterError("a translation needs a title and at least one paragraph")
    text = ParsedText(title=title, paragraphs=tuple(clean), place=place or item.place)
    _set_translations(item, [(language, text)])
    session.flush()
    return item


def list_items(
    session: Session,
    *,
    since: date | None = None,
    until: date | None = None,
    country: str | None = None,
) -> list[Item]:
    """Items newest first; within a day, in the order they were imported."""
    stmt = select(Item).order_by(Item.published.desc(), Item.id)
    if country:
        code = country.strip().upper()
        # countries are stored "CR,NI": match a whole code, not a substring
        stmt = stmt.where(("," + Item.countries + ",").contains(f",{code},"))
    if since is not None:
        stmt = stmt.where(Item.published >= since)
    if until is not None:
        stmt = stmt.where(Item.published <= until)
    return list(session.scalars(stmt))
