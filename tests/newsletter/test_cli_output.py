"""What people read in the terminal (issue 8, item 23): whole addresses, timestamps
without microseconds, readable `show`, a named preview index, honest repeat runs, plurals."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from newsletter.cli import cli
from newsletter.words import plural

MEDIUM = "ana.maria.rodriguez.hernandez@ministerio-de-trabajo.example.org"
LONG = "maria.fernanda.rodriguez.hernandez.de.la.cruz@ministerio-de-trabajo.example.org"


def invoke(runner: CliRunner, *args: str, code: int = 0) -> str:
    result = runner.invoke(cli, list(args))
    assert result.exit_code == code, result.output
    return result.output


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # terminal output only
def test_subscribers_list_keeps_addresses_whole_and_times_to_the_second(
    runner: CliRunner,
) -> None:
    invoke(runner, "subscribers", "add", LONG, "--name", "María Fernanda Rodríguez",
           "--country", "CR", "--language", "es")
    invoke(runner, "subscribers", "add", "bo@example.org")
    invoke(runner, "subscribers", "add", MEDIUM, "--name", "Ana", "--country", "NI")
    out = invoke(runner, "subscribers", "list")  # CliRunner's console is 80 columns wide
    assert "created_at ┃" in out and "bo@example.org " in out, out  # nothing cropped
    # too wide for one line beside five columns: folded, not a character lost
    first_column = "".join(line.split("│")[1].strip() for line in out.splitlines()
                           if line.startswith("│"))
    assert LONG in first_column and MEDIUM in first_column, out
    assert not re.search(r"\d{2}:\d{2}:\d{2}\.\d", out)  # no microseconds
    assert re.search(r"\d{4}-\d{2}-\d{2}", out) and re.search(r"\d{2}:\d{2}:\d{2} ", out)
    assert "…" not in out
    # JSON keeps full ISO timestamps for programs
    data = json.loads(invoke(runner, "subscribers", "list", "--json"))
    assert "T" in data[0]["created_at"]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_subscribers_show_prints_key_value_lines(runner: CliRunner) -> None:
    invoke(runner, "lists", "create", "partners")
    invoke(runner, "subscribers", "add", "ana@example.org", "--list", "partners", "--attr",
           "city=León", "--attr", "role=editor")
    out = invoke(runner, "subscribers", "show", "ana@example.org")
    assert "{" not in out and "}" not in out, out
    assert re.search(r"^ +lists:\n +partners: confirmed$", out, re.M), out
    assert re.search(r"^ +attributes:\n +city: León\n +role: editor$", out, re.M), out
    assert not re.search(r"\d{2}:\d{2}:\d{2}\.\d", out)
    data = json.loads(invoke(runner, "subscribers", "show", "ana@example.org", "--json"))
    assert data["attributes"] == {"city": "León", "role": "editor"}


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_the_demo_says_when_nothing_new_was_sent_and_the_index_names_the_issue(
    runner: CliRunner, tmp_path: Path
) -> None:
    first = invoke(runner, "demo", "--outbox", str(tmp_path / "o"))
    assert "sent 33 new messages" in first
    again = invoke(runner, "demo", "--outbox", str(tmp_path / "o"))
    assert "nothing new to send: all 33 messages of this issue were already sent" in again
    assert "sent 33 new" not in again
    index = next(line for line in again.splitlines() if line.startswith("preview: "))
    html = Path(index.removeprefix("preview: ")).read_text(encoding="utf-8")
    assert "<title>Issue demo-2019-10 preview</title>" in html
    assert "<h1>Issue demo-2019-10 preview</h1>" in html
    assert "no title: the default subject line" in html


def test_counts_are_pluralised() -> None:
    assert plural(1, "batch", "batches") == "1 batch"
    assert plural(2, "batch", "batches") == "2 batches"
    assert plural(0, "message") == "0 messages"
    assert plural(1, "new delivery", "new deliveries") == "1 new delivery"
