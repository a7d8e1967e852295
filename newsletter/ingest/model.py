"""The shape every ingest format produces, before anything touches the database."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import date

from newsletter.errors import NewsletterError


class ItemFormatError(NewsletterError):
    """An item file that cannot be read; the message names the line (or entry) at fault."""

    def __init__(self, source: str, where: str, problem: str, hint: str = "") -> None:
        self.source = source
        self.where = where
        self.problem = problem
        self.hint = hint
        text = f"{source}, {where}: {problem}"
        if hint:
            text += f" ({hint})"
        super().__init__(text)


# Characters no email can carry: C0 controls other than tab and line breaks, DEL and the
# C1 controls (usually Windows-1252 text decoded as Latin-1), lone surrogates, and the
# Unicode noncharacters (U+FDD0-U+FDEF, and U+xFFFE/U+xFFFF in every plane). MJML's XML
# parser refuses most of them, and PostgreSQL refuses NUL.
UNUSABLE = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufdd0-\ufdef"
    + "".join(f"{chr(plane << 16 | 0xFFFE)}{chr(plane << 16 | 0xFFFF)}" for plane in range(17))
    + "]"
)


def unusable_character(text: str) -> str | None:
    """A description of the first character that cannot be mailed, or None."""
    found = UNUSABLE.search(text)
    if found is None:
        return None
    return f"U+{ord(found.group()):04X} at character {found.start() + 1}"


def check_characters(source: str, where: str, what: str, text: str | None) -> None:
    """Refuse a field holding a character no email can carry, naming file, place and field
    (`what`, e.g. "the title" or "field 'body'")."""
    if text is None:
        return
    problem = unusable_character(text)
    if problem is not None:
        raise ItemFormatError(
            source, where, f"{what} holds a control character or a non-character ({problem})",
            "remove it, it cannot be shown in an email; text pasted from another program "
            "sometimes carries them",
        )


# What the items and item_translations columns hold (newsletter.models): a longer value is
# refused with the file and field named, not left to PostgreSQL's DataError.
MAX_PLACE_LENGTH = 200
MAX_URL_LENGTH = 2000
LANGUAGE_CODE = re.compile(r"[a-z]{2,3}(?:-[a-z0-9]{2,4})?")  # es, es-419, zh-hant: 8 at most


def check_length(source: str, where: str, what: str, text: str | None, limit: int) -> None:
    """Refuse a field longer than its column, naming file, place and field."""
    if text is not None and len(text) > limit:
        raise ItemFormatError(source, where,
                              f"{what} is {len(text):,} characters long (at most {limit:,})",
                              "shorten it")


@dataclass(frozen=True)
class ParsedText:
    """An item's words in another language."""

    title: str
    paragraphs: tuple[str, ...]
    place: str | None = None


@dataclass(frozen=True)
class ParsedItem:
    """One news item as read from a file."""

    published: date
    title: str
    paragraphs: tuple[str, ...]
    place: str | None = None
    language: str = "en"
    url: str | None = None
    countries: tuple[str, ...] = field(default=())
    line: int | None = None  # where the item starts in its file, for messages
    translations: tuple[tuple[str, ParsedText], ...] = field(default=())
    detected: bool = False  # the language was detected, not given

    @property
    def fingerprint(self) -> str:
        """Date and opening paragraph: finds the item again after its title was corrected."""
        opening = re.sub(r"\s+", " ", self.paragraphs[0] if self.paragraphs else "")
        raw = f"{self.published.isoformat()}\n{opening.strip().casefold()}".encode()
        return hashlib.sha256(raw).hexdigest()[:32]

    @property
    def content_hash(self) -> str:
        """Everything the source says about the item: unchanged hash, unchanged source."""
        data = [self.published.isoformat(), self.title, self.place, list(self.paragraphs),
                self.language, self.url, list(self.countries),
                sorted([lang, t.title, t.place, list(t.paragraphs)]
                       for lang, t in self.translations)]
        raw = json.dumps(data, ensure_ascii=False).encode("utf-8", "surrogatepass")
        return hashlib.sha256(raw).hexdigest()[:32]

    @property
    def source_key(self) -> str:
        """A stable key: the same date and title is the same item, however often imported."""
        title = re.sub(r"\s+", " ", self.title).strip().casefold()
        raw = f"{self.published.isoformat()}\n{title}".encode()
        return hashlib.sha256(raw).hexdigest()[:32]
