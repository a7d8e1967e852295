"""CSV import against SQLite and PostgreSQL: a hostile file lands exactly as promised."""

from __future__ import annotations

import io
import random
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from subscribers.importer import (
    ImportFileError,
    ImportOptions,
    ImportReport,
    RowError,
    SubscriberRow,
    check_rows,
    import_csv,
)
from subscribers.models import Subscriber
from subscribers.rows import fast_email, fast_name
from subscribers.validate import InvalidValue, clean_name, normalise_email

DEFAULT = "en"

LONG_NAME = "N" * 5000

# The hostile file, one entry per PHYSICAL line (the header is line 1). The quoted name on
# lines 8-9 spans two lines; the importer counts lines of the file, so rows after it keep
# their line numbers.
HOSTILE_LINES: list[str] = [
    "email,name,country,language",  # 1
    "ana@example.com,Ana Pérez,México,es",  # 2 good
    "Bob@Example.COM,Bob Smith,belize,EN",  # 3 good: domain lower-cased, local part kept
    "not-an-email,Nobody,CR,es",  # 4 bad email
    "Maria@example.com,María Early,CR,es",  # 5 good, but replaced by line 13
    "carl@example.com,Carl,Atlantis,en",  # 6 unknown country: kept without one, a warning
    f"dan@example.com,{LONG_NAME},CR,es",  # 7 name too long
    'eve@example.com,"Eve',  # 8  a quoted name with a CRLF inside ...
    'Bcc: evil@example.com",costa rica,es',  # 9  ... cleaned to one line, not refused
    "frank@example.com,=?utf-8?q?x?=,GT,es",  # 10 encoded-word in name
    ",,,",  # 11 an empty row
    "",  # 12 a blank line
    "maria@example.com,María Late,Belice,es-GT",  # 13 same address as line 5: wins, merged
    "gina@example.com,Gina,,es_CR",  # 14 good, no country
    "hugo@example.com,Hugo,US,deutsch",  # 15 not a language tag (any valid one is kept)
]

EXPECTED_ERRORS = [(4, "email"), (7, "name"), (10, "name"), (15, "language")]
EXPECTED_WARNINGS = [(6, "country")]

# email -> (name, country, language) of everything the hostile file must write
EXPECTED_ROWS = {
    "ana@example.com": ("Ana Pérez", "MX", "es"),
    "Bob@example.com": ("Bob Smith", "BZ", "en"),
    "carl@example.com": ("Carl", None, "en"),
    "eve@example.com": ("Eve Bcc: evil@example.com", "CR", "es"),
    # line 13's values win; the first spelling of the address stays, as it does when the
    # two rows fall in different batches or different imports
    "Maria@example.com": ("María Late", "BZ", "es-GT"),  # tags kept as given (issue 8)
    "gina@example.com": ("Gina", None, "es-CR"),
}


def hostile_csv_bytes() -> bytes:
    """UTF-8 with a BOM and CRLF line endings, as Excel saves it."""
    return b"\xef\xbb\xbf" + "".join(line + "\r\n" for line in HOSTILE_LINES).encode("utf-8")


@pytest.fixture
def hostile_csv(tmp_path: Path) -> Path:
    path = tmp_path / "hostile.csv"
    path.write_bytes(hostile_csv_bytes())
    return path


def validate(data: bytes, options: ImportOptions | None = None,
             ) -> tuple[list[SubscriberRow], list[RowError]]:
    """The validation pass alone (no database): clean rows and errors, in file order."""
    rows: list[SubscriberRow] = []
    errors: list[RowError] = []
    for item in check_rows(io.BytesIO(data), options or ImportOptions()):
        (errors if isinstance(item, RowError) else rows).append(item)  # type: ignore[arg-type]
    return rows, errors


def run_import(sessions: sessionmaker[Session], data: bytes | str) -> ImportReport:
    with sessions() as session, session.begin():
        return import_csv(session, data, default_language=DEFAULT)


def stored(sessions: sessionmaker[Session]) -> dict[str, Subscriber]:
    with sessions() as session:
        return {s.email: s for s in session.scalars(select(Subscriber))}


def count(sessions: sessionmaker[Session]) -> int:
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(Subscriber)) or 0


def as_tuples(subscribers: dict[str, Subscriber]) -> dict[str, tuple[str, str | None, str]]:
    return {e: (s.name, s.country, s.language) for e, s in subscribers.items()}


# --- the file itself and the validation pass (no database) -------------------------------


def test_hostile_file_is_as_hostile_as_promised(hostile_csv: Path) -> None:
    data = hostile_csv.read_bytes()
    assert data.startswith(b"\xef\xbb\xbfemail,name,country,language\r\n")
    assert data.count(b"\r\n") == len(HOSTILE_LINES)
    assert b"\n" not in data.replace(b"\r\n", b"")  # CRLF only
    assert b"\r\n\r\n" in data  # a completely blank line
    assert b'"Eve\r\nBcc: evil@example.com"' in data


def test_check_rows_reports_exact_rows(hostile_csv: Path) -> None:
    rows, errors = validate(hostile_csv.read_bytes())
    assert [(e.row, e.field) for e in errors] == EXPECTED_ERRORS
    # both spellings of maria's address are valid rows; the import merges them (below)
    assert [(r.row, r.email) for r in rows if r.key == "maria@example.com"] == [
        (5, "Maria@example.com"), (13, "maria@example.com")]
    merged: dict[str, SubscriberRow] = {}
    for r in rows:  # merged as the import merges them
        merged[r.key] = merged[r.key].then(r) if r.key in merged else r
    assert {r.email: (r.name, r.country, r.language) for r in merged.values()} == EXPECTED_ROWS
    assert merged["maria@example.com"].row == 13  # the later row's values won
    by_email = {r.email: r for r in merged.values()}
    assert by_email["ana@example.com"].row == 2
    assert by_email["eve@example.com"].row == 8  # a record spanning lines 8-9 starts on 8
    assert by_email["gina@example.com"].row == 14


def test_row_errors_carry_the_value_and_a_reason(hostile_csv: Path) -> None:
    rows, errors = validate(hostile_csv.read_bytes())
    by_row = {e.row: e for e in errors}
    by_row.update({w.row: w for r in rows for w in r.warnings})
    assert by_row[4].value == "not-an-email"
    assert by_row[6].value == "Atlantis" and "ISO 3166-1" in by_row[6].reason
    assert by_row[6].level == "warning" and "kept without a country" in by_row[6].reason
    assert by_row[7].value == LONG_NAME and "longer than" in by_row[7].reason
    assert by_row[10].value == "=?utf-8?q?x?=" and "=?" in by_row[10].reason
    assert by_row[15].value == "deutsch" and "BCP 47" in by_row[15].reason
    assert str(by_row[6]).startswith("row 6: country 'Atlantis' ")
    assert len(str(by_row[7])) < 200  # a 5,000-character value is cut in the message


def test_semicolon_file_is_refused_with_a_header_message() -> None:
    # read with the default comma, the header is one odd column: say so, and what to do
    with pytest.raises(ImportFileError) as info:
        validate(b"email;name;country;language\r\nana@example.com;Ana;MX;es\r\n")
    message = str(info.value)
    assert "header" in message
    assert "email,name,country,language" in message  # what was expected
    assert "email;name;country;language" in message  # what was found
    assert "--delimiter ';'" in message  # and the fix


def test_semicolon_file_reads_with_its_delimiter() -> None:
    rows, errors = validate(b"email;name;country;language\r\nana@example.com;Ana;MX;es\r\n",
                            ImportOptions(delimiter=";"))
    assert errors == []
    assert [(r.email, r.name, r.country, r.language) for r in rows] == [
        ("ana@example.com", "Ana", "MX", "es")]


# --- against both databases ------------------------------------------------------------


def test_import_hostile_file(sessions: sessionmaker[Session], hostile_csv: Path) -> None:
    report = run_import(sessions, hostile_csv.read_bytes())

    assert (report.added, report.updated, report.unchanged) == (6, 0, 0)
    assert report.merged == 1
    assert report.imported == 6
    assert [(e.row, e.field) for e in report.errors] == EXPECTED_ERRORS
    assert [(w.row, w.field) for w in report.warnings] == EXPECTED_WARNINGS
    assert all(isinstance(e, RowError) for e in report.errors)

    subscribers = stored(sessions)
    assert as_tuples(subscribers) == EXPECTED_ROWS  # nothing else was written
    assert count(sessions) == 6
    for email, subscriber in subscribers.items():
        assert subscriber.email_key == email.casefold()
        assert subscriber.status == "active"
        assert "\r" not in subscriber.name and "\n" not in subscriber.name


def test_reimport_changes_nothing(sessions: sessionmaker[Session], hostile_csv: Path) -> None:
    run_import(sessions, hostile_csv.read_bytes())
    before = {e: (s.id, s.name, s.country, s.language) for e, s in stored(sessions).items()}

    report = run_import(sessions, hostile_csv.read_bytes())

    assert (report.added, report.updated, report.unchanged) == (0, 0, 6)
    assert report.merged == 1
    assert [(e.row, e.field) for e in report.errors] == EXPECTED_ERRORS
    after = {e: (s.id, s.name, s.country, s.language) for e, s in stored(sessions).items()}
    assert after == before


def test_import_updates_changed_name_and_country(sessions: sessionmaker[Session]) -> None:
    run_import(sessions, "email,name,country,language\nana@example.com,Ana,MX,es\n")
    original_id = stored(sessions)["ana@example.com"].id

    report = run_import(
        sessions, "email,name,country,language\nana@example.com,Ana María,Guatemala,es\n"
    )

    assert (report.added, report.updated, report.unchanged) == (0, 1, 0)
    ana = stored(sessions)["ana@example.com"]
    assert (ana.id, ana.name, ana.country, ana.language) == (original_id, "Ana María", "GT", "es")


def test_import_keeps_name_and_country_when_columns_are_empty(
    sessions: sessionmaker[Session],
) -> None:
    run_import(sessions, "email,name,country,language\nana@example.com,Ana,MX,es\n")
    report = run_import(sessions, "email,name,country,language\nana@example.com,,,es\n")
    assert (report.added, report.updated, report.unchanged) == (0, 0, 1)
    ana = stored(sessions)["ana@example.com"]
    assert (ana.name, ana.country, ana.language) == ("Ana", "MX", "es")


def test_import_without_language_column_keeps_language(sessions: sessionmaker[Session]) -> None:
    run_import(sessions, "email,name,country,language\nana@example.com,Ana,MX,es\n")
    run_import(sessions, "email,name\nana@example.com,Ana María\n")
    ana = stored(sessions)["ana@example.com"]
    assert (ana.name, ana.language) == ("Ana María", "es")


def test_case_duplicate_merges_into_existing_row(sessions: sessionmaker[Session]) -> None:
    run_import(sessions, "email,name,country,language\nMaria@Example.com,María,CR,es\n")
    first = stored(sessions)["Maria@example.com"]

    report = run_import(
        sessions, "email,name,country,language\nMARIA@example.COM,María López,CR,es\n"
    )

    assert (report.added, report.updated, report.unchanged) == (0, 1, 0)
    assert count(sessions) == 1
    subscribers = stored(sessions)
    assert list(subscribers) == ["Maria@example.com"]  # the stored spelling is kept
    maria = subscribers["Maria@example.com"]
    assert (maria.id, maria.name) == (first.id, "María López")


def test_unsubscribed_stays_unsubscribed(sessions: sessionmaker[Session]) -> None:
    run_import(sessions, "email,name,country,language\nana@example.com,Ana,MX,es\n")
    with sessions() as session, session.begin():
        ana = session.scalars(select(Subscriber)).one()
        ana.status = "unsubscribed"

    unchanged = run_import(sessions, "email,name,country,language\nana@example.com,Ana,MX,es\n")
    changed = run_import(sessions, "email,name,country,language\nANA@example.com,Ana P,CR,es\n")

    assert (unchanged.added, unchanged.unchanged) == (0, 1)
    assert (changed.added, changed.updated) == (0, 1)
    ana = stored(sessions)["ana@example.com"]
    assert (ana.status, ana.name, ana.country) == ("unsubscribed", "Ana P", "CR")
    assert count(sessions) == 1


def test_non_utf8_file_names_the_row(sessions: sessionmaker[Session]) -> None:
    data = "email,name\r\nana@example.com,Ana\r\njose@example.com,José\r\n".encode("latin-1")
    with pytest.raises(ImportFileError, match=r"^row 3: .*not UTF-8"):
        run_import(sessions, data)
    assert count(sessions) == 0


def test_file_without_email_column_is_refused(sessions: sessionmaker[Session]) -> None:
    with pytest.raises(ImportFileError, match="email,name,country,language") as info:
        run_import(sessions, b"name,country\r\nAna,MX\r\n")
    assert "found name,country" in str(info.value)
    with pytest.raises(ImportFileError, match="found nothing"):
        run_import(sessions, b"")
    assert count(sessions) == 0


def test_semicolon_file_import_is_refused(sessions: sessionmaker[Session]) -> None:
    data = b"\xef\xbb\xbfemail;name;country;language\r\nana@example.com;Ana;MX;es\r\n"
    with pytest.raises(ImportFileError, match="header") as info:
        run_import(sessions, data)
    assert "found email;name;country;language" in str(info.value)
    assert count(sessions) == 0


def test_text_input_with_bom_is_accepted(sessions: sessionmaker[Session]) -> None:
    report = run_import(sessions, "\ufeffEmail , Name\nana@example.com,Ana\n")
    assert report.added == 1 and report.errors == []
    assert as_tuples(stored(sessions)) == {"ana@example.com": ("Ana", None, "en")}


# --- the fast paths are no laxer than the validators they shortcut ----------------------

TRICKY_ADDRESSES = [
    "ana@example.com", "Ana.Perez@Example.COM", " ana@example.com ", "ana@example.com\n",
    "user+tag@example.org", "o'brien@example.ie", "x!#$%&'*+/=?^_`{|}~-y@example.org",
    "Postmaster@Example.com", "INFO@example.com", "Abuse@example.com", "webmaster@x.org",
    "user.@example.com", ".user@example.com", "us..er@example.com", "@example.com", "user@",
    "user@localhost", "user@example", "user@-example.com", "user@example-.com",
    "user@ex_ample.com", "user@ex--ample.com", "user@xn--bcher-kva.de", "user@BÜCHER.de",
    "user@bücher.de", "josé@example.com", "user@ｅｘａｍｐｌｅ.com", "user@example.com.",
    "user@[127.0.0.1]", '"quoted"@example.com', "user@exa mple.com", "user@ example.com",
    "user@example.test", "user@example.invalid", "user@example.123", "user@123.com",
    "user@sub.example.co.uk", "user@example.com\u200b", "x@xn--zz.com", "a@b",
    "user@xn--ls8h.la", "user@example.onion", "Ana <ana@example.com>", "ana@example.com>",
    "user@ex\u00adample.com", "user@exam\u0301ple.com", "USER@EXAMPLE.CO", "u@e.co",
    "a" * 64 + "@example.com", "a" * 65 + "@example.com",
    "a@" + ".".join(["b" * 63] * 3) + ".com", "a@" + ".".join(["b" * 63] * 4) + ".com",
    "a" * 64 + "@" + "b" * 63 + "." + "c" * 63 + "." + "d" * 57 + ".com",  # 254
    "a" * 64 + "@" + "b" * 63 + "." + "c" * 63 + "." + "d" * 58 + ".com",  # 255
    "a" * 60 + "@" + "ü" * 40 + "." + "c" * 63 + "." + "d" * 63 + ".com",
]


def outcome(function: Callable[[str], str], value: str) -> str:
    try:
        return "ok " + function(value)
    except InvalidValue as exc:
        return f"refused {exc.field}: {exc.reason}"


@pytest.mark.parametrize("address", TRICKY_ADDRESSES)
def test_fast_email_agrees_with_email_validator(address: str) -> None:
    assert outcome(fast_email, address) == outcome(normalise_email, address)


def test_fast_email_agrees_on_random_addresses() -> None:
    rnd = random.Random(7)
    alphabet = "aZ09.-_+@!'\"() ,;<>[]\\ü\u00e9\u0301\u200bÆ\t"
    for _ in range(3000):
        local = "".join(rnd.choice(alphabet) for _ in range(rnd.randrange(0, 8)))
        domain = "".join(rnd.choice("ab-.ü0xn") for _ in range(rnd.randrange(0, 10)))
        for address in (f"{local}@{domain}", f"{local}@{domain}.com", f"{local}@example.org"):
            assert outcome(fast_email, address) == outcome(normalise_email, address), address


def test_only_the_ascii_space_is_printable_whitespace() -> None:
    # fast_name trusts str.isprintable() to exclude every character `\s` would collapse
    assert [c for c in map(chr, range(sys.maxunicode + 1)) if c.isspace() and c.isprintable()
            ] == [" "]


def test_fast_name_agrees_with_clean_name_for_every_character() -> None:
    for code in range(0x3000):
        name = f"Ana{chr(code)}Pérez"
        assert outcome(fast_name, name) == outcome(clean_name, name), hex(code)
    for name in ("", " Ana", "Ana ", "Ana  Pérez", "=?x?=", "N" * 200, "N" * 201,
                 "Ana\u0301", "e\u0301", "\u2028", "Ana\u3000Pérez", "Ana\ufeffP"):
        assert outcome(fast_name, name) == outcome(clean_name, name), repr(name)
