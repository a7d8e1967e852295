"""Property-based fuzzing of the subscriber readers and the row checker (issue 8).

Arbitrary bytes, CSV text and JSON values go through the real import into SQLite.
Whatever comes in, the import raises nothing but the project's own errors, every
error names a row, and every row the checker accepted is stored exactly once.

The suite runs a bounded number of examples; the long run is
  NEWSLETTER_FUZZ_EXAMPLES=10000 .venv/bin/python -m pytest -m fuzz \\
      tests/subscribers/test_fuzz_readers.py
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from newsletter.db import make_engine, session_factory, upgrade
from newsletter.errors import NewsletterError
from subscribers.importer import (
    ImportFileError,
    ImportOptions,
    RowError,
    SubscriberRow,
    check_rows,
    import_subscribers,
)
from subscribers.models import Subscriber
from subscribers.readers import Record
from subscribers.rows import RowChecker

pytestmark = pytest.mark.fuzz

COLUMNS = ["email", "name", "country", "language", "status", "attributes", "consent_at",
           "consent_method", "consent_text", "id", "lists", "City", 'x"y', ""]


@pytest.fixture(scope="module")
def fuzz_sessions(tmp_path_factory: pytest.TempPathFactory) -> Iterator[sessionmaker[Session]]:
    path: Path = tmp_path_factory.mktemp("fuzz") / "fuzz.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    yield session_factory(engine)
    engine.dispose()


def expected_rows(data: bytes, options: ImportOptions) -> tuple[list[SubscriberRow], bool]:
    """What the checker accepts, without a database, and whether the file broke."""
    rows: list[SubscriberRow] = []
    try:
        for item in check_rows(io.BytesIO(data), options):
            if isinstance(item, SubscriberRow):
                rows.append(item)
            else:
                assert_row_error(item)
    except ImportFileError:
        return rows, True
    return rows, False


def assert_row_error(error: RowError) -> None:
    assert error.row >= 1 and error.field and error.reason, error
    assert error.level in ("error", "warning")
    str(error).encode("utf-8")  # printable, to a terminal or a UTF-8 file
    (error.field + error.value).encode("utf-8")  # as --json and --errors write them


def import_checked(sessions: sessionmaker[Session], data: bytes, options: ImportOptions) -> None:
    """The real import of `data` into an empty database, and its promises checked."""
    with sessions() as session, session.begin():
        session.execute(delete(Subscriber))
    accepted, broke = expected_rows(data, options)
    errors: list[RowError] = []
    try:
        report = import_subscribers(sessions, io.BytesIO(data), options, default_language="en",
                                    on_error=errors.append)
    except ImportFileError as exc:  # the project's own error, with a message to act on
        assert broke, f"the import broke where the check did not: {exc}"
        assert str(exc)
        report = getattr(exc, "report", None)
    else:
        assert not broke
        assert report.read == report.added + report.merged + report.rejected
    for error in errors:
        assert_row_error(error)
    with sessions() as session:
        keys = list(session.scalars(select(Subscriber.email_key)))
    assert len(keys) == len(set(keys))  # nobody twice
    if broke and report is None:  # a header problem: nothing read, nothing stored
        assert keys == [] and accepted == []
        return
    assert set(keys) == {r.key for r in accepted}  # every accepted row, and only those


# --- strategies --------------------------------------------------------------------------

_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=30)
_emails = st.one_of(
    st.from_regex(r"[a-zA-Z0-9._+=-]{1,8}@[a-z]{1,6}\.(org|com|cr)", fullmatch=True),
    st.emails(),
    _text,
)
_hostile = st.sampled_from([
    "9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00", "2024-05-01T12:00:00Z",
    "[" * 1000, '{"n": ' + "1" * 4301 + "}", '{"a": ' + "[" * 200 + "]" * 200 + "}",
    '{"city": "León"}', "Atlantis", "CR", "costa rica", "es-CR", "fr", "active", "bounced",
    "=cmd|' /c calc'!A1", "'=x", "\x00", "\ufeff", "\u2028", "=?utf-8?q?x?=", "",
])
_cell = st.one_of(_text, _hostile, _emails)
_line_end = st.sampled_from(["\r\n", "\n", "\r"])


@st.composite
def csv_files(draw: st.DrawFn) -> tuple[bytes, str]:
    header = draw(st.lists(st.sampled_from(COLUMNS), min_size=1, max_size=6, unique=True))
    if draw(st.booleans()) and "email" not in header:
        header.insert(0, "email")
    delimiter = draw(st.sampled_from([",", ";", "\t"]))
    rows = draw(st.lists(st.lists(_cell, min_size=0, max_size=len(header) + 1), max_size=8))
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter, lineterminator=draw(_line_end))
    writer.writerow(header)
    writer.writerows(rows)
    text = out.getvalue()
    if draw(st.booleans()):  # mix the line endings of one file
        text = re.sub("\r\n|\r|\n", lambda _: draw(_line_end), text)
    data = text.encode("utf-8")
    if draw(st.booleans()):  # or as UTF-16, with a byte order mark
        data = text.encode("utf-16")
    if draw(st.booleans()):  # damage it somewhere
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.binary(max_size=4)) + data[at:]
    return data, delimiter


_json_scalar = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), _text,
                         st.sampled_from(["__HUGE__", "__DEEP__", "__SURROGATE__"]), _hostile)
_json_value = st.recursive(
    _json_scalar,
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(_text | st.just("__SURROGATE__"), inner, max_size=3),
    max_leaves=8,
)
_record = st.one_of(
    st.fixed_dictionaries(
        {"email": _emails},
        optional={name: _json_value for name in [*COLUMNS, "__SURROGATE__"] if name != "email"},
    ),
    _json_value,
)


def _json_text(value: object, deep: int) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return (text.replace('"__HUGE__"', "1" * 4301).replace("__SURROGATE__", "\\ud800x")
            .replace('"__DEEP__"', "[" * deep + "]" * deep))


# --- properties --------------------------------------------------------------------------


_encodings = st.sampled_from(["utf-8-sig", "utf-8", "latin-1", "cp1252", "utf-16",
                              "utf-16-le"])


@given(data=st.binary(max_size=300), header=st.booleans(),
       fmt=st.sampled_from(["csv", "ndjson", "json"]), encoding=_encodings)
def test_arbitrary_bytes(fuzz_sessions: sessionmaker[Session], data: bytes, header: bool,
                         fmt: str, encoding: str) -> None:
    if header:
        data = {"csv": b"email,name,country,language,attributes,consent_at\n",
                "ndjson": b'{"email": "ana@example.org"}\n', "json": b"["}[fmt] + data
    import_checked(fuzz_sessions, data, ImportOptions(format=fmt, batch_size=3,
                                                      encoding=encoding))


@given(file=csv_files(), strict=st.booleans(), encoding=_encodings)
def test_csv_files(fuzz_sessions: sessionmaker[Session], file: tuple[bytes, str], strict: bool,
                   encoding: str) -> None:
    data, delimiter = file
    import_checked(fuzz_sessions, data, ImportOptions(delimiter=delimiter, batch_size=3,
                                                      strict=strict, encoding=encoding))


@given(records=st.lists(_record, max_size=6), deep=st.integers(90, 1200),
       fmt=st.sampled_from(["json", "ndjson"]), damage=st.binary(max_size=3))
def test_json_and_ndjson_files(fuzz_sessions: sessionmaker[Session], records: list[object],
                               deep: int, fmt: str, damage: bytes) -> None:
    texts = [_json_text(r, deep) for r in records]
    text = "[" + ",\n".join(texts) + "]" if fmt == "json" else "\n".join(texts)
    data = text.encode("utf-8") + damage
    import_checked(fuzz_sessions, data, ImportOptions(format=fmt, batch_size=3))


@given(fields=st.dictionaries(st.sampled_from(COLUMNS) | _text, _json_value | _hostile,
                              max_size=8),
       strict=st.booleans())
def test_the_row_checker_answers_every_record(fields: dict[str, object], strict: bool) -> None:
    result = RowChecker(strict=strict).check(Record(7, fields))
    if isinstance(result, RowError):
        assert result.row == 7
        assert_row_error(result)
    else:
        assert isinstance(result, SubscriberRow) and result.row == 7
        json.dumps(result.attributes)  # storable as JSON
        result.email.encode("utf-8")  # storable as text
        result.name.encode("utf-8")


def test_only_project_errors_escape() -> None:
    # the properties above catch ImportFileError only: it must be one of ours
    assert issubclass(ImportFileError, NewsletterError)
