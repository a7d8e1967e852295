"""The administrators' CLI: lists, subscribers, segments, suppressions, privacy."""

from __future__ import annotations

import csv
import io
import json

import pytest
from click.testing import CliRunner, Result

from newsletter.cli import cli


def run(runner: CliRunner, *args: str, code: int = 0, stdin: str | None = None) -> Result:
    result = runner.invoke(cli, list(args), input=stdin)
    assert result.exit_code == code, result.output
    return result


@pytest.fixture
def admin(runner: CliRunner) -> CliRunner:
    run(runner, "lists", "create", "partners", "--description", "Partner NGOs")
    run(runner, "lists", "create", "press", "--opt-in", "double")
    run(runner, "subscribers", "add", "ana@example.org", "--name", "Ana", "--country",
        "Costa Rica", "--language", "es-CR", "--list", "partners", "--consent", "form:v1",
        "--consent-text", "2019-01")
    run(runner, "subscribers", "add", "bo@example.org", "--country", "BZ", "--list", "press",
        "--attr", "org=unicef")
    run(runner, "subscribers", "add", "cy@example.org", "--country", "NI", "--language", "es")
    return runner


def test_lists_lifecycle(admin: CliRunner) -> None:
    listed = json.loads(run(admin, "lists", "list", "--json").output)
    assert [(x["name"], x["opt_in"], x["confirmed"], x["unconfirmed"]) for x in listed] == [
        ("partners", "single", 1, 0), ("press", "double", 0, 1)]
    run(admin, "lists", "create", "partners", code=1)
    run(admin, "lists", "rename", "press", "media")
    run(admin, "lists", "update", "media", "--opt-in", "single")
    shown = json.loads(run(admin, "lists", "show", "media", "--json").output)
    assert shown == [{"name": "media", "opt_in": "single", "confirmed": 0, "unconfirmed": 1,
                      "unsubscribed": 0, "description": ""}]
    refused = run(admin, "lists", "delete", "media", stdin="n\n", code=1)
    assert "Aborted" in refused.output
    assert "deleted with its 1 subscriptions" in run(admin, "lists", "delete", "media",
                                                     "--yes").output
    run(admin, "lists", "show", "media", code=1)


def test_subscribers_list_filters_and_formats(admin: CliRunner) -> None:
    data = json.loads(run(admin, "subscribers", "list", "--country", "CR,NI", "--json").output)
    assert [d["email"] for d in data] == ["ana@example.org", "cy@example.org"]
    rows = list(csv.reader(io.StringIO(run(admin, "subscribers", "list", "--language", "es",
                                           "--list", "partners", "--csv").output)))
    assert rows[0][:3] == ["email", "name", "country"] and rows[1][:3] == [
        "ana@example.org", "Ana", "CR"]
    assert len(rows) == 2
    pending = json.loads(run(admin, "subscribers", "list", "--status", "pending",
                             "--json").output)
    assert [d["email"] for d in pending] == ["bo@example.org"]
    table = run(admin, "subscribers", "list", "--email", "ANA").output
    assert "ana@example.org" in table and "cy@example.org" not in table
    assert "no list called" in run(admin, "subscribers", "list", "--list", "x", code=1).output


def test_show_update_unsubscribe_delete(admin: CliRunner) -> None:
    shown = json.loads(run(admin, "subscribers", "show", "ANA@example.org", "--json").output)
    assert shown["lists"] == {"partners": "confirmed"}
    assert (shown["consent_method"], shown["consent_text"]) == ("form:v1", "2019-01")
    run(admin, "subscribers", "update", "ana@example.org", "--language", "en",
        "--add-list", "press", "--attr", "role=editor")
    shown = json.loads(run(admin, "subscribers", "show", "ana@example.org", "--json").output)
    assert shown["language"] == "en" and shown["attributes"] == {"role": "editor"}
    assert shown["lists"] == {"partners": "confirmed", "press": "confirmed"}
    run(admin, "subscribers", "unsubscribe", "ana@example.org", "--from-list", "press")
    shown = json.loads(run(admin, "subscribers", "show", "ana@example.org", "--json").output)
    assert shown["lists"]["press"] == "unsubscribed" and shown["status"] == "active"
    # bulk, by filter, with confirmation skipped
    out = run(admin, "subscribers", "unsubscribe", "--country", "NI", "--yes").output
    assert "1 unsubscribed" in out
    assert "give addresses or filters" in run(admin, "subscribers", "delete", "x@example.org",
                                              "--country", "NI", code=2).output
    run(admin, "subscribers", "delete", "--status", "unsubscribed", "--yes")
    emails = [d["email"] for d in json.loads(run(admin, "subscribers", "list", "--json").output)]
    assert emails == ["ana@example.org", "bo@example.org"]
    assert "no subscriber" in run(admin, "subscribers", "show", "cy@example.org",
                                  code=1).output


def test_segments_commands(admin: CliRunner) -> None:
    out = run(admin, "segments", "create", "central", "--country", "CR,NI", "--language",
              "es").output
    assert "2 subscribers now" in out
    preview = json.loads(run(admin, "segments", "preview", "central", "--json").output)
    assert preview["count"] == 2 and preview["filter"] == {"countries": ["CR", "NI"],
                                                           "languages": ["es"]}
    assert [s["email"] for s in preview["sample"]] == ["ana@example.org", "cy@example.org"]
    listed = json.loads(run(admin, "segments", "list", "--json").output)
    assert listed == [{"name": "central", "filter": "countries=CR,NI languages=es",
                       "subscribers": 2}]
    assert "central" in run(admin, "segments", "show", "central").output
    run(admin, "segments", "delete", "central")
    run(admin, "segments", "show", "central", code=1)


def test_suppressions_and_privacy(admin: CliRunner) -> None:
    run(admin, "suppressions", "add", "cy@example.org", "zz@example.org", "--reason",
        "complained")
    listed = json.loads(run(admin, "suppressions", "list", "--json").output)
    assert {(x["email"], x["reason"]) for x in listed} == {("cy@example.org", "complained"),
                                                           ("", "complained")}
    run(admin, "suppressions", "remove", "zz@example.org")
    data = json.loads(run(admin, "subscribers", "export-data", "ana@example.org").output)
    assert data["subscriber"]["name"] == "Ana" and data["lists"] == [
        {"list": "partners", "status": "confirmed"}]
    run(admin, "subscribers", "erase", "ana@example.org", stdin="n\n", code=1)
    run(admin, "subscribers", "erase", "ana@example.org", "--yes")
    run(admin, "subscribers", "export-data", "ana@example.org", code=1)
    again = run(admin, "subscribers", "add", "ana@example.org", code=1)
    assert "suppressed" in again.output


def test_stats(admin: CliRunner) -> None:
    rows = json.loads(run(admin, "subscribers", "stats", "--json").output)
    assert {"country": "CR", "language": "es-CR", "status": "active", "count": 1} in rows
    assert sum(r["count"] for r in rows) == 3
