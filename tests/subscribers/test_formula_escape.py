"""CSV output never hands a spreadsheet a formula (issue 8, item 9; OWASP "CSV Injection").

Every CSV the program writes (`subscribers export`, the `--csv` listings, the
`--errors` file) puts a single quote before a value that starts with =, +, -, @, tab
or CR; `--no-formula-escape` writes the values as they are, for programs. An escaped
export imports back exactly as it was.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from newsletter.cli import cli
from subscribers.export import export_subscribers
from subscribers.filters import Filter
from subscribers.importer import ImportOptions, import_subscribers
from subscribers.models import Subscriber
from subscribers.readers import escape_formula, unescape_formula

PEOPLE = [
    {"email": "=cmd@example.org", "name": "=HYPERLINK(\"http://evil.example\",\"x\")",
     "attributes": {"note": "@SUM(1+1)", "tab": "\tx", "minus": "-5"}},
    {"email": "+plus@example.org", "name": "-2+3", "attributes": {"cr": "+1"}},
    {"email": "ana@example.org", "name": "Ana", "attributes": {"q": "'=already"}},
]


def load(sessions: sessionmaker[Session]) -> None:
    report = import_subscribers(sessions, io.BytesIO(json.dumps(PEOPLE).encode()),
                                ImportOptions(format="json"), default_language="en")
    assert report.rejected == 0, report.errors


def export_csv(sessions: sessionmaker[Session], **options: bool) -> list[dict[str, str]]:
    out = io.StringIO()
    with sessions() as session:
        export_subscribers(session, Filter(), "csv", out, **options)
    return list(csv.DictReader(io.StringIO(out.getvalue(), newline="")))


def test_export_escapes_every_formula_cell(sessions: sessionmaker[Session]) -> None:
    load(sessions)
    rows = {r["email"]: r for r in export_csv(sessions)}
    assert set(rows) == {"'=cmd@example.org", "'+plus@example.org", "ana@example.org"}
    assert rows["'=cmd@example.org"]["name"].startswith("'=HYPERLINK(")
    assert rows["'+plus@example.org"]["name"] == "'-2+3"
    for row in rows.values():
        for value in row.values():
            assert not value.startswith(("=", "+", "-", "@", "\t", "\r")), value


def test_no_formula_escape_writes_values_as_they_are(sessions: sessionmaker[Session]) -> None:
    load(sessions)
    rows = {r["email"]: r for r in export_csv(sessions, formula_escape=False)}
    assert set(rows) == {"=cmd@example.org", "+plus@example.org", "ana@example.org"}
    assert rows["+plus@example.org"]["name"] == "-2+3"


def test_an_escaped_export_imports_back_as_it_was(sessions: sessionmaker[Session]) -> None:
    load(sessions)
    out = io.StringIO()
    with sessions() as session:
        export_subscribers(session, Filter(), "csv", out)
        before = {s.email: (s.name, s.attributes) for s in session.scalars(select(Subscriber))}
        for s in session.scalars(select(Subscriber)):
            session.delete(s)
        session.commit()
    report = import_subscribers(sessions, io.BytesIO(out.getvalue().encode()), ImportOptions(),
                                default_language="en")
    assert report.rejected == 0, report.errors
    with sessions() as session:
        after = {s.email: (s.name, s.attributes) for s in session.scalars(select(Subscriber))}
    assert after == before


def test_the_commands_escape_and_can_be_told_not_to(
    runner: CliRunner, sessions: sessionmaker[Session]
) -> None:
    load(sessions)
    listed = runner.invoke(cli, ["subscribers", "list", "--csv"])
    assert listed.exit_code == 0, listed.output
    emails = {r["email"] for r in csv.DictReader(io.StringIO(listed.output))}
    assert emails == {"'=cmd@example.org", "'+plus@example.org", "ana@example.org"}
    raw = runner.invoke(cli, ["subscribers", "list", "--csv", "--no-formula-escape"])
    assert {r["email"] for r in csv.DictReader(io.StringIO(raw.output))} == {
        "=cmd@example.org", "+plus@example.org", "ana@example.org"}
    exported = runner.invoke(cli, ["subscribers", "export"])
    assert exported.exit_code == 0, exported.output
    assert "\n'=cmd@example.org," in exported.output
    raw_export = runner.invoke(cli, ["subscribers", "export", "--no-formula-escape"])
    assert "\n=cmd@example.org," in raw_export.output
    for command in (["subscribers", "export"], ["subscribers", "list"]):
        assert "--no-formula-escape" in runner.invoke(cli, [*command, "--help"]).output


@pytest.mark.fuzz
@given(st.text(max_size=12))
def test_escaping_is_undone_exactly(cell: str) -> None:
    escaped = escape_formula(cell)
    assert unescape_formula(escaped) == cell
    assert not escaped.startswith(("=", "+", "-", "@", "\t", "\r", "\0"))


def test_the_errors_file_escapes_every_cell_the_imported_file_chose(
    runner: CliRunner, tmp_path: Path
) -> None:
    """The field of a rejected row can come from the file too: a column's name, or a key
    of a JSON record."""
    people = tmp_path / "people.csv"
    people.write_text("email,=HYPERLINK(\"http://evil.example\")\n"
                      f"ana@example.org,{'x' * 1001}\n"
                      "-bad,\n", encoding="utf-8")
    records = tmp_path / "people.ndjson"
    records.write_text(json.dumps({"email": "bo@example.org", "@SUM(1)": "\ud800"}) + "\n",
                       encoding="utf-8")
    for path in (people, records):
        errors = tmp_path / f"{path.name}.errors.csv"
        result = runner.invoke(cli, ["subscribers", "import", str(path), "--silent",
                                     "--errors", str(errors)])
        assert result.exit_code == 2, result.output
        rows = list(csv.reader(io.StringIO(errors.read_text(encoding="utf-8"), newline="")))
        assert len(rows) > 1, rows
        for cell in (c for row in rows for c in row):
            assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), (path.name, rows)
