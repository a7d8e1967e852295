"""Changing a series and a feed after creating them, on SQLite and PostgreSQL: the same
checks as creating; a new schedule neither rebuilds nor duplicates a period; a new feed
address forgets the old one's validators and backoff; `series edit` and `feeds edit`."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from newsletter import feeds as feeds_module
from newsletter.cli import cli
from newsletter.errors import NewsletterError
from newsletter.feeds import FeedSetupError, add_feed, edit_feed, get_feed
from newsletter.models import SeriesPeriod
from newsletter.series import (
    SeriesChanges,
    SeriesSpec,
    build_due,
    build_series,
    create_series,
    edit_series,
    get_series,
    rule_body,
)
from newsletter.settings import Settings
from subscribers.lists import create_list
from tests.newsletter.test_series import CR, MONDAY, NOW, WEEK, add_items, make_series, statuses

TUESDAY = datetime(2026, 12, 8, 14, 0)  # Tuesday 08:00 in Costa Rica


def edit(sessions: sessionmaker[Session], settings: Settings, now: datetime,
         **changes: object) -> list[str]:
    with sessions() as session, session.begin():
        return edit_series(session, "semanal", SeriesChanges(**changes),  # type: ignore[arg-type]
                           languages=settings.languages, now=now).lines()


def test_a_new_schedule_neither_rebuilds_nor_duplicates_a_period(
        sessions: sessionmaker[Session], settings: Settings) -> None:
    add_items(sessions, date(2026, 11, 30), date(2026, 12, 3), date(2026, 12, 7),
              date(2026, 12, 10))
    make_series(sessions, settings)
    assert statuses(build_due(sessions, settings, MONDAY)) == [("built", "semanal-2026-12-07")]
    # sent this morning at 09:00; moved to 11:00 an hour later: today's period is done,
    # the next send is next Monday at 11:00
    lines = edit(sessions, settings, MONDAY + timedelta(hours=1),
                 every="weekly on monday at 11:00")
    assert lines[0] == ("series semanal: schedule changed: weekly on monday at 09:00 -> "
                        "weekly on monday at 11:00")
    assert lines[1].startswith("  next send 2026-12-14 11:00 America/Costa_Rica "
                               "(2026-12-14 17:00 UTC)")
    assert "none is built again" in lines[1]
    assert "semanal-2026-12-07" in lines[2]  # built already: it keeps its send time
    assert build_due(sessions, settings, MONDAY + timedelta(hours=2)) == []
    with pytest.raises(NewsletterError, match="no period of this series covers"):
        build_series(sessions, settings, "semanal", day=date(2026, 12, 1),
                     now=MONDAY + timedelta(hours=2))
    # to Tuesdays: tomorrow's issue holds the items from the day after the last window
    edit(sessions, settings, MONDAY + timedelta(hours=2), every="weekly on tuesday at 08:00")
    built = build_due(sessions, settings, TUESDAY)
    assert statuses(built) == [("built", "semanal-2026-12-08")]
    assert (built[0].number, built[0].window_from, built[0].window_to) == (
        2, date(2026, 12, 7), date(2026, 12, 7))
    assert statuses(build_due(sessions, settings, TUESDAY + WEEK)) == [
        ("built", "semanal-2026-12-15")]
    assert build_due(sessions, settings, TUESDAY + WEEK) == []
    with sessions() as session:
        periods = list(session.scalars(select(SeriesPeriod).order_by(SeriesPeriod.occurs_at)))
        assert [(p.status, p.window_from, p.window_to) for p in periods] == [
            ("built", date(2026, 11, 30), date(2026, 12, 6)),
            ("built", date(2026, 12, 7), date(2026, 12, 7)),
            ("built", date(2026, 12, 8), date(2026, 12, 14)),
        ]
    # a new zone alone keeps the rule, on that zone's wall clock
    lines = edit(sessions, settings, TUESDAY + WEEK, timezone="europe/madrid")
    assert lines[0] == "series semanal: time zone changed: America/Costa_Rica -> Europe/Madrid"
    assert lines[1].startswith("  next send 2026-12-22 08:00 Europe/Madrid")


def test_every_part_changes_with_the_checks_of_create(
        sessions: sessionmaker[Session], settings: Settings) -> None:
    add_feed_row = lambda session, name: add_feed(  # noqa: E731
        session, f"https://{name}.example.org/feed.xml", name=name)
    with sessions() as session, session.begin():
        create_list(session, "boletin")
        add_feed_row(session, "noticias")
    make_series(sessions, settings, titles={"es": "Boletín", "": "News"})
    refused = [
        (dict(every="fortnightly"), "--every 'fortnightly'"),
        (dict(every="daily at 07:00", rrule="FREQ=DAILY"), "one of them"),
        (dict(timezone="Mars/Olympus"), "Mars/Olympus"),
        (dict(min_items=0), "--min-items 0"),
        (dict(build_ahead_hours=-1.0), "--build-ahead -1"),
        (dict(focus="everywhere"), "country focus 'everywhere'"),
        (dict(approval="maybe"), "approval 'maybe'"),
        (dict(window="forever"), "window 'forever'"),
        (dict(lists=["nope"]), "nope"),
        (dict(segments=["nope"]), "nope"),
        (dict(feeds=["nope"]), "no feed called 'nope'"),
        (dict(titles={"es": "x" * 500}), "title"),
    ]
    for changes, message in refused:
        with pytest.raises(NewsletterError, match=message):
            edit(sessions, settings, NOW, **changes)
    with sessions() as session:
        unchanged = get_series(session, "semanal")
        assert (unchanged.every, unchanged.min_items, unchanged.lists) == (
            "weekly on monday at 09:00", 1, [])
    assert edit(sessions, settings, NOW, every="weekly on monday at 09:00", min_items=1) == [
        "series semanal: nothing changed"]
    lines = edit(sessions, settings, NOW, lists=["boletin"], feeds=["noticias"],
                 focus="only", titles={"es": "", "en": "Weekly"}, approval="required",
                 min_items=3, window="since-last", local_time=True, build_ahead_hours=12.5)
    assert lines[:-1] == [
        "series semanal: lists changed: (none) -> boletin",
        "series semanal: feeds changed: (none) -> noticias",
        "series semanal: country focus changed: first -> only",
        "series semanal: titles changed: *: News; es: Boletín -> *: News; en: Weekly",
        "series semanal: approval changed: none -> required",
        "series semanal: fewest items changed: 1 -> 3",
        "series semanal: window changed: period -> since-last",
        "series semanal: local time changed: False -> True",
        "series semanal: build-ahead hours changed: 0 -> 12.5",
    ]
    # the schedule did not change: the next send is the one it had
    assert lines[-1] == ("  next send 2026-12-07 09:00 America/Costa_Rica (2026-12-07 15:00 "
                         "UTC), built 2026-12-07 02:30 UTC")
    with sessions() as session:
        found = get_series(session, "semanal")
        assert (found.lists, found.feeds, found.titles, found.build_ahead_minutes,
                found.schedule_from) == (["boletin"], ["noticias"],
                                         {"": "News", "en": "Weekly"}, 750, None)


def test_a_rule_series_is_edited_by_its_rule_without_its_start(
        sessions: sessionmaker[Session], settings: Settings) -> None:
    with sessions() as session, session.begin():
        create_series(session, SeriesSpec(
            slug="semanal", timezone=CR, rrule="FREQ=WEEKLY;BYDAY=MO;BYHOUR=9;BYMINUTE=0"),
            languages=settings.languages, now=NOW)
        stored = get_series(session, "semanal").rule
    assert stored.startswith("DTSTART:20261207T090000") and \
        rule_body(stored) == "FREQ=WEEKLY;BYDAY=MO;BYHOUR=9;BYMINUTE=0"
    # what the page's form holds, sent back as it is (or as the stored text): no change
    for same in (rule_body(stored), stored):
        assert edit(sessions, settings, NOW + WEEK, rrule=same) == [
            "series semanal: nothing changed"]
    lines = edit(sessions, settings, NOW + WEEK, rrule="FREQ=WEEKLY;BYDAY=TU;BYHOUR=8")
    assert lines[0].startswith("series semanal: schedule changed: DTSTART:20261207T090000 ")
    assert lines[1].startswith("  next send 2026-12-15 08:00 America/Costa_Rica")


def test_a_new_feed_address_forgets_the_old_servers_validators_and_backoff(
        sessions: sessionmaker[Session]) -> None:
    now = datetime(2026, 12, 6, 12, 0)
    with sessions() as session, session.begin():
        add_feed(session, "https://a.example.org/feed.xml", name="noticias")
        add_feed(session, "https://b.example.org/feed.xml", name="otra")
        feed = get_feed(session, "noticias")
        feed.etag, feed.last_modified = '"v1"', "Sat, 05 Dec 2026 10:00:00 GMT"
        feed.failures, feed.last_error = 3, "answered 503"
        feed.last_fetched_at, feed.next_fetch_at = now, now + timedelta(hours=8)
    with sessions() as session, session.begin():
        done = edit_feed(session, "noticias", interval_minutes=30, language="ES",
                         countries=["CR, Nicaragua"], now=now)
        assert done.lines() == [
            "feed noticias: language changed: detected -> es",
            "feed noticias: countries changed: (none) -> CR,NI",
            "feed noticias: interval changed: 60 -> 30 minutes",
        ]
        feed = get_feed(session, "noticias")
        # failing: its backoff stays; its validators too (the same server)
        assert (feed.etag, feed.failures, feed.next_fetch_at) == (
            '"v1"', 3, now + timedelta(hours=8))
    for wrong, message in ((dict(url="https://b.example.org/feed.xml"), "as feed 'otra'"),
                           (dict(url="ftp://a.example.org/"), r"not an http\(s\) address"),
                           (dict(url="http://127.0.0.1/feed"), "private or link-local"),
                           (dict(language="not a language"), "not a language code"),
                           (dict(countries=["Atlantis"]), "not a known country"),
                           (dict(interval_minutes=0), "--interval 0")):
        with sessions() as session, session.begin(), pytest.raises(NewsletterError,
                                                                    match=message):
            edit_feed(session, "noticias", now=now, **wrong)  # type: ignore[arg-type]
    with sessions() as session, session.begin():
        done = edit_feed(session, "noticias", url="https://a.example.org/rss", now=now)
        assert done.reset and "its ETag/Last-Modified" in done.lines()[-1]
        feed = get_feed(session, "noticias")
        assert (feed.url, feed.etag, feed.last_modified, feed.failures, feed.last_error,
                feed.next_fetch_at) == ("https://a.example.org/rss", None, None, 0, "", None)
        assert feed.interval_minutes == 30 and feed.countries == "CR,NI"
    with sessions() as session, session.begin():
        assert not edit_feed(session, "noticias", url="https://a.example.org/rss",
                             language="es", now=now).changed
        # not failing: a new interval moves the next fetch to the last one + the interval
        feed = get_feed(session, "noticias")
        feed.next_fetch_at = now + timedelta(minutes=30)
        edit_feed(session, "noticias", interval_minutes=120, now=now)
        assert feed.next_fetch_at == now + timedelta(minutes=120)
    with sessions() as session, pytest.raises(FeedSetupError, match="no feed named"):
        edit_feed(session, "nope", language="es", now=now)


def test_a_fetch_of_the_old_address_ending_after_the_edit_changes_nothing(
        sessions: sessionmaker[Session]) -> None:
    """The scheduler read the feed (its address, its validators), then someone gave it a
    new address: what the old server answers is not the new one's state."""
    now = datetime(2026, 12, 6, 12, 0)
    with sessions() as session, session.begin():
        add_feed(session, "https://a.example.org/feed.xml", name="noticias")
        in_flight = feeds_module._target(get_feed(session, "noticias"))
    with sessions() as session, session.begin():
        edit_feed(session, "noticias", url="https://b.example.org/feed.xml", now=now)
    with sessions() as session, session.begin():
        feeds_module._succeeded(session, in_flight, now, "ok", '"old"', "yesterday")
    feeds_module._failed(sessions, in_flight, now, "the old server answered 503")
    with sessions() as session:
        feed = get_feed(session, "noticias")
        assert (feed.etag, feed.last_modified, feed.failures, feed.last_error,
                feed.next_fetch_at) == (None, None, 0, "", None)
    # a fetch of the address it has still records its answer
    with sessions() as session, session.begin():
        current = feeds_module._target(get_feed(session, "noticias"))
        feeds_module._succeeded(session, current, now, "ok", '"new"', None)
    with sessions() as session:
        assert get_feed(session, "noticias").etag == '"new"'


def test_the_edit_commands(runner: CliRunner, sessions: sessionmaker[Session],
                           settings: Settings) -> None:
    make_series(sessions, settings, now=datetime.now().replace(microsecond=0))
    result = runner.invoke(cli, ["series", "edit", "semanal", "--every",
                                 "weekly on tuesday at 08:00", "--timezone", CR, "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["changes"] == ["schedule changed: weekly on monday at 09:00 -> weekly on "
                               "tuesday at 08:00"]
    assert data["schedule_changed"] and data["next_local"].endswith("T08:00:00")
    result = runner.invoke(cli, ["series", "edit", "semanal", "--min-items", "0"])
    assert result.exit_code == 1 and "Error: --min-items 0" in result.output, result.output
    result = runner.invoke(cli, ["series", "edit", "semanal"])
    assert result.exit_code == 2 and "nothing to change" in result.output
    result = runner.invoke(cli, ["series", "edit", "semanal", "--title", "es=Boletín",
                                 "--everyone", "--all-items", "--series-time"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("series semanal: titles changed: (none) -> es: Boletín\n")
    with sessions() as session, session.begin():
        add_feed(session, "https://a.example.org/feed.xml", name="noticias")
    result = runner.invoke(cli, ["feeds", "edit", "noticias", "--url",
                                 "https://a.example.org/rss", "--interval", "15", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {
        "feed": "noticias", "changed": True, "reset": True,
        "changes": ["address changed: https://a.example.org/feed.xml -> "
                    "https://a.example.org/rss", "interval changed: 60 -> 15 minutes"]}
    result = runner.invoke(cli, ["feeds", "edit", "noticias", "--language", "not one"])
    assert result.exit_code == 1 and "is not a language code" in result.output
    result = runner.invoke(cli, ["feeds", "edit", "noticias"])
    assert result.exit_code == 2 and "nothing to change" in result.output
