"""The newsroom's subscriber search: the CLI's `Filter` (country, language, status, list...)
and words, each found in the address or the name (any case), one page at a time.

The export of a search selects the same people: `words_condition` is what both add to
the filter's condition."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, and_, func, or_, select, true
from sqlalchemy.orm import Session

from subscribers.filters import Filter, condition
from subscribers.models import Subscriber

MAX_WORDS = 10


def split_words(words: str) -> tuple[str, ...]:
    """The words of a search box: at most MAX_WORDS, without NUL (PostgreSQL refuses it)."""
    return tuple(w for w in words.replace("\x00", " ").lower().split() if w)[:MAX_WORDS]


def words_condition(words: str) -> ColumnElement[bool]:
    """Every word is in the address or in the name (case-insensitive, as characters:
    % and _ are not wildcards)."""
    return and_(true(), *(
        or_(Subscriber.email_key.contains(w, autoescape=True),
            func.lower(Subscriber.name).contains(w, autoescape=True))
        for w in split_words(words)))


@dataclass(frozen=True)
class Found:
    people: list[Subscriber]
    total: int
    page: int
    per_page: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))


def search_subscribers(
    session: Session, f: Filter, *, words: str = "", page: int = 1, per_page: int = 50
) -> Found:
    """The people `f` and `words` select, oldest first (by id), page `page` (1 is the
    first; a page past the last is the last). Raises `FilterError` as the filter does."""
    where = and_(condition(session, f), words_condition(words))
    total = int(session.scalar(select(func.count()).select_from(Subscriber).where(where)) or 0)
    pages = max(1, -(-total // per_page))
    page = min(max(1, page), pages)
    people = list(session.scalars(
        select(Subscriber).where(where).order_by(Subscriber.id)
        .limit(per_page).offset((page - 1) * per_page)))
    return Found(people, total, page, per_page)
