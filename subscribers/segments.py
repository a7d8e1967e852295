"""Segments: stored, named filters. An issue can be sent to one or more of them."""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from newsletter.errors import NewsletterError
from subscribers.filters import Filter, condition
from subscribers.models import Segment, Subscriber

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._-]{0,99}$")


class SegmentError(NewsletterError):
    """A segment cannot be created, found or used as asked."""


@dataclass(frozen=True)
class SegmentPreview:
    name: str
    filter: Filter
    count: int
    sample: list[Subscriber]


def get_segment(session: Session, name: str) -> Segment:
    found = session.scalar(select(Segment).where(Segment.name == name))
    if found is None:
        raise SegmentError(
            f"no segment called {name!r}: `newsletter segments list` shows the segments there are"
        )
    return found


def create_segment(session: Session, name: str, definition: Filter) -> Segment:
    if not NAME.match(name):
        raise SegmentError(
            f"{name!r} is not a usable segment name: letters, digits, space, '.', '_' or '-'"
        )
    if definition.is_empty():
        raise SegmentError("a segment needs at least one condition (--country, --language, ...)")
    if session.scalar(select(Segment.id).where(Segment.name == name)) is not None:
        raise SegmentError(f"a segment called {name!r} exists already")
    condition(session, definition, frozenset({name}))  # fails now on unknown lists/segments
    segment = Segment(name=name, definition=definition.to_json())
    session.add(segment)
    session.flush()
    return segment


def delete_segment(session: Session, name: str) -> None:
    session.delete(get_segment(session, name))
    session.flush()


def list_segments(session: Session) -> list[tuple[Segment, Filter]]:
    return [
        (s, Filter.from_json(s.definition))
        for s in session.scalars(select(Segment).order_by(Segment.name))
    ]


def preview_segment(session: Session, name: str, sample_size: int = 10) -> SegmentPreview:
    segment = get_segment(session, name)
    definition = Filter.from_json(segment.definition)
    where = condition(session, Filter(segments=(name,)))
    count = session.scalar(select(func.count()).select_from(Subscriber).where(where)) or 0
    sample = list(
        session.scalars(select(Subscriber).where(where).order_by(Subscriber.id).limit(sample_size))
    )
    return SegmentPreview(name, definition, int(count), sample)
