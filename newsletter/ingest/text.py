"""The plain-text item format: a date line, a one-line title, then paragraphs.

Example (blank lines separate every part; more than one blank line is fine)::

    10 October, 2019

    A one-line title

    San José. The first paragraph, which may start with a dateline place.

    A second paragraph, which may be wrapped
    over several lines.

Parsing is all-or-nothing: a file either yields every item or raises ItemFormatError
naming the line at fault, so a half-imported file never reaches the database.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date

from newsletter import geo
from newsletter.ingest.model import MAX_PLACE_LENGTH, ItemFormatError, ParsedItem, check_characters

MAX_TITLE_LENGTH = 200

DATE_HINT = "write dates like '10 October, 2019', 'October 10, 2019' or '2019-10-10'"
LAYOUT_HINT = (
    "each item is a date line, a blank line, a one-line title, a blank line, "
    "then one or more paragraphs separated by blank lines"
)

MONTHS: dict[str, int] = {
    # English, with the usual abbreviations
    "january": 1, "february": 2, "march": 3, "april": 4, "may": 5, "june": 6,
    "july": 7, "august": 8, "september": 9, "october": 10, "november": 11, "december": 12,
    "jan": 1, "feb": 2, "mar": 3, "apr": 4, "jun": 6, "jul": 7, "aug": 8,
    "sep": 9, "sept": 9, "oct": 10, "nov": 11, "dec": 12,
    # Spanish ("setiembre" is common in Central America)
    "enero": 1, "febrero": 2, "marzo": 3, "abril": 4, "mayo": 5, "junio": 6,
    "julio": 7, "agosto": 8, "septiembre": 9, "setiembre": 9, "octubre": 10,
    "noviembre": 11, "diciembre": 12,
    "ene": 1, "abr": 4, "ago": 8, "dic": 12,
}

_WORD = r"([^\W\d_]+)"
_ORDINAL = r"(?:st|nd|rd|th|º|°)?"
# These describe the SHAPE of a date, with any word as month and any number as day, so
# that "32 October, 2019" or "10 Octobr, 2019" is reported instead of read as a title.
_DAY_MONTH_YEAR = re.compile(
    rf"(\d{{1,2}}){_ORDINAL}\s+(?:de\s+)?{_WORD}\.?,?\s+(?:del?\s+)?(\d{{4}})", re.IGNORECASE
)
_MONTH_DAY_YEAR = re.compile(rf"{_WORD}\.?\s+(\d{{1,2}}){_ORDINAL},?\s+(\d{{4}})", re.IGNORECASE)
_ISO = re.compile(r"(\d{4})-(\d{1,2})-(\d{1,2})")

# Dateline place: capitalised words, with Spanish connectors and commas between them.
_UPPER = "A-ZÀ-ÖØ-Þ"
_CAP_WORD = rf"[{_UPPER}][\w'’-]*"
_CONNECTOR = r"(?:de|del|la|las|los|y)"
_PLACE = rf"{_CAP_WORD}(?:,?\s(?:{_CONNECTOR}\s){{0,2}}{_CAP_WORD}){{0,5}}"
_SEPARATOR = r"(?:\.\s+(?:[–—-]\s+)?|\s*[–—]\s*|\s+-\s+)"
_STARTS_SENTENCE = rf"(?=[{_UPPER}0-9\"“‘'¿¡(])"
_DATELINE = re.compile(rf"(?P<place>{_PLACE})(?P<sep>{_SEPARATOR}){_STARTS_SENTENCE}")
# "Dr. Ramírez said..." is a title, not a place.
_ABBREVIATIONS = frozenset(
    {"mr", "mrs", "ms", "dr", "st", "sr", "sra", "srta", "lic", "ing", "gen", "jr", "no", "inc"}
)


def date_shaped(line: str) -> bool:
    """Whether a line is laid out like a date, valid or not."""
    return any(p.fullmatch(line) for p in (_DAY_MONTH_YEAR, _MONTH_DAY_YEAR, _ISO))


def parse_date(line: str) -> date:
    """Read a date in any accepted form; ValueError says what is wrong with it.

    Shared with the JSON format so both accept exactly the same dates.
    """
    text = " ".join(line.split())
    if m := _ISO.fullmatch(text):
        year, month, day = int(m[1]), int(m[2]), int(m[3])
    elif m := _DAY_MONTH_YEAR.fullmatch(text):
        day, month, year = int(m[1]), _month(m[2]), int(m[3])
    elif m := _MONTH_DAY_YEAR.fullmatch(text):
        month, day, year = _month(m[1]), int(m[2]), int(m[3])
    else:
        raise ValueError(f"{text!r} is not a date")
    try:
        return date(year, month, day)
    except ValueError as exc:
        raise ValueError(f"{text!r} is not a valid date: {exc}") from None


def _month(word: str) -> int:
    """Month number for an English or Spanish month name."""
    number = MONTHS.get(word.casefold())
    if number is None:
        raise ValueError(f"unknown month {word!r}")
    return number


def split_dateline(paragraph: str) -> tuple[str | None, str]:
    """Split "San José. The First..." into ("San José", "The First...").

    Returns (None, paragraph) when the paragraph does not open with a dateline place (a
    "place" longer than the column holds is a run of capitalised words, not a place).
    """
    m = _DATELINE.match(paragraph)
    if m is None:
        return None, paragraph
    place = m["place"].rstrip(",")
    last_word = place.rsplit(maxsplit=1)[-1].casefold()
    if last_word in _ABBREVIATIONS or len(place) > MAX_PLACE_LENGTH:
        return None, paragraph
    rest = paragraph[m.end():]
    if not rest:
        return None, paragraph
    return place, rest


def split_paragraphs(text: str) -> list[str]:
    """Text cut at blank lines, each paragraph stripped, empty ones dropped: a JSON item's
    "body", `--body-file` and an issue's introduction all separate paragraphs this way."""
    unix = text.replace("\r\n", "\n").replace("\r", "\n")
    return [p.strip() for p in re.split(r"\n[ \t\u00a0]*\n", unix) if p.strip()]


def typed_paragraphs(
    source: str, where: str, paragraphs: list[str]
) -> tuple[str | None, list[str]]:
    """Paragraphs a person gave (`items edit`, `items translate`) taken as an import takes
    them: each on one line, checked for characters no email can carry, and a leading
    dateline taken off the first and returned apart. ([] when there is no text.)"""
    clean = [" ".join(p.split()) for p in paragraphs if p.strip()]
    for number, paragraph in enumerate(clean, start=1):
        check_characters(source, where, f"paragraph {number}", paragraph)
    if not clean:
        return None, clean
    dateline, clean[0] = split_dateline(clean[0])
    return dateline, clean


@dataclass
class _Block:
    """Consecutive non-blank lines: a date line always makes a block on its own."""

    first_line: int
    lines: list[str] = field(default_factory=list)
    published: date | None = None  # set for date lines


def _blocks(text: str, source: str) -> list[_Block]:
    """Cut the text into blocks, checking every date-shaped line on the way."""
    text = text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    blocks: list[_Block] = []
    current: _Block | None = None
    for number, raw in enumerate(text.split("\n"), start=1):
        line = " ".join(raw.split())  # also turns no-break spaces into plain ones
        if not line:
            current = None
        elif date_shaped(line):
            try:
                published = parse_date(line)
            except ValueError as exc:
                raise ItemFormatError(
                    source, f"line {number}", f"this looks like a date but {exc}",
                    f"{DATE_HINT}; check the day and the spelling of the month",
                ) from None
            blocks.append(_Block(number, [line], published))
            current = None
        elif current is None:
            current = _Block(number, [line])
            blocks.append(current)
        else:
            current.lines.append(line)
    return blocks


def parse_text(text: str, source: str = "<text>", language: str = "en") -> list[ParsedItem]:
    """Read every item of a plain-text file, or raise ItemFormatError naming the bad line."""
    blocks = _blocks(text, source)
    if not blocks:
        raise ItemFormatError(
            source, "line 1", "the file contains no news items",
            f"start the file with a date line such as '10 October, 2019'; {LAYOUT_HINT}",
        )
    if blocks[0].published is None:
        raise ItemFormatError(
            source, f"line {blocks[0].first_line}", "text before the first date line",
            "a file must start with a date line such as '10 October, 2019'; "
            "remove this text or put a date line above it",
        )
    items: list[ParsedItem] = []
    i = 0
    while i < len(blocks):
        dated = blocks[i]
        published = dated.published
        assert published is not None  # every block that starts an item is a date line
        i += 1
        if i == len(blocks) or blocks[i].published is not None:
            raise ItemFormatError(
                source, f"line {dated.first_line}", "date line without a title after it",
                f"add a one-line title after the date, or remove the date; {LAYOUT_HINT}",
            )
        title_block = blocks[i]
        title = title_block.lines[0]
        where = f"line {title_block.first_line}"
        check_characters(source, where, "the title", title)
        if len(title) > MAX_TITLE_LENGTH:
            raise ItemFormatError(
                source, where,
                f"the title is {len(title)} characters long (at most {MAX_TITLE_LENGTH}); "
                "it is probably a paragraph",
                "a title must be a single short line followed by a blank line; "
                "add the missing title above this line",
            )
        if len(title_block.lines) > 1:
            raise ItemFormatError(
                source, f"line {title_block.first_line + 1}",
                "the title continues on this line",
                "a title must be a single line followed by a blank line; join the lines, "
                "or add a blank line if this line starts the first paragraph",
            )
        i += 1
        paragraphs: list[str] = []
        while i < len(blocks) and blocks[i].published is None:
            for offset, line in enumerate(blocks[i].lines):
                check_characters(source, f"line {blocks[i].first_line + offset}",
                                 f"paragraph {len(paragraphs) + 1}", line)
            paragraphs.append(" ".join(blocks[i].lines))
            i += 1
        if not paragraphs:
            raise ItemFormatError(
                source, where, "title without any paragraph after it",
                f"add at least one paragraph after the title; {LAYOUT_HINT}",
            )
        place, paragraphs[0] = split_dateline(paragraphs[0])
        items.append(
            ParsedItem(
                published=published,
                title=title,
                paragraphs=tuple(paragraphs),
                place=place,
                language=language,
                countries=geo.detect_countries(place, " ".join([title, *paragraphs])),
                line=dated.first_line,
            )
        )
    return items
