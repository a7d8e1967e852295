"""The JSON item format: a list of objects, for items exported from other systems.

Example::

    [{"date": "2019-10-10", "title": "A title", "place": "San José",
      "paragraphs": ["First.", "Second."], "language": "en",
      "url": "https://example.org/news/1", "countries": ["CR"]}]

"body" (one string, paragraphs separated by blank lines) may replace "paragraphs".
Like the text format it is all-or-nothing, and errors name the item (1-based) or line.
"""

from __future__ import annotations

import json
import re
from typing import Any

from newsletter import geo
from newsletter.ingest.model import (
    LANGUAGE_CODE,
    MAX_PLACE_LENGTH,
    MAX_URL_LENGTH,
    ItemFormatError,
    ParsedItem,
    ParsedText,
    check_characters,
    check_length,
)
from newsletter.ingest.text import DATE_HINT, MAX_TITLE_LENGTH, parse_date, split_paragraphs

FIELDS = ("date", "title", "place", "paragraphs", "body", "language", "url", "countries",
          "translations")
TRANSLATION_FIELDS = ("title", "place", "paragraphs", "body")


def _json_type(value: object) -> str:
    """The JSON name of a decoded value's type, for messages a JSON author understands."""
    names = {dict: "object", list: "array", str: "string", bool: "boolean", int: "number",
             float: "number", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def _clean(text: str) -> str:
    """Strip, and collapse runs of whitespace (including newlines) into one space."""
    return " ".join(text.split())


class _Item:
    """Reads the fields of one JSON object, raising errors that name the item."""

    def __init__(self, data: dict[str, Any], number: int, source: str) -> None:
        self.data = data
        self.where = f"item {number}"
        self.source = source

    def error(self, problem: str, hint: str = "") -> ItemFormatError:
        return ItemFormatError(self.source, self.where, problem, hint)

    def string(self, name: str) -> str | None:
        """A stripped string field; None when absent, null or blank."""
        value = self.data.get(name)
        if value is None:
            return None
        if not isinstance(value, str):
            raise self.error(
                f"field {name!r} must be a string, not {_json_type(value)}",
                f'write it in double quotes, e.g. "{name}": "..."',
            )
        check_characters(self.source, self.where, f"field {name!r}", value)
        return value.strip() or None

    def required_string(self, name: str) -> str:
        """Like string(), but the field must be there and not blank."""
        value = self.string(name)
        if value is None:
            raise self.error(f"field {name!r} is missing or empty", f"give the item a {name}")
        return value

    def strings(self, name: str) -> list[str] | None:
        """A list-of-strings field; None when absent or null."""
        value = self.data.get(name)
        if value is None:
            return None
        example = f'e.g. "{name}": ["...", "..."]'
        if not isinstance(value, list):
            raise self.error(
                f"field {name!r} must be a list of strings, not {_json_type(value)}", example
            )
        for index, entry in enumerate(value, start=1):
            if not isinstance(entry, str):
                raise self.error(
                    f"field {name!r}: entry {index} is a {_json_type(entry)}, not a string",
                    example,
                )
            check_characters(self.source, self.where, f"field {name!r}, entry {index},", entry)
        return [v.strip() for v in value]

    def fits(self, name: str, value: str | None, limit: int) -> None:
        check_length(self.source, self.where, f"field {name!r}", value, limit)


def _place(item: _Item) -> str | None:
    place = item.string("place")
    place = _clean(place) if place else None
    item.fits("place", place, MAX_PLACE_LENGTH)
    return place


def _paragraphs(item: _Item) -> list[str]:
    """The 'paragraphs' list or the 'body' text, as a list of non-empty paragraphs."""
    paragraphs = item.strings("paragraphs")
    body = item.string("body")
    if paragraphs is not None and body is not None:
        raise item.error("both 'paragraphs' and 'body' are given", "keep only one of them")
    if paragraphs is not None:
        for index, paragraph in enumerate(paragraphs, start=1):
            if not paragraph:
                raise item.error(f"field 'paragraphs': entry {index} is empty", "remove it")
        paragraphs = [_clean(p) for p in paragraphs]
    elif body is not None:
        paragraphs = [_clean(c) for c in split_paragraphs(body)]
    if not paragraphs:
        raise item.error(
            "the item has no paragraphs",
            "give 'paragraphs' (a list of strings) or 'body' (paragraphs separated by blank "
            "lines)",
        )
    return paragraphs


def _translations(item: _Item, source_language: str) -> tuple[tuple[str, ParsedText], ...]:
    """`"translations": {"es": {"title": ..., "paragraphs": [...]}}`, checked like the item."""
    value = item.data.get("translations")
    if value is None:
        return ()
    example = '"translations": {"es": {"title": "...", "paragraphs": ["..."]}}'
    if not isinstance(value, dict):
        raise item.error(f"field 'translations' must be an object, not {_json_type(value)}",
                         example)
    found: list[tuple[str, ParsedText]] = []
    for language, entry in value.items():
        where = _Item(entry if isinstance(entry, dict) else {}, 0, item.source)
        where.where = f"{item.where}, translation {language!r}"
        if not LANGUAGE_CODE.fullmatch(language.lower()) or language.lower() == source_language:
            raise where.error("is not another language code", "use a code such as 'es'")
        if not isinstance(entry, dict):
            raise where.error(f"must be an object, not {_json_type(entry)}", example)
        unknown = sorted(set(entry) - set(TRANSLATION_FIELDS))
        if unknown:
            raise where.error(f"unknown field(s) {', '.join(map(repr, unknown))}",
                              f"allowed fields are {', '.join(TRANSLATION_FIELDS)}")
        title = _clean(where.required_string("title"))
        where.fits("title", title, MAX_TITLE_LENGTH)
        place = _place(where)
        found.append((language.lower(), ParsedText(
            title=title, paragraphs=tuple(_paragraphs(where)), place=place,
        )))
    return tuple(found)


def _parse_item(item: _Item, default_language: str) -> ParsedItem:
    """Check one object field by field and build its ParsedItem."""
    unknown = sorted(set(item.data) - set(FIELDS))
    if unknown:
        raise item.error(
            f"unknown field(s) {', '.join(repr(u) for u in unknown)}",
            f"allowed fields are {', '.join(FIELDS)}",
        )

    try:
        published = parse_date(item.required_string("date"))
    except ValueError as exc:
        raise item.error(f"field 'date': {exc}", DATE_HINT) from None

    title = _clean(item.required_string("title"))
    if len(title) > MAX_TITLE_LENGTH:
        raise item.error(
            f"field 'title' is {len(title)} characters long (at most {MAX_TITLE_LENGTH})",
            "a title is one short line; put longer text in 'paragraphs'",
        )

    paragraphs = _paragraphs(item)

    place = _place(item)

    # "" (no default): the language is detected after reading, see newsletter.items
    language = (item.string("language") or default_language).lower()
    if language and not LANGUAGE_CODE.fullmatch(language):
        raise item.error(f"field 'language': {language!r} is not a language code",
                         "use a code such as 'en' or 'es'")

    url = item.string("url")
    if url is not None and not re.match(r"https?://\S+$", url):
        raise item.error(f"field 'url': {url!r} is not an http(s) address",
                         "write the full address, starting with https://")
    item.fits("url", url, MAX_URL_LENGTH)

    codes = item.strings("countries")
    if codes is None:
        countries = geo.detect_countries(place, " ".join([title, *paragraphs]))
    else:
        found: list[str] = []
        for code in codes:
            known = geo.country_code(code)
            if known is None:
                raise item.error(f"field 'countries': unknown country {code!r}",
                                 "use ISO 3166 alpha-2 codes such as 'CR', 'NI' or 'MX'")
            if known not in found:
                found.append(known)
        countries = tuple(found)

    return ParsedItem(
        published=published,
        title=title,
        paragraphs=tuple(paragraphs),
        place=place,
        language=language,
        url=url,
        countries=countries,
        translations=_translations(item, language),
    )


MAX_DEPTH = 20  # an item file needs 5 levels: list, item, translations, language, paragraphs
MAX_DIGITS = 100  # no field is a number; a longer run of digits is not worth converting


def _line_at(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def _too_deep(text: str) -> int | None:
    """The offset where brackets nest deeper than MAX_DEPTH (outside strings), or None.

    Checked before decoding: Python's decoder recurses once per level and would stop
    with a RecursionError, naming no place in the file.
    """
    depth = 0
    for match in re.finditer(r'"(?:[^"\\]|\\.)*"|[\[{]|[\]}]', text):
        token = match.group()
        if token in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                return match.start()
        elif token in "]}":
            depth -= 1
    return None


def _whole_number(text: str) -> int | float:
    """json's parse_int: refuse numbers too long to convert (Python limits them to 4,300
    digits, and a ValueError would name no place)."""
    if len(text) > MAX_DIGITS:
        raise _LongNumber(text)
    return int(text)


class _LongNumber(Exception):
    def __init__(self, digits: str) -> None:
        self.digits = digits


def parse_json(
    text: str, source: str = "<json>", default_language: str = "en"
) -> list[ParsedItem]:
    """Read every item of a JSON file, or raise ItemFormatError naming the item or line."""
    text = text.removeprefix("\ufeff")
    deep = _too_deep(text)
    if deep is not None:
        raise ItemFormatError(
            source, f"line {_line_at(text, deep)}",
            f"the JSON nests more than {MAX_DEPTH} levels deep here",
            "an item file is a list of flat objects: check the brackets",
        )
    try:
        data = json.loads(text, parse_int=_whole_number)
    except json.JSONDecodeError as exc:
        raise ItemFormatError(
            source, f"line {exc.lineno}", f"invalid JSON: {exc.msg} (column {exc.colno})",
            "look for a missing comma, quote or bracket at or just before that place",
        ) from None
    except _LongNumber as exc:
        raise ItemFormatError(
            source, f"line {_line_at(text, text.find(exc.digits))}",
            f"a number of {len(exc.digits):,} digits",
            "no item field is a number: write text in double quotes",
        ) from None
    except RecursionError:  # nesting our scan did not see, e.g. a very deep stack already
        raise ItemFormatError(source, "line 1", "the JSON nests too deeply",
                              "an item file is a list of flat objects: check the brackets"
                              ) from None
    if not isinstance(data, list):
        raise ItemFormatError(
            source, "line 1", f"expected a list of items, found a JSON {_json_type(data)}",
            "wrap the items in [ ... ]",
        )
    if not data:
        raise ItemFormatError(source, "line 1", "the list contains no news items",
                              "add at least one item object")
    items: list[ParsedItem] = []
    for number, entry in enumerate(data, start=1):
        if not isinstance(entry, dict):
            raise ItemFormatError(
                source, f"item {number}", f"expected an object, found {_json_type(entry)}",
                'each item is written {"date": ..., "title": ..., "paragraphs": [...]}',
            )
        items.append(_parse_item(_Item(entry, number, source), default_language))
    return items
