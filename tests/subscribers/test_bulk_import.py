"""`import_subscribers` on SQLite and PostgreSQL: the hostile file, statuses, consent, lists.

The hostile file is written as bytes (BOM, CRLF, a quoted line break) and read again
with ';' as the delimiter: both must give exactly the same errors and subscribers.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from subscribers import bulk, importer
from subscribers.bulk import BatchSettings, write_batch
from subscribers.filters import Filter
from subscribers.importer import (
    ImportFileError,
    ImportInterrupted,
    ImportOptionError,
    ImportOptions,
    ImportReport,
    RowError,
    SubscriberRow,
    UnknownListError,
    check_rows,
    import_subscribers,
)
from subscribers.models import MailingList, Subscriber, Subscription, Suppression, email_hash
from subscribers.people import select_subscribers

LONG_NAME = "N" * 5000

# (cells, physical lines the record takes); the header is line 1
HOSTILE: list[tuple[list[str], int]] = [
    (["email", "name", "country", "language"], 1),  # 1
    (["ana@example.com", "Ana Pérez", "México", "es"], 1),  # 2 good
    (["Bob@Example.COM", "Bob Smith", "belize", "EN"], 1),  # 3 good: domain lower-cased
    (["not-an-email", "Nobody", "CR", "es"], 1),  # 4 bad address
    (["Maria@example.com", "María Early", "CR", "es"], 1),  # 5 good, merged with 13
    (["carl@example.com", "Carl", "Atlantis", "en"], 1),  # 6 unknown country: a warning
    (["dan@example.com", LONG_NAME, "CR", "es"], 1),  # 7 a 5,000-character name
    (["eve@example.com", "Eve\r\nBcc: evil@example.com", "costa rica", "es"], 2),  # 8-9
    (["frank@example.com", "=?utf-8?q?x?=", "GT", "es"], 1),  # 10 encoded-word in the name
    (["", "", "", ""], 1),  # 11 an empty row
    ([], 1),  # 12 a blank line
    (["maria@example.com", "María Late", "Belice", "es-GT"], 1),  # 13 same as 5, wins
    (["gina@example.com", "Gina", "", "es_CR"], 1),  # 14 good, no country
    (["hugo@example.com", "Hugo", "US", "deutsch"], 1),  # 15 not a language tag
    ([" IRIS@Example.com ", "Pérez, Iris", "Guatemala", "es"], 1),  # 16 trimmed; a delimiter
    (["jose@BÜCHER.de", "José", "CR", "es"], 1),  # 17 internationalised domain
    (["kim@xn--bcher-kva.de", "Kim", "CR", "en"], 1),  # 18 the same domain, ASCII form
    (["ANA@EXAMPLE.COM", "", "", ""], 1),  # 19 ana again in capitals, no values: merged
    (["lena@example.com", "Lena\x07 \tSmith", "CR", "en"], 1),  # 20 control characters
    (["oscar@example..com", "Óscar", "CR", "es"], 1),  # 21 bad domain
    (["pia@example.com", "Pia", "CR", "en", "extra"], 1),  # 22 more cells than columns
    (["quique@example.com", "Quique\u2028Bcc: x@example.com", "CR", "es"], 1),  # 23 U+2028
]

EXPECTED_ERRORS = [(4, "email"), (6, "country"), (7, "name"), (10, "name"), (15, "language"),
                   (21, "email"), (22, "record")]  # in row order; row 6 is only a warning
EXPECTED = {  # email -> (name, country, language)
    "ana@example.com": ("Ana Pérez", "MX", "es"),
    "Bob@example.com": ("Bob Smith", "BZ", "en"),
    "eve@example.com": ("Eve Bcc: evil@example.com", "CR", "es"),
    "Maria@example.com": ("María Late", "BZ", "es-GT"),  # first spelling, later values
    "gina@example.com": ("Gina", None, "es-CR"),
    "carl@example.com": ("Carl", None, "en"),  # stored without the unknown country
    "IRIS@example.com": ("Pérez, Iris", "GT", "es"),
    "jose@bücher.de": ("José", "CR", "es"),
    "kim@bücher.de": ("Kim", "CR", "en"),
    "lena@example.com": ("Lena Smith", "CR", "en"),
    "quique@example.com": ("Quique Bcc: x@example.com", "CR", "es"),
}


def render(delimiter: str) -> bytes:
    """The hostile file as Excel saves it: UTF-8 with a BOM, CRLF line endings."""
    def cell(value: str) -> str:
        if any(c in value for c in (delimiter, '"', "\r", "\n")):
            return '"' + value.replace('"', '""') + '"'
        return value

    lines = [delimiter.join(cell(c) for c in cells) for cells, _ in HOSTILE]
    return b"\xef\xbb\xbf" + "".join(line + "\r\n" for line in lines).encode()


def run(sessions: sessionmaker[Session], data: bytes, errors: list[RowError] | None = None,
        **options: object) -> ImportReport:
    sink = errors.append if errors is not None else None
    return import_subscribers(
        sessions, io.BytesIO(data), ImportOptions(**options),  # type: ignore[arg-type]
        default_language="en", on_error=sink,
    )


def people(sessions: sessionmaker[Session]) -> dict[str, Subscriber]:
    with sessions() as session:
        return {s.email: s for s in session.scalars(select(Subscriber))}


def values(sessions: sessionmaker[Session]) -> dict[str, tuple[str, str | None, str]]:
    return {e: (s.name, s.country, s.language) for e, s in people(sessions).items()}


def count(sessions: sessionmaker[Session], model: type[object] = Subscriber) -> int:
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0  # type: ignore[arg-type]


def csv_of(*rows: str) -> bytes:
    return ("email,name,country,language\n" + "".join(r + "\n" for r in rows)).encode()


def test_the_hostile_file_is_as_hostile_as_promised() -> None:
    data = render(",")
    assert data.startswith(b"\xef\xbb\xbfemail,name,country,language\r\n")
    assert data.count(b"\r\n") == sum(lines for _, lines in HOSTILE)
    assert b"\n" not in data.replace(b"\r\n", b"")
    assert b"\r\n\r\n" in data and b"\r\n,,,\r\n" in data
    assert b'"Eve\r\nBcc: evil@example.com"' in data
    assert LONG_NAME.encode() in data
    assert b";" not in render(",")
    assert '"Pérez, Iris",'.encode() in render(",") and "Pérez, Iris;".encode() in render(";")


@pytest.mark.parametrize("delimiter", [",", ";"])
def test_hostile_file_imports_the_valid_rows_once(
    sessions: sessionmaker[Session], delimiter: str
) -> None:
    errors: list[RowError] = []
    report = run(sessions, render(delimiter), errors, delimiter=delimiter)

    assert [(e.row, e.field) for e in errors] == EXPECTED_ERRORS
    assert report.errors == [e for e in errors if e.level == "error"]
    assert report.warnings == [e for e in errors if e.level == "warning"]
    assert [(w.row, w.field, w.value) for w in report.warnings] == [(6, "country", "Atlantis")]
    assert (report.added, report.updated, report.unchanged) == (len(EXPECTED), 0, 0)
    assert (report.merged, report.rejected, report.read, report.warned) == (2, 6, 19, 1)
    assert report.read == report.added + report.merged + report.rejected
    assert values(sessions) == EXPECTED
    by_row = {e.row: e for e in errors}
    assert by_row[7].value == LONG_NAME and "longer than 200" in by_row[7].reason
    assert "=?" in by_row[10].reason and "BCP 47" in by_row[15].reason
    assert "ISO 3166-1" in by_row[6].reason and by_row[6].level == "warning"
    assert "header names 4 columns" in by_row[22].reason
    for subscriber in people(sessions).values():
        assert subscriber.email_key == subscriber.email.casefold()
        assert subscriber.email_hash == email_hash(subscriber.email_key)
        assert subscriber.status == "active"
        assert not any(c in subscriber.name for c in "\r\n\x07\t\u2028")


def test_reimport_adds_nothing(sessions: sessionmaker[Session]) -> None:
    run(sessions, render(","))
    before = {e: (s.id, s.name, s.country, s.language, s.updated_at)
              for e, s in people(sessions).items()}
    report = run(sessions, render(";"), delimiter=";")
    assert (report.added, report.updated, report.unchanged) == (0, 0, len(EXPECTED))
    assert (report.merged, report.rejected) == (2, 6)
    assert {e: (s.id, s.name, s.country, s.language, s.updated_at)
            for e, s in people(sessions).items()} == before


def test_dry_run_writes_nothing_and_counts_the_same(sessions: sessionmaker[Session]) -> None:
    dry = run(sessions, render(","), dry_run=True)
    assert count(sessions) == 0
    real = run(sessions, render(","))
    assert dry.dry_run and not real.dry_run
    assert dry.as_dict() | {"dry_run": True} == real.as_dict() | {"dry_run": True}
    again = run(sessions, csv_of("ana@example.com,Ana María,CR,es", "new@example.com,,,"),
                dry_run=True)
    assert (again.added, again.updated) == (1, 1)
    assert values(sessions)["ana@example.com"] == ("Ana Pérez", "MX", "es")
    assert count(sessions) == len(EXPECTED)


def test_repeats_across_batches_are_merged_and_the_later_row_wins(
    sessions: sessionmaker[Session],
) -> None:
    rows = [f"p{i}@example.com,P {i},CR,es" for i in range(7)]
    rows += ["P1@EXAMPLE.COM,Later One,NI,", "p6@example.com,,SV,en", "p3@example.com,,,"]
    report = run(sessions, csv_of(*rows), batch_size=3)
    assert count(sessions) == 7
    assert (report.added, report.merged, report.updated, report.unchanged) == (7, 3, 0, 0)
    stored = values(sessions)
    assert stored["p1@example.com"] == ("Later One", "NI", "es")
    assert stored["p6@example.com"] == ("P 6", "SV", "en")
    assert stored["p3@example.com"] == ("P 3", "CR", "es")


def set_status(sessions: sessionmaker[Session], email: str, status: str) -> None:
    with sessions() as session, session.begin():
        session.scalars(select(Subscriber).where(Subscriber.email == email)).one().status = status


@pytest.mark.parametrize("sticky", ["unsubscribed", "bounced", "complained"])
def test_sticky_statuses_need_resubscribe(sessions: sessionmaker[Session], sticky: str) -> None:
    run(sessions, csv_of("ana@example.com,Ana,MX,es"))
    set_status(sessions, "ana@example.com", sticky)
    before = people(sessions)["ana@example.com"].consent_at

    kept = run(sessions, csv_of("ANA@example.com,Ana P,CR,es"))
    assert (kept.updated, kept.inactive, kept.resubscribed) == (1, 1, 0)
    ana = people(sessions)["ana@example.com"]
    assert (ana.status, ana.name, ana.country) == (sticky, "Ana P", "CR")

    back = run(sessions, csv_of("ana@example.com,Ana P,CR,es"), resubscribe=True,
               consent_method="import:again.csv", consent_text="2024-05")
    assert (back.updated, back.resubscribed, back.inactive) == (1, 1, 0)
    ana = people(sessions)["ana@example.com"]
    assert ana.status == "active"
    assert ana.consent_at is not None and before is not None and ana.consent_at > before
    assert (ana.consent_method, ana.consent_text) == ("import:again.csv", "2024-05")
    assert count(sessions) == 1


def test_a_file_may_say_someone_left_but_not_bring_them_back(
    sessions: sessionmaker[Session],
) -> None:
    data = b"email,status\nana@example.com,active\nbob@example.com,unsubscribed\n"
    run(sessions, data)
    assert {e: s.status for e, s in people(sessions).items()} == {
        "ana@example.com": "active", "bob@example.com": "unsubscribed"}
    run(sessions, b"email,status\nana@example.com,bounced\nbob@example.com,active\n")
    assert {e: s.status for e, s in people(sessions).items()} == {
        "ana@example.com": "bounced", "bob@example.com": "unsubscribed"}


def suppress(sessions: sessionmaker[Session], email: str, reason: str = "complaint") -> None:
    with sessions() as session, session.begin():
        session.add(Suppression(email_hash=email_hash(email.casefold()), reason=reason))


def test_suppressed_addresses_are_refused_unless_resubscribed(
    sessions: sessionmaker[Session],
) -> None:
    suppress(sessions, "eve@example.com")
    errors: list[RowError] = []
    report = run(sessions, csv_of("ana@example.com,Ana,,", "EVE@example.com,Eve,,"), errors)
    assert (report.added, report.rejected, report.suppressed) == (1, 1, 1)
    assert [(e.row, e.field, e.value) for e in errors] == [(3, "email", "EVE@example.com")]
    assert "is suppressed (complaint)" in errors[0].reason
    assert "--resubscribe" in errors[0].reason
    assert set(people(sessions)) == {"ana@example.com"}

    report = run(sessions, csv_of("EVE@example.com,Eve,,"), resubscribe=True)
    assert (report.added, report.resubscribed, report.rejected) == (1, 1, 0)
    assert count(sessions, Suppression) == 0
    assert people(sessions)["EVE@example.com"].status == "active"


def make_list(sessions: sessionmaker[Session], name: str, opt_in: str) -> int:
    with sessions() as session, session.begin():
        mailing_list = MailingList(name=name, opt_in=opt_in)
        session.add(mailing_list)
        session.flush()
        return mailing_list.id


def subscriptions(sessions: sessionmaker[Session], list_id: int) -> dict[str, str]:
    with sessions() as session:
        rows = session.execute(
            select(Subscriber.email, Subscription.status)
            .join(Subscription, Subscription.subscriber_id == Subscriber.id)
            .where(Subscription.list_id == list_id)
        )
        return {email: status for email, status in rows}


def test_single_opt_in_list(sessions: sessionmaker[Session]) -> None:
    list_id = make_list(sessions, "news", "single")
    run(sessions, csv_of("old@example.com,Old,,", "gone@example.com,Gone,,"))
    set_status(sessions, "gone@example.com", "unsubscribed")
    report = run(sessions, csv_of("new@example.com,New,,", "old@example.com,,,",
                                  "gone@example.com,,,"), list_name="news")
    assert (report.added, report.subscribed, report.inactive) == (1, 2, 1)
    assert subscriptions(sessions, list_id) == {
        "new@example.com": "confirmed", "old@example.com": "confirmed"}
    assert people(sessions)["new@example.com"].status == "active"
    again = run(sessions, csv_of("new@example.com,New,,"), list_name="news")
    assert (again.subscribed, again.unchanged) == (0, 1)


def test_double_opt_in_list(sessions: sessionmaker[Session]) -> None:
    list_id = make_list(sessions, "weekly", "double")
    run(sessions, csv_of("ana@example.com,Ana,,", "bob@example.com,Bob,,"), list_name="weekly")
    assert subscriptions(sessions, list_id) == {
        "ana@example.com": "unconfirmed", "bob@example.com": "unconfirmed"}
    assert {s.status for s in people(sessions).values()} == {"pending"}

    run(sessions, csv_of("bob@example.com,,,", "cy@example.com,,,"), list_name="weekly",
        preconfirm=True)
    assert subscriptions(sessions, list_id) == {"ana@example.com": "unconfirmed",
                                                "bob@example.com": "confirmed",
                                                "cy@example.com": "confirmed"}
    statuses = {e: s.status for e, s in people(sessions).items()}
    assert statuses == {"ana@example.com": "pending", "bob@example.com": "active",
                        "cy@example.com": "active"}


def test_an_unsubscribed_subscription_stays_so_unless_resubscribed(
    sessions: sessionmaker[Session],
) -> None:
    list_id = make_list(sessions, "news", "single")
    run(sessions, csv_of("ana@example.com,Ana,,"), list_name="news")
    with sessions() as session, session.begin():
        session.scalars(select(Subscription)).one().status = "unsubscribed"
    run(sessions, csv_of("ana@example.com,Ana,,"), list_name="news")
    assert subscriptions(sessions, list_id) == {"ana@example.com": "unsubscribed"}
    run(sessions, csv_of("ana@example.com,Ana,,"), list_name="news", resubscribe=True)
    assert subscriptions(sessions, list_id) == {"ana@example.com": "confirmed"}


def test_unknown_list_is_refused_before_reading(sessions: sessionmaker[Session]) -> None:
    class Unreadable(io.BytesIO):
        def read(self, *args: object) -> bytes:
            raise AssertionError("the file was read")

        __iter__ = read  # type: ignore[assignment]

    with pytest.raises(UnknownListError, match="newsletter lists create nope"):
        import_subscribers(sessions, Unreadable(), ImportOptions(list_name="nope"),
                           default_language="en")
    with pytest.raises(ImportOptionError, match="--list"):
        run(sessions, csv_of("ana@example.com,,,"), preconfirm=True)


def test_consent_is_recorded_for_new_subscribers(sessions: sessionmaker[Session]) -> None:
    start = datetime.now()  # local time, and naive UTC is stored: compare loosely
    run(sessions, csv_of("ana@example.com,Ana,,"), consent_method="import:people.csv",
        consent_text="2024-05")
    run(sessions, b"email,consent_at,consent_method\n"
                  b"bob@example.com,2019-10-01T12:00:00+02:00,web form\n")
    ana, bob = people(sessions)["ana@example.com"], people(sessions)["bob@example.com"]
    assert ana.consent_at is not None and abs((ana.consent_at - start).total_seconds()) < 86400
    assert (ana.consent_method, ana.consent_text) == ("import:people.csv", "2024-05")
    assert ana.created_at == ana.consent_at
    assert (bob.consent_at, bob.consent_method) == (datetime(2019, 10, 1, 10), "web form")
    with pytest.raises(ImportOptionError, match="VERSION"):
        run(sessions, csv_of("cy@example.com,,,"), consent_text="I agree " * 20)


def test_extra_columns_become_attributes(sessions: sessionmaker[Session]) -> None:
    run(sessions, b"email,name,City,member since\nana@example.com,Ana,Le\xc3\xb3n,2019\n")
    run(sessions, b'email,attributes,city\nana@example.com,"{""tier"": 2}",\n')
    # values are stored as text, so `--attr tier=2` matches the same on both databases
    assert people(sessions)["ana@example.com"].attributes == {
        "city": "León", "member since": "2019", "tier": "2"}
    with sessions() as session:
        assert [s.email for s in select_subscribers(session, Filter(attributes=(("tier", "2"),)))
                ] == ["ana@example.com"]


JSON_FILE = json.dumps([
    {"email": "ana@example.com", "name": "Ana", "country": "CR", "language": "es"},
    {"email": "bad", "name": "Nobody"},
    "not an object",
    {"email": "bob@example.com", "country": "Atlantis"},
    {"email": "cy@example.com", "name": ["a", "list"]},
    {"email": "di@example.com", "Team": 7},
], indent=1).encode()
NDJSON_FILE = (b'{"email": "ana@example.com", "name": "Ana"}\n\n'
               b'{"email": "bad"}\n'
               b'{"email": "bob@example.com", \n'
               b'[1, 2]\n'
               b'{"email": "cy@example.com", "language": "es-CR"}\n')


@pytest.mark.parametrize(("fmt", "data", "expected_errors", "expected"), [
    ("json", JSON_FILE, [(2, "email"), (3, "record"), (4, "country"), (5, "name")],
     {"ana@example.com", "bob@example.com", "di@example.com"}),  # bob: a warning
    ("ndjson", NDJSON_FILE, [(3, "email"), (4, "record"), (5, "record")],
     {"ana@example.com", "cy@example.com"}),
])
def test_json_and_ndjson_report_the_right_item(
    sessions: sessionmaker[Session], fmt: str, data: bytes,
    expected_errors: list[tuple[int, str]], expected: set[str],
) -> None:
    errors: list[RowError] = []
    run(sessions, data, errors, format=fmt)
    assert [(e.row, e.field) for e in errors] == expected_errors
    assert set(people(sessions)) == expected
    if fmt == "json":
        assert people(sessions)["di@example.com"].attributes == {"team": "7"}


@pytest.mark.parametrize(("data", "message"), [
    (b'{"email": "a@example.com"}', "list of subscriber objects"),
    (b'[{"email": "a@example.com"} {"email": "b@example.com"}]', "after item 1"),
    (b'[{"email": "a@example.com"}, {"email": ', "item 2"),
])
def test_broken_json_is_a_file_error(
    sessions: sessionmaker[Session], data: bytes, message: str
) -> None:
    with pytest.raises(ImportFileError, match=message):
        run(sessions, data, format="json")


def test_a_json_list_streams_across_chunks(sessions: sessionmaker[Session]) -> None:
    items = [{"email": f"p{i}@example.com", "name": "é" * (i % 50)} for i in range(3000)]
    report = run(sessions, json.dumps(items).encode(), format="json", batch_size=1000)
    assert (report.added, report.rejected) == (3000, 0)


def test_other_encodings(sessions: sessionmaker[Session]) -> None:
    run(sessions, "email,name\nana@example.com,Núñez\n".encode("cp1252"), encoding="cp1252")
    run(sessions, "email,name\nbob@example.com,Łukasz\n".encode("utf-16"), encoding="utf-16")
    assert values(sessions) == {"ana@example.com": ("Núñez", None, "en"),
                                "bob@example.com": ("Łukasz", None, "en")}


def interrupt_after(calls: int) -> Callable[[int], None]:
    seen = [0]

    def progress(_: int) -> None:
        seen[0] += 1
        if seen[0] == calls:
            raise KeyboardInterrupt

    return progress


def test_ctrl_c_keeps_committed_batches_and_a_rerun_finishes(
    sessions: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    data = csv_of(*(f"p{i}@example.com,P,CR,es" for i in range(50)))
    with pytest.raises(ImportInterrupted) as info:  # Ctrl-C between batches
        import_subscribers(sessions, io.BytesIO(data), ImportOptions(batch_size=10),
                           default_language="en",
                           progress=interrupt_after(2))
    assert isinstance(info.value, KeyboardInterrupt)
    assert info.value.report.committed == 20 == count(sessions)

    real = importer.write_batch

    def written_then_interrupted(*args: Any, **kwargs: Any) -> Any:
        real(*args, **kwargs)
        raise KeyboardInterrupt  # Ctrl-C after the batch's writes, before its commit

    monkeypatch.setattr(importer, "write_batch", written_then_interrupted)
    with pytest.raises(ImportInterrupted) as info:
        run(sessions, csv_of(*(f"q{i}@example.com,Q,CR,es" for i in range(10))))
    assert info.value.report.committed == 0
    assert count(sessions) == 20  # rolled back
    monkeypatch.undo()
    report = run(sessions, data, batch_size=10)
    assert (report.added, report.unchanged, count(sessions)) == (30, 20, 50)


def test_addresses_with_array_syntax_are_looked_up_as_themselves(
    sessions: sessionmaker[Session],
) -> None:
    """On PostgreSQL a batch's keys and hashes reach ANY() as one text[] literal: an
    address with braces or quotes in it must be found as itself (re-import, suppression)."""
    odd = ["{ana}@example.com", "b}@example.com", "{c@example.com", "d|e@example.com",
           "'f'@example.com", "g#h@example.com"]
    report = run(sessions, csv_of(*(f"{e},Old,CR,es" for e in odd)), batch_size=2)
    assert (report.added, report.rejected) == (6, 0)
    suppress(sessions, "{c@example.com")
    errors: list[RowError] = []
    report = run(sessions, csv_of(*(f"{e.upper()},New,CR,es" for e in odd)), errors,
                 batch_size=4)
    assert (report.updated, report.suppressed, report.added) == (5, 1, 0)
    assert [(e.row, e.value) for e in errors] == [(4, "{C@example.com")]
    assert values(sessions) == {e: ("Old" if e == "{c@example.com" else "New", "CR", "es")
                                for e in odd}


def test_backslashes_and_quotes_are_stored_as_written(sessions: sessionmaker[Session]) -> None:
    """New rows reach PostgreSQL as one block of COPY text: a backslash in a name, an
    attribute or the consent fields must be stored as itself, not read as an escape."""
    data = (b'email,name,attributes,consent_method,consent_text,note\n'
            b'ana@example.com,Ana \\N Back\\slash,"{""path"": ""C:\\\\tmp\\\\n""}",'
            b'form\\1,v\\t2,\\N\n'
            b'bob@example.com,Bob \\\\,,,,"quote "" \\\\"\n')
    report = run(sessions, data)
    assert (report.added, report.rejected) == (2, 0)
    ana, bob = people(sessions)["ana@example.com"], people(sessions)["bob@example.com"]
    assert ana.name == "Ana \\N Back\\slash"
    assert ana.attributes == {"path": "C:\\tmp\\n", "note": "\\N"}
    assert (ana.consent_method, ana.consent_text, ana.country) == ("form\\1", "v\\t2", None)
    assert bob.name == "Bob \\\\"
    assert bob.attributes == {"note": 'quote " \\\\'}


def batch_of(*rows: str) -> list[SubscriberRow]:
    report = check_rows(io.BytesIO(csv_of(*rows)), ImportOptions())
    return [r for r in report if isinstance(r, SubscriberRow)]


@pytest.mark.parametrize("lookup_first", [False, True])
def test_both_ways_of_writing_a_batch_agree(
    sessions: sessionmaker[Session], lookup_first: bool
) -> None:
    """PostgreSQL inserts a batch first and looks up what was not inserted, or (for a batch
    that is mostly stored already) looks up first: the same counts and rows either way."""
    run(sessions, csv_of("ana@example.com,Ana,CR,es", "bob@example.com,Bob,CR,es"))
    suppress(sessions, "eve@example.com")
    settings = BatchSettings(now=datetime(2030, 1, 1), default_language="en",
                             consent_method="import")
    rows = batch_of("ANA@example.com,Ana,CR,es", "bob@example.com,Robert,,",
                    "cy@example.com,Cy,MX,fr", "eve@example.com,Eve,,")
    with sessions() as session, session.begin():
        result = write_batch(session, rows, settings, lookup_first=lookup_first)
    assert (result.added, result.updated, result.unchanged, result.merged) == (1, 1, 1, 0)
    assert [(r.email, why) for r, why in result.suppressed] == [("eve@example.com", "complaint")]
    assert values(sessions) == {"ana@example.com": ("Ana", "CR", "es"),
                                "bob@example.com": ("Robert", "CR", "es"),
                                "cy@example.com": ("Cy", "MX", "fr")}
    with sessions() as session, session.begin():  # again: bob and cy were written by now
        result = write_batch(session, rows, settings, lookup_first=lookup_first)
    assert (result.added, result.updated, result.unchanged, result.merged) == (0, 0, 1, 2)


def test_text_staged_ahead_is_used_for_its_own_rows_only(
    sessions: sessionmaker[Session],
) -> None:
    """The import builds a batch's COPY text on its reading thread (`staged_text`); the
    writer stages it when it was built for these rows, and builds its own when not."""
    settings = BatchSettings(now=datetime(2030, 1, 1), default_language="es",
                             consent_method="import:people.csv", consent_text="2024-05")
    rows = batch_of('ana@example.com,"Ana \\ Pérez",CR,', "bob@example.com,Bob,MX,en")
    others = batch_of("zed@example.com,Zed,GT,fr")
    with sessions() as session, session.begin():
        result = write_batch(session, rows, settings, staged=bulk.staged_text(rows, settings))
    assert result.added == 2
    with sessions() as session, session.begin():  # text built for other rows: not used
        result = write_batch(session, batch_of("cy@example.com,Cy,,"), settings,
                             staged=bulk.staged_text(others, settings))
    assert result.added == 1
    with sessions() as session, session.begin():  # built with other settings: not used
        text = bulk.staged_text(batch_of("di@example.com,Di,,"), settings)
        result = write_batch(session, batch_of("di@example.com,Di,,"),
                             replace(settings, default_language="fr"), staged=text)
    assert result.added == 1
    stored = people(sessions)
    assert values(sessions) == {"ana@example.com": ("Ana \\ Pérez", "CR", "es"),
                                "bob@example.com": ("Bob", "MX", "en"),
                                "cy@example.com": ("Cy", None, "es"),
                                "di@example.com": ("Di", None, "fr")}
    assert {(p.consent_method, p.consent_text, p.consent_at) for p in stored.values()} == {
        ("import:people.csv", "2024-05", datetime(2030, 1, 1))}
    assert len({p.token_salt for p in stored.values()}) == 4


def test_a_row_added_by_someone_else_after_the_lookup_is_updated(
    sessions: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Looking up first, then inserting: an address another process stored in between is
    not inserted twice; it is looked up again and updated like any stored subscriber."""
    run(sessions, csv_of("ana@example.com,Ana,CR,es"))
    real = bulk._Bulk.existing
    calls: list[int] = []

    def blind_once(self: Any, keys: Any, now: Any) -> Any:
        calls.append(len(keys))
        return {} if len(calls) == 1 else real(self, keys, now)  # the first lookup misses ana

    monkeypatch.setattr(bulk._Bulk, "existing", blind_once)
    settings = BatchSettings(now=datetime(2030, 1, 1), default_language="en",
                             consent_method="import")
    rows = batch_of("ana@example.com,Ana Later,,", "bob@example.com,Bob,,")
    with sessions() as session, session.begin():
        if session.connection().dialect.name == "sqlite":
            with pytest.raises(bulk.ConcurrentChange, match="run the import again"):
                write_batch(session, rows, settings, lookup_first=True)
            return
        result = write_batch(session, rows, settings, lookup_first=True)
    assert (result.added, result.updated) == (1, 1)
    assert calls == [2, 1]
    assert values(sessions)["ana@example.com"] == ("Ana Later", "CR", "es")
    assert count(sessions) == 2
