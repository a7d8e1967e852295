"""News items: reading files into the database, and listing what is there."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.ingest.jsonfile import parse_json
from newsletter.ingest.model import ItemFormatError, ParsedItem
from newsletter.ingest.text import parse_text
from newsletter.models import PARAGRAPH_SEPARATOR, Item


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
            session.add(Item(source_key=key, **fields))
            added += 1
        elif all(getattr(item, k) == v for k, v in fields.items()):
            unchanged += 1
        else:
            for k, v in fields.items():
                setattr(item, k, v)
            updated += 1
    session.flush()
    return ItemImportReport(added, updated, unchanged)


def list_items(
    session: Session, *, since: date | None = None, until: date | None = None
) -> list[Item]:
    """Items newest first; within a day, in the order they were imported."""
    stmt = select(Item).order_by(Item.published.desc(), Item.id)
    if since is not None:
        stmt = stmt.where(Item.published >= since)
    if until is not None:
        stmt = stmt.where(Item.published <= until)
    return list(session.scalars(stmt))
