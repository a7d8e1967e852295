"""Exporting subscribers as CSV, JSON or NDJSON, streamed: memory stays flat in the row count.

Rows are read in pages in `id` order (keyset pagination: `id > last` and a LIMIT,
on the primary key), so neither SQLite nor PostgreSQL ever holds more than a page
in Python, each subscriber appears once, and no server-side cursor has to stay
open while a slow consumer reads the output. The lists of each page come from one
more query. What an export writes, an import reads back (see `subscribers.rows`).
"""

from __future__ import annotations

import csv
import json
import logging
from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Protocol, TextIO

from sqlalchemy import ColumnElement, and_, func, select
from sqlalchemy.orm import Session

from newsletter.errors import NewsletterError
from subscribers.filters import Filter, condition
from subscribers.models import MailingList, Subscriber, Subscription
from subscribers.readers import csv_cells

FORMATS = ("csv", "json", "ndjson")
COLUMNS = ("email", "name", "country", "language", "status", "lists", "created_at",
           "consent_at", "consent_method", "consent_text", "attributes")
LIST_SEPARATOR = ";"  # between list names in a CSV cell
PAGE = 2000

audit = logging.getLogger("newsletter.audit")


class ExportError(NewsletterError):
    """The export cannot be written as asked."""


class _Writer(Protocol):
    def write(self, record: dict[str, Any]) -> None: ...

    def close(self) -> None: ...


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


class _Csv:
    """CSV; by default every value a spreadsheet would run as a formula (=, +, -, @, tab,
    CR first) gets a leading ', as OWASP advises; the import takes it off again."""

    def __init__(self, out: TextIO, *, formula_escape: bool = True) -> None:
        self.writer = csv.writer(out)
        self.writer.writerow(COLUMNS)
        self.escape = formula_escape

    def write(self, record: dict[str, Any]) -> None:
        record = dict(record, lists=LIST_SEPARATOR.join(record["lists"]),
                      attributes=json.dumps(record["attributes"], ensure_ascii=False)
                      if record["attributes"] else "")
        self.writer.writerow(csv_cells((record[c] for c in COLUMNS), escape=self.escape))

    def close(self) -> None:
        pass


class _Ndjson:
    def __init__(self, out: TextIO) -> None:
        self.out = out

    def write(self, record: dict[str, Any]) -> None:
        self.out.write(json.dumps(record, ensure_ascii=False))
        self.out.write("\n")

    def close(self) -> None:
        pass


class _Json:
    """A JSON list, written element by element."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.first = True
        out.write("[")

    def write(self, record: dict[str, Any]) -> None:
        self.out.write("\n" if self.first else ",\n")
        self.first = False
        self.out.write(json.dumps(record, ensure_ascii=False))

    def close(self) -> None:
        self.out.write("]\n" if self.first else "\n]\n")


def count_matching(session: Session, f: Filter) -> int:
    """How many subscribers `f` selects (for a progress bar's total)."""
    return int(session.scalar(
        select(func.count()).select_from(Subscriber).where(condition(session, f))
    ) or 0)


def _lists_of(session: Session, ids: Sequence[int]) -> dict[int, list[str]]:
    rows = session.execute(
        select(Subscription.subscriber_id, MailingList.name)
        .join(MailingList, MailingList.id == Subscription.list_id)
        .where(Subscription.subscriber_id.in_(ids), Subscription.status != "unsubscribed")
        .order_by(Subscription.subscriber_id, MailingList.name)
    )
    found: dict[int, list[str]] = defaultdict(list)
    for sid, name in rows:
        found[sid].append(name)
    return found


def export_subscribers(
    session: Session,
    f: Filter,
    fmt: str,
    out: TextIO,
    progress: Callable[[int], None] | None = None,
    *,
    formula_escape: bool = True,
    also: ColumnElement[bool] | None = None,
    by: str = "",
) -> int:
    """Write the subscribers `f` selects to `out` in `fmt`; returns how many were written.

    `formula_escape` (CSV only): see `_Csv`; turn it off for programs that read the file.
    `also`: one more condition the people must meet (the newsroom's search words).
    `by`: who exports (the newsroom's user); the export is then logged as a warning on
    `newsletter.audit` naming them and how many people it held (personal data leaving).
    """
    writers: dict[str, Callable[[TextIO], _Writer]] = {
        "csv": lambda o: _Csv(o, formula_escape=formula_escape), "json": _Json,
        "ndjson": _Ndjson,
    }
    if fmt not in writers:
        raise ExportError(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}")
    where = condition(session, f)
    if also is not None:
        where = and_(where, also)
    writer = writers[fmt](out)
    columns = (Subscriber.id, Subscriber.email, Subscriber.name, Subscriber.country,
               Subscriber.language, Subscriber.status, Subscriber.created_at,
               Subscriber.consent_at, Subscriber.consent_method, Subscriber.consent_text,
               Subscriber.attributes)
    written, last = 0, 0
    while True:
        page = session.execute(
            select(*columns).where(where, Subscriber.id > last).order_by(Subscriber.id)
            .limit(PAGE)
        ).all()
        if not page:
            break
        lists = _lists_of(session, [r.id for r in page])
        for r in page:
            writer.write({
                "email": r.email, "name": r.name, "country": r.country,
                "language": r.language, "status": r.status, "lists": lists.get(r.id, []),
                "created_at": _iso(r.created_at), "consent_at": _iso(r.consent_at),
                "consent_method": r.consent_method, "consent_text": r.consent_text,
                "attributes": r.attributes or {},
            })
        written += len(page)
        last = page[-1].id
        if progress is not None:
            progress(len(page))
    writer.close()
    if by:
        audit.warning("subscribers exported by %s: %d people (%s)", by, written, fmt)
    return written
