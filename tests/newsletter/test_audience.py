"""Who an issue reaches, said at create and before sending; an empty audience explained
from real counts (issue 8, item 16)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from click.testing import CliRunner
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from newsletter.audience import audience_report
from newsletter.cli import cli
from newsletter.cli.demo import sample_items_text
from newsletter.ingest.text import parse_text
from newsletter.issues import create_issue
from newsletter.items import store_items
from newsletter.settings import Settings
from subscribers.filters import Filter
from subscribers.lists import create_list
from subscribers.models import Subscription
from subscribers.people import NewSubscriber, add
from subscribers.segments import create_segment
from subscribers.suppressions import suppress

TWELVE = "email,name,country,language\n" + "".join(
    f"p{n}@example.org,Person {n},CR,es\n" for n in range(12))


def invoke(runner: CliRunner, *args: str, code: int = 0) -> str:
    result = runner.invoke(cli, list(args))
    assert result.exit_code == code, result.output
    return result.output


def test_a_double_opt_in_list_with_nobody_confirmed_is_explained_truthfully(
    runner: CliRunner, tmp_path: Path
) -> None:
    (tmp_path / "items.txt").write_text(sample_items_text(), encoding="utf-8")
    (tmp_path / "people.csv").write_text(TWELVE, encoding="utf-8")
    invoke(runner, "items", "import", str(tmp_path / "items.txt"))
    invoke(runner, "subscribers", "import", str(tmp_path / "people.csv"))  # 12 active
    invoke(runner, "lists", "create", "partners", "--opt-in", "double")
    invoke(runner, "subscribers", "import", str(tmp_path / "people.csv"), "--list", "partners")

    created = invoke(runner, "issues", "create", "2019-10", "--from", "2019-09-01", "--to",
                     "2019-10-31", "--list", "partners")
    assert "audience: 0 subscribers, on list partners" in created
    why = ("12 active subscribers are on list partners but none has confirmed (double "
           "opt-in): run `newsletter subscribers send-confirmations --list partners`")
    assert why in created
    sent = invoke(runner, "issues", "send", "2019-10", code=1)
    assert why in sent and "import some" not in sent

    # asking them works: the command the explanation names reaches all twelve
    asked = invoke(runner, "subscribers", "send-confirmations", "--list", "partners")
    assert asked.startswith("12 sent")


def test_the_audience_is_counted_at_create_and_before_sending(
    runner: CliRunner, tmp_path: Path
) -> None:
    (tmp_path / "items.txt").write_text(sample_items_text(), encoding="utf-8")
    (tmp_path / "people.csv").write_text(TWELVE, encoding="utf-8")
    invoke(runner, "items", "import", str(tmp_path / "items.txt"))
    invoke(runner, "lists", "create", "partners")
    invoke(runner, "subscribers", "import", str(tmp_path / "people.csv"), "--list", "partners")
    invoke(runner, "subscribers", "unsubscribe", "p0@example.org")
    created = invoke(runner, "issues", "create", "2019-10", "--from", "2019-09-01", "--to",
                     "2019-10-31", "--list", "partners")
    assert "audience: 11 subscribers (es 11), on list partners" in created
    assert "not reached: 1 person unsubscribed from list partners" in created
    sent = invoke(runner, "issues", "send", "2019-10")
    assert sent.startswith("audience: 11 subscribers (es 11), on list partners")
    assert "11 new deliveries planned, 1 batch\n" in sent


def test_reasons_come_from_real_counts(
    sessions: sessionmaker[Session], settings: Settings
) -> None:
    langs, default = settings.languages, settings.default_language
    with sessions() as session, session.begin():
        store_items(session, parse_text(sample_items_text(), "sample"))
        empty = create_issue(session, "empty", date(2019, 9, 1), date(2019, 10, 31))
        report = audience_report(session, empty, langs, default)
        assert report.recipients == 0
        assert report.empty_explanation() == (
            "nobody would receive this issue (every active subscriber): there are no "
            "subscribers yet: import some with `newsletter subscribers import FILE`")

        create_list(session, "press", opt_in="double")
        for n in range(3):
            add(session, NewSubscriber(f"w{n}@example.org", lists=("press",)),
                default_language=default)
        add(session, NewSubscriber("gone@example.org", lists=("press",), preconfirm=True),
            default_language=default)
        suppress(session, "gone@example.org", reason="bounced")
        press = create_issue(session, "press", date(2019, 9, 1), date(2019, 10, 31),
                             lists=("press",))
        report = audience_report(session, press, langs, default)
        assert report.recipients == 0
        assert report.left_out == [
            "3 people on list press are waiting to confirm their subscription (double "
            "opt-in): `newsletter subscribers send-confirmations --list press` asks them",
            "1 active subscriber on list press is suppressed (`newsletter suppressions list`)",
        ]

        create_segment(session, "nicaragua", Filter(countries=("NI",)))
        nobody = create_issue(session, "ni", date(2019, 9, 1), date(2019, 10, 31),
                              segments=("nicaragua",))
        report = audience_report(session, nobody, langs, default)
        assert report.empty_explanation() == (
            "nobody would receive this issue (on segment nicaragua): segment nicaragua "
            "matches no subscriber")


def test_a_list_everyone_left_is_not_called_empty(
    sessions: sessionmaker[Session], settings: Settings
) -> None:
    """It said "there are no subscribers yet: import some" beside "2 people unsubscribed
    from list press"."""
    langs, default = settings.languages, settings.default_language
    with sessions() as session, session.begin():
        store_items(session, parse_text(sample_items_text(), "sample"))
        create_list(session, "press", opt_in="single")
        for n in range(2):
            add(session, NewSubscriber(f"w{n}@example.org", lists=("press",), preconfirm=True),
                default_language=default)
        session.execute(update(Subscription).values(status="unsubscribed"))
        press = create_issue(session, "press", date(2019, 9, 1), date(2019, 10, 31),
                             lists=("press",))
        report = audience_report(session, press, langs, default)
        assert report.recipients == 0
        assert report.left_out == ["2 people unsubscribed from list press"]


def test_deleting_its_list_or_segment_never_sends_an_issue_to_everyone(
    runner: CliRunner, tmp_path: Path
) -> None:
    """An issue without targets goes to everyone; one whose list or segment was deleted
    must go to nobody: not when sent again for people added since, not as a draft."""
    import json

    (tmp_path / "items.txt").write_text(sample_items_text(), encoding="utf-8")
    (tmp_path / "people.csv").write_text(TWELVE, encoding="utf-8")
    (tmp_path / "partners.csv").write_text(
        "email,name,country,language\np0@example.org,P0,CR,es\np1@example.org,P1,CR,es\n",
        encoding="utf-8")
    invoke(runner, "items", "import", str(tmp_path / "items.txt"))
    invoke(runner, "subscribers", "import", str(tmp_path / "people.csv"))  # 12 active
    invoke(runner, "lists", "create", "partners")
    invoke(runner, "subscribers", "import", str(tmp_path / "partners.csv"), "--list", "partners")
    invoke(runner, "issues", "create", "2019-10", "--from", "2019-09-01", "--to", "2019-10-31",
           "--list", "partners")
    invoke(runner, "issues", "send", "2019-10")
    sent = json.loads(invoke(runner, "issues", "status", "2019-10", "--json"))
    assert sent["sent"] == 2

    invoke(runner, "lists", "delete", "partners", "--yes")
    invoke(runner, "subscribers", "add", "new@example.org", "--country", "CR")
    again = invoke(runner, "issues", "send", "2019-10")  # plans people added since: none
    assert "0 new deliveries planned" in again
    after = json.loads(invoke(runner, "issues", "status", "2019-10", "--json"))
    assert sum(after.values()) == 2 and after["sent"] == 2

    invoke(runner, "segments", "create", "costa-rica", "--country", "CR")
    invoke(runner, "issues", "create", "2019-10-cr", "--from", "2019-09-01", "--to",
           "2019-10-31", "--segment", "costa-rica")
    invoke(runner, "segments", "delete", "costa-rica")
    refused = invoke(runner, "issues", "send", "2019-10-cr", code=1)
    assert "a list or segment it was for was deleted" in refused
    status = json.loads(invoke(runner, "issues", "status", "2019-10-cr", "--json"))
    assert sum(status.values()) == 0
