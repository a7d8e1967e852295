"""`--attr KEY=VALUE` with any key, on SQLite and PostgreSQL (issue 8, item 4).

Keys are bound parameters, never spliced into a JSON path: a quote, a dot, brackets,
`$`, spaces or non-ASCII letters in a CSV column name or an attributes key all work,
in `subscribers list`, `export` and `segments create`.
"""

from __future__ import annotations

import csv
import io
import itertools
import json

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import delete
from sqlalchemy.orm import Session, sessionmaker

from newsletter.cli import cli
from newsletter.cli.filtering import parse_attributes
from subscribers.filters import Filter
from subscribers.importer import ImportOptions, import_subscribers
from subscribers.models import Subscriber
from subscribers.people import select_subscribers
from subscribers.readers import unescape_formula
from subscribers.rows import clean_attribute, clean_attribute_key

AWKWARD = ['x"y', "a.b", "c[0]", "$d", "e f", "ünï", "g'h", '$."', "k\\l", "*", "[", "m]"]


def load(sessions: sessionmaker[Session], data: bytes, fmt: str = "csv") -> None:
    report = import_subscribers(sessions, io.BytesIO(data), ImportOptions(format=fmt),
                                default_language="en")
    assert report.rejected == 0, report.errors


def csv_of(header: list[str], *rows: list[str]) -> bytes:
    out = io.StringIO()
    csv.writer(out).writerows([header, *rows])
    return out.getvalue().encode()


def matching(sessions: sessionmaker[Session], *options: str) -> list[str]:
    with sessions() as session:
        return [s.email for s in select_subscribers(
            session, Filter(attributes=parse_attributes(options)))]


@pytest.mark.parametrize("key", AWKWARD)
def test_a_csv_column_with_an_awkward_name_can_be_matched(
    sessions: sessionmaker[Session], key: str
) -> None:
    load(sessions, csv_of(["email", key], ["ana@example.org", "1"], ["bo@example.org", "2"]))
    escaped = key.replace("\\", "\\\\")
    assert matching(sessions, f"{escaped}=1") == ["ana@example.org"]
    assert matching(sessions, f"{escaped}=2") == ["bo@example.org"]
    assert matching(sessions, f"{escaped}=3") == []


def test_keys_from_the_attributes_json_and_an_equals_sign(
    sessions: sessionmaker[Session]
) -> None:
    attributes = {"Quote\"d": "sí", "a=b": "c=d", "$.x": "[1]", "ünï code": "ok"}
    load(sessions, json.dumps([{"email": "ana@example.org", "attributes": attributes}]).encode(),
         "json")
    assert matching(sessions, 'Quote"d=sí') == ["ana@example.org"]
    assert matching(sessions, "a\\=b=c=d") == ["ana@example.org"]  # \= inside the key
    assert matching(sessions, "$.x=[1]", "ünï code=ok") == ["ana@example.org"]
    assert matching(sessions, "$.x=[2]") == []


def test_the_commands_accept_any_key(runner: CliRunner, sessions: sessionmaker[Session]
                                     ) -> None:
    load(sessions, csv_of(["email", 'city"'], ["ana@example.org", "León"],
                          ["bo@example.org", "Cobán"]))
    listed = runner.invoke(cli, ["subscribers", "list", "--attr", 'city"=León', "--json"])
    assert listed.exit_code == 0, listed.output
    assert [p["email"] for p in json.loads(listed.output)] == ["ana@example.org"]
    exported = runner.invoke(cli, ["subscribers", "export", "--attr", 'city"=Cobán',
                                   "--format", "ndjson"])
    assert exported.exit_code == 0, exported.output
    assert [json.loads(line)["email"] for line in exported.output.splitlines()] == [
        "bo@example.org"]
    created = runner.invoke(cli, ["segments", "create", "leon", "--attr", 'city"=León'])
    assert created.exit_code == 0, created.output
    assert "(1 subscribers now)" in created.output
    preview = runner.invoke(cli, ["segments", "preview", "leon", "--json"])
    assert json.loads(preview.output)["count"] == 1
    added = runner.invoke(cli, ["subscribers", "add", "cy@example.org", "--attr", 'city"=León'])
    assert added.exit_code == 0, added.output
    again = runner.invoke(cli, ["subscribers", "list", "--attr", 'city"=León', "--json"])
    assert [p["email"] for p in json.loads(again.output)] == [
        "ana@example.org", "cy@example.org"]


def test_a_key_without_a_value_separator_is_a_usage_error(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["subscribers", "list", "--attr", "a\\=b"])
    assert result.exit_code == 2
    assert "KEY=VALUE" in result.output


# any text but control characters (the import turns those into spaces)
_TEXT = st.text(st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=20)
_emails = itertools.count()


@pytest.mark.fuzz
@given(key=_TEXT, value=_TEXT, via=st.sampled_from(["attributes", "column"]))
def test_whatever_is_imported_with_a_key_is_found_with_attr(
    sessions: sessionmaker[Session], key: str, value: str, via: str
) -> None:
    stored_key = clean_attribute_key(key.lower() if via == "column" else key)
    if not stored_key or not clean_attribute(unescape_formula(value)) or (
            via == "column" and stored_key in {"email", "name", "country", "language",
                                              "status", "attributes", "consent_at",
                                              "consent_method", "consent_text", "id",
                                              "lists", "created_at", "updated_at"}):
        return  # an empty key or value is not stored; a known column is not an attribute
    with sessions() as session, session.begin():
        session.execute(delete(Subscriber))
    email = f"p{next(_emails)}@example.org"
    other = f"q{next(_emails)}@example.org"
    if via == "column":
        load(sessions, csv_of(["email", key], [email, value], [other, value + "x"]))
    else:
        people = [{"email": email, "attributes": {key: value}},
                  {"email": other, "attributes": {key: value + "x"}}]
        load(sessions, json.dumps(people).encode(), "json")
    # what a person types: the key as it was imported (a CSV column name in lower case),
    # with = and \ written \= and \\; a CSV cell's leading ' before =, +, -, @ is the
    # formula escape of a spreadsheet or an export, and is taken off
    typed = stored_key.replace("\\", "\\\\").replace("=", "\\=")
    if via == "column":
        value = unescape_formula(value)
    assert matching(sessions, f"{typed}={value}") == [email]
