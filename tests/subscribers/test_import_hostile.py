"""Hostile subscriber files found by hand and by the fuzzer (issue 8, items 3, 7, 10, 19).

Each bad value is one row's error, naming the row and the field, and the other rows
import; a file-level problem part-way through says what is stored and how to finish.
Against SQLite and PostgreSQL, through `import_subscribers` and the CLI.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from newsletter.cli import cli
from subscribers import readers
from subscribers.importer import (
    ImportFileError,
    ImportOptions,
    ImportReport,
    ImportStopped,
    RowError,
    check_rows,
    import_csv,
    import_subscribers,
)
from subscribers.models import Subscriber

DEEP = "[" * 1000
HUGE = "1" * 4301  # one digit more than Python converts


def run(sessions: sessionmaker[Session], data: bytes, errors: list[RowError] | None = None,
        **options: Any) -> ImportReport:
    return import_subscribers(
        sessions, io.BytesIO(data), ImportOptions(**options), default_language="en",
        on_error=errors.append if errors is not None else None,
    )


def stored(sessions: sessionmaker[Session]) -> dict[str, Subscriber]:
    with sessions() as session:
        return {s.email: s for s in session.scalars(select(Subscriber))}


# --- item 3: a value Python cannot hold is a row error, not a crash -----------------------


@pytest.mark.parametrize(("header", "cell", "field", "reason"), [
    ("consent_at", "9999-12-31T23:59:59-14:00", "consent_at", "out of range"),
    ("consent_at", "0001-01-01T00:00:00+14:00", "consent_at", "out of range"),
    ("attributes", DEEP, "attributes", "not a JSON object"),
    ("attributes", '{"n": ' + HUGE + "}", "attributes", "4301 digits"),
    ("attributes", '{"a": ' + "[" * 150 + "]" * 150 + "}", "attributes", "nested"),
    ("attributes", '{"a": "\\ud800"}', "attributes", "not valid Unicode"),
])
def test_a_csv_value_python_cannot_hold_rejects_its_row_only(
    sessions: sessionmaker[Session], header: str, cell: str, field: str, reason: str
) -> None:
    quoted = '"' + cell.replace('"', '""') + '"'
    data = f"email,{header}\nana@example.org,\nbad@example.org,{quoted}\ncy@example.org,\n"
    data = data.encode()
    report = run(sessions, data, batch_size=10)
    assert [(e.row, e.field) for e in report.errors] == [(3, field)]
    assert reason in report.errors[0].reason
    assert set(stored(sessions)) == {"ana@example.org", "cy@example.org"}


def test_the_in_memory_import_rejects_the_same_rows(sessions: sessionmaker[Session]) -> None:
    data = (b"email,consent_at\nana@example.org,\n"
            b"bad@example.org,9999-12-31T23:59:59-14:00\n")
    with sessions() as session, session.begin():
        report = import_csv(session, data, default_language="en")
    assert [(e.row, e.field) for e in report.errors] == [(3, "consent_at")]
    assert set(stored(sessions)) == {"ana@example.org"}


def _json_people(deep: str, huge: str) -> list[str]:
    """Subscriber objects as JSON text: good, too deep (in a field and as a whole), huge."""
    return [
        '{"email": "ana@example.org"}',
        '{"email": "bo@example.org", "attributes": ' + deep + "1" + deep.replace("[", "]") + "}",
        deep + deep.replace("[", "]"),
        '{"email": "cy@example.org", "score": ' + huge + "}",
        '{"email": "di@example.org", "name": "Di"}',
    ]


@pytest.mark.parametrize("fmt", ["json", "ndjson"])
def test_deep_or_huge_json_rejects_the_object_only(
    sessions: sessionmaker[Session], fmt: str
) -> None:
    people = _json_people(DEEP, HUGE)
    if fmt == "json":
        data = ("[\n" + ",\n".join(people) + "\n]\n").encode()
    else:
        data = "\n".join(people).encode()
    report = run(sessions, data, format=fmt)
    assert [(e.row, e.field) for e in report.errors] == [
        (2, "attributes"), (3, "record"), (4, "score")]
    assert all("nested" in e.reason for e in report.errors[:2])
    assert "4301 digits" in report.errors[2].reason
    assert set(stored(sessions)) == {"ana@example.org", "di@example.org"}


@pytest.mark.parametrize("fmt", ["json", "ndjson"])
def test_a_record_that_is_not_an_object_is_named_in_json_words(
    sessions: sessionmaker[Session], fmt: str
) -> None:
    people = ['{"email": "ana@example.org"}', HUGE, '"bo@example.org"', "null", "[1]", "2.5"]
    data = ("[" + ",".join(people) + "]" if fmt == "json" else "\n".join(people)).encode()
    report = run(sessions, data, format=fmt)
    assert [e.reason.split(",")[0] for e in report.errors] == [
        "is a JSON number", "is a JSON string", "is a JSON null", "is a JSON array",
        "is a JSON number"]
    assert set(stored(sessions)) == {"ana@example.org"}


def test_a_deep_object_split_across_chunks_is_skipped_whole(
    sessions: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(readers, "CHUNK", 64)  # the deep item arrives in many pieces
    people = _json_people(DEEP, HUGE)
    data = ("[" + ", ".join(people) + "]").encode()
    report = run(sessions, data, format="json")
    assert [(e.row, e.field) for e in report.errors] == [
        (2, "attributes"), (3, "record"), (4, "score")]
    assert set(stored(sessions)) == {"ana@example.org", "di@example.org"}


def test_a_number_split_across_chunks_is_one_item(
    sessions: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(readers, "CHUNK", 8)
    for split in range(8):  # wherever the chunks cut the number
        data = ('[{"email": "ana@example.org"},' + " " * split + "1234567890123,"
                '{"email": "bo@example.org"}]').encode()
        report = run(sessions, data, format="json")
        assert [(e.row, e.field) for e in report.errors] == [(2, "record")]
        assert "JSON number" in report.errors[0].reason
    assert set(stored(sessions)) == {"ana@example.org", "bo@example.org"}


def test_utf16_without_a_byte_order_mark_is_a_clear_file_error(
    runner: CliRunner, tmp_path: Path
) -> None:
    data = "email\nana@example.org\n".encode("utf-16-le")
    for fmt in ("csv", "ndjson", "json"):
        with pytest.raises(ImportFileError, match="utf-16-le"):
            list(check_rows(io.BytesIO(data), ImportOptions(format=fmt, encoding="utf-16")))
    path = tmp_path / "people.csv"
    path.write_bytes(data)
    result = runner.invoke(cli, ["subscribers", "import", str(path), "--encoding", "utf-16"])
    assert result.exit_code == 1
    assert "--encoding utf-16-le" in result.output and "Traceback" not in result.output
    ok = runner.invoke(cli, ["subscribers", "import", str(path), "--encoding", "utf-16-le"])
    assert ok.exit_code == 0 and "1 added" in ok.output


def test_cli_reports_the_row_and_field(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "people.ndjson"
    path.write_text("\n".join(_json_people(DEEP, HUGE)))
    result = runner.invoke(cli, ["subscribers", "import", str(path), "--json"])
    assert result.exit_code == 2, result.output
    report = json.loads(result.stdout)
    assert report["added"] == 2
    assert [(e["row"], e["field"]) for e in report["errors"]] == [
        (2, "attributes"), (3, "record"), (4, "score")]


@pytest.mark.parametrize("options", [[], ["--json"], ["--errors", "rejected.csv"]])
def test_a_lone_surrogate_in_a_key_or_header_is_reported_not_a_traceback(
    runner: CliRunner, tmp_path: Path, options: list[str]
) -> None:
    """A JSON key such as "\\ud800x" (or a CSV header read with --encoding utf-7) named
    the field of the rejected row, and no terminal, CSV or JSON output can write it."""
    records = tmp_path / "people.ndjson"
    records.write_text('{"email": "ana@example.org", "\\ud800x": "1"}\n'
                       '{"email": "bo@example.org"}\n', encoding="utf-8")
    header = tmp_path / "people.csv"
    header.write_bytes(b"email,+2ADYAA-\nana@example.org," + b"x" * 1001 + b"\n"
                       b"bo@example.org,1\n")
    for path, encoding in ((records, "utf-8"), (header, "utf-7")):
        args = [a.replace("rejected.csv", str(tmp_path / "rejected.csv")) for a in options]
        result = runner.invoke(cli, ["subscribers", "import", str(path), "--silent",
                                     "--encoding", encoding, *args])
        assert result.exit_code == 2, (path.name, result.output, result.exception)
        assert "Traceback" not in result.output


@pytest.mark.parametrize("encoding", ["hex", "rot13", "base64", "zlib"])
@pytest.mark.parametrize("fmt", ["csv", "ndjson", "json"])
def test_a_codec_that_is_not_a_text_encoding_is_a_clear_file_error(
    sessions: sessionmaker[Session], encoding: str, fmt: str
) -> None:
    """--encoding hex or base64 named a codec Python knows, and the import ended in a
    LookupError, TypeError or binascii.Error traceback."""
    with pytest.raises(ImportFileError, match=f"{encoding!r} is not a text encoding"):
        run(sessions, b'{"email": "ana@example.org"}\n', format=fmt, encoding=encoding)


def test_add_keeps_any_attribute_text(runner: CliRunner, sessions: sessionmaker[Session]
                                      ) -> None:
    result = runner.invoke(cli, ["subscribers", "add", "ana@example.org",
                                 "--attr", f'x"y={DEEP}', "--attr", f"n={HUGE}"])
    assert result.exit_code == 0, result.output
    assert stored(sessions)["ana@example.org"].attributes == {'x"y': DEEP, "n": HUGE}


# --- item 7: a file-level problem part-way through says what is stored -----------------


def _broken_at_row_24() -> bytes:
    rows = [f"p{n}@example.org,Person {n}\n".encode() for n in range(2, 31)]
    rows[22] = b"p24@example.org,Caf\xe9\n"  # row 24: Latin-1 in a UTF-8 file
    return b"email,name\n" + b"".join(rows)


def test_bad_bytes_part_way_store_the_rows_before_and_say_so(
    sessions: sessionmaker[Session]
) -> None:
    with pytest.raises(ImportStopped) as info:
        run(sessions, _broken_at_row_24(), batch_size=5)
    message = str(info.value)
    assert message.startswith("row 24: the file is not UTF-8")
    assert "22 rows before it were read: 22 added" in message
    assert "are stored" in message and "run the same command again" in message
    assert info.value.report.added == 22
    assert len(stored(sessions)) == 22  # rows 2-23, the last partial batch included

    fixed = _broken_at_row_24().replace(b"Caf\xe9", "Café".encode())
    report = run(sessions, fixed, batch_size=5)
    assert (report.added, report.unchanged) == (7, 22)
    assert len(stored(sessions)) == 29


def test_a_dry_run_says_nothing_was_written(sessions: sessionmaker[Session]) -> None:
    with pytest.raises(ImportStopped, match="dry run, nothing was written"):
        run(sessions, _broken_at_row_24(), batch_size=5, dry_run=True)
    assert stored(sessions) == {}


def test_cli_says_what_is_stored_in_text_and_json(
    runner: CliRunner, sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    path = tmp_path / "people.csv"
    path.write_bytes(_broken_at_row_24())
    result = runner.invoke(cli, ["subscribers", "import", str(path), "--batch-size", "5"])
    assert result.exit_code == 1
    assert "row 24" in result.output and "22 added" in result.output
    assert "run the same command again" in result.output

    as_json = runner.invoke(cli, ["subscribers", "import", str(path), "--json"])
    assert as_json.exit_code == 1
    report = json.loads(as_json.stdout)
    assert report["error"].startswith("row 24: the file is not UTF-8")
    assert (report["read"], report["unchanged"], report["stored"]) == (22, 22, 22)
    assert "run the same command again" in report["resume"]


def test_a_header_problem_is_still_a_plain_file_error(sessions: sessionmaker[Session]) -> None:
    with pytest.raises(ImportFileError) as info:
        run(sessions, b"name\nAna\n")
    assert not isinstance(info.value, ImportStopped)


# --- item 10: CR-only and mixed line endings -------------------------------------------


def test_cr_only_line_endings_are_read_with_the_right_rows(
    sessions: sessionmaker[Session]
) -> None:
    data = b"email,name\rana@example.org,Ana\rnot-an-address,X\r\rbo@example.org,Bo\r"
    report = run(sessions, data)
    assert [(e.row, e.field) for e in report.errors] == [(3, "email")]
    assert {e: s.name for e, s in stored(sessions).items()} == {
        "ana@example.org": "Ana", "bo@example.org": "Bo"}


def test_mixed_line_endings_and_a_quoted_line_break(sessions: sessionmaker[Session]) -> None:
    data = (b"email,name\r\nana@example.org,Ana\rbo@example.org,\"Bo\rBo\"\n"
            b"not-an-address,X\r\ncy@example.org,Cy\n\rbad,Y")
    report = run(sessions, data)
    # rows: 2 ana, 3-4 bo (a CR inside quotes), 5 bad, 6 cy, 7 blank, 8 bad
    assert [(e.row, e.field) for e in report.errors] == [(5, "email"), (8, "email")]
    assert {e: s.name for e, s in stored(sessions).items()} == {
        "ana@example.org": "Ana", "bo@example.org": "Bo Bo", "cy@example.org": "Cy"}


def test_a_crlf_split_between_two_reads_is_one_line_ending(
    sessions: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(readers, "CHUNK", 7)
    data = b"email\r\nana@example.org\r\nnope\r\nbo@example.org\r\n"
    report = run(sessions, data)
    assert [(e.row, e.field) for e in report.errors] == [(3, "email")]
    assert set(stored(sessions)) == {"ana@example.org", "bo@example.org"}


class _Pieces(io.RawIOBase):
    """A stream whose reads return the pieces given, one per read (short reads)."""

    def __init__(self, pieces: list[bytes]) -> None:
        self.pieces = pieces

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        return self.pieces.pop(0) if self.pieces else b""


@pytest.mark.fuzz
@given(st.lists(st.binary(max_size=6) | st.sampled_from([b"\r", b"\n", b"\r\n", b"a\r"]),
                max_size=12))
def test_lines_are_split_the_same_wherever_the_reads_end(pieces: list[bytes]) -> None:
    data = b"".join(pieces)
    lines = list(readers._byte_lines(_Pieces([p for p in pieces if p])))
    assert lines == data.splitlines(keepends=True)


@pytest.mark.timeout(20)
def test_a_long_line_is_read_in_linear_time() -> None:
    """No line ending for 64 MB (a minified JSON file named .ndjson): joining what was
    read so far with every chunk made this minutes long."""
    data = b"x" * (64 << 20)
    assert list(readers._byte_lines(io.BytesIO(data))) == [data]


# --- item 19: an unknown country is a warning, an error only with --strict -------------


def test_unknown_country_keeps_the_person_without_one(sessions: sessionmaker[Session]) -> None:
    out: list[RowError] = []
    report = run(sessions, b"email,country\nana@example.org,Atlantis\nbo@example.org,CR\n", out)
    assert report.rejected == 0 and report.added == 2 and report.warned == 1
    assert [(w.row, w.field, w.value, w.level) for w in report.warnings] == [
        (2, "country", "Atlantis", "warning")]
    assert out == report.warnings
    assert {e: s.country for e, s in stored(sessions).items()} == {
        "ana@example.org": None, "bo@example.org": "CR"}
    assert report.as_dict()["warnings"][0]["value"] == "Atlantis"


def test_strict_rejects_the_row(sessions: sessionmaker[Session]) -> None:
    report = run(sessions, b"email,country\nana@example.org,Atlantis\nbo@example.org,CR\n",
                 strict=True)
    assert [(e.row, e.field, e.level) for e in report.errors] == [(2, "country", "error")]
    assert report.warned == 0
    assert set(stored(sessions)) == {"bo@example.org"}


def test_a_warning_keeps_a_stored_country(sessions: sessionmaker[Session]) -> None:
    run(sessions, b"email,country\nana@example.org,CR\n")
    report = run(sessions, b"email,country\nana@example.org,Atlantis\n")
    assert (report.unchanged, report.warned) == (1, 1)
    assert stored(sessions)["ana@example.org"].country == "CR"


def test_cli_strict_and_warnings(runner: CliRunner, sessions: sessionmaker[Session],
                                 tmp_path: Path) -> None:
    path = tmp_path / "people.csv"
    path.write_bytes(b"email,country\nana@example.org,Atlantis\n")
    result = runner.invoke(cli, ["subscribers", "import", str(path), "--strict"])
    assert result.exit_code == 2 and "1 rejected" in result.output
    result = runner.invoke(cli, ["subscribers", "import", str(path)])
    assert result.exit_code == 0, result.output
    assert "1 added" in result.output and "1 warning (" in result.output
    assert "row 2: country 'Atlantis'" in result.output and "(warning)" in result.output


def test_add_by_hand_still_refuses_an_unknown_country(
    runner: CliRunner, sessions: sessionmaker[Session]
) -> None:
    # the person typing is there to correct it: an error, nothing stored
    result = runner.invoke(cli, ["subscribers", "add", "ana@example.org", "--country",
                                 "Atlantis"])
    assert result.exit_code == 1
    assert "is not a known country" in result.output
    assert stored(sessions) == {}
