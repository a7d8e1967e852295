"""CSV import: every good row lands once, every bad row is reported with its row number."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from newsletter.errors import NewsletterError
from subscribers import queries
from subscribers.validate import (
    InvalidValue,
    clean_name,
    email_key,
    language_or_none,
    normalise_country,
    normalise_email,
)

COLUMNS = ("email", "name", "country", "language")


class ImportFileError(NewsletterError):
    """The file as a whole cannot be imported (no header, missing columns, bad encoding)."""


@dataclass(frozen=True)
class RowError:
    row: int  # the line of the file, the header being row 1
    field: str
    value: str
    reason: str

    def __str__(self) -> str:
        return f"row {self.row}: {self.field} {self.value[:60]!r} {self.reason}"


@dataclass(frozen=True)
class SubscriberRow:
    row: int
    email: str
    name: str
    country: str | None
    language: str | None  # None: keep the stored one (or the default for a new subscriber)


@dataclass
class ImportReport:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    merged: int = 0  # rows that repeated an address seen earlier in the same file
    errors: list[RowError] = field(default_factory=list)

    @property
    def imported(self) -> int:
        return self.added + self.updated + self.unchanged


def read_rows(
    lines: Iterable[str], *, languages: Sequence[str]
) -> tuple[list[SubscriberRow], list[RowError], int]:
    """Validate a CSV; returns the good rows (merged by address), the errors, the merge count."""
    reader = csv.DictReader(lines)
    header = [h.strip().lower().lstrip("\ufeff") for h in (reader.fieldnames or [])]
    missing = [c for c in ("email",) if c not in header]
    if missing:
        raise ImportFileError(
            f"the first row must be a header with the columns {','.join(COLUMNS)}; "
            f"found {','.join(header) or 'nothing'}"
        )
    reader.fieldnames = header
    by_key: dict[str, SubscriberRow] = {}
    errors: list[RowError] = []
    merged = 0
    for raw in reader:
        row_number = reader.line_num
        if not any((v or "").strip() for v in raw.values() if isinstance(v, str)):
            continue  # a blank line is not a subscriber
        try:
            email = normalise_email(raw.get("email") or "")
            name = clean_name(raw.get("name") or "")
            country = normalise_country(raw.get("country") or "")
            language = language_or_none(raw.get("language") or "", languages)
        except InvalidValue as exc:
            errors.append(RowError(row_number, exc.field, exc.value, exc.reason))
            continue
        key = email_key(email)
        if key in by_key:
            merged += 1
        by_key[key] = SubscriberRow(row_number, email, name, country, language)
    return list(by_key.values()), errors, merged


def import_csv(
    session: Session,
    data: bytes | str,
    *,
    languages: Sequence[str],
    default_language: str,
) -> ImportReport:
    """Validate every row first, then upsert the good ones in the caller's transaction."""
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            line = data[: exc.start].count(b"\n") + 1
            raise ImportFileError(
                f"row {line}: the file is not UTF-8 (byte {exc.start}); save it as UTF-8 CSV"
            ) from exc
    else:
        text = data.lstrip("\ufeff")
    rows, errors, merged = read_rows(io.StringIO(text, newline=""), languages=languages)
    report = ImportReport(errors=errors, merged=merged)
    report.added, report.updated, report.unchanged = queries.upsert(
        session, rows, default_language=default_language
    )
    return report
