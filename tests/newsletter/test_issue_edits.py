"""Changing an issue after create: items (set, add, remove, move), candidates, titles and
intros, focus and audience; only a draft or scheduled issue; renders dropped; approval
withdrawn on change; a scheduled issue keeps its schedule; and the CLI over it."""

from __future__ import annotations

import json
from datetime import date, datetime

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from newsletter import approval, issue_edits
from newsletter.cli import cli
from newsletter.cli.demo import sample_items_text
from newsletter.ingest.text import parse_text
from newsletter.issue_edits import IssueEditError
from newsletter.issues import IssueError, create_issue, get_issue, targets_of
from newsletter.items import list_items, store_items
from newsletter.models import Delivery, IssueVariant
from newsletter.schedules import schedule_issue
from newsletter.settings import Settings
from subscribers.importer import import_csv
from subscribers.lists import create_list
from worker.delivery import plan_issue

NOW = datetime(2026, 12, 6, 12, 0)
LANGUAGES = ["en", "es", "fr"]
PEOPLE = "email,country,language\nana@example.org,CR,es\npepa@example.org,PA,es\n"


@pytest.fixture
def ids(sessions: sessionmaker[Session], settings: Settings) -> dict[str, int]:
    """Issue w49 holds the October items (newest first); the September ones are not in it.
    Returns {first word of the title: id}."""
    with sessions() as session, session.begin():
        store_items(session, parse_text(sample_items_text(), "sample"))
        import_csv(session, PEOPLE, default_language=settings.default_language)
        create_issue(session, "w49", date(2019, 10, 1), date(2019, 10, 31))
        return {item.title.split()[0]: item.id for item in list_items(session)}


def in_issue(sessions: sessionmaker[Session]) -> list[int]:
    with sessions() as session:
        return issue_edits.item_ids(get_issue(session, "w49"))


def edit(sessions: sessionmaker[Session], action: str, *args: object,
         **kwargs: object) -> issue_edits.Edit:
    with sessions() as session, session.begin():
        issue = get_issue(session, "w49")
        result: issue_edits.Edit = getattr(issue_edits, action)(session, issue, *args,
                                                                now=NOW, **kwargs)
        return result


def test_set_add_remove_move(sessions: sessionmaker[Session], ids: dict[str, int]) -> None:
    mobile, leaders, youth, study = (ids[w] for w in ("Mobile", "Community", "Youth", "Study"))
    assert in_issue(sessions) == [mobile, leaders, youth, study]
    shelter, teachers = ids["Shelter"], ids["Teachers"]
    done = edit(sessions, "set_items", [study, shelter, mobile])
    assert in_issue(sessions) == [study, shelter, mobile]
    assert done.changes == [f"items changed: added {shelter}, removed {leaders}, {youth}, "
                            "order changed"]
    assert edit(sessions, "set_items", [study, shelter, mobile]).changes == []  # no-op
    edit(sessions, "add_items", [teachers, leaders], at=2)
    assert in_issue(sessions) == [study, teachers, leaders, shelter, mobile]
    edit(sessions, "add_items", [youth])
    assert in_issue(sessions)[-1] == youth
    edit(sessions, "remove_items", [teachers, youth])
    assert in_issue(sessions) == [study, leaders, shelter, mobile]
    assert edit(sessions, "move_item", mobile, 1).changes == ["items changed: order changed"]
    assert in_issue(sessions) == [mobile, study, leaders, shelter]
    edit(sessions, "move_item", mobile, 4)
    assert in_issue(sessions) == [study, leaders, shelter, mobile]
    for action, args, kwargs, message in [
        ("set_items", [study, 99999, 99998], {}, "no item 99999, 99998: "),
        ("set_items", [study, study], {}, f"item {study} is given twice"),
        ("set_items", [], {}, "would hold no item"),
        ("add_items", [leaders], {}, f"item {leaders} at 2 is already in issue 'w49'"),
        ("add_items", [youth], {"at": 6}, "--at 6: give a position from 1 to 5"),
        ("remove_items", [youth], {}, f"item {youth} is not in issue 'w49'"),
        ("move_item", study, {"to_position": 0}, "--to 0: give a position from 1 to 4"),
    ]:
        with pytest.raises(IssueEditError, match=message):
            edit(sessions, action, *([args] if action != "move_item" else [args]), **kwargs)
    assert in_issue(sessions) == [study, leaders, shelter, mobile]  # refusals change nothing


def test_candidates(sessions: sessionmaker[Session], ids: dict[str, int]) -> None:
    with sessions() as session:
        issue = get_issue(session, "w49")

        def found(**kwargs: object) -> list[int]:
            return [i.id for i in issue_edits.candidates(session, issue, **kwargs)]  # type: ignore[arg-type]

        september = found()
        assert len(september) == 6 and ids["Mobile"] not in september  # not those in it
        assert found(country="ht") == [ids["New"]]
        assert found(since=date(2019, 9, 15), until=date(2019, 9, 21)) == [
            ids["Shelter"], ids["Teachers"]]
        assert found(query="TAPACHULA bus") == [ids["New"]]
        assert found(query="tapachula teachers") == []
        assert found(query="100%_") == []  # wildcards are characters
        with pytest.raises(IssueEditError, match="ends .* before it starts"):
            found(since=date(2019, 9, 2), until=date(2019, 9, 1))


def test_texts_focus_targets_and_renders_dropped(sessions: sessionmaker[Session],
                                                 ids: dict[str, int]) -> None:
    def add_render() -> None:
        with sessions() as session, session.begin():
            issue = get_issue(session, "w49")
            session.add(IssueVariant(issue_id=issue.id, language="es", country="", subject="s",
                                     html="<p>old</p>", text="old"))

    def renders() -> int:
        with sessions() as session:
            return session.scalar(select(func.count()).select_from(IssueVariant)) or 0

    add_render()
    done = edit(sessions, "set_texts", titles={"": "News", "es": "Boletín"},
                intros={"es": "Hola\r\n\r\nvecinos"}, languages=LANGUAGES)
    assert done.changes == ["title changed (es, every language)",
                            "introduction changed (es)"]
    assert (done.renders_dropped, renders()) == (1, 0)
    with sessions() as session:
        issue = get_issue(session, "w49")
        assert (issue.title, issue.titles, issue.intros) == (
            "News", {"es": "Boletín"}, {"es": "Hola\n\nvecinos"})
    # languages not given keep theirs; "" removes a language's own
    edit(sessions, "set_texts", titles={"es": ""}, intros={"en": "Hi"}, languages=LANGUAGES)
    with sessions() as session:
        issue = get_issue(session, "w49")
        assert (issue.title, issue.titles, issue.intros) == (
            "News", {}, {"es": "Hola\n\nvecinos", "en": "Hi"})
    with pytest.raises(IssueError, match="there is no 'de' edition"):
        edit(sessions, "set_texts", titles={"de": "x"}, languages=LANGUAGES)
    with pytest.raises(IssueError, match="longer than 2000"):
        edit(sessions, "set_texts", intros={"": "x" * 2001}, languages=LANGUAGES)
    add_render()
    assert edit(sessions, "set_focus", "none").changes == ["country focus changed: first -> none"]
    assert renders() == 0
    with pytest.raises(IssueEditError, match="country focus 'all'"):
        edit(sessions, "set_focus", "all")
    with sessions() as session, session.begin():
        create_list(session, "partners")
    add_render()
    assert edit(sessions, "set_targets", ["partners"], []).changes == [
        "audience changed: list partners"]
    with sessions() as session:
        assert targets_of(session, get_issue(session, "w49")) == (["partners"], [])
    assert renders() == 0
    with pytest.raises(IssueEditError, match="no list"):
        edit(sessions, "set_targets", ["nope"], [])
    assert edit(sessions, "set_targets", [], []).changes == ["audience changed: everyone"]


def test_a_change_withdraws_the_approval(sessions: sessionmaker[Session],
                                         ids: dict[str, int]) -> None:
    with sessions() as session, session.begin():
        issue = get_issue(session, "w49")
        issue.approval = "required"
        approval.submit(session, issue, "Ana", now=NOW)
        approval.approve(session, issue, "Luis", now=NOW)
        assert approval.sendable(issue) is None
    with pytest.raises(IssueEditError, match="is approved: a change withdraws its approval, "
                                             r"so say who makes it \(--by NAME\)"):
        edit(sessions, "move_item", ids["Study"], 1)
    done = edit(sessions, "move_item", ids["Study"], 1, by="Ana")
    assert done.withdrawn is not None and done.withdrawn_from == "approved"
    assert "APPROVAL WITHDRAWN: the issue was APPROVED" in "\n".join(done.lines())
    with sessions() as session:
        issue = get_issue(session, "w49")
        assert issue.review == ""
        assert "has not been submitted" in (approval.sendable(issue) or "")
        assert [(s.action, s.by, s.note) for s in approval.history(session, issue)][-1] == (
            "withdrawn", "Ana", "items changed: order changed")
    # a no-op change withdraws nothing; a draft not submitted needs no --by
    assert edit(sessions, "set_focus", "first").withdrawn is None
    # in review: withdrawn too; by hand: the same, and then nothing is left to withdraw
    with sessions() as session, session.begin():
        issue = get_issue(session, "w49")
        approval.submit(session, issue, "Ana", now=NOW)
    assert edit(sessions, "set_texts", titles={"es": "B"}, languages=LANGUAGES,
                by="Luis").withdrawn_from == "in_review"
    with sessions() as session, session.begin():
        issue = get_issue(session, "w49")
        approval.submit(session, issue, "Ana", now=NOW)
        approval.withdraw(session, issue, "Ana", "one more item", now=NOW)
        assert issue.review == ""
        with pytest.raises(approval.ApprovalError, match="has not been submitted: there is "
                                                         "nothing to withdraw"):
            approval.withdraw(session, issue, "Ana", now=NOW)


def test_only_a_draft_or_scheduled_issue_changes(sessions: sessionmaker[Session],
                                                 settings: Settings, runner: CliRunner,
                                                 ids: dict[str, int]) -> None:
    planned = select(Delivery.country).order_by(Delivery.country)
    with sessions() as session, session.begin():
        issue = get_issue(session, "w49")
        schedule_issue(session, issue, at=datetime(2026, 12, 7, 9), timezone="UTC", now=NOW)
        assert plan_issue(settings, session, issue) == 2
        assert list(session.scalars(planned)) == ["CR", "PA"]
    # titles change nothing planned; items no longer about PA drop the planned rows
    assert edit(sessions, "set_texts", titles={"": "x"}, languages=LANGUAGES).unplanned == 0
    # the CLI plans the dropped rows again at once, as `issues schedule` plans them
    result = runner.invoke(cli, ["issues", "items", "w49", "--set", str(ids["Study"]),
                                 "--json"])
    assert (json.loads(result.output)["unplanned"], json.loads(result.output)["planned"]) == (
        2, 2)
    with sessions() as session:
        issue = get_issue(session, "w49")
        assert (issue.status, issue.send_at) == ("scheduled", datetime(2026, 12, 7, 9))
        assert list(session.scalars(planned)) == ["", "CR"]  # PA reads the regional order
    for status, why in [("sending", "it is being sent"), ("sent", "it was sent"),
                        ("paused", "sending started"), ("cancelled", "it was cancelled part-way")]:
        with sessions() as session, session.begin():
            get_issue(session, "w49").status = status
        with pytest.raises(IssueEditError, match=f"is {status}: it cannot be changed; {why}"):
            edit(sessions, "set_items", [ids["Mobile"]])
        with pytest.raises(IssueEditError, match=f"is {status}"):
            edit(sessions, "set_texts", titles={"": "y"}, languages=LANGUAGES)
    assert in_issue(sessions) == [ids["Study"]]


def test_a_send_started_meanwhile_is_not_changed(sessions: sessionmaker[Session],
                                                 ids: dict[str, int]) -> None:
    """The scheduler starts the issue after the editor read it as a draft: the change is
    refused, and the issue keeps what it is being sent with."""
    before = in_issue(sessions)
    with sessions() as editor, editor.begin():
        issue = get_issue(editor, "w49")
        assert issue.status == "draft"
        with sessions() as scheduler, scheduler.begin():
            get_issue(scheduler, "w49").status = "sending"
        with pytest.raises(IssueEditError, match="changed meanwhile: it is sending now"):
            issue_edits.set_items(editor, issue, [ids["Shelter"]], now=NOW)
    assert in_issue(sessions) == before


def test_cli(runner: CliRunner, sessions: sessionmaker[Session], ids: dict[str, int]) -> None:
    mobile, study = ids["Mobile"], ids["Study"]
    shown = runner.invoke(cli, ["issues", "items", "w49", "--json"])
    assert shown.exit_code == 0, shown.output
    data = json.loads(shown.output)
    assert [r["position"] for r in data["items"]] == [1, 2, 3, 4]
    assert data["items"][3] == {"position": 4, "id": study, "published": "2019-10-03",
                                "title": data["items"][3]["title"], "countries": ["CR", "NI"],
                                "language": "en"}
    moved = runner.invoke(cli, ["issues", "items", "w49", "--move", str(study), "--to", "1"])
    assert moved.exit_code == 0, moved.output
    assert "issue w49: items changed: order changed" in moved.output
    assert in_issue(sessions)[0] == study
    result = runner.invoke(cli, ["issues", "items", "w49", "--set", f"{mobile},{study}",
                                 "--json"])
    assert json.loads(result.output)["changes"] == [
        f"items changed: removed {ids['Community']}, {ids['Youth']}, order changed"]
    bad = runner.invoke(cli, ["issues", "items", "w49", "--set", "1,x"])
    assert bad.exit_code == 2 and "'x' is not an item id" in bad.output
    both = runner.invoke(cli, ["issues", "items", "w49", "--add", "1", "--remove", "2"])
    assert both.exit_code == 2 and "one change at a time" in both.output
    found = runner.invoke(cli, ["issues", "candidates", "w49", "--country", "HT", "--json"])
    assert [r["id"] for r in json.loads(found.output)] == [ids["Community"], ids["New"]]
    added = runner.invoke(cli, ["issues", "items", "w49", "--add", str(ids["New"]), "--at", "1"])
    assert added.exit_code == 0 and in_issue(sessions) == [ids["New"], mobile, study]
    # approved, then edited: withdrawn, loudly
    for args in (["submit", "w49", "--by", "Ana"], ["approve", "w49", "--by", "Luis"]):
        with sessions() as session, session.begin():
            get_issue(session, "w49").approval = "required"
        assert runner.invoke(cli, ["issues", *args]).exit_code == 0
    changed = runner.invoke(cli, ["issues", "edit", "w49", "--title", "es=Boletín",
                                  "--country-focus", "only", "--by", "Ana", "--json"])
    assert changed.exit_code == 0, changed.output
    out = json.loads(changed.output)
    assert out["approval_withdrawn"] and out["withdrawn_from"] == "approved"
    assert out["changes"] == ["title changed (es)", "country focus changed: first -> only"]
    with sessions() as session:  # one withdrawal, naming every change
        steps = approval.history(session, get_issue(session, "w49"))
        assert [(s.action, s.note) for s in steps][-1] == (
            "withdrawn", "title changed (es); country focus changed: first -> only")
    assert runner.invoke(cli, ["issues", "submit", "w49", "--by", "Ana"]).exit_code == 0
    gone = runner.invoke(cli, ["issues", "withdraw", "w49", "--by", "Ana", "--note", "wait"])
    assert gone.exit_code == 0 and "APPROVAL WITHDRAWN by Ana" in gone.output
    again = runner.invoke(cli, ["issues", "withdraw", "w49", "--by", "Ana"])
    assert again.exit_code == 1 and "nothing to withdraw" in again.output
    refused = runner.invoke(cli, ["issues", "edit", "w49", "--title", "de=x"])
    assert refused.exit_code == 1 and "there is no 'de' edition" in refused.output
    assert "Traceback" not in refused.output


@pytest.mark.fuzz
def test_any_ids_and_positions_end_cleanly(runner: CliRunner, ids: dict[str, int]) -> None:
    """Whatever --set, --add/--at or --move/--to a person types: exit 0, 1 or 2, never a
    traceback."""
    known = st.sampled_from([str(i) for i in ids.values()])
    raw = st.lists(st.one_of(known, st.text(max_size=6), st.integers(-5, 10**15).map(str)),
                   max_size=6).map(",".join)
    position = st.integers(-3, 12).map(str) | st.text(max_size=4)

    @hypothesis_settings(max_examples=40, deadline=None,
                         suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(st.sampled_from(["--set", "--add", "--remove", "--move"]), raw, position)
    def run(option: str, value: str, where: str) -> None:
        args = ["issues", "items", "w49", option, value]
        if option == "--move":
            args = ["issues", "items", "w49", option, value.split(",")[0], "--to", where]
        elif option == "--add":
            args += ["--at", where]
        result = runner.invoke(cli, args)
        assert result.exit_code in (0, 1, 2), result.output
        assert result.exception is None or isinstance(result.exception, SystemExit), (
            repr(result.exception))

    run()
