"""Approval: draft -> in review -> approved | rejected; nobody approves their own issue;
every step recorded; an issue that needs approval is not sent until approved."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy.orm import Session, sessionmaker

from newsletter import approval
from newsletter.cli import cli
from newsletter.cli.demo import sample_items_text
from newsletter.ingest.text import parse_text
from newsletter.issues import create_issue, get_issue
from newsletter.items import store_items
from newsletter.models import Issue

NOW = datetime(2026, 12, 6, 12, 0)


@pytest.fixture
def issue(sessions: sessionmaker[Session]) -> str:
    with sessions() as session, session.begin():
        store_items(session, parse_text(sample_items_text(), "sample"))
        created = create_issue(session, "w49", date(2019, 9, 1), date(2019, 10, 31))
        created.approval = "required"
    return "w49"


def step(sessions: sessionmaker[Session], slug: str, action: str, by: str,
         note: str | None = None, minutes: int = 0) -> Issue:
    act = {"submit": approval.submit, "approve": approval.approve,
           "reject": approval.reject}[action]
    with sessions() as session, session.begin():
        found = get_issue(session, slug)
        act(session, found, by, note, now=NOW + timedelta(minutes=minutes))
        return found


def test_submit_approve_and_the_history(sessions: sessionmaker[Session], issue: str) -> None:
    with sessions() as session:
        assert approval.sendable(get_issue(session, issue)) == (
            "needs approval: it has not been submitted; `newsletter issues submit w49 --by "
            "NAME`, then someone else approves it")
    reviewed = step(sessions, issue, "submit", "  Ana Mora ", "ready")
    assert reviewed.review == "in_review"
    assert "in review; `newsletter issues approve w49" in (approval.sendable(reviewed) or "")
    with pytest.raises(approval.ApprovalError, match="Ana Mora submitted issue 'w49': "
                                                     "somebody else must approve it"):
        step(sessions, issue, "approve", "ANA MORA")
    with pytest.raises(approval.ApprovalError, match="already in review"):
        step(sessions, issue, "submit", "Luis")
    approved = step(sessions, issue, "approve", "Luis Soto", minutes=5)
    assert approved.review == "approved" and approval.sendable(approved) is None
    with sessions() as session:
        steps = approval.history(session, get_issue(session, issue))
        assert [(s.action, s.by, s.note, s.at) for s in steps] == [
            ("submitted", "Ana Mora", "ready", NOW),
            ("approved", "Luis Soto", "", NOW + timedelta(minutes=5))]


def test_rejected_then_changed_and_submitted_again(sessions: sessionmaker[Session],
                                                    issue: str) -> None:
    with pytest.raises(approval.ApprovalError, match="has not been submitted"):
        step(sessions, issue, "approve", "Luis")
    step(sessions, issue, "submit", "Ana")
    with pytest.raises(approval.ApprovalError,
                       match=r"needs a note: say what has to change \(--note\)$"):
        step(sessions, issue, "reject", "Luis", "  ")
    rejected = step(sessions, issue, "reject", "Luis", "the Panama item is outdated", 1)
    assert rejected.review == "rejected"
    assert "it was rejected" in (approval.sendable(rejected) or "")
    # Luis submits the changed issue; Ana, who submitted it first, may approve it now
    step(sessions, issue, "submit", "Luis", "fixed", 2)
    assert step(sessions, issue, "approve", "Ana", minutes=3).review == "approved"
    with sessions() as session:
        assert [s.action for s in approval.history(session, get_issue(session, issue))] == [
            "submitted", "rejected", "submitted", "approved"]


@pytest.mark.parametrize(("by", "message"), [
    ("", "--by is empty"), ("   ", "--by is empty"), ("Ana\nMora", "line break"),
    ("Ana\x00", "control character"), ("x" * 201, "longer than 200"),
])
def test_names_are_one_line_of_1_to_200_characters(sessions: sessionmaker[Session],
                                                   issue: str, by: str, message: str) -> None:
    with pytest.raises(approval.ApprovalError, match=message):
        step(sessions, issue, "submit", by)
    assert step(sessions, issue, "submit", "x" * 200).review == "in_review"


def test_an_issue_without_approval_has_nothing_to_review(sessions: sessionmaker[Session],
                                                         issue: str) -> None:
    with sessions() as session, session.begin():
        get_issue(session, issue).approval = "none"
    with pytest.raises(approval.ApprovalError, match="does not need approval"):
        step(sessions, issue, "submit", "Ana")
    with sessions() as session:
        assert approval.sendable(get_issue(session, issue)) is None


def invoke(runner: CliRunner, *args: str, code: int = 0) -> str:
    result = runner.invoke(cli, list(args))
    assert result.exit_code == code, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    return result.output


def test_cli_send_waits_for_approval_and_show_tells_who(runner: CliRunner,
                                                        tmp_path: Path) -> None:
    (tmp_path / "items.txt").write_text(sample_items_text(), encoding="utf-8")
    (tmp_path / "people.csv").write_text("email,country,language\na@example.org,CR,es\n",
                                         encoding="utf-8")
    invoke(runner, "items", "import", str(tmp_path / "items.txt"))
    invoke(runner, "subscribers", "import", str(tmp_path / "people.csv"))
    invoke(runner, "issues", "create", "w49", "--from", "2019-09-01", "--to", "2019-10-31",
           "--approval", "required")
    refused = invoke(runner, "issues", "send", "w49", code=1)
    assert "issue 'w49' needs approval: it has not been submitted" in refused
    invoke(runner, "issues", "submit", "w49", "--by", "Ana Mora", "--note", "lista")
    assert "in review" in invoke(runner, "issues", "send", "w49", code=1)
    assert "a rejection needs a note: say what has to change (--note)" in invoke(
        runner, "issues", "reject", "w49", "--by", "Luis", code=1)
    assert "Ana Mora submitted" in invoke(runner, "issues", "approve", "w49", "--by",
                                          "ana mora", code=1)
    assert "approved by Luis" in invoke(runner, "issues", "approve", "w49", "--by", "Luis")
    shown = json.loads(invoke(runner, "issues", "show", "w49", "--json"))
    assert shown["approval"]["policy"] == "required"
    assert shown["approval"]["state"] == "approved" and shown["approval"]["sendable"]
    assert [(s["action"], s["by"], s["note"]) for s in shown["approval"]["history"]] == [
        ("submitted", "Ana Mora", "lista"), ("approved", "Luis", "")]
    assert all(s["at"].endswith("+00:00") for s in shown["approval"]["history"])
    assert "approved" in invoke(runner, "issues", "show", "w49")
    sent = invoke(runner, "issues", "send", "w49")
    assert "1 new delivery planned" in sent
    # an issue sent at once (never scheduled): no not_before, and the plain status counts
    rows = json.loads(invoke(runner, "issues", "deliveries", "w49", "--json"))
    assert [(r["status"], r["not_before"]) for r in rows] == [("sent", None)]
    status = json.loads(invoke(runner, "issues", "status", "w49", "--json"))
    assert status["sent"] == 1 and "due" in status  # approval was required: it says so


def test_a_step_taken_meanwhile_by_someone_else_is_never_overwritten(
        sessions: sessionmaker[Session], issue: str) -> None:
    """Two reviewers at once (two terminals, later two browser tabs): Eva reads the issue
    in review, Luis rejects it and commits, then Eva approves what she read. Her approval
    must be refused, not turn the rejection into an approval that sends the issue."""
    step(sessions, issue, "submit", "Ana")
    with sessions() as eva_session:
        eva_sees = get_issue(eva_session, issue)
        assert eva_sees.review == "in_review"
        step(sessions, issue, "reject", "Luis", "the Panama item is outdated", minutes=1)
        with pytest.raises(approval.ApprovalError, match="changed meanwhile"):
            approval.approve(eva_session, eva_sees, "Eva", now=NOW + timedelta(minutes=2))
        eva_session.rollback()
    with sessions() as session:
        found = get_issue(session, issue)
        assert found.review == "rejected"
        assert [s.action for s in approval.history(session, found)] == ["submitted",
                                                                          "rejected"]


@pytest.mark.parametrize(("submitted", "approving"), [
    ("Ana Mora", "Ana Mora <ana@example.org>"),  # the CLI, then the newsroom
    ("Ana Mora <ana@example.org>", "ana@example.org"),  # the newsroom, then the CLI
    ("Ana Mora <ANA@example.org>", "ana mora"),
])
def test_one_person_is_one_approver_however_their_name_is_written(
        sessions: sessionmaker[Session], issue: str, submitted: str, approving: str) -> None:
    step(sessions, issue, "submit", submitted)
    with pytest.raises(approval.ApprovalError, match="somebody else must approve it"):
        step(sessions, issue, "approve", approving)
    assert step(sessions, issue, "approve", "Luis Soto <luis@example.org>").review == "approved"
