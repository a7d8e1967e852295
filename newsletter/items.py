"""News items: reading files into the database, and listing what is there."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from newsletter import geo
from newsletter.db import MAX_ID
from newsletter.errors import N_, NewsletterError
from newsletter.i18n import SOURCE_LANGUAGE
from newsletter.ingest.jsonfile import parse_json
from newsletter.ingest.language import detect_language
from newsletter.ingest.model import (
    LANGUAGE_CODE,
    MAX_PLACE_LENGTH,
    ItemFormatError,
    ParsedItem,
    ParsedText,
    check_characters,
    check_length,
)
from newsletter.ingest.text import MAX_TITLE_LENGTH, parse_text, typed_paragraphs
from newsletter.models import PARAGRAPH_SEPARATOR, DeletedItem, Item, ItemTranslation


@dataclass(frozen=True)
class ItemImportReport:
    added: int
    updated: int
    unchanged: int
    kept: int = 0  # items whose file changed a field a person had edited: the edit stayed
    refound: int = 0  # items found again by date and first paragraph (their title changed)
    # new items with the date and place of a stored item this import did not touch: an
    # item whose title and first paragraph both changed, perhaps (ids of the stored ones)
    lookalikes: tuple[int, ...] = ()
    withheld: int = 0  # items a person deleted: not brought back


def read_items(
    path: Path, *, language: str | None = "en", among: Sequence[str] | None = None
) -> list[ParsedItem]:
    """Parse an item file by its extension (`.json`, anything else: the text format).

    `language` None: detect each item's language (one of `among`, see
    `newsletter.ingest.language`); a JSON item's own "language" field always wins.
    """
    source = str(path)
    if language is not None:
        language = language.strip().lower()
        if not LANGUAGE_CODE.fullmatch(language):
            raise NewsletterError(f"--language {language!r} is not a language code: use one "
                                  "such as 'en' or 'es'")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ItemFormatError(source, "file", f"cannot be read: {exc.strerror}") from exc
    return parse_bytes(raw, source, language=language, json=path.suffix.lower() == ".json",
                       among=among)


def parse_bytes(
    raw: bytes, source: str, *, language: str | None, json: bool,
    among: Sequence[str] | None = None,
) -> list[ParsedItem]:
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ItemFormatError(
            source, f"line {line}", "is not valid UTF-8", "save the file as UTF-8"
        ) from exc
    if json:
        items = parse_json(text, source, default_language=language or "")
    else:
        items = parse_text(text, source, language=language or "")
    return [item if item.language else _detected(item, among) for item in items]


def _detected(item: ParsedItem, among: Sequence[str] | None) -> ParsedItem:
    """The item in the language its words are in; the first of `among` (or English)
    when the detector is not sure."""
    others = {language for language, _ in item.translations}
    candidates = [c for c in among or () if c not in others] or None
    found = detect_language(" ".join([item.title, *item.paragraphs]), candidates)
    fallback = next(iter(candidates or ()), SOURCE_LANGUAGE)
    return replace(item, language=found or fallback, detected=found is not None)


def _source_fields(p: ParsedItem) -> dict[str, object]:
    return {
        "published": p.published,
        "title": p.title,
        "place": p.place,
        "body": PARAGRAPH_SEPARATOR.join(p.paragraphs),
        "language": p.language,
        "url": p.url,
        "countries": ",".join(p.countries),
    }


def store_items(session: Session, parsed: Sequence[ParsedItem]) -> ItemImportReport:
    """Add new items and refresh those whose file changed; the same item twice is stored once.

    An item is found again by its source key (date and title) or, when its title was
    corrected in the file, by its fingerprint (date and first paragraph). A field a person
    changed (`items edit`, `tag`, `translate`) keeps the person's value: only a change in
    the file itself updates an item, and then only the fields nobody edited.
    """
    by_key = {p.source_key: p for p in parsed}
    deleted = set(session.scalars(select(DeletedItem.source_key)
                                  .where(DeletedItem.source_key.in_(list(by_key)))))
    by_key = {key: p for key, p in by_key.items() if key not in deleted}
    existing = {
        item.source_key: item
        for item in session.scalars(select(Item).where(Item.source_key.in_(list(by_key))))
    }
    by_print: dict[str, Item] = {}
    prints = list({p.fingerprint for p in by_key.values()})
    for found in session.scalars(select(Item).where(Item.fingerprint.in_(prints))
                                 .order_by(Item.id)):
        by_print.setdefault(found.fingerprint or "", found)
    claimed = {found.id for found in existing.values()}
    added = updated = unchanged = kept = refound = 0
    fresh: list[Item] = []
    for key, p in by_key.items():
        item = existing.get(key)
        if item is None:
            candidate = by_print.get(p.fingerprint)
            if (candidate is not None and candidate.id not in claimed
                    and candidate.source_key not in by_key):
                item = candidate
                refound += 1
        if item is None:
            item = Item(source_key=key, source_hash=p.content_hash, fingerprint=p.fingerprint,
                        edited="", **_source_fields(p))
            session.add(item)
            _set_translations(item, p.translations)
            fresh.append(item)
            added += 1
            continue
        claimed.add(item.id)
        if item.source_hash == p.content_hash and item.source_key == key:
            unchanged += 1
            continue
        if item.source_hash is None:
            # Stored before edits were recorded: what differs from the file can only be
            # a person's correction, so it is marked as one and kept.
            _adopt_legacy(item, p)
            item.source_key, item.fingerprint = key, p.fingerprint
            unchanged += 1
            continue
        changed, overruled = _refresh(item, p)
        item.source_key, item.source_hash, item.fingerprint = key, p.content_hash, p.fingerprint
        updated += changed
        unchanged += not changed
        kept += overruled
    session.flush()
    return ItemImportReport(added, updated, unchanged, kept, refound,
                            _lookalikes(session, fresh, claimed), withheld=len(deleted))


def _lookalikes(session: Session, fresh: Sequence[Item], claimed: set[int]) -> tuple[int, ...]:
    """Stored items, not in this import, with the date and place of a new one."""
    wanted = {(item.published, item.place) for item in fresh if item.place}
    if not wanted:
        return ()
    new = {item.id for item in fresh}
    rows = session.execute(
        select(Item.id, Item.published, Item.place)
        .where(Item.published.in_({day for day, _ in wanted}))
        .order_by(Item.id)
    )
    return tuple(row_id for row_id, day, place in rows
                 if (day, place) in wanted and row_id not in new and row_id not in claimed)


def _refresh(item: Item, p: ParsedItem) -> tuple[bool, bool]:
    """Take the file's fields nobody edited: (anything changed, an edit was kept)."""
    edited = item.edited_fields
    changed = overruled = False
    for name, value in _source_fields(p).items():
        if getattr(item, name) == value:
            continue
        if name in edited:
            overruled = True
            continue
        setattr(item, name, value)
        changed = True
    mine = {f.partition(":")[2] for f in edited if f.startswith("translation:")}
    theirs = [(lang, t) for lang, t in p.translations if lang not in mine]
    overruled |= len(theirs) < len(p.translations)
    changed |= _set_translations(item, theirs)
    return changed, overruled


def _adopt_legacy(item: Item, p: ParsedItem) -> None:
    """Record the file's hash for an item imported before hashes were kept."""
    differs = [name for name, value in _source_fields(p).items()
               if getattr(item, name) != value]
    for language, text in p.translations:
        current = item.translations.get(language)
        body = PARAGRAPH_SEPARATOR.join(text.paragraphs)
        if current is None:
            item.translations[language] = ItemTranslation(
                language=language, title=text.title, place=text.place, body=body
            )
        elif (current.title, current.place, current.body) != (text.title, text.place, body):
            differs.append(f"translation:{language}")
    item.mark_edited(*differs)
    item.source_hash = p.content_hash


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
    # an id no integer column holds (typed by a person) is simply not there
    item = session.get(Item, item_id) if 0 < item_id <= MAX_ID else None
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
            raise NewsletterError.translatable(
                N_("%(value)r is not a known country: use an ISO 3166-1 code such as CR or NI"),
                value=value)
        if code not in codes:
            codes.append(code)
    item.countries = ",".join(codes)
    item.mark_edited("countries")
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
    """Add or replace an item's text in `language`.

    A leading dateline ("San José. ...") is taken off the first paragraph, as the text
    format does, and becomes the translation's place unless `place` is given: the email
    prints the place itself before the first paragraph.
    """
    item = get_item(session, item_id)
    language = language.strip().lower().split("-")[0]
    if not LANGUAGE_CODE.fullmatch(language):
        raise NewsletterError.translatable(
            N_("%(language)r is not a language code: use one such as 'es'"), language=language)
    if language == item.language:
        raise NewsletterError.translatable(
            N_("item %(id)s is written in %(language)s: a translation must be in another "
               "language"), id=item_id, language=language)
    title = " ".join(title.split())
    source, where = f"item {item_id}", f"{language} translation"
    dateline, clean = typed_paragraphs(source, where, list(paragraphs))
    if not title or not clean:
        raise NewsletterError.translatable(
            N_("a translation needs a title and at least one paragraph"))
    for what, value, limit in (("the title", title, MAX_TITLE_LENGTH),
                               ("the place", place, MAX_PLACE_LENGTH)):
        check_characters(source, where, what, value)
        check_length(source, where, what, value, limit)
    text = ParsedText(title=title, paragraphs=tuple(clean),
                      place=place or dateline or item.place)
    _set_translations(item, [(language, text)])
    item.mark_edited(f"translation:{language}")
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
        # autoescape: "%" and "_" are characters here, not LIKE wildcards
        stmt = stmt.where(("," + Item.countries + ",").contains(f",{code},", autoescape=True))
    if since is not None:
        stmt = stmt.where(Item.published >= since)
    if until is not None:
        stmt = stmt.where(Item.published <= until)
    return list(session.scalars(stmt))


@dataclass(frozen=True)
class ItemPage:
    """One page of a search: the items on it, how many match in all, and the page."""

    items: list[Item]
    total: int
    page: int
    per_page: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))


def search_items(
    session: Session,
    *,
    words: str = "",
    since: date | None = None,
    until: date | None = None,
    country: str | None = None,
    language: str | None = None,
    page: int = 1,
    per_page: int = 25,
) -> ItemPage:
    """Items newest first (as `list_items`), each word of `words` in the title or the body
    (any case: ASCII letters only on SQLite), written in `language`; one page of them."""
    where: list[ColumnElement[bool]] = []
    # NUL is in no stored text, and PostgreSQL refuses it in a query
    words = words.replace("\x00", "")
    country = country.replace("\x00", "") if country else None
    language = language.replace("\x00", "") if language else None
    for word in words.split()[:10]:
        needle = word.lower()
        where.append(func.lower(Item.title).contains(needle, autoescape=True)
                     | func.lower(Item.body).contains(needle, autoescape=True))
    if country and country.strip():
        code = country.strip().upper()
        where.append(("," + Item.countries + ",").contains(f",{code},", autoescape=True))
    if language and language.strip():
        where.append(Item.language == language.strip().lower())
    if since is not None:
        where.append(Item.published >= since)
    if until is not None:
        where.append(Item.published <= until)
    total = session.scalar(select(func.count()).select_from(Item).where(*where)) or 0
    per_page = max(1, min(per_page, 200))
    page = max(1, min(page, -(-total // per_page) or 1))
    rows = list(session.scalars(select(Item).where(*where)
                                .order_by(Item.published.desc(), Item.id)
                                .offset((page - 1) * per_page).limit(per_page)))
    return ItemPage(rows, total, page, per_page)


def import_summary(read: int, report: ItemImportReport) -> str:
    """The one line `items import` prints (and the newsroom's upload shows)."""
    line = (f"{read} items read: {report.added} added, {report.updated} updated, "
            f"{report.unchanged} already there")
    if report.refound:
        line += (f"; {report.refound} found again by date and first paragraph (their title "
                 "changed in the file)")
    if report.lookalikes:
        shown = ", ".join(map(str, report.lookalikes))
        line += (f"; new items share their date and place with item(s) {shown}: if a new "
                 "one replaces an old one, `newsletter items delete` the old")
    if report.kept:
        line += (f"; {report.kept} kept a person's edits where the file changed the same "
                 "field (`items edit` to change them)")
    if report.withheld:
        line += f"; {report.withheld} deleted earlier with `items delete`, not brought back"
    return line


def count_items(session: Session) -> int:
    """How many items there are (the newsroom's dashboard)."""
    return session.scalar(select(func.count()).select_from(Item)) or 0
