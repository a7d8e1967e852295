"""The calendar's pure side: the --every grammar, rules, DST-correct occurrences, windows."""

from __future__ import annotations

import time
from datetime import date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from newsletter.cadence import (
    CadenceError,
    compile_rule,
    next_occurrences,
    occurrences_between,
    period_containing,
    period_of,
    rrule_from_every,
    zone,
)

NOW = datetime(2026, 12, 6, 13, 0)  # a Sunday, naive UTC


def rule(every: str, timezone: str = "UTC", now: datetime = NOW) -> str:
    return compile_rule(every=every, rrule_text=None, timezone=timezone, now=now)


def local_times(stored: str, timezone: str, count: int, since: datetime = NOW) -> list[str]:
    return [f"{o.local:%a %Y-%m-%d %H:%M}"
            for o in next_occurrences(stored, timezone, since, count)]


@pytest.mark.parametrize(("every", "expected"), [
    ("daily at 07:30", "FREQ=DAILY;BYHOUR=7;BYMINUTE=30;BYSECOND=0"),
    ("weekly on monday at 09:00", "FREQ=WEEKLY;BYDAY=MO;BYHOUR=9;BYMINUTE=0;BYSECOND=0"),
    ("weekly on monday, thursday at 09:00",
     "FREQ=WEEKLY;BYDAY=MO,TH;BYHOUR=9;BYMINUTE=0;BYSECOND=0"),
    ("Weekly on Mon and Thu at 9:00",
     "FREQ=WEEKLY;BYDAY=MO,TH;BYHOUR=9;BYMINUTE=0;BYSECOND=0"),
    ("every 2 weeks on friday at 16:00",
     "FREQ=WEEKLY;INTERVAL=2;BYDAY=FR;BYHOUR=16;BYMINUTE=0;BYSECOND=0"),
    ("monthly on the 1st at 09:00", "FREQ=MONTHLY;BYMONTHDAY=1;BYHOUR=9;BYMINUTE=0;BYSECOND=0"),
    ("monthly on the first monday at 09:00",
     "FREQ=MONTHLY;BYDAY=1MO;BYHOUR=9;BYMINUTE=0;BYSECOND=0"),
    ("monthly on the last friday at 17:00",
     "FREQ=MONTHLY;BYDAY=-1FR;BYHOUR=17;BYMINUTE=0;BYSECOND=0"),
    ("monthly on the last day at 18:00",
     "FREQ=MONTHLY;BYMONTHDAY=-1;BYHOUR=18;BYMINUTE=0;BYSECOND=0"),
])
def test_every_grammar_becomes_an_rrule(every: str, expected: str) -> None:
    assert rrule_from_every(every) == expected


@pytest.mark.parametrize(("every", "why"), [
    ("fortnightly", "not understood"),
    ("weekly at 09:00", "say which day of the week"),
    ("weekly on funday at 09:00", "'funday' is not a day of the week"),
    ("daily at 25:00", "not a time of day"),
    ("monthly on the 31st at 09:00", "not every month has a day 31"),
    ("every 0 days at 09:00", "between 1 and 1000"),
])
def test_every_outside_the_grammar_is_refused_with_the_examples(every: str, why: str) -> None:
    with pytest.raises(CadenceError) as error:
        rule(every)
    assert why in str(error.value)
    assert '"monthly on the last friday at 17:00"' in str(error.value)


def test_the_stored_rule_starts_at_the_first_occurrence_after_creation() -> None:
    stored = rule("every 2 weeks on friday at 16:00", "Europe/Madrid")
    assert stored.splitlines() == [
        "DTSTART:20261211T160000",
        "RRULE:FREQ=WEEKLY;INTERVAL=2;BYDAY=FR;BYHOUR=16;BYMINUTE=0;BYSECOND=0"]


def test_biweekly_keeps_its_parity_from_the_first_occurrence() -> None:
    stored = rule("every 2 weeks on friday at 16:00", "UTC")
    later = datetime(2027, 3, 1)
    fridays = [o.local.date() for o in next_occurrences(stored, "UTC", later, 4)]
    assert all((d - date(2026, 12, 11)).days % 14 == 0 for d in fridays)
    assert [(b - a).days for a, b in zip(fridays, fridays[1:], strict=False)] == [14, 14, 14]


def test_month_ends_and_last_fridays() -> None:
    last_day = rule("monthly on the last day at 18:00")
    assert [o.local.date() for o in next_occurrences(last_day, "UTC", datetime(2027, 1, 1), 3)] \
        == [date(2027, 1, 31), date(2027, 2, 28), date(2027, 3, 31)]
    leap = next_occurrences(last_day, "UTC", datetime(2028, 2, 1), 1)
    assert leap[0].local.date() == date(2028, 2, 29)
    fridays = rule("monthly on the last friday at 17:00")
    assert local_times(fridays, "UTC", 3) == [
        "Fri 2026-12-25 17:00", "Fri 2027-01-29 17:00", "Fri 2027-02-26 17:00"]


@pytest.mark.parametrize(("timezone", "before", "after"), [
    # Madrid: CET (+1) until the last Sunday of March 2027, then CEST (+2)
    ("Europe/Madrid", datetime(2027, 3, 22, 8), datetime(2027, 3, 29, 7)),
    # New York: EST (-5) until 14 March 2027, then EDT (-4)
    ("America/New_York", datetime(2027, 3, 8, 14), datetime(2027, 3, 15, 13)),
    # Mexico City: no daylight saving since 2022: -6 all year
    ("America/Mexico_City", datetime(2027, 3, 22, 15), datetime(2027, 3, 29, 15)),
])
def test_the_wall_time_stays_put_across_the_spring_change(
        timezone: str, before: datetime, after: datetime) -> None:
    stored = rule("weekly on monday at 09:00", timezone)
    around = occurrences_between(stored, timezone, before - timedelta(hours=1),
                                 after + timedelta(hours=1))
    assert [o.utc for o in around] == [before, after]
    assert {o.local.time().isoformat() for o in around} == {"09:00:00"}


def test_autumn_change_keeps_09_00_local() -> None:
    stored = rule("weekly on sunday at 09:00", "Europe/Madrid", datetime(2027, 10, 1))
    assert [o.utc for o in next_occurrences(stored, "Europe/Madrid", datetime(2027, 10, 20),
                                            2)] == [datetime(2027, 10, 24, 7),
                                                    datetime(2027, 10, 31, 8)]


def test_a_wall_time_skipped_by_dst_goes_out_once_an_hour_later() -> None:
    stored = rule("daily at 02:30", "Europe/Madrid", datetime(2027, 3, 20))
    around = occurrences_between(stored, "Europe/Madrid", datetime(2027, 3, 27),
                                 datetime(2027, 3, 29))
    # 27th 02:30 CET = 01:30 UTC; 28th 02:30 does not exist: 01:30 UTC (03:30 CEST)
    assert [o.utc for o in around] == [datetime(2027, 3, 27, 1, 30),
                                       datetime(2027, 3, 28, 1, 30)]


def test_hourly_over_the_spring_change_never_repeats_an_instant() -> None:
    stored = compile_rule(every=None, rrule_text="FREQ=HOURLY;BYMINUTE=30;BYSECOND=0",
                          timezone="Europe/Madrid", now=datetime(2027, 3, 27, 22))
    around = occurrences_between(stored, "Europe/Madrid", datetime(2027, 3, 27, 23),
                                 datetime(2027, 3, 28, 3))
    instants = [o.utc for o in around]
    assert instants == sorted(set(instants))
    assert min(b - a for a, b in zip(instants, instants[1:], strict=False)) >= timedelta(hours=1)


def test_weekly_windows_run_from_the_previous_build_day_to_the_day_before() -> None:
    stored = rule("weekly on monday at 09:00", "America/Costa_Rica")
    first = next_occurrences(stored, "America/Costa_Rica", NOW, 1)[0]
    period = period_of(stored, "America/Costa_Rica", first, timedelta(0))
    assert (period.window_from, period.window_to) == (date(2026, 11, 30), date(2026, 12, 6))
    assert period.build_at == datetime(2026, 12, 7, 15)
    ahead = period_of(stored, "America/Costa_Rica", first, timedelta(hours=24))
    assert (ahead.window_from, ahead.window_to) == (date(2026, 11, 29), date(2026, 12, 5))
    assert ahead.build_at == datetime(2026, 12, 6, 15)


def test_the_period_containing_a_date() -> None:
    stored = rule("weekly on monday at 09:00", "America/Costa_Rica")
    for day in (date(2026, 12, 7), date(2026, 12, 10), date(2026, 12, 13)):
        period = period_containing(stored, "America/Costa_Rica", day, timedelta(0))
        assert period.occurrence.local == datetime(2026, 12, 14, 9)
    first = period_containing(stored, "America/Costa_Rica", date(2026, 12, 1), timedelta(0))
    assert first.occurrence.local == datetime(2026, 12, 7, 9)
    with pytest.raises(CadenceError, match="no period of this series covers 2026-11-01"):
        period_containing(stored, "America/Costa_Rica", date(2026, 11, 1), timedelta(0))


def test_zones_are_checked_by_name() -> None:
    assert zone("America/Costa_Rica").key == "America/Costa_Rica"
    for bad in ("Mars/Base", "", "../etc/passwd", " UTC", "posix/Europe/Madrid", "right/UTC",
                "posixrules", "zone.tab"):
        with pytest.raises(CadenceError, match="give an IANA name such as America/Costa_Rica"):
            zone(bad)


@pytest.mark.parametrize(("text", "why"), [
    ("FREQ=MINUTELY", "no more often than hourly"),
    ("FREQ=HOURLY;BYMINUTE=0,30", "more often than hourly"),
    ("FREQ=DAILY;INTERVAL=0", "INTERVAL must be"),
    ("FREQ=DAILY;COUNT=0", "COUNT must be"),
    ("FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30", "no occurrence in the next two years"),
    ("FREQ=HOURLY;BYMONTH=2;BYMONTHDAY=30", "no occurrence in the next two years"),
    ("FREQ=MONTHLY;BYDAY=MO;BYSETPOS=7", "no occurrence in the next two years"),
    ("DTSTART:20200101T090000\nRRULE:FREQ=DAILY", "more than a year ago"),
    ("DTSTART;TZID=Europe/Madrid:20261207T090000\nRRULE:FREQ=DAILY", "takes no TZID"),
    ("FREQ=DAILY;UNTIL=20270101T000000Z", "drop the Z"),
    ("FREQ=DAILY\nRDATE:20270101", "not a DTSTART or RRULE line"),
    ("DTSTART:20261207T090000", "there is no RRULE"),
])
def test_rrules_that_would_run_away_or_mislead_are_refused(text: str, why: str) -> None:
    started = time.perf_counter()
    with pytest.raises(CadenceError, match=why):
        compile_rule(every=None, rrule_text=text, timezone="Europe/Madrid", now=NOW)
    assert time.perf_counter() - started < 2


def test_an_rrule_with_its_own_dtstart_keeps_it() -> None:
    stored = compile_rule(every=None, rrule_text="DTSTART:20261201T170000\\nRRULE:"
                          "FREQ=WEEKLY;INTERVAL=2;BYDAY=TU", timezone="UTC", now=NOW)
    assert stored.startswith("DTSTART:20261201T170000\n")
    assert local_times(stored, "UTC", 1) == ["Tue 2026-12-15 17:00"]


_WORDS = st.sampled_from([
    "daily", "weekly", "monthly", "every", "2", "0", "99999", "weeks", "days", "on", "the",
    "first", "last", "monday", "fri", ",", "and", "at", "09:00", "24:00", "1st", "31st",
    "day", "second", "FREQ=DAILY", "", "é", "\x00", "mondays"])


@pytest.mark.fuzz
@given(st.one_of(st.lists(_WORDS, max_size=9).map(" ".join), st.text(max_size=60)))
def test_anything_typed_as_every_is_a_rule_or_a_clear_error(text: str) -> None:
    try:
        stored = compile_rule(every=text, rrule_text=None, timezone="Europe/Madrid", now=NOW)
    except CadenceError as exc:
        assert "--every" in str(exc)
        return
    assert len(next_occurrences(stored, "Europe/Madrid", NOW, 2)) == 2


_PARTS = st.sampled_from([
    "FREQ=YEARLY", "FREQ=MONTHLY", "FREQ=WEEKLY", "FREQ=DAILY", "FREQ=HOURLY", "FREQ=SECONDLY",
    "INTERVAL=0", "INTERVAL=1", "INTERVAL=3", "INTERVAL=999999", "COUNT=1", "COUNT=5",
    "COUNT=-1", "BYSETPOS=1", "BYSETPOS=-1", "BYSETPOS=400", "BYDAY=MO", "BYDAY=5FR",
    "BYDAY=-1SU", "BYMONTHDAY=31", "BYMONTHDAY=30", "BYMONTHDAY=-1", "BYMONTH=2",
    "BYYEARDAY=366", "BYWEEKNO=53", "BYHOUR=9", "BYHOUR=1,2,3", "BYMINUTE=0",
    "BYMINUTE=0,1", "BYSECOND=0", "UNTIL=20270101", "UNTIL=19990101", "WKST=SU", "BYEASTER=0",
    "X=1", "FREQ", "BYDAY=XX"])


@pytest.mark.fuzz
@given(st.lists(_PARTS, min_size=1, max_size=6).map(";".join),
       st.sampled_from(["", "DTSTART:20261207T090000\n", "DTSTART:99991231T235959\n",
                        "DTSTART:20261301T000000\n", "RRULE:"]))
def test_anything_given_as_rrule_is_a_rule_or_a_clear_error_quickly(parts: str,
                                                                   head: str) -> None:
    text = head + ("RRULE:" if head.startswith("DTSTART") else "") + parts
    started = time.perf_counter()
    try:
        stored = compile_rule(every=None, rrule_text=text, timezone="America/New_York", now=NOW)
    except CadenceError as exc:
        assert "--rrule" in str(exc)
    else:
        found = next_occurrences(stored, "America/New_York", NOW, 3)
        assert found and found[0].utc - NOW <= timedelta(days=731)
        assert all(b.utc - a.utc >= timedelta(hours=1)
                   for a, b in zip(found, found[1:], strict=False))
    assert time.perf_counter() - started < 3


@given(st.sampled_from([
    "daily at 07:30", "weekly on monday at 09:00", "weekly on monday, thursday at 02:30",
    "every 2 weeks on friday at 16:00", "monthly on the last day at 23:30",
    "monthly on the first monday at 09:00", "monthly on the last friday at 17:00"]),
       st.sampled_from(["Europe/Madrid", "America/New_York", "America/Mexico_City",
                        "America/Costa_Rica"]),
       st.sampled_from([0, 24, 36]), st.integers(0, 800))
def test_the_periods_tile_the_calendar(every: str, timezone: str, ahead_hours: int,
                                       offset: int) -> None:
    stored = rule(every, timezone)
    ahead = timedelta(hours=ahead_hours)
    day = date(2026, 12, 20) + timedelta(days=offset)
    period = period_containing(stored, timezone, day, ahead)
    assert period.window_from <= day <= period.window_to
    assert period.build_at == period.occurrence.utc - ahead
    following = next_occurrences(stored, timezone,
                                 period.occurrence.utc + timedelta(seconds=1), 1)[0]
    after = period_of(stored, timezone, following, ahead)
    assert after.window_from == period.window_to + timedelta(days=1)


@pytest.mark.fuzz
@given(st.dates(max_value=date(2029, 1, 1)), st.sampled_from(["Asia/Tokyo",
                                                             "America/Costa_Rica"]),
       st.sampled_from([0, 24]))
def test_any_date_asked_for_is_a_period_or_a_clear_error(day: date, timezone: str,
                                                          ahead_hours: int) -> None:
    """`series build --for DATE`: any date from 0001-01-01 (series.build_series refuses
    dates more than two years ahead: the search for them is long)."""
    stored = rule("weekly on monday at 09:00", timezone)
    try:
        period = period_containing(stored, timezone, day, timedelta(hours=ahead_hours))
    except CadenceError as exc:
        assert str(exc).startswith(f"no period of this series covers {day.isoformat()}:")
    else:
        assert period.window_from <= day <= period.window_to


def test_the_first_and_last_days_of_the_calendar_are_no_period() -> None:
    stored = rule("weekly on monday at 09:00", "America/Costa_Rica")
    for day in (date(9999, 12, 31), date(1, 1, 1)):
        with pytest.raises(CadenceError, match=f"covers {day.isoformat()}: "):
            period_containing(stored, "America/Costa_Rica", day, timedelta(hours=24))
