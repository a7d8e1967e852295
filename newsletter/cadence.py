"""When a series comes out: its rule, its occurrences, build times and item windows.

Pure functions: every `now` is passed in (naive UTC), nothing reads the clock. A rule's
occurrences are SEND times in the series' wall clock: dateutil generates naive local
datetimes and each is placed in the zone with zoneinfo, so "09:00" stays 09:00 across
daylight-saving changes. A wall time the spring change skips (02:30 in Madrid on the last
Sunday of March) goes out one hour later on the clock (the same instant as 01:30 UTC); one
the autumn change repeats is the first of the two.

Stored rules are RFC 5545 text in local wall time::

    DTSTART:20261207T090000
    RRULE:FREQ=WEEKLY;BYDAY=MO;BYHOUR=9;BYMINUTE=0;BYSECOND=0
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dateutil.rrule import DAILY, HOURLY, MONTHLY, WEEKLY, YEARLY, rrule, rrulestr

from newsletter.errors import NewsletterError
from newsletter.zones import zone_named


class CadenceError(NewsletterError):
    """A rule, a zone or a date a series cannot use."""


EVERY_EXAMPLES = (
    '"daily at 07:30"',
    '"weekly on monday at 09:00"',
    '"weekly on monday, thursday at 09:00"',
    '"every 2 weeks on friday at 16:00"',
    '"monthly on the 1st at 09:00"',
    '"monthly on the first monday at 09:00"',
    '"monthly on the last friday at 17:00"',
)
HORIZON = timedelta(days=731)  # a rule must occur within two years of now
MAX_PAST_START = timedelta(days=366)  # an --rrule DTSTART at most this long ago
MIN_GAP = timedelta(hours=1)  # no more often than hourly
MAX_INTERVAL = 1000
MAX_RULE_TEXT = 1000
_SAMPLE = 60  # occurrences looked at for the hourly bound
ONE_DAY = timedelta(days=1)

_DAYS = {
    "monday": "MO", "tuesday": "TU", "wednesday": "WE", "thursday": "TH", "friday": "FR",
    "saturday": "SA", "sunday": "SU",
}
_ABBREVIATIONS = {name[:3]: code for name, code in _DAYS.items()}
_ORDINALS = {"first": 1, "second": 2, "third": 3, "fourth": 4, "last": -1,
             "second last": -2, "second-to-last": -2}
_TIME = re.compile(r"^(?P<h>[01]?\d|2[0-3]):(?P<m>[0-5]\d)$")
_EVERY = re.compile(
    r"^(?:(?P<daily>daily|every day)|(?P<weekly>weekly|every week)"
    r"|(?P<monthly>monthly|every month)"
    r"|every (?P<n>\d{1,4}) (?P<unit>day|week|month)s?)"
    r"(?: on (?P<on>.+?))? at (?P<time>\S+)$"
)
_MONTH_DAY = re.compile(r"^(?:the )?(?P<day>\d{1,2})(?:st|nd|rd|th)?(?: day)?$")
_NTH_WEEKDAY = re.compile(r"^(?:the )?(?P<nth>first|second last|second-to-last|second|third"
                          r"|fourth|last) (?P<day>[a-z]+)$")
_STAMP = re.compile(r"^\d{8}(T\d{6})?$")
_KNOWN_FREQ = {"YEARLY": YEARLY, "MONTHLY": MONTHLY, "WEEKLY": WEEKLY, "DAILY": DAILY,
               "HOURLY": HOURLY}


@dataclass(frozen=True)
class Occurrence:
    """One send time of a series: its wall time in the series' zone and the instant (UTC)."""

    local: datetime  # naive, the series' wall clock
    utc: datetime  # naive UTC


@dataclass(frozen=True)
class Period:
    """What one occurrence covers: items dated window_from..window_to (local dates), built
    at `build_at` (UTC), sent at `occurrence`."""

    occurrence: Occurrence
    build_at: datetime
    window_from: date
    window_to: date


def zone(name: str) -> ZoneInfo:
    """The time zone called `name` (exactly as tzdata spells it), or an error that names it
    and gives an example. Names zoneinfo would also read from the system's directory but
    that are no IANA zone ("posix/...", "right/...", "posixrules") are refused, as
    scheduling refuses them."""
    text = name.strip()
    try:
        if not text or text != name or zone_named(text) != text:
            raise ValueError(text)
        return ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise CadenceError(
            f"time zone {name[:80]!r} is not one this system knows: give an IANA name such "
            "as America/Costa_Rica or Europe/Madrid"
        ) from exc


# --- the --every grammar -------------------------------------------------------------

def _every_error(text: str, why: str) -> CadenceError:
    return CadenceError(
        f"--every {text[:100]!r}: {why}. Write it like one of: " + ", ".join(EVERY_EXAMPLES)
        + " (or give an RFC 5545 rule with --rrule)")


def rrule_from_every(text: str) -> str:
    """The RRULE (without DTSTART) for a cadence written in the small English grammar."""
    said = " ".join(text.lower().replace(" and ", ", ").split())
    match = _EVERY.match(said)
    if not match:
        raise _every_error(text, "not understood")
    time_match = _TIME.match(match["time"])
    if not time_match:
        raise _every_error(text, f"{match['time']!r} is not a time of day (HH:MM, 24-hour)")
    at = f"BYHOUR={int(time_match['h'])};BYMINUTE={int(time_match['m'])};BYSECOND=0"
    unit = ("day" if match["daily"] else "week" if match["weekly"]
            else "month" if match["monthly"] else str(match["unit"]))
    interval = int(match["n"]) if match["n"] else 1
    if not 1 <= interval <= MAX_INTERVAL:
        raise _every_error(text, f"the interval must be between 1 and {MAX_INTERVAL}")
    every = f";INTERVAL={interval}" if interval > 1 else ""
    on = match["on"]
    if unit == "day":
        if on:
            raise _every_error(text, "a daily rule has no 'on'")
        return f"FREQ=DAILY{every};{at}"
    if not on:
        raise _every_error(text, f"say which day of the {unit} ('on ...')")
    if unit == "week":
        days = [_weekday(text, part.strip()) for part in on.split(",") if part.strip()]
        if not days:
            raise _every_error(text, "name the days of the week")
        return f"FREQ=WEEKLY{every};BYDAY={','.join(dict.fromkeys(days))};{at}"
    return f"FREQ=MONTHLY{every};{_month_part(text, on)};{at}"


def _weekday(text: str, word: str) -> str:
    """MO for "monday", "mondays" or "mon"."""
    for candidate in (word, word[:-1] if word.endswith("s") else word):
        code = _DAYS.get(candidate) or _ABBREVIATIONS.get(candidate)
        if code:
            return code
    raise _every_error(text, f"{word[:20]!r} is not a day of the week")


def _month_part(text: str, on: str) -> str:
    if on in ("the last day", "last day"):
        return "BYMONTHDAY=-1"
    day = _MONTH_DAY.match(on)
    if day:
        number = int(day["day"])
        if not 1 <= number <= 31:
            raise _every_error(text, f"there is no day {number} in a month")
        if number > 28:
            raise _every_error(text, f"not every month has a day {number}: say "
                                     "'on the last day' or pick a day up to 28")
        return f"BYMONTHDAY={number}"
    nth = _NTH_WEEKDAY.match(on)
    if nth:
        return f"BYDAY={_ORDINALS[nth['nth']]}{_weekday(text, nth['day'])}"
    raise _every_error(text, f"{on!r} is not a day of the month ('the 1st', 'the first "
                             "monday', 'the last friday', 'the last day')")


# --- rules -----------------------------------------------------------------------------

def _rule_error(text: str, why: str) -> CadenceError:
    return CadenceError(
        f"--rrule {text[:120]!r}: {why}. Example: --rrule \"FREQ=WEEKLY;BYDAY=MO;BYHOUR=9;"
        "BYMINUTE=0\" (DTSTART, if given, in the series' wall time: "
        "\"DTSTART:20261207T090000\\nRRULE:...\")")


def _split_rule(text: str) -> tuple[str, datetime | None]:
    """(RRULE body, DTSTART or None) from "FREQ=..." or "DTSTART:...\\nRRULE:...";
    anything else (RDATE, EXRULE, TZID, a UTC 'Z') is refused."""
    if len(text) > MAX_RULE_TEXT:
        raise _rule_error(text, f"longer than {MAX_RULE_TEXT} characters")
    body: str | None = None
    start: datetime | None = None
    for raw in text.replace("\\n", "\n").splitlines():
        line = raw.strip().upper()
        if not line:
            continue
        name, sep, value = line.partition(":")
        upper = name.upper()
        if sep and upper == "DTSTART":
            if start is not None:
                raise _rule_error(text, "DTSTART is given twice")
            start = _stamp(text, value.strip())
        elif sep and upper == "RRULE" or not sep and upper.startswith("FREQ="):
            if body is not None:
                raise _rule_error(text, "give one RRULE")
            body = (value if sep else line).strip()
        elif upper.startswith("DTSTART;"):
            raise _rule_error(text, "DTSTART takes no TZID: it is in the series' zone "
                                    "(--timezone)")
        else:
            raise _rule_error(text, f"{line[:40]!r} is not a DTSTART or RRULE line")
    if not body:
        raise _rule_error(text, "there is no RRULE (it starts with FREQ=)")
    return body, start


def _stamp(text: str, value: str) -> datetime:
    if not _STAMP.match(value):
        raise _rule_error(text, f"DTSTART {value[:30]!r} is not YYYYMMDDTHHMMSS in local "
                                "wall time (no Z: the zone is --timezone)")
    try:
        return datetime.strptime(value, "%Y%m%dT%H%M%S" if "T" in value else "%Y%m%d")
    except ValueError as exc:
        raise _rule_error(text, f"DTSTART {value!r} is not a date") from exc


def _check_parts(text: str, body: str) -> None:
    """Refuse what makes dateutil loop or produce more than one send an hour."""
    parts: dict[str, str] = {}
    for part in body.split(";"):
        key, sep, value = part.partition("=")
        key = key.strip().upper()
        if not sep or not key or key in parts:
            raise _rule_error(text, f"{part[:40]!r} is not one NAME=VALUE part")
        parts[key] = value.strip()
    freq = parts.get("FREQ", "").upper()
    if freq not in _KNOWN_FREQ:
        raise _rule_error(text, f"FREQ={freq[:20]} is not one of "
                                f"{', '.join(_KNOWN_FREQ)} (no more often than hourly)")
    for key, low, high in (("INTERVAL", 1, MAX_INTERVAL), ("COUNT", 1, 100_000)):
        if key in parts:
            value = parts[key]
            if not value.isdigit() or not low <= int(value) <= high:
                raise _rule_error(text, f"{key} must be a whole number from {low} to {high}")
    for key in ("BYSECOND", "BYMINUTE"):
        if "," in parts.get(key, ""):
            raise _rule_error(text, f"{key} with several values sends more often than hourly")
    if "UNTIL" in parts and parts["UNTIL"].upper().endswith("Z"):
        raise _rule_error(text, "UNTIL is in the series' wall time: drop the Z")


def _build(text: str, body: str, start: datetime | None) -> rrule:
    """dateutil's rule for `body` from `start`; its complaints name what `text` said."""
    _check_parts(text, body)
    try:
        parsed = rrulestr(body, dtstart=start)
    except (ValueError, TypeError, OverflowError, IndexError, KeyError) as exc:
        raise _rule_error(text, str(exc)[:120] or type(exc).__name__) from exc
    if not isinstance(parsed, rrule):
        raise _rule_error(text, "give a single RRULE")
    return parsed


@lru_cache(maxsize=256)
def _parse(stored: str) -> rrule:
    body, start = _split_rule(stored)
    return _build(stored, body, start)


def _wall(local: datetime, tz: ZoneInfo) -> Occurrence:
    instant = local.replace(tzinfo=tz).astimezone(UTC).replace(tzinfo=None)
    return Occurrence(local, instant)


def to_local(instant: datetime, tz: ZoneInfo) -> datetime:
    """A naive UTC instant as naive wall time in `tz`."""
    return instant.replace(tzinfo=UTC).astimezone(tz).replace(tzinfo=None)


def _bounded_first(rule: rrule, after_local: datetime) -> datetime | None:
    """The first occurrence at or after `after_local` within HORIZON, without letting
    dateutil walk to the year 9999 over a rule that never matches: the same rule is asked
    400*k years later (the Gregorian calendar repeats every 400 years), where its search
    stops at 9999 after at most ~400 years of calendar."""
    shift = 400 * max(0, (9997 - after_local.year) // 400)
    start: datetime = rule._dtstart  # type: ignore[attr-defined]  # dateutil: private
    until: datetime | None = rule._until  # type: ignore[attr-defined]
    try:
        moved = rule.replace(
            dtstart=start.replace(year=start.year + shift),
            until=until.replace(year=until.year + shift)
            if until is not None and until.year + shift <= 9999 else None)
        found = moved.after(after_local.replace(year=after_local.year + shift), inc=True)
    except (ValueError, OverflowError):
        return None
    if found is None:
        return None
    found = found.replace(year=found.year - shift)
    return found if found - after_local <= HORIZON else None


def compile_rule(*, every: str | None, rrule_text: str | None, timezone: str,
                 now: datetime) -> str:
    """The stored rule for a new series: `every` (the small grammar) or `rrule_text` (RFC
    5545), DTSTART the first occurrence at or after `now` unless the rule gives one.
    Refused: no occurrence within two years, more often than hourly, a DTSTART more than a
    year ago."""
    tz = zone(timezone)
    if (every is None) == (rrule_text is None):
        raise CadenceError("give the cadence with --every or with --rrule (one of them)")
    body, start = (rrule_from_every(every), None) if every is not None else \
        _split_rule(str(rrule_text))
    text = every if every is not None else str(rrule_text)
    now_local = to_local(now, tz).replace(second=0, microsecond=0)
    if start is not None and start < now_local - MAX_PAST_START:
        raise _rule_error(text, "DTSTART is more than a year ago: give a recent one")
    if start is None:
        # the first matching time from now on, counting no interval: "every 2 weeks on
        # friday" made on a Sunday starts this Friday, and counts its fortnights from there
        pattern = ";".join(p for p in body.split(";") if not p.startswith("INTERVAL="))
        rule = _build(text, pattern, now_local)
    else:
        rule = _build(text, body, start)
    first = _bounded_first(rule, now_local)
    if first is None:
        raise _rule_error(text, "it has no occurrence in the next two years")
    stored = f"DTSTART:{(start or first):%Y%m%dT%H%M%S}\nRRULE:{body}"
    sample = list(_occurrences_from(stored, tz, now, _SAMPLE))
    for earlier, later in zip(sample, sample[1:], strict=False):
        if later.utc - earlier.utc < MIN_GAP:
            raise _rule_error(text, "it sends more often than once an hour "
                                    f"({earlier.local:%Y-%m-%d %H:%M} and "
                                    f"{later.local:%H:%M})")
    return stored


def describe(stored: str) -> str:
    """The rule as one line (for tables): "DTSTART:... RRULE:..."."""
    return " ".join(stored.split())


# --- occurrences and periods -----------------------------------------------------------

def _occurrences_from(stored: str, tz: ZoneInfo, since: datetime,
                      limit: int | None = None) -> Iterator[Occurrence]:
    """Occurrences with utc >= since (naive UTC), in order, equal instants once."""
    rule = _parse(stored)
    # three hours of slack: a wall time near a DST change may be an earlier instant
    search = to_local(since, tz) - timedelta(hours=3)
    last: datetime | None = None
    produced = 0
    for local in rule.xafter(search, inc=True):
        occurrence = _wall(local, tz)
        if occurrence.utc < since or (last is not None and occurrence.utc <= last):
            continue
        last = occurrence.utc
        yield occurrence
        produced += 1
        if limit is not None and produced >= limit:
            return


def next_occurrences(stored: str, timezone: str, since: datetime,
                     count: int) -> list[Occurrence]:
    """The first `count` occurrences at or after `since` (naive UTC)."""
    return list(_occurrences_from(stored, zone(timezone), since, count))


def occurrences_between(stored: str, timezone: str, start: datetime,
                        end: datetime) -> list[Occurrence]:
    """Occurrences with start <= utc <= end (naive UTC)."""
    found = []
    for occurrence in _occurrences_from(stored, zone(timezone), start):
        if occurrence.utc > end:
            break
        found.append(occurrence)
    return found


def _previous(stored: str, tz: ZoneInfo, occurrence: Occurrence) -> Occurrence | None:
    rule = _parse(stored)
    local = rule.before(occurrence.local)
    while local is not None:
        earlier = _wall(local, tz)
        if earlier.utc < occurrence.utc:
            return earlier
        local = rule.before(local)
    return None


def period_of(stored: str, timezone: str, occurrence: Occurrence,
              build_ahead: timedelta) -> Period:
    """The period ending at `occurrence`: built at o_k - build_ahead; items from the local
    date of the previous build time to the day before this one's. The first occurrence's
    previous build time is one gap (to the second occurrence) earlier."""
    tz = zone(timezone)
    build_at = occurrence.utc - build_ahead
    previous = _previous(stored, tz, occurrence)
    if previous is not None:
        previous_build = previous.utc - build_ahead
    else:
        following = next(_occurrences_from(stored, tz, occurrence.utc + timedelta(seconds=1),
                                           1), None)
        gap = following.utc - occurrence.utc if following else timedelta(days=7)
        previous_build = build_at - gap
    return Period(occurrence, build_at, to_local(previous_build, tz).date(),
                  to_local(build_at, tz).date() - ONE_DAY)


def period_containing(stored: str, timezone: str, day: date,
                      build_ahead: timedelta) -> Period:
    """The period whose item window contains `day` (a local date in the series' zone): the
    first one built on a later local date than `day`."""
    tz = zone(timezone)
    try:
        next_midnight = datetime.combine(day + ONE_DAY, datetime.min.time()).replace(
            tzinfo=tz)
        since = next_midnight.astimezone(UTC).replace(tzinfo=None) + build_ahead
        occurrence = next(_occurrences_from(stored, tz, since, 1), None)
        if occurrence is not None:
            period = period_of(stored, timezone, occurrence, build_ahead)
            if period.window_from <= day <= period.window_to:
                return period
    except (OverflowError, ValueError):  # the calendar's first or last days
        pass
    raise CadenceError(f"no period of this series covers {day.isoformat()}: its first "
                       "period starts later, or its rule ended before")
