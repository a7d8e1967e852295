"""Which subscribers: one filter type for CLI options, stored segments and issue targets.

A `Filter` compiles to a SQL condition over `subscribers`, so listing, exporting,
counting and planning deliveries all select people the same way, in the database.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, func, literal, or_, select, true
from sqlalchemy.orm import Session

from newsletter.errors import NewsletterError
from subscribers.models import (
    STATUSES,
    MailingList,
    Segment,
    Subscriber,
    Subscription,
)

NO_COUNTRY = "none"  # `--country none`: people who gave no country


class FilterError(NewsletterError):
    """A filter names something that does not exist or cannot be matched."""


@dataclass(frozen=True)
class Filter:
    email: str = ""  # substring, case-insensitive
    countries: tuple[str, ...] = ()
    languages: tuple[str, ...] = ()
    lists: tuple[str, ...] = ()  # list names: on any of them (not unsubscribed from it)
    statuses: tuple[str, ...] = ()
    segments: tuple[str, ...] = ()  # in any of these stored segments
    attributes: tuple[tuple[str, str], ...] = field(default=())

    def is_empty(self) -> bool:
        return self == Filter()

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["attributes"] = dict(self.attributes)
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in data.items() if v}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Filter:
        return cls(
            email=str(data.get("email", "")),
            countries=tuple(data.get("countries", ())),
            languages=tuple(data.get("languages", ())),
            lists=tuple(data.get("lists", ())),
            statuses=tuple(data.get("statuses", ())),
            segments=tuple(data.get("segments", ())),
            attributes=tuple(sorted(dict(data.get("attributes", {})).items())),
        )

    def describe(self) -> str:
        parts = [f"{k}={','.join(v) if isinstance(v, list) else v}"
                 for k, v in self.to_json().items()]
        return " ".join(parts) or "everyone"


def on_list(list_ids: Sequence[int], *, confirmed_only: bool = False) -> ColumnElement[bool]:
    """Subscribed to any of the lists (and, for sending, confirmed there)."""
    statuses = ("confirmed",) if confirmed_only else ("confirmed", "unconfirmed")
    return exists(
        select(Subscription.subscriber_id).where(
            Subscription.subscriber_id == Subscriber.id,
            Subscription.list_id.in_(list(list_ids)),
            Subscription.status.in_(statuses),
        )
    )


def list_ids(session: Session, names: Sequence[str]) -> list[int]:
    found = dict(
        session.execute(select(MailingList.name, MailingList.id).where(
            MailingList.name.in_(list(names))
        )).all()
    )
    missing = [n for n in names if n not in found]
    if missing:
        raise FilterError(
            f"no list called {', '.join(map(repr, missing))}: `newsletter lists list` "
            "shows the lists there are"
        )
    return [found[n] for n in names]


def condition(
    session: Session, f: Filter, _seen: frozenset[str] = frozenset()
) -> ColumnElement[bool]:
    """The SQL condition selecting the subscribers `f` describes."""
    parts: list[ColumnElement[bool]] = []
    if f.email:
        # autoescape: % and _ are characters here, not LIKE wildcards
        parts.append(Subscriber.email_key.contains(f.email.lower(), autoescape=True))
    if f.countries:
        codes = [c.upper() for c in f.countries if c.lower() != NO_COUNTRY]
        either = [Subscriber.country.in_(codes)] if codes else []
        if len(codes) != len(f.countries):
            either.append(Subscriber.country.is_(None))
        parts.append(or_(*either))
    if f.languages:
        # `es` is everyone who reads Spanish: es, es-CR, es-419 (tags are kept as given)
        tag = func.lower(Subscriber.language)
        wanted = [lang.strip().lower().replace("_", "-") for lang in f.languages]
        parts.append(or_(tag.in_(wanted),
                         *(tag.startswith(f"{w}-", autoescape=True) for w in wanted)))
    if f.statuses:
        unknown = [s for s in f.statuses if s not in STATUSES]
        if unknown:
            raise FilterError(f"unknown status {unknown[0]!r}: use one of {', '.join(STATUSES)}")
        parts.append(Subscriber.status.in_(list(f.statuses)))
    if f.lists:
        parts.append(on_list(list_ids(session, f.lists)))
    for key, value in f.attributes:
        parts.append(attribute_equals(session, key, value))
    if f.segments:
        parts.append(or_(*(segment_condition(session, name, _seen) for name in f.segments)))
    return and_(true(), *parts)


def attribute_equals(session: Session, key: str, value: str) -> ColumnElement[bool]:
    """The attribute `key` is `value`, for any key: both are bound parameters, never part
    of a JSON path (SQLite's `$."key"` has no escape for a quote in the key)."""
    if session.get_bind().dialect.name == "sqlite":
        each = func.json_each(Subscriber.attributes).table_valued("key", "value")
        return exists(select(each.c.key).where(each.c.key == key, each.c.value == value))
    return Subscriber.attributes.op("->>")(literal(key)) == literal(value)


def segment_condition(
    session: Session, name: str, _seen: frozenset[str] = frozenset()
) -> ColumnElement[bool]:
    if name in _seen:
        raise FilterError(f"segment {name!r} refers to itself")
    segment = session.scalar(select(Segment).where(Segment.name == name))
    if segment is None:
        raise FilterError(
            f"no segment called {name!r}: `newsletter segments list` shows the segments there are"
        )
    return condition(session, Filter.from_json(segment.definition), _seen | {name})
