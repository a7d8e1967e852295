"""Scheduling: a fixed instant or a local time per subscriber's zone, the report of the
zones used, unscheduling, and the CLI over it (schedule, deliveries, status, list, show).
The clock is passed in (library) or set with time-machine (CLI)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import pytest
import time_machine
from click.testing import CliRunner
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from newsletter import schedules
from newsletter.cli import cli
from newsletter.cli.demo import sample_items_text
from newsletter.ingest.text import parse_text
from newsletter.issues import create_issue, get_issue
from newsletter.items import store_items
from newsletter.models import Delivery, Issue, Series, SeriesPeriod
from newsletter.schedules import ScheduleError, schedule_issue, unschedule_issue
from newsletter.settings import Settings
from subscribers.importer import import_csv
from worker.delivery import plan_issue

NOW = datetime(2026, 12, 6, 12, 0)  # naive UTC
DAY = date(2026, 12, 7)
PEOPLE = """email,country,language,timezone
pepa@example.org,ES,es,
eva@example.org,MX,es,
tito@example.org,MX,es,America/Tijuana
ana@example.org,CR,es,
"""


@pytest.fixture
def slug(sessions: sessionmaker[Session], settings: Settings) -> str:
    with sessions() as session, session.begin():
        store_items(session, parse_text(sample_items_text(), "sample"))
        import_csv(session, PEOPLE, default_language=settings.default_language)
        create_issue(session, "w49", date(2019, 9, 1), date(2019, 10, 31))
    return "w49"


def test_a_fixed_instant_and_what_is_refused(sessions: sessionmaker[Session],
                                             slug: str) -> None:
    with sessions() as session, session.begin():
        issue = get_issue(session, slug)
        for kwargs, message in [
            ({"at": datetime(2026, 12, 6, 11, 59)}, "2026-12-06 11:59 in UTC = 2026-12-06 "
             "11:59 UTC is in the past: choose a later time, or send it now (`newsletter "
             "issues send w49`)"),
            ({"at": NOW, "local_time": time(9), "on": DAY}, "not both"),
            ({}, "give a time"),
            ({"local_time": time(9)}, "--local-time needs --on"),
            ({"at": datetime(2040, 1, 1)}, "more than ten years away"),
            ({"at": NOW, "timezone": "Mars/Base"}, "'Mars/Base' is not a time zone"),
        ]:
            with pytest.raises(ScheduleError, match=message.replace("(", r"\(")
                               .replace(")", r"\)")):
                schedule_issue(session, issue, **{"timezone": "UTC", "now": NOW, **kwargs})
        assert issue.status == "draft"
        result = schedule_issue(session, issue, at=datetime(2026, 12, 7, 15),
                                timezone="america/costa_rica", now=NOW)
        assert (issue.status, issue.send_at, issue.schedule_timezone) == (
            "scheduled", datetime(2026, 12, 7, 15), "America/Costa_Rica")
        assert result.lines() == ["issue w49 scheduled for 2026-12-07 09:00 America/Costa_Rica "
                                  "(2026-12-07 15:00 UTC)"]
        # the scheduler catching up on a period that fell due may schedule in the past
        schedule_issue(session, issue, at=datetime(2026, 12, 6, 11), timezone="UTC", now=NOW,
                       past_ok=True)
        issue.status = "sent"
        with pytest.raises(ScheduleError, match="is sent: only a draft"):
            schedule_issue(session, issue, at=datetime(2026, 12, 7), timezone="UTC", now=NOW)
        with pytest.raises(ScheduleError, match="is sent: only a scheduled issue"):
            unschedule_issue(session, issue)


def test_local_time_says_which_zones_and_which_choices(sessions: sessionmaker[Session],
                                                       slug: str) -> None:
    with sessions() as session, session.begin():
        issue = get_issue(session, slug)
        result = schedule_issue(session, issue, local_time=time(9), on=DAY,
                                timezone="America/Guatemala", now=NOW)
    assert result.send_at == datetime(2026, 12, 7, 8)  # Madrid comes first
    assert [(z.zone, z.subscribers, z.local, z.utc, z.via) for z in result.zones] == [
        ("Europe/Madrid", 1, datetime(2026, 12, 7, 9), datetime(2026, 12, 7, 8), ("country",)),
        ("America/Costa_Rica", 1, datetime(2026, 12, 7, 9), datetime(2026, 12, 7, 15),
         ("country",)),
        # nobody lacks a zone, but whoever joins without one gets the issue's zone
        ("America/Guatemala", 0, datetime(2026, 12, 7, 9), datetime(2026, 12, 7, 15),
         ("fallback",)),
        ("America/Mexico_City", 1, datetime(2026, 12, 7, 9), datetime(2026, 12, 7, 15),
         ("country",)),
        ("America/Tijuana", 1, datetime(2026, 12, 7, 9), datetime(2026, 12, 7, 17),
         ("attribute",)),
    ]
    assert [(c.country, c.zone, c.subscribers) for c in result.choices] == [
        ("ES", "Europe/Madrid", 1), ("MX", "America/Mexico_City", 1)]
    lines = "\n".join(result.lines())
    assert ("MX has 12 time zones: its subscriber without a timezone attribute gets "
            "America/Mexico_City; to send at someone's own hour elsewhere, set their "
            "`timezone` attribute") in lines
    assert result.as_dict()["zones"][0]["utc"] == "2026-12-07T08:00:00+00:00"
    with sessions() as session:
        stored = get_issue(session, slug)
        assert (stored.send_local_time, stored.send_on, stored.send_at) == (
            "09:00", DAY, datetime(2026, 12, 7, 8))


def test_rescheduling_replans_and_unscheduling_forgets_untried_rows(
    sessions: sessionmaker[Session], settings: Settings, slug: str
) -> None:
    def not_before() -> list[datetime | None]:
        with sessions() as session:
            return sorted(session.scalars(select(Delivery.not_before)),
                          key=lambda d: d or datetime.min)

    with sessions() as session, session.begin():
        issue = get_issue(session, slug)
        schedule_issue(session, issue, at=datetime(2026, 12, 7, 9), timezone="UTC", now=NOW)
        assert plan_issue(settings, session, issue) == 4
    assert not_before() == [datetime(2026, 12, 7, 9)] * 4
    with sessions() as session, session.begin():
        issue = get_issue(session, slug)
        schedule_issue(session, issue, local_time=time(9), on=DAY, timezone="UTC", now=NOW)
        assert plan_issue(settings, session, issue) == 4
    assert not_before() == [datetime(2026, 12, 7, h) for h in (8, 15, 15, 17)]
    with sessions() as session, session.begin():  # one row was tried already: it stays
        session.execute(update(Delivery).where(Delivery.not_before == datetime(2026, 12, 7, 8))
                        .values(status="sent", attempts=1))
        issue = get_issue(session, slug)
        assert unschedule_issue(session, issue) == 3
        assert (issue.status, issue.send_at, issue.send_local_time, issue.send_on,
                issue.schedule_timezone) == ("draft", None, None, None, None)
        assert schedules.send_times(issue) is None
    assert not_before() == [datetime(2026, 12, 7, 8)]


@pytest.mark.parametrize("change", ["unschedule", "reschedule"])
def test_a_send_started_meanwhile_is_not_taken_back_to_the_calendar(
    sessions: sessionmaker[Session], settings: Settings, slug: str, change: str
) -> None:
    """A person reads the scheduled issue; the scheduler starts it (scheduled -> sending,
    as worker/delivery.start_issue does) and commits; the person's (un)schedule must then
    be refused: not turn a send under way into a draft and drop its planned rows."""
    with sessions() as session, session.begin():
        issue = get_issue(session, slug)
        schedule_issue(session, issue, at=datetime(2026, 12, 7, 9), timezone="UTC", now=NOW)
        plan_issue(settings, session, issue)
    with sessions() as person:
        seen = get_issue(person, slug)
        assert seen.status == "scheduled"
        with sessions() as runner, runner.begin():
            runner.execute(update(Issue).where(Issue.slug == slug,
                                               Issue.status == "scheduled")
                           .values(status="sending"))
        with pytest.raises(ScheduleError, match="changed meanwhile: it is sending now"):
            if change == "unschedule":
                unschedule_issue(person, seen)
            else:
                schedule_issue(person, seen, at=datetime(2026, 12, 8, 9), timezone="UTC",
                               now=NOW)
        person.rollback()
    with sessions() as session:
        assert get_issue(session, slug).status == "sending"
        assert len(session.scalars(select(Delivery.id)).all()) == 4


@pytest.fixture
def cli_runner(runner: CliRunner, tmp_path: Path) -> Iterator[CliRunner]:
    """The CLI with items, four subscribers and a draft, at 2026-12-06 12:00 UTC."""
    (tmp_path / "items.txt").write_text(sample_items_text(), encoding="utf-8")
    (tmp_path / "people.csv").write_text(PEOPLE, encoding="utf-8")
    with time_machine.travel(NOW.replace(tzinfo=UTC), tick=False):
        invoke(runner, "items", "import", str(tmp_path / "items.txt"))
        invoke(runner, "subscribers", "import", str(tmp_path / "people.csv"))
        invoke(runner, "issues", "create", "w49", "--from", "2019-09-01", "--to",
               "2019-10-31", "--approval", "required")
        yield runner


def invoke(runner: CliRunner, *args: str, code: int = 0) -> str:
    result = runner.invoke(cli, list(args))
    assert result.exit_code == code, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    return result.output


def test_cli_schedule_deliveries_status_and_show(cli_runner: CliRunner) -> None:
    out = invoke(cli_runner, "issues", "schedule", "w49", "--at", "2026-12-07 09:00")
    assert "scheduled for 2026-12-07 09:00 UTC" in out
    assert "times read in UTC (no --timezone given and no series)" in out
    assert "not approved yet" in out
    rows = json.loads(invoke(cli_runner, "issues", "deliveries", "w49", "--json"))
    assert {r["not_before"] for r in rows} == {"2026-12-07T09:00:00+00:00"}

    out = json.loads(invoke(cli_runner, "issues", "schedule", "w49", "--local-time", "09:00",
                            "--on", "2026-12-07", "--timezone", "America/Costa_Rica",
                            "--json"))
    assert out["send_at"] == "2026-12-07T08:00:00+00:00" and out["planned"] == 4
    assert [c["country"] for c in out["several_zone_countries"]] == ["ES", "MX"]
    rows = json.loads(invoke(cli_runner, "issues", "deliveries", "w49", "--json"))
    assert {r["email"]: r["not_before"] for r in rows} == {
        "pepa@example.org": "2026-12-07T08:00:00+00:00",
        "eva@example.org": "2026-12-07T15:00:00+00:00",
        "ana@example.org": "2026-12-07T15:00:00+00:00",
        "tito@example.org": "2026-12-07T17:00:00+00:00"}
    status = json.loads(invoke(cli_runner, "issues", "status", "w49", "--json"))
    assert status["queued"] == 4 and status["sent"] == 0  # the counts stay as they were
    assert status["due"]["pending"] == [
        {"not_before": "2026-12-07T08:00:00+00:00", "deliveries": 1},
        {"not_before": "2026-12-07T15:00:00+00:00", "deliveries": 2},
        {"not_before": "2026-12-07T17:00:00+00:00", "deliveries": 1}]
    assert status["due"]["next_release"] == "2026-12-07T08:00:00+00:00"
    assert "needs approval" in status["due"]["waiting_for"]
    text = invoke(cli_runner, "issues", "status", "w49")
    assert "2 deliveries not before 2026-12-07T15:00:00+00:00" in text
    shown = json.loads(invoke(cli_runner, "issues", "show", "w49", "--json"))
    assert shown["schedule"] == {"send_at": "2026-12-07T08:00:00+00:00",
                                 "timezone": "America/Costa_Rica",
                                 "local": "2026-12-07T02:00", "local_time": "09:00",
                                 "on": "2026-12-07"}
    assert shown["status"] == "scheduled" and len(shown["items"]) == 10
    assert shown["audience"]["recipients"] == 4

    assert "unschedule w49` first" in invoke(cli_runner, "issues", "send", "w49", code=1)
    assert "draft again; 4 planned deliveries removed" in invoke(
        cli_runner, "issues", "unschedule", "w49")
    assert json.loads(invoke(cli_runner, "issues", "deliveries", "w49", "--json")) == []
    assert "in the past" in invoke(cli_runner, "issues", "schedule", "w49", "--at",
                                   "2026-12-06 11:00", code=1)


def test_cli_list_is_the_calendar(cli_runner: CliRunner, settings: Settings,
                                  sessions: sessionmaker[Session]) -> None:
    with sessions() as session, session.begin():
        weekly = Series(slug="semanal", rule="FREQ=WEEKLY", timezone="America/Costa_Rica")
        session.add(weekly)
        session.flush()
        session.execute(update(Issue).values(series_id=weekly.id, number=12))
        session.add(SeriesPeriod(series_id=weekly.id, occurs_at=datetime(2026, 11, 30, 15),
                                 window_from=date(2026, 11, 23), window_to=date(2026, 11, 29),
                                 status="skipped", reason="2 items, fewer than 3"))
    # without --timezone, the series' zone, said so
    out = invoke(cli_runner, "issues", "schedule", "w49", "--at", "2026-12-07 09:00")
    assert "(the zone of series semanal)" in out and "15:00 UTC" in out
    rows = json.loads(invoke(cli_runner, "issues", "list", "--json"))
    assert rows == [
        {"kind": "issue", "slug": "w49", "title": "", "date_from": "2019-09-01",
         "date_to": "2019-10-31", "status": "scheduled", "items": 10, "approval": "required",
         "review": "", "send_at": "2026-12-07T15:00:00+00:00", "local_time": None,
         "on": None, "timezone": "America/Costa_Rica", "series": "semanal", "number": 12,
         "sent_at": None},
        {"kind": "skipped", "series": "semanal", "occurs_at": "2026-11-30T15:00:00+00:00",
         "window_from": "2026-11-23", "window_to": "2026-11-29",
         "reason": "2 items, fewer than 3"}]
    text = invoke(cli_runner, "issues", "list")
    assert "skipped periods" in text and "semanal" in text and "approved" not in text


@pytest.mark.fuzz
@given(text=st.text(max_size=40))
def test_any_typed_time_is_read_or_refused_clearly(text: str) -> None:
    for parse in (schedules.parse_wall_time, schedules.parse_day, schedules.parse_zone,
                  lambda t: schedules.parse_instant(t, "America/Costa_Rica")):
        try:
            parse(text)
        except ScheduleError as exc:
            assert "\n" not in str(exc) and len(str(exc)) < 300


@pytest.mark.fuzz
@given(day=st.dates(), wall=st.times(), zone=st.sampled_from(
    ["America/Costa_Rica", "America/New_York", "Europe/Madrid", "Australia/Lord_Howe",
     "Pacific/Kiritimati", "UTC"]))
def test_a_valid_time_reads_back_as_itself(day: date, wall: time, zone: str) -> None:
    typed = f"{day.isoformat()} {wall:%H:%M}"
    try:
        instant = schedules.parse_instant(typed, zone)
    except ScheduleError:
        assert day.year in (1, 9999)  # no UTC instant for the first or last day of time
        return
    assert schedules.parse_wall_time(f"{wall:%H:%M}") == wall.replace(second=0, microsecond=0)
    assert schedules.parse_day(day.isoformat()) == day
    back = schedules.zones.to_local(instant, zone)
    typed_wall = datetime.combine(day, wall.replace(second=0, microsecond=0))
    # a wall time the clocks skip moves forward by the jump (at most a few hours)
    assert timedelta(0) <= back - typed_wall <= timedelta(hours=3)


OPTION_TEXT = st.one_of(st.text(max_size=30),
                        st.sampled_from(["2026-12-07 09:00", "09:00", "2026-12-07",
                                         "America/Costa_Rica", "24:00", "2026-02-30",
                                         "2026-12-07T09:00+01:00", "Europe/Madrid "]))


@pytest.mark.fuzz
def test_cli_time_options_never_show_a_traceback(tmp_path: Path) -> None:
    env = {"NEWSLETTER_VAR_DIR": str(tmp_path / "var"), "NEWSLETTER_BROKER_URL": "",
           "NEWSLETTER_DATABASE_URL": f"sqlite:///{tmp_path / 'fuzz.db'}",
           "NEWSLETTER_SMTP_URL": "", "NEWSLETTER_SECRET_KEY": "test-secret",
           "NEWSLETTER_PUBLIC_BASE_URL": "https://news.example.org"}
    runner = CliRunner(env=env)
    (tmp_path / "items.txt").write_text(sample_items_text(), encoding="utf-8")
    (tmp_path / "people.csv").write_text(PEOPLE, encoding="utf-8")
    invoke(runner, "items", "import", str(tmp_path / "items.txt"))
    invoke(runner, "subscribers", "import", str(tmp_path / "people.csv"))
    invoke(runner, "issues", "create", "w49", "--from", "2019-09-01", "--to", "2019-10-31")

    @hypothesis_settings(max_examples=40)
    @given(options=st.lists(st.tuples(st.sampled_from(["--at", "--local-time", "--on",
                                                        "--timezone"]), OPTION_TEXT),
                            min_size=1, max_size=3))
    def run(options: list[tuple[str, str]]) -> None:
        args = ["issues", "schedule", "w49", *(part for pair in options for part in pair)]
        result = runner.invoke(cli, args)
        assert result.exit_code in (0, 1, 2), result.output
        assert result.exception is None or isinstance(result.exception, SystemExit), (
            args, result.exception)
        assert "Traceback" not in result.output

    with time_machine.travel(NOW.replace(tzinfo=UTC), tick=False):
        run()


ATTRIBUTE = st.one_of(
    st.none(), st.integers(), st.booleans(), st.floats(allow_nan=False, allow_infinity=False),
    st.lists(st.text(max_size=5), max_size=2),
    st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=60),
    st.sampled_from(["America/Costa_Rica", " europe/madrid ", "UTC", "Mars/Base", "' OR 1=1",
                     "America/Tijuana", "../../etc/passwd"]))


@pytest.mark.fuzz
def test_any_timezone_attribute_gets_a_delivery_time(sessions: sessionmaker[Session],
                                                     settings: Settings, slug: str) -> None:
    """Whatever a `timezone` attribute holds, the plan gives every row the instant the
    rules say (a valid zone, else the country's, else the issue's): never an error."""
    from subscribers.models import Subscriber, email_hash

    @hypothesis_settings(max_examples=15)
    @given(people=st.lists(st.tuples(ATTRIBUTE, st.sampled_from([None, "MX", "CR", "ES"])),
                           min_size=1, max_size=6))
    def run(people: list[tuple[object, str | None]]) -> None:
        with sessions() as session, session.begin():
            session.execute(Delivery.__table__.delete())
            session.execute(Subscriber.__table__.delete())
            for n, (value, country) in enumerate(people):
                key = f"p{n}@example.org"
                session.add(Subscriber(email=key, email_key=key, email_hash=email_hash(key),
                                       country=country, language="es", status="active",
                                       attributes={"timezone": value}))
            issue = get_issue(session, slug)
            issue.status = "draft"
            schedule_issue(session, issue, local_time=time(9), on=DAY, timezone="Asia/Tokyo",
                           now=NOW)
            assert plan_issue(settings, session, issue) == len(people)
            rows = session.execute(select(Subscriber.email, Delivery.not_before)
                                   .join(Delivery, Delivery.subscriber_id == Subscriber.id))
            times = schedules.LocalTimes(DAY, time(9), "Asia/Tokyo")
            found = {email: when for email, when in rows}
        for n, (value, country) in enumerate(people):
            assert found[f"p{n}@example.org"] == times.for_subscriber(value, country), value

    run()
