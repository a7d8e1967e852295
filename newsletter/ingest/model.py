"""The shape every ingest format produces, before anything touches the database."""

from __future__ import annotations

import hashlib
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

    @property
    def source_key(self) -> str:
        """A stable key: the same date and title is the same item, however often imported."""
        title = re.sub(r"\s+", " ", self.title).strip().casefold()
        raw = f"{self.published.isoformat()}\n{title}".encode()
        return hashlib.sha256(raw).hexdigest()[:32]
