"""Series on SQLite and PostgreSQL: periods built once, skipped with a reason, caught up
after downtime; the `series` commands. The clock is passed in (or moved by time-machine)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence
from datetime import date, datetime, timedelta

import pytest
import time_machine
from click.testing import CliRunner
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from newsletter.approval import approve, sendable
from newsletter.cadence import period_of
from newsletter.cli import cli
from newsletter.errors import NewsletterError
from newsletter.models import Feed, Issue, Item, Series, SeriesPeriod
from newsletter.series import (
    PeriodResult,
    SeriesError,
    SeriesSpec,
    build_due,
    build_series,
    create_series,
    delete_series,
    pause_series,
    resume_series,
)
from newsletter.settings import Settings
from subscribers.lists import create_list, delete_list
from subscribers.people import NewSubscriber, add

NOW = datetime(2026, 12, 6, 13, 0)  # Sunday; 07:00 in Costa Rica (UTC-6, no DST)
MONDAY = datetime(2026, 12, 7, 15, 0)  # Monday 09:00 in Costa Rica
WEEK = timedelta(days=7)
WEEKLY = "weekly on monday at 09:00"
CR = "America/Costa_Rica"


def add_items(sessions: sessionmaker[Session], *days: date, feed: str | None = None,
              country: str = "CR") -> None:
    with sessions() as session, session.begin():
        feed_id = session.scalar(select(Feed.id).where(Feed.name == feed)) if feed else None
        start = session.scalar(select(func.count(Item.id))) or 0
        for n, day in enumerate(days, start):
            session.add(Item(source_key=f"k{n}", published=day, title=f"Noticia {n}",
                             body=f"Párrafo {n}.", language="es", countries=country,
                             feed_id=feed_id))


def make_series(sessions: sessionmaker[Session], settings: Settings, slug: str = "semanal",
                now: datetime = NOW, **fields: object) -> None:
    spec = SeriesSpec(slug=slug, timezone=str(fields.pop("timezone", CR)),
                      every=str(fields.pop("every", WEEKLY)), **fields)  # type: ignore[arg-type]
    with sessions() as session, session.begin():
        create_series(session, spec, languages=settings.languages, now=now)


def statuses(results: Sequence[PeriodResult]) -> list[tuple[str, str | None]]:
    return [(r.status, r.issue) for r in results]


def issues_of(sessions: sessionmaker[Session]) -> list[Issue]:
    with sessions() as session:
        found = list(session.scalars(select(Issue).order_by(Issue.id)))
        for issue in found:
            assert all(entry.item for entry in issue.entries)  # loaded while attached
        return found


def test_due_period_is_built_numbered_titled_and_scheduled_once(
        sessions: sessionmaker[Session], settings: Settings) -> None:
    add_items(sessions, date(2026, 11, 29), date(2026, 11, 30), date(2026, 12, 6),
              date(2026, 12, 7))
    make_series(sessions, settings, titles={"es": "Boletín semanal", "": "News {number}, {date}"})
    assert build_due(sessions, settings, MONDAY - timedelta(minutes=1)) == []
    results = build_due(sessions, settings, MONDAY)
    assert statuses(results) == [("built", "semanal-2026-12-07")]
    assert (results[0].window_from, results[0].window_to) == (date(2026, 11, 30),
                                                              date(2026, 12, 6))
    assert build_due(sessions, settings, MONDAY + timedelta(minutes=1)) == []
    [issue] = issues_of(sessions)
    assert (issue.number, issue.status, issue.send_at) == (1, "scheduled", MONDAY)
    assert issue.title == "News 1, 2026-12-07"
    assert issue.titles == {"es": "Boletín semanal No. 1"}
    assert len(issue.entries) == 2  # the 30th and the 6th, not the 29th or the 7th
    add_items(sessions, date(2026, 12, 8))
    second = build_due(sessions, settings, MONDAY + WEEK)
    assert [(r.status, r.number) for r in second] == [("built", 2)]


def test_a_period_below_the_minimum_is_skipped_with_a_reason_and_numbers_continue(
        sessions: sessionmaker[Session], settings: Settings) -> None:
    add_items(sessions, date(2026, 12, 1), date(2026, 12, 2), date(2026, 12, 9),
              date(2026, 12, 10), date(2026, 12, 11))
    make_series(sessions, settings, min_items=3)
    [skipped] = build_due(sessions, settings, MONDAY)
    assert skipped.status == "skipped"
    assert skipped.reason == ("2 items between 2026-11-30 and 2026-12-06, fewer than the "
                              "series' minimum of 3")
    [built] = build_due(sessions, settings, MONDAY + WEEK)
    assert (built.status, built.number, built.issue) == ("built", 1, "semanal-2026-12-14")
    with sessions() as session:
        rows = session.scalars(select(SeriesPeriod).order_by(SeriesPeriod.occurs_at)).all()
        assert [(r.status, r.number) for r in rows] == [("skipped", None), ("built", 1)]
    # the default title carries the sender's name and the number
    assert issues_of(sessions)[0].title == "Boletín Regional No. 1"


def test_since_last_rolls_a_skipped_periods_items_forward(
        sessions: sessionmaker[Session], settings: Settings) -> None:
    add_items(sessions, date(2026, 12, 1), date(2026, 12, 9))
    make_series(sessions, settings, min_items=2, window="since-last")
    assert build_due(sessions, settings, MONDAY)[0].status == "skipped"
    [built] = build_due(sessions, settings, MONDAY + WEEK)
    assert (built.status, built.window_from, built.window_to) == (
        "built", date(2026, 11, 30), date(2026, 12, 13))
    add_items(sessions, date(2026, 12, 15), date(2026, 12, 16))
    [third] = build_due(sessions, settings, MONDAY + 2 * WEEK)
    assert (third.window_from, third.window_to) == (date(2026, 12, 14), date(2026, 12, 20))


def test_feeds_limit_the_items(sessions: sessionmaker[Session], settings: Settings) -> None:
    with sessions() as session, session.begin():
        session.add_all([Feed(name="noticias", url="http://a.example/rss"),
                         Feed(name="otra", url="http://b.example/rss")])
    add_items(sessions, date(2026, 12, 1), feed="noticias")
    add_items(sessions, date(2026, 12, 2), date(2026, 12, 3), feed="otra")
    add_items(sessions, date(2026, 12, 4))
    make_series(sessions, settings, feeds=("noticias",))
    assert statuses(build_due(sessions, settings, MONDAY)) == [("built", "semanal-2026-12-07")]
    [issue] = issues_of(sessions)
    assert [e.item.title for e in issue.entries] == ["Noticia 0"]
    with sessions() as session, session.begin(), pytest.raises(SeriesError, match="no feed"):
        create_series(session, SeriesSpec("x", CR, every=WEEKLY, feeds=("nada",)),
                      languages=settings.languages, now=NOW)


def test_catch_up_builds_the_recent_period_once_and_records_older_ones_missed(
        sessions: sessionmaker[Session], settings: Settings) -> None:
    add_items(sessions, *(date(2026, 12, 1) + timedelta(days=n) for n in range(0, 28, 2)))
    make_series(sessions, settings)
    back = MONDAY + 2 * WEEK + timedelta(hours=5)  # down from before the first period
    results = build_due(sessions, settings, back)
    assert [r.status for r in results] == ["skipped", "skipped", "built"]
    assert results[0].reason == (
        "missed: no scheduler ran between 2026-12-07 15:00 UTC and 2026-12-21 20:00 UTC; "
        "older than NEWSLETTER_CATCH_UP_HOURS=24")
    assert results[2].number == 1
    [issue] = issues_of(sessions)
    assert (issue.slug, issue.status, issue.send_at) == (  # due at once, and built once
        "semanal-2026-12-21", "scheduled", MONDAY + 2 * WEEK)
    assert build_due(sessions, settings, back + timedelta(minutes=1)) == []
    older = build_due(sessions, settings.model_copy(update={"catch_up_hours": 1.0}),
                      back + timedelta(minutes=2))
    assert older == []  # each missed period is recorded once, not once per tick


def test_building_ahead_for_approval_and_the_window_it_covers(
        sessions: sessionmaker[Session], settings: Settings) -> None:
    add_items(sessions, date(2026, 12, 5))
    make_series(sessions, settings, approval="required")
    assert build_due(sessions, settings, MONDAY - timedelta(hours=25)) == []
    [built] = build_due(sessions, settings, MONDAY - timedelta(hours=24))
    assert (built.window_from, built.window_to) == (date(2026, 11, 29), date(2026, 12, 5))
    [issue] = issues_of(sessions)
    assert (issue.approval, issue.send_at, issue.series_id is not None) == (
        "required", MONDAY, True)
    # built by the calendar, it waits in review; anyone may approve it, and it goes out
    # only once approved
    assert issue.review == "in_review"
    with sessions() as session, session.begin():
        issue = session.get(Issue, issue.id)
        assert issue is not None
        assert sendable(issue) is not None
        approve(session, issue, "Luis", "ok", now=MONDAY - timedelta(hours=2))
        assert sendable(issue) is None


def test_a_local_time_series_schedules_each_reader_at_the_hour_in_their_zone(
        sessions: sessionmaker[Session], settings: Settings) -> None:
    add_items(sessions, date(2026, 12, 4))
    make_series(sessions, settings, local_time=True)
    with sessions() as session, session.begin():
        for email, country in (("ana@example.org", "ES"), ("lu@example.org", "CR")):
            add(session, NewSubscriber(email, country=country), default_language="es")
    # built a day ahead by default, before 09:00 comes anywhere
    assert build_due(sessions, settings, MONDAY - timedelta(hours=24, minutes=1)) == []
    [built] = build_due(sessions, settings, MONDAY - timedelta(hours=24))
    assert built.status == "built"
    [issue] = issues_of(sessions)
    assert (issue.status, issue.send_local_time, issue.send_on, issue.schedule_timezone) == (
        "scheduled", "09:00", date(2026, 12, 7), CR)
    assert issue.send_at == datetime(2026, 12, 7, 8, 0)  # 09:00 in Madrid comes first


def test_a_manual_build_of_a_local_time_issue_after_the_first_zone_s_hour_schedules_it(
        sessions: sessionmaker[Session], settings: Settings) -> None:
    """Monday 07:00 in Costa Rica, 14:00 in Madrid: a person builds today's local-time
    issue by hand. Costa Rica's 09:00 is still ahead, so it is scheduled (Madrid's reader
    at once); it must not fail with "... is in the past: use `issues send` ..." about an
    issue the failure rolled back."""
    add_items(sessions, date(2026, 12, 4))
    make_series(sessions, settings, local_time=True, build_ahead_hours=0)
    with sessions() as session, session.begin():
        for email, country in (("ana@example.org", "ES"), ("lu@example.org", "CR")):
            add(session, NewSubscriber(email, country=country), default_language="es")
    now = MONDAY - timedelta(hours=2)
    built = build_series(sessions, settings, "semanal", day=date(2026, 12, 4), now=now)
    assert (built.status, built.issue, built.send_at) == (
        "built", "semanal-2026-12-07", datetime(2026, 12, 7, 8, 0))
    [issue] = issues_of(sessions)
    assert (issue.status, issue.send_local_time) == ("scheduled", "09:00")


def test_manual_build_twice_gives_one_issue_and_an_old_period_stays_a_draft(
        sessions: sessionmaker[Session], settings: Settings) -> None:
    add_items(sessions, date(2026, 12, 2), date(2026, 12, 9))
    make_series(sessions, settings)
    first = build_series(sessions, settings, "semanal", day=date(2026, 12, 9), now=NOW)
    again = build_series(sessions, settings, "semanal", day=date(2026, 12, 13), now=NOW)
    assert (first.status, first.send_at) == ("built", MONDAY + WEEK)
    assert (again.status, again.issue) == ("exists", "semanal-2026-12-14")
    assert again.reason == "built already as issue semanal-2026-12-14"
    late = MONDAY + timedelta(days=2)
    old = build_series(sessions, settings, "semanal", day=date(2026, 12, 2), now=late)
    assert (old.status, old.issue, old.number, old.send_at) == (
        "built", "semanal-2026-12-07", 2, None)
    assert "left a draft" in old.reason
    assert [i.status for i in issues_of(sessions)] == ["scheduled", "draft"]
    assert build_due(sessions, settings, late) == []
    with pytest.raises(NewsletterError, match="no period of this series covers 2026-11-20"):
        build_series(sessions, settings, "semanal", day=date(2026, 11, 20), now=late)


@pytest.mark.parametrize("day", [date(2028, 12, 7), date(9999, 12, 30)])
def test_a_build_for_a_date_years_ahead_is_refused_at_once(
        sessions: sessionmaker[Session], settings: Settings, day: date) -> None:
    """Finding the period of a far date walks the rule from its start: seconds for a
    weekly rule in 9999, a minute for an hourly one. Nobody builds an issue years ahead."""
    make_series(sessions, settings)
    started = time.perf_counter()
    with pytest.raises(SeriesError, match=f"--for {day.isoformat()} is more than two years "
                                          "ahead"):
        build_series(sessions, settings, "semanal", day=day, now=NOW)
    assert time.perf_counter() - started < 0.5


def test_an_early_manual_skip_is_not_recorded_and_a_recorded_skip_is_tried_again(
        sessions: sessionmaker[Session], settings: Settings) -> None:
    make_series(sessions, settings)
    early = build_series(sessions, settings, "semanal", now=NOW)
    assert early.status == "skipped" and "not recorded" in early.reason
    assert build_due(sessions, settings, MONDAY)[0].status == "skipped"
    add_items(sessions, date(2026, 12, 3))  # arrived late
    retried = build_series(sessions, settings, "semanal", day=date(2026, 12, 3),
                           now=MONDAY + timedelta(hours=1))
    assert (retried.status, retried.number) == ("built", 1)


def test_pause_builds_nothing_and_resume_records_the_periods_that_passed(
        sessions: sessionmaker[Session], settings: Settings) -> None:
    add_items(sessions, *(date(2026, 12, 1) + timedelta(days=n) for n in range(20)))
    make_series(sessions, settings)
    with sessions() as session, session.begin():
        pause_series(session, "semanal")
    assert build_due(sessions, settings, MONDAY + WEEK) == []
    with sessions() as session, session.begin():
        skipped = resume_series(session, "semanal", now=MONDAY + WEEK + timedelta(hours=1))
        assert [(r.status, r.reason) for r in skipped] == [
            ("skipped", "the series was paused when it fell due")] * 2
    assert build_due(sessions, settings, MONDAY + WEEK + timedelta(hours=2)) == []
    assert [r.number for r in build_due(sessions, settings, MONDAY + 2 * WEEK)] == [1]


def test_a_series_paused_while_a_round_was_under_way_builds_nothing(
        sessions: sessionmaker[Session], settings: Settings) -> None:
    """A scheduler's round read the series as active and is about to build its period;
    a person pauses it first. The build, which locks the series row, must see the pause."""
    from newsletter.cadence import next_occurrences
    from newsletter.series import _run_period

    add_items(sessions, date(2026, 12, 2))
    make_series(sessions, settings)
    with sessions() as session:
        series = session.scalars(select(Series)).one()
        series_id, rule = series.id, series.rule
    occurrence = next_occurrences(rule, CR, MONDAY, 1)[0]
    period = period_of(rule, CR, occurrence, timedelta(0))
    with sessions() as session, session.begin():
        pause_series(session, "semanal")
    result = _run_period(sessions, settings, series_id, "semanal", period, MONDAY,
                         manual=False)
    assert (result.status, result.issue) == ("skipped", None)
    assert "paused" in result.reason
    assert issues_of(sessions) == []
    with sessions() as session:
        assert session.scalar(select(func.count(SeriesPeriod.id))) == 0


def test_one_failing_series_never_stops_the_others(
        sessions: sessionmaker[Session], settings: Settings) -> None:
    add_items(sessions, date(2026, 12, 2))
    with sessions() as session, session.begin():
        create_list(session, "boletin", opt_in="single")
    make_series(sessions, settings, "alpha", lists=("boletin",))
    make_series(sessions, settings, "beta")
    with sessions() as session, session.begin():
        delete_list(session, "boletin")
    results = build_due(sessions, settings, MONDAY)
    assert [(r.series, r.status) for r in results] == [("alpha", "failed"), ("beta", "built")]
    assert "no list called 'boletin'" in results[0].reason
    with sessions() as session:  # nothing half-written for the failed period
        assert session.scalar(select(func.count(SeriesPeriod.id))) == 1


def test_concurrent_builders_make_one_issue(sessions: sessionmaker[Session],
                                            settings: Settings) -> None:
    add_items(sessions, date(2026, 12, 2))
    make_series(sessions, settings)
    barrier = threading.Barrier(4)
    found: list[list[PeriodResult]] = []

    def builder() -> None:
        barrier.wait()
        found.append(build_due(sessions, settings, MONDAY))

    threads = [threading.Thread(target=builder) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    results = [r for batch in found for r in batch]
    assert len(found) == 4
    assert [r.status for r in results if r.status != "exists"] == ["built"]
    assert len(issues_of(sessions)) == 1


def test_delete_keeps_its_issues_and_refuses_while_one_is_scheduled(
        sessions: sessionmaker[Session], settings: Settings) -> None:
    add_items(sessions, date(2026, 12, 2))
    make_series(sessions, settings)
    build_due(sessions, settings, MONDAY)
    with sessions() as session, session.begin(), pytest.raises(
            SeriesError, match=r"has scheduled issues \(semanal-2026-12-07\)"):
        delete_series(session, "semanal")
    with sessions() as session, session.begin():
        assert delete_series(session, "semanal", force=True) == ["semanal-2026-12-07"]
    [issue] = issues_of(sessions)
    assert (issue.series_id, issue.status) == (None, "scheduled")
    with sessions() as session:
        assert session.scalar(select(func.count(SeriesPeriod.id))) == 0


@pytest.mark.parametrize(("fields", "message"), [
    ({"slug": "Bad Name"}, "not a usable series name"),
    ({"timezone": "Mars/Base"}, "time zone 'Mars/Base'"),
    # names zoneinfo reads from the system's directory but scheduling refuses: every
    # build of such a series would fail
    ({"timezone": "posix/America/Costa_Rica"}, "time zone 'posix/America/Costa_Rica'"),
    ({"timezone": "right/UTC"}, "time zone 'right/UTC'"),
    ({"timezone": "posixrules"}, "time zone 'posixrules'"),
    ({"every": "whenever"}, "--every 'whenever': not understood"),
    ({"min_items": 0}, "never empty"),
    ({"titles": {"de": "Nachrichten"}}, "there is no 'de' edition"),
    ({"titles": {"": "a\nBcc: x@example.org =?utf-8?q?x?="}}, "contains '=\\?'"),
    ({"lists": ("nadie",)}, "no list called 'nadie'"),
    ({"titles": {"es": "{date}" * 30}}, "longer than 200 characters with its number"),
])
def test_create_refuses_what_it_cannot_use(sessions: sessionmaker[Session], settings: Settings,
                                           fields: dict[str, object], message: str) -> None:
    spec: dict[str, object] = {"slug": "semanal", "timezone": CR, "every": WEEKLY, **fields}
    with sessions() as session, session.begin(), pytest.raises(NewsletterError, match=message):
        create_series(session, SeriesSpec(**spec),  # type: ignore[arg-type]
                      languages=settings.languages, now=NOW)
    with sessions() as session:
        assert session.scalar(select(func.count(Series.id))) == 0


def test_a_zone_is_stored_as_tzdata_spells_it_and_builds(
        sessions: sessionmaker[Session], settings: Settings) -> None:
    """`issues schedule --timezone` reads zone names case-insensitively; so does a series,
    which stores the name as tzdata spells it (its builds schedule in that zone)."""
    add_items(sessions, date(2026, 12, 2))
    make_series(sessions, settings, timezone=" america/costa_rica")
    with sessions() as session:
        assert session.scalars(select(Series.timezone)).one() == CR
    assert statuses(build_due(sessions, settings, MONDAY)) == [("built", "semanal-2026-12-07")]


def test_the_longest_series_name_still_makes_an_issue_name_when_the_day_is_taken(
        sessions: sessionmaker[Session], settings: Settings) -> None:
    """A series name leaves room for "-YYYY-MM-DD-HHMM" within an issue name (64)."""
    from newsletter.issues import create_issue

    with sessions() as session, session.begin(), pytest.raises(
            SeriesError, match="not a usable series name: use up to 48"):
        create_series(session, SeriesSpec(slug="s" * 49, timezone=CR, every=WEEKLY),
                      languages=settings.languages, now=NOW)
    add_items(sessions, date(2026, 12, 2))
    longest = "s" * 48
    make_series(sessions, settings, slug=longest)
    with sessions() as session, session.begin():  # a person took the day's name
        create_issue(session, f"{longest}-2026-12-07", date(2026, 12, 1), date(2026, 12, 5))
    assert statuses(build_due(sessions, settings, MONDAY)) == [
        ("built", f"{longest}-2026-12-07-0900")]


def run(runner: CliRunner, *args: str, code: int = 0) -> str:
    result = runner.invoke(cli, list(args))
    assert result.exit_code == code, result.output
    return result.output


def test_the_series_commands(runner: CliRunner, sessions: sessionmaker[Session]) -> None:
    add_items(sessions, date(2026, 12, 2), date(2026, 12, 3))
    with time_machine.travel(NOW.isoformat() + "Z", tick=False):
        out = run(runner, "series", "create", "semanal", "--every", WEEKLY, "--timezone", CR,
                  "--title", "es=Boletín semanal", "--title", "en=Weekly news")
        assert "first issue goes out 2026-12-07 09:00 America/Costa_Rica (2026-12-07 15:00 " \
               "UTC)" in out
        error = run(runner, "series", "create", "x", "--every", "fortnightly", "--timezone",
                    CR, code=1)
        assert error.startswith("Error: --every 'fortnightly'") and error.count("\n") == 1
        built = json.loads(run(runner, "series", "build", "semanal", "--json"))
        assert (built["status"], built["issue"], built["number"]) == (
            "built", "semanal-2026-12-07", 1)
        again = run(runner, "series", "build", "semanal", "--for", "2026-12-01")
        assert "was built already as issue semanal-2026-12-07" in again
        shown = json.loads(run(runner, "series", "show", "semanal", "--json"))
        assert shown["titles"] == {"es": "Boletín semanal", "en": "Weekly news"}
        assert [n["utc"] for n in shown["next"][:2]] == ["2026-12-07T15:00:00",
                                                         "2026-12-14T15:00:00"]
        assert [(p["status"], p["issue"]) for p in shown["periods"]] == [
            ("built", "semanal-2026-12-07")]
        listed = json.loads(run(runner, "series", "list", "--json"))
        assert [(s["slug"], s["built"], s["next_local"]) for s in listed] == [
            ("semanal", 1, "2026-12-07T09:00:00")]
        assert "paused" in run(runner, "series", "pause", "semanal")
        assert "resumed" in run(runner, "series", "resume", "semanal")
        refused = run(runner, "series", "delete", "semanal", code=1)
        assert "has scheduled issues (semanal-2026-12-07)" in refused
        assert "still scheduled: semanal-2026-12-07" in run(runner, "series", "delete",
                                                            "semanal", "--yes")
        assert "no series called 'semanal'" in run(runner, "series", "show", "semanal", code=1)


def test_a_built_issue_has_its_deliveries_planned(runner: CliRunner,
                                                  sessions: sessionmaker[Session]) -> None:
    """As after `issues schedule`: `issues deliveries --json` shows each not_before at once."""
    add_items(sessions, date(2026, 12, 2))
    with sessions() as session, session.begin():
        add(session, NewSubscriber(email="ana@example.org", country="CR", language="es"),
            default_language="es")
        add(session, NewSubscriber(email="pepa@example.org", country="ES", language="es"),
            default_language="es")
    with time_machine.travel(NOW.isoformat() + "Z", tick=False):
        run(runner, "series", "create", "semanal", "--every", WEEKLY, "--timezone", CR,
            "--local-time")
        assert "2 deliveries planned" in run(runner, "series", "build", "semanal", "--for",
                                             "2026-12-02")
        rows = json.loads(run(runner, "issues", "deliveries", "semanal-2026-12-07", "--json"))
    assert sorted((r["email"], r["not_before"]) for r in rows) == [
        ("ana@example.org", "2026-12-07T15:00:00+00:00"),
        ("pepa@example.org", "2026-12-07T08:00:00+00:00")]


def test_a_manual_build_without_a_date_builds_the_next_send_even_when_built_ahead(
        sessions: sessionmaker[Session], settings: Settings) -> None:
    # built 24 h ahead (approval), the window of tomorrow's issue ended yesterday: "today"
    # falls in the window of the issue after it, which is not what a person means
    add_items(sessions, date(2026, 12, 5), date(2026, 12, 6))
    make_series(sessions, settings, approval="required")
    built = build_series(sessions, settings, "semanal", now=NOW)
    assert (built.status, built.issue, built.number) == ("built", "semanal-2026-12-07", 1)
    assert (built.window_from, built.window_to) == (date(2026, 11, 29), date(2026, 12, 5))
    assert build_series(sessions, settings, "semanal", now=NOW).status == "exists"


def test_a_series_created_by_someone_else_meanwhile_is_a_clear_error(
        sessions: sessionmaker[Session], settings: Settings, db_url: str) -> None:
    """Two `series create semanal` at once: the second passed the name check before the
    first committed, and its INSERT then meets the unique name (on PostgreSQL, which lets
    both read; SQLite serialises the two writers)."""
    if not db_url.startswith("postgresql"):
        pytest.skip("SQLite lets only one writer in: the check sees the first series")
    first = sessions()
    first.begin()
    create_series(first, SeriesSpec(slug="semanal", timezone=CR, every=WEEKLY),
                  languages=settings.languages, now=NOW)  # inserted, not yet committed
    threading.Timer(0.5, first.commit).start()  # while the second waits on the row
    try:
        with sessions() as second, second.begin(), \
                pytest.raises(SeriesError, match="just created by someone else"):
            create_series(second, SeriesSpec(slug="semanal", timezone=CR, every=WEEKLY),
                          languages=settings.languages, now=NOW)
    finally:
        first.close()
