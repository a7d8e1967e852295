"""`newsletter subscribers import` and `export` through Click, on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from newsletter.cli import cli
from newsletter.cli.context import App
from newsletter.cli.transfer import export_cmd
from newsletter.settings import Settings
from subscribers.models import MailingList, Subscriber

HOSTILE = [
    ["email", "name", "country", "language"],  # 1
    ["ana@EXAMPLE.org", "Ana", "CR", "es"],  # 2
    ["not-an-address", "Nobody", "CR", "es"],  # 3 bad address
    ["eve@example.org", "Eve\r\nBcc: x@example.com", "SV", "es-SV"],  # 4-5 cleaned
    ["zed@example.org", "Zed", "Atlantis", "en"],  # 6 unknown country: kept, a warning
    ["ANA@example.org", "Ana María", "", ""],  # 7 ana again: merged
    ["", "", "", ""],  # 8 empty
    ["kim@example.org", "=?utf-8?b?QmNjOg==?=", "GT", "es"],  # 9 encoded-word
]
ERRORS = [["3", "email", "not-an-address"], ["9", "name", "=?utf-8?b?QmNjOg==?="]]
WARNINGS = [["6", "country", "Atlantis"]]


def hostile(delimiter: str = ",") -> bytes:
    out = io.StringIO()
    csv.writer(out, delimiter=delimiter, lineterminator="\r\n").writerows(HOSTILE)
    return b"\xef\xbb\xbf" + out.getvalue().encode()


def stored(sessions: sessionmaker[Session]) -> dict[str, tuple[str, str | None, str, str]]:
    with sessions() as session:
        return {s.email: (s.name, s.country, s.language, s.consent_method or "")
                for s in session.scalars(select(Subscriber))}


def test_import_reports_rejected_rows_and_exits_2(
    runner: CliRunner, sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    path = tmp_path / "people.csv"
    path.write_bytes(hostile())
    errors = tmp_path / "errors.csv"
    result = runner.invoke(cli, ["subscribers", "import", str(path), "--errors", str(errors),
                                 "--silent"])
    assert result.exit_code == 2, result.output
    assert ("3 added, 0 updated, 0 unchanged, 1 duplicate row merged, 2 rejected, "
            "1 warning (" in result.output)
    assert "row 3: email 'not-an-address'" in result.output
    assert "row 6: country 'Atlantis'" in result.output and "(warning)" in result.output
    rows = list(csv.reader(errors.open(newline="", encoding="utf-8")))
    assert rows[0] == ["row", "field", "value", "reason", "level"]
    # the values are the file's own: a spreadsheet must not run them (OWASP)
    assert [r[:3] for r in rows[1:] if r[4] == "error"] == [
        ["3", "email", "not-an-address"], ["9", "name", "'=?utf-8?b?QmNjOg==?="]]
    assert [r[:3] for r in rows[1:] if r[4] == "warning"] == WARNINGS
    assert stored(sessions) == {
        "ana@example.org": ("Ana María", "CR", "es", "import:people.csv"),
        "eve@example.org": ("Eve Bcc: x@example.com", "SV", "es-SV", "import:people.csv"),
        "zed@example.org": ("Zed", None, "en", "import:people.csv"),
    }


def test_stdin_with_a_semicolon_gives_the_same_result_as_json(
    runner: CliRunner, sessions: sessionmaker[Session]
) -> None:
    result = runner.invoke(cli, ["subscribers", "import", "-", "--delimiter", ";", "--json"],
                           input=hostile(";"))
    assert result.exit_code == 2, result.output
    report = json.loads(result.stdout)
    assert (report["added"], report["merged"], report["rejected"]) == (3, 1, 2)
    assert [[str(e["row"]), e["field"], e["value"]] for e in report["errors"]] == ERRORS
    assert [[str(e["row"]), e["field"], e["value"]] for e in report["warnings"]] == WARNINGS
    assert report["warned"] == 1
    assert {e: v[3] for e, v in stored(sessions).items()} == {
        "ana@example.org": "import:stdin", "eve@example.org": "import:stdin",
        "zed@example.org": "import:stdin"}


def test_dry_run_writes_nothing(runner: CliRunner, sessions: sessionmaker[Session],
                                tmp_path: Path) -> None:
    path = tmp_path / "people.csv"
    path.write_bytes(hostile())
    result = runner.invoke(cli, ["subscribers", "import", str(path), "--dry-run"])
    assert result.exit_code == 2
    assert result.output.startswith("dry run, nothing written: 3 added")
    assert stored(sessions) == {}


def test_a_clean_file_exits_0_and_ndjson_is_recognised(
    runner: CliRunner, sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    path = tmp_path / "people.ndjson"
    path.write_text('{"email": "ana@example.org", "country": "Costa Rica"}\n')
    result = runner.invoke(cli, ["subscribers", "import", str(path)])
    assert result.exit_code == 0, result.output
    assert stored(sessions)["ana@example.org"][1] == "CR"


@pytest.mark.parametrize(("args", "message"), [
    (["--list", "nope"], "newsletter lists create nope"),
    (["--delimiter", ";;"], "one character"),
    (["--encoding", "klingon"], "unknown encoding"),
])
def test_whole_file_problems_exit_1(runner: CliRunner, tmp_path: Path, args: list[str],
                                    message: str) -> None:
    path = tmp_path / "people.csv"
    path.write_bytes(hostile())
    result = runner.invoke(cli, ["subscribers", "import", str(path), *args])
    assert result.exit_code == 1
    assert message in result.output


def test_a_list_and_the_summary(runner: CliRunner, sessions: sessionmaker[Session],
                                tmp_path: Path) -> None:
    with sessions() as session, session.begin():
        session.add(MailingList(name="news", opt_in="single"))
    path = tmp_path / "people.csv"
    path.write_bytes(b"email\nana@example.org\nbob@example.org\n")
    result = runner.invoke(cli, ["subscribers", "import", str(path), "--list", "news"])
    assert result.exit_code == 0, result.output
    assert "2 added" in result.output and "2 subscribed to the list" in result.output


def export(settings: Settings, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(export_cmd, list(args), obj=App(settings))
    return result.exit_code, result.stdout, result.stderr


def test_export_with_filters(runner: CliRunner, settings: Settings, tmp_path: Path) -> None:
    people = (b"email,name,country,language\nana@example.org,Ana,CR,es\n"
              b"bob@example.org,Bob,BZ,en\nfred@example.org,Fred,NI,en\nzoe@example.org,Zoe,,es\n")
    assert runner.invoke(cli, ["subscribers", "import", "-"], input=people).exit_code == 0

    code, out, _ = export(settings, "--country", "CR,NI", "--silent")
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out, newline="")))
    assert [r["email"] for r in rows] == ["ana@example.org", "fred@example.org"]

    code, out, _ = export(settings, "--country", "none", "--country", "BZ", "--format", "json")
    assert [r["email"] for r in json.loads(out)] == ["bob@example.org", "zoe@example.org"]

    target = tmp_path / "out.ndjson"
    code, out, err = export(settings, "--language", "en", "--email", "FRED", "-o", str(target))
    assert code == 0 and out == ""
    assert "1 subscribers written to" in err
    assert [json.loads(line)["email"] for line in target.read_text().splitlines()] == [
        "fred@example.org"]

    code, _, err = export(settings, "--status", "gone")
    assert code == 1 and "unknown status 'gone'" in err


def test_export_explains_itself() -> None:
    result = CliRunner().invoke(export_cmd, ["--help"])
    assert result.exit_code == 0 and "Example:" in result.output
