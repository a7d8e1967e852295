"""Series: a newsletter that builds its own issue for every period of its calendar.

The rule and its periods are pure (`newsletter.cadence`); this module is the database
side. A period is built at most once: its `series_periods` row (unique per series and
occurrence) and its issue are written in one transaction, which starts by locking the
series row, so two builders (two schedulers, or a scheduler and a person) never make two
issues. Every `now` is naive UTC, passed in.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from newsletter.approval import submit
from newsletter.cadence import (
    HORIZON,
    Occurrence,
    Period,
    compile_rule,
    next_occurrences,
    occurrences_between,
    period_containing,
    period_of,
    to_local,
    zone,
)
from newsletter.errors import NewsletterError
from newsletter.issues import MAX_TITLE, clean_intro, create_issue, edition_named
from newsletter.models import Feed, Issue, IssueItem, Item, Series, SeriesPeriod
from newsletter.render import FOCUS_POLICIES
from newsletter.schedules import schedule_issue
from newsletter.settings import Settings
from newsletter.words import plural
from newsletter.zones import zone_named
from subscribers.lists import get_list
from subscribers.segments import get_segment
from subscribers.validate import InvalidValue, clean_header_text

log = logging.getLogger(__name__)

# 48 + len("-YYYY-MM-DD-HHMM") = 64, the longest issue slug (newsletter.issues.SLUG)
SLUG = re.compile(r"^[a-z0-9][a-z0-9._-]{0,47}$")
APPROVALS = ("none", "required")
WINDOWS = ("period", "since-last")
REVIEW_AHEAD = timedelta(hours=24)  # default build-ahead with approval or local time
MAX_BUILD_AHEAD_HOURS = 24 * 31
NUMBER_ROOM = 20  # characters a title keeps free for " No. 12345"
SHOWN_OCCURRENCES = 5


class SeriesError(NewsletterError):
    """A series cannot be created, changed or built as asked."""


class SeriesNotFound(SeriesError):
    def __init__(self, slug: str) -> None:
        super().__init__(f"no series called {slug!r}: `newsletter series list` shows the "
                         "series there are")


@dataclass(frozen=True)
class SeriesSpec:
    """What `series create` asks for; `every` xor `rrule`."""

    slug: str
    timezone: str
    every: str | None = None
    rrule: str | None = None
    lists: Sequence[str] = ()
    segments: Sequence[str] = ()
    feeds: Sequence[str] = ()
    focus: str = "first"
    titles: Mapping[str, str] = field(default_factory=dict)  # "": every language
    intros: Mapping[str, str] = field(default_factory=dict)
    approval: str = "none"
    min_items: int = 1
    window: str = "period"
    local_time: bool = False
    build_ahead_hours: float | None = None  # None: 0, or 24 with approval required


@dataclass(frozen=True)
class PeriodResult:
    """What became of one period: built (its issue), skipped (why), exists (built before,
    by this or another builder), failed (why; tried again on the next round)."""

    series: str
    occurs_at: datetime | None  # the send time, UTC (None: the series failed as a whole)
    status: str
    issue: str | None = None
    number: int | None = None
    reason: str = ""
    window_from: date | None = None
    window_to: date | None = None
    send_at: datetime | None = None  # when the issue was scheduled (None: left a draft)


# --- creating and changing --------------------------------------------------------------

def create_series(session: Session, spec: SeriesSpec, *, languages: Sequence[str],
                  now: datetime) -> Series:
    """A new active series; its first period is the first occurrence at or after `now`."""
    if not SLUG.match(spec.slug):
        raise SeriesError(f"{spec.slug[:80]!r} is not a usable series name: use up to 48 "
                          "lower-case letters, digits, '-', '_' or '.', starting with a letter "
                          "or digit (e.g. semanal)")
    _check_settings(spec.focus, spec.approval, spec.window, spec.min_items)
    ahead = spec.build_ahead_hours
    if ahead is None:
        # time to approve; and a local-time send starts when the first zone reaches the
        # hour, up to a day before the series' own zone does
        ahead = (REVIEW_AHEAD.total_seconds() / 3600
                 if spec.approval == "required" or spec.local_time else 0)
    _check_ahead(ahead)
    # as tzdata spells it ("america/costa_rica" -> "America/Costa_Rica"), as scheduling
    # reads it: an unknown name is refused by compile_rule
    timezone = zone_named(spec.timezone) or spec.timezone
    rule = compile_rule(every=spec.every, rrule_text=spec.rrule, timezone=timezone, now=now)
    if session.scalar(select(Series.id).where(Series.slug == spec.slug)) is not None:
        raise SeriesError(f"a series called {spec.slug!r} exists already: pick another name "
                          f"or `newsletter series delete {spec.slug}`")
    _check_targets(session, spec.lists, spec.segments)
    _feed_ids(session, spec.feeds)
    series = Series(
        slug=spec.slug, rule=rule, every=spec.every, timezone=timezone,
        lists=list(dict.fromkeys(spec.lists)), segments=list(dict.fromkeys(spec.segments)),
        feeds=list(dict.fromkeys(spec.feeds)), focus=spec.focus,
        titles=_clean_titles(spec.titles, languages),
        intros=_clean_intros(spec.intros, languages), approval=spec.approval,
        min_items=spec.min_items, window=spec.window, local_time=spec.local_time,
        build_ahead_minutes=round(ahead * 60), status="active", created_at=now)
    session.add(series)
    try:
        session.flush()
    except IntegrityError as exc:  # created by someone else since the check above
        raise SeriesError(f"a series called {spec.slug!r} was just created by someone else: "
                          "pick another name, or look at it with `newsletter series show "
                          f"{spec.slug}`") from exc
    return series


def _check_settings(focus: str, approval: str, window: str, min_items: int) -> None:
    if focus not in FOCUS_POLICIES:
        raise SeriesError(f"country focus {focus!r}: use one of {', '.join(FOCUS_POLICIES)}")
    if approval not in APPROVALS:
        raise SeriesError(f"approval {approval!r}: use one of {', '.join(APPROVALS)}")
    if window not in WINDOWS:
        raise SeriesError(f"window {window!r}: use one of {', '.join(WINDOWS)}")
    if not 1 <= min_items <= 1000:
        raise SeriesError(f"--min-items {min_items}: give a number from 1 to 1000 (an "
                          "issue is never empty)")


def _check_ahead(hours: float) -> None:
    if not 0 <= hours <= MAX_BUILD_AHEAD_HOURS:
        raise SeriesError(f"--build-ahead {hours:g}: give hours from 0 to "
                          f"{MAX_BUILD_AHEAD_HOURS}")


def _check_targets(session: Session, lists: Sequence[str], segments: Sequence[str]) -> None:
    try:
        for name in lists:
            get_list(session, name)
        for name in segments:
            get_segment(session, name)
    except NewsletterError as exc:
        raise SeriesError(str(exc)) from exc


def _clean_titles(titles: Mapping[str, str], languages: Sequence[str]) -> dict[str, str]:
    cleaned = {}
    for language, text in titles.items():
        key = edition_named(language, languages, "title") if language else ""
        try:
            value = clean_header_text(text, f"title ({key or 'every language'})",
                                      MAX_TITLE - NUMBER_ROOM)
        except InvalidValue as exc:
            raise SeriesError(f"the series {exc}") from exc
        if not value:
            continue
        if len(issue_titles({key: value}, 99999, date(2026, 12, 31), "")[key]) > MAX_TITLE:
            raise SeriesError(f"the series title ({key or 'every language'}) would be longer "
                              f"than {MAX_TITLE} characters with its number and date filled in")
        cleaned[key] = value
    return cleaned


def _clean_intros(intros: Mapping[str, str], languages: Sequence[str]) -> dict[str, str]:
    cleaned = {}
    for language, text in intros.items():
        key = edition_named(language, languages, "intro") if language else ""
        try:
            value = clean_intro(text, key)
        except InvalidValue as exc:
            raise SeriesError(f"the series {exc}") from exc
        if value:
            cleaned[key] = value
    return cleaned


def _feed_ids(session: Session, names: Sequence[str]) -> list[int]:
    """The ids of the named feeds; a name with no feed is an error that says so."""
    rows = session.execute(select(Feed.name, Feed.id).where(Feed.name.in_(names))).all()
    found = {name: feed_id for name, feed_id in rows}
    for name in names:
        if name not in found:
            raise SeriesError(f"no feed called {name!r}: `newsletter feeds list` shows the "
                              "feeds there are")
    return [found[name] for name in names]


@dataclass(frozen=True)
class SeriesChanges:
    """What `series edit` changes: what `series create` takes, each optional (None: as
    it is). Titles and intros are per language ("": every language); an empty text
    removes that language's own. `every` and `rrule` replace the schedule (one of them);
    `timezone` alone keeps the rule, on the new zone's wall clock."""

    every: str | None = None
    rrule: str | None = None
    timezone: str | None = None
    lists: Sequence[str] | None = None
    segments: Sequence[str] | None = None
    feeds: Sequence[str] | None = None
    focus: str | None = None
    titles: Mapping[str, str] | None = None
    intros: Mapping[str, str] | None = None
    approval: str | None = None
    min_items: int | None = None
    window: str | None = None
    local_time: bool | None = None
    build_ahead_hours: float | None = None


@dataclass
class SeriesEdit:
    """What `edit_series` did: for the person who asked, and for `--json`."""

    slug: str
    changes: list[str] = field(default_factory=list)
    schedule_changed: bool = False
    next_send: Occurrence | None = None  # the first send of the schedule as it is now
    build_ahead_minutes: int = 0
    timezone: str = ""
    kept: list[str] = field(default_factory=list)  # issues built already, still scheduled

    @property
    def changed(self) -> bool:
        return bool(self.changes)

    def next_line(self) -> str:
        """What happens to the next send, in one sentence."""
        if self.next_send is None:
            return "no send to come"
        built = self.next_send.utc - timedelta(minutes=self.build_ahead_minutes)
        return (f"next send {self.next_send.local:%Y-%m-%d %H:%M} {self.timezone} "
                f"({self.next_send.utc:%Y-%m-%d %H:%M} UTC), built {built:%Y-%m-%d %H:%M} "
                "UTC")

    def lines(self) -> list[str]:
        if not self.changes:
            return [f"series {self.slug}: nothing changed"]
        out = [f"series {self.slug}: {change}" for change in self.changes]
        out.append(f"  {self.next_line()}" + (
            " (the new schedule starts after the periods already built or skipped: none "
            "is built again)" if self.schedule_changed else ""))
        if self.kept:
            out.append(f"  issues built already keep their send time and settings: "
                       f"{', '.join(self.kept)} (`newsletter issues edit` or `issues "
                       "unschedule` change them)")
        return out

    def as_dict(self) -> dict[str, object]:
        return {"series": self.slug, "changed": self.changed, "changes": list(self.changes),
                "schedule_changed": self.schedule_changed,
                "next_local": self.next_send.local if self.next_send else None,
                "next_utc": self.next_send.utc if self.next_send else None,
                "kept_scheduled": list(self.kept)}


def edit_series(session: Session, slug: str, changes: SeriesChanges, *,
                languages: Sequence[str], now: datetime) -> SeriesEdit:
    """Change a series, checked as `create_series` checks; everything is checked before
    anything changes. Only issues built from now on follow the change: those built
    already keep their send time and settings.

    A new schedule (rule or time zone) starts after the later of `now` and the last
    period recorded (built or skipped), so no period is built twice and none comes twice:
    `schedule_from` keeps that moment for the builders, and the first window of the new
    schedule starts after the last built one's."""
    # the builders' lock (`_run_period`): a period being built finishes first
    session.execute(update(Series).where(Series.slug == slug).values(status=Series.status))
    series = get_series(session, slug)
    session.refresh(series)
    done: list[str] = []

    def note(label: str, old: object, new: object) -> None:
        if old != new:
            done.append(f"{label} changed: {_shown(old)} -> {_shown(new)}")

    focus = series.focus if changes.focus is None else changes.focus
    approval = series.approval if changes.approval is None else changes.approval
    window = series.window if changes.window is None else changes.window
    min_items = series.min_items if changes.min_items is None else changes.min_items
    _check_settings(focus, approval, window, min_items)
    ahead = series.build_ahead_minutes
    if changes.build_ahead_hours is not None:
        _check_ahead(changes.build_ahead_hours)
        ahead = round(changes.build_ahead_hours * 60)
    lists = series.lists if changes.lists is None else list(dict.fromkeys(changes.lists))
    segments = series.segments if changes.segments is None else \
        list(dict.fromkeys(changes.segments))
    _check_targets(session, lists if changes.lists is not None else (),
                   segments if changes.segments is not None else ())
    feeds = series.feeds if changes.feeds is None else list(dict.fromkeys(changes.feeds))
    if changes.feeds is not None:
        _feed_ids(session, feeds)
    titles = _merged(series.titles, changes.titles, languages, "title", _clean_titles)
    intros = _merged(series.intros, changes.intros, languages, "intro", _clean_intros)
    local_time = series.local_time if changes.local_time is None else changes.local_time
    rule, every, timezone, start = _new_schedule(session, series, changes, ahead, now)

    note("schedule", series.every or series.rule, every or rule)
    note("time zone", series.timezone, timezone)
    note("lists", series.lists, lists)
    note("segments", series.segments, segments)
    note("feeds", series.feeds, feeds)
    note("country focus", series.focus, focus)
    note("titles", series.titles, titles)
    note("introductions", series.intros, intros)
    note("approval", series.approval, approval)
    note("fewest items", series.min_items, min_items)
    note("window", series.window, window)
    note("local time", series.local_time, local_time)
    note("build-ahead hours", f"{series.build_ahead_minutes / 60:g}", f"{ahead / 60:g}")
    edit = SeriesEdit(series.slug, done, schedule_changed=start is not None)
    if done:
        if start is not None:
            series.rule, series.every, series.timezone = rule, every, timezone
            series.schedule_from = start
        series.lists, series.segments, series.feeds = lists, segments, feeds
        series.focus, series.titles, series.intros = focus, titles, intros
        series.approval, series.min_items, series.window = approval, min_items, window
        series.local_time, series.build_ahead_minutes = local_time, ahead
        session.flush()
    following = upcoming(series, now, 1)
    edit.next_send = following[0] if following else None
    edit.build_ahead_minutes, edit.timezone = series.build_ahead_minutes, series.timezone
    edit.kept = scheduled_issues(session, series)
    return edit


def _shown(value: object) -> str:
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or "(none)"
    if isinstance(value, dict):
        return "; ".join(f"{k or '*'}: {v}" for k, v in sorted(value.items())) or "(none)"
    text = " ".join(str(value).split())
    return text if len(text) <= 120 else text[:117] + "..."


def _merged(current: Mapping[str, str], given: Mapping[str, str] | None,
            languages: Sequence[str], what: str,
            clean: Callable[[Mapping[str, str], Sequence[str]], dict[str, str]],
            ) -> dict[str, str]:
    """The titles (or intros) after a change: the languages given replace theirs, an
    empty text removes it; the others stay."""
    merged = dict(current or {})
    if given is None:
        return merged
    kept = clean({k: v for k, v in given.items() if v.strip()}, languages)
    for language, text in given.items():
        if not text.strip():
            merged.pop(edition_named(language, languages, what) if language else "", None)
    merged.update(kept)
    return merged


def _new_schedule(session: Session, series: Series, changes: SeriesChanges, ahead: int,
                  now: datetime) -> tuple[str, str | None, str, datetime | None]:
    """(rule, every, timezone, the new schedule's start, or None when it did not change).

    The start is the latest of: now, the last period recorded, and the first send whose
    window (from the day after the last built window to the day before its build day)
    holds at least a day: a weekly Monday issue sent this morning, moved to Mondays at
    11:00, next goes out next Monday, not at 11:00 today with nothing in it."""
    if changes.every is not None and changes.rrule is not None:
        raise SeriesError("give the cadence with --every or with --rrule (one of them)")
    timezone = series.timezone if changes.timezone is None else \
        (zone_named(changes.timezone) or changes.timezone)
    every, rrule_text = changes.every, changes.rrule
    if every is None and rrule_text is None:
        if timezone == series.timezone:
            return series.rule, series.every, series.timezone, None
        every = series.every
        if every is None:  # the stored rule, without its start: it starts again below
            rrule_text = "\n".join(line for line in series.rule.splitlines()
                                   if not line.upper().startswith("DTSTART"))
    elif timezone == series.timezone and (
            (every is not None and every == series.every)
            or (rrule_text is not None and series.every is None
                and rrule_text.split() == series.rule.replace("\\n", "\n").split())
            or (rrule_text is not None and series.every is None
                and rule_body(rrule_text) == rule_body(series.rule)
                and "DTSTART" not in rrule_text.upper())):
        return series.rule, series.every, series.timezone, None
    latest = session.scalar(select(func.max(SeriesPeriod.occurs_at))
                            .where(SeriesPeriod.series_id == series.id))
    start = max(now, latest or now, series.schedule_from or now)
    last_to = session.scalar(
        select(SeriesPeriod.window_to).where(SeriesPeriod.series_id == series.id,
                                             SeriesPeriod.status == "built")
        .order_by(SeriesPeriod.occurs_at.desc()).limit(1))
    if last_to is not None:
        tz = zone(timezone)  # an unknown zone is refused here, as by compile_rule
        first_build = datetime.combine(last_to + timedelta(days=2), time.min, tzinfo=tz)
        start = max(start, first_build.astimezone(UTC).replace(tzinfo=None)
                    + timedelta(minutes=ahead) - timedelta(seconds=1))
    rule = compile_rule(every=every, rrule_text=rrule_text, timezone=timezone, now=start)
    return rule, every, timezone, start


def rule_body(text: str) -> str:
    """The rule without its start ("FREQ=WEEKLY;BYDAY=MO;..."): what to edit, since a
    new schedule starts afresh (an unchanged body changes nothing)."""
    lines = [line.strip().upper() for line in text.replace("\\n", "\n").splitlines()]
    return ";".join(line.removeprefix("RRULE:") for line in lines
                    if line and not line.startswith("DTSTART"))


def _after_schedule_start(series: Series, moment: datetime) -> datetime:
    """`moment`, or just after the current schedule's start when that is later."""
    if series.schedule_from is None:
        return moment
    return max(moment, series.schedule_from + timedelta(seconds=1))


def get_series(session: Session, slug: str) -> Series:
    found = session.scalar(select(Series).where(Series.slug == slug))
    if found is None:
        raise SeriesNotFound(slug)
    return found


def list_series(session: Session) -> list[Series]:
    return list(session.scalars(select(Series).order_by(Series.slug)))


def periods_of(session: Session, series: Series) -> list[tuple[SeriesPeriod, str | None]]:
    """Every recorded period, newest first, with its issue's slug (None: skipped, or the
    issue was deleted)."""
    rows = session.execute(
        select(SeriesPeriod, Issue.slug).outerjoin(Issue, Issue.id == SeriesPeriod.issue_id)
        .where(SeriesPeriod.series_id == series.id).order_by(SeriesPeriod.occurs_at.desc()))
    return [(period, slug) for period, slug in rows.all()]


def scheduled_issues(session: Session, series: Series) -> list[str]:
    return list(session.scalars(
        select(Issue.slug).where(Issue.series_id == series.id, Issue.status == "scheduled")
        .order_by(Issue.send_at)))


def pause_series(session: Session, slug: str) -> Series:
    """Stop building: a paused series' periods pass without an issue. Issues already built
    stay scheduled."""
    series = get_series(session, slug)
    if series.status == "paused":
        raise SeriesError(f"series {slug!r} is already paused")
    series.status = "paused"
    return series


def resume_series(session: Session, slug: str, *, now: datetime) -> list[SeriesPeriod]:
    """Build again from the next period on. Periods that went by while the series was
    paused are recorded as skipped ("paused"), not built late."""
    series = get_series(session, slug)
    if series.status != "paused":
        raise SeriesError(f"series {slug!r} is not paused")
    series.status = "active"
    ahead = timedelta(minutes=series.build_ahead_minutes)
    start = _after_schedule_start(series, max(series.created_at, session.scalar(
        select(func.max(SeriesPeriod.occurs_at)).where(SeriesPeriod.series_id == series.id))
        or series.created_at))
    have = _recorded(session, series, start)
    skipped = []
    for occurrence in occurrences_between(series.rule, series.timezone, start, now):
        if occurrence.utc in have:
            continue
        period = period_of(series.rule, series.timezone, occurrence, ahead)
        row = _period_row(series, period, "skipped", "the series was paused when it fell due")
        session.add(row)
        skipped.append(row)
    session.flush()
    return skipped


def delete_series(session: Session, slug: str, *, force: bool = False) -> list[str]:
    """Delete a series and its period records; its issues stay (no longer in a series).
    Refused while some of them are scheduled, unless `force`. Returns those scheduled."""
    series = get_series(session, slug)
    waiting = scheduled_issues(session, series)
    if waiting and not force:
        raise SeriesError(
            f"series {slug!r} has scheduled issues ({', '.join(waiting[:5])}): unschedule them "
            "(`newsletter issues unschedule SLUG`) or delete with --yes (they stay scheduled)")
    session.delete(series)
    session.flush()
    return waiting


# --- what a series looks like -----------------------------------------------------------

def upcoming(series: Series, now: datetime, count: int = SHOWN_OCCURRENCES) -> list[Occurrence]:
    """The next `count` occurrences after `now` (and after the schedule's start)."""
    return next_occurrences(series.rule, series.timezone,
                            _after_schedule_start(series, now), count)


def issue_titles(series_titles: Mapping[str, str], number: int, day: date,
                 default: str) -> dict[str, str]:
    """Each language's title of issue No. `number` (dated `day`): "{number}" and "{date}"
    filled in, or " No. N" appended; "" (every language) falls back to `default`."""
    def fill(text: str) -> str:
        if "{number}" in text or "{date}" in text:
            return text.replace("{number}", str(number)).replace("{date}", day.isoformat())
        return f"{text} No. {number}"

    titles = {language: fill(text) for language, text in series_titles.items() if text}
    titles.setdefault("", fill(default))
    return titles


# --- building ---------------------------------------------------------------------------

def build_series(sessions: sessionmaker[Session], settings: Settings, slug: str, *,
                 day: date | None = None, now: datetime) -> PeriodResult:
    """Build, now, the issue of the period whose window contains `day` (default: the
    period of the next send, which with a build-ahead is not the period holding today),
    even if its build time has not come. Built already: says which issue; skipped
    before: tries again (items may have arrived)."""
    with sessions() as session:
        series = get_series(session, slug)
        if series.status != "active":
            raise SeriesError(f"series {slug!r} is paused: `newsletter series resume {slug}` "
                              "first")
        today = to_local(now, zone(series.timezone)).date()
        when = day or today
        if when > today + HORIZON:
            # the search for a period that far walks the rule from its start: seconds,
            # or minutes for an hourly rule
            raise SeriesError(f"--for {when.isoformat()} is more than two years ahead: give "
                              "a date of a period to come soon (or a past one)")
        ahead = timedelta(minutes=series.build_ahead_minutes)
        upcoming_send = upcoming(series, now, 1)
        if day is None and upcoming_send:
            period = period_of(series.rule, series.timezone, upcoming_send[0], ahead)
        else:
            period = period_containing(series.rule, series.timezone, when, ahead)
        if series.schedule_from is not None \
                and period.occurrence.utc <= series.schedule_from:
            raise SeriesError(
                f"the period of {when.isoformat()} sends at {_utc(period.occurrence.utc)}, "
                "before the series' schedule changed: the periods of the old schedule are "
                f"as they were (`newsletter series show {slug}`)")
        series_id = series.id
    return _run_period(sessions, settings, series_id, slug, period, now, manual=True)


def build_due(sessions: sessionmaker[Session], settings: Settings,
              now: datetime) -> list[PeriodResult]:
    """Build every period of every active series whose build time has come and that has
    no record yet; record as skipped those whose send time is older than
    NEWSLETTER_CATCH_UP_HOURS (missed while no scheduler ran). One transaction per
    period; a failing series is reported and never stops the others."""
    with sessions() as session:
        active = list(session.execute(
            select(Series.id, Series.slug).where(Series.status == "active")
            .order_by(Series.id)).all())
    results: list[PeriodResult] = []
    for series_id, slug in active:
        try:
            results += _build_due_series(sessions, settings, series_id, slug, now)
        except NewsletterError as exc:
            results.append(PeriodResult(slug, None, "failed", reason=str(exc)))
        except Exception as exc:  # one series' surprise never stops the others
            log.exception("series %s: building due periods failed", slug)
            results.append(PeriodResult(slug, None, "failed",
                                        reason=f"{type(exc).__name__}: {exc}"[:500]))
    return results


def _build_due_series(sessions: sessionmaker[Session], settings: Settings, series_id: int,
                      slug: str, now: datetime) -> list[PeriodResult]:
    catch_up = timedelta(hours=settings.catch_up_hours)
    with sessions() as session:
        series = session.get(Series, series_id)
        if series is None or series.status != "active":
            return []
        ahead = timedelta(minutes=series.build_ahead_minutes)
        latest = session.scalar(select(func.max(SeriesPeriod.occurs_at))
                                .where(SeriesPeriod.series_id == series_id))
        # look back to the latest record, or a day past the catch-up limit: enough to see
        # a period that failed until it fell out of catch-up, without rereading all history
        horizon = now - catch_up - ahead - timedelta(days=1)
        start = _after_schedule_start(
            series, max(series.created_at, min(latest or series.created_at, horizon)))
        have = _recorded(session, series, start)
        due = [o for o in occurrences_between(series.rule, series.timezone, start, now + ahead)
               if o.utc not in have]
        rule, timezone = series.rule, series.timezone
    results = []
    for occurrence in due:
        period = period_of(rule, timezone, occurrence, ahead)
        missed = None
        if occurrence.utc < now - catch_up:
            missed = (f"missed: no scheduler ran between {_utc(period.build_at)} and "
                      f"{_utc(now)}; older than NEWSLETTER_CATCH_UP_HOURS="
                      f"{settings.catch_up_hours:g}")
        results.append(_run_period(sessions, settings, series_id, slug, period, now,
                                   manual=False, missed=missed))
    return results


def _utc(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M} UTC"


def _recorded(session: Session, series: Series, since: datetime) -> set[datetime]:
    return set(session.scalars(select(SeriesPeriod.occurs_at).where(
        SeriesPeriod.series_id == series.id, SeriesPeriod.occurs_at >= since)))


def _run_period(sessions: sessionmaker[Session], settings: Settings, series_id: int,
                slug: str, period: Period, now: datetime, *, manual: bool,
                missed: str | None = None) -> PeriodResult:
    """One period in one transaction, which first locks the series row: its record and
    its issue are written together or not at all."""
    occurs_at = period.occurrence.utc
    try:
        with sessions() as session, session.begin():
            # a write first: on PostgreSQL a row lock; on SQLite the database's write lock
            locked = session.execute(update(Series).where(Series.id == series_id)
                                     .values(status=Series.status))
            series = session.get(Series, series_id)
            if not getattr(locked, "rowcount", 1) or series is None:
                return PeriodResult(slug, occurs_at, "failed",
                                    reason="the series was deleted")
            if series.status != "active":  # paused since this round (or person) read it
                return PeriodResult(slug, occurs_at, "skipped",
                                    reason="the series was paused meanwhile: nothing built "
                                           "or recorded",
                                    window_from=period.window_from,
                                    window_to=period.window_to)
            row = session.scalar(select(SeriesPeriod).where(
                SeriesPeriod.series_id == series_id, SeriesPeriod.occurs_at == occurs_at))
            if row is not None and (row.status == "built" or not manual):
                return _existing(session, slug, row)
            if missed is not None:
                row = _period_row(series, period, "skipped", missed)
                session.add(row)
                session.flush()
                return PeriodResult(slug, occurs_at, "skipped", reason=missed,
                                    window_from=row.window_from, window_to=row.window_to)
            return _build(session, settings, series, period, row, now, manual=manual)
    except IntegrityError:  # a concurrent builder recorded it first
        with sessions() as session:
            row = session.scalar(select(SeriesPeriod).where(
                SeriesPeriod.series_id == series_id, SeriesPeriod.occurs_at == occurs_at))
            if row is not None:
                return _existing(session, slug, row)
        return PeriodResult(slug, occurs_at, "failed",
                            reason="another change to the database came first (an issue "
                                   "of the same name?): it is tried again on the next round",
                            window_from=period.window_from, window_to=period.window_to)
    except NewsletterError as exc:
        return PeriodResult(slug, occurs_at, "failed", reason=str(exc)[:500],
                            window_from=period.window_from, window_to=period.window_to)


def _existing(session: Session, slug: str, row: SeriesPeriod) -> PeriodResult:
    issue = session.scalar(select(Issue.slug).where(Issue.id == row.issue_id)) \
        if row.issue_id else None
    if row.status == "built":
        reason = f"built already as issue {issue}" if issue else "built already (its issue " \
            "was deleted since)"
    else:
        reason = f"skipped already: {row.reason}"
    return PeriodResult(slug, row.occurs_at, "exists", issue, row.number, reason,
                        row.window_from, row.window_to)


def _period_row(series: Series, period: Period, status: str, reason: str) -> SeriesPeriod:
    return SeriesPeriod(series_id=series.id, occurs_at=period.occurrence.utc,
                        window_from=period.window_from, window_to=period.window_to,
                        status=status, reason=reason[:500])


def _window(session: Session, series: Series, period: Period) -> tuple[date, date]:
    """The period's own window, or, for since-last, from the day after the last built
    period's window, or the first recorded period's start (so the items of skipped periods
    roll forward). Never from before the day after the last built period's window (after a
    schedule change, the new rule's first period would reach into it)."""
    last_to = session.scalar(
        select(SeriesPeriod.window_to).where(
            SeriesPeriod.series_id == series.id, SeriesPeriod.status == "built",
            SeriesPeriod.occurs_at < period.occurrence.utc)
        .order_by(SeriesPeriod.occurs_at.desc()).limit(1))
    if series.window != "since-last":
        # after a schedule change the new rule's first period may reach back into the
        # last built one's window: its items are in that issue already
        if last_to is not None and last_to >= period.window_from:
            return last_to + timedelta(days=1), period.window_to
        return period.window_from, period.window_to
    if last_to is not None:
        return last_to + timedelta(days=1), period.window_to
    first_from = session.scalar(
        select(SeriesPeriod.window_from).where(SeriesPeriod.series_id == series.id)
        .order_by(SeriesPeriod.occurs_at).limit(1))
    return min(first_from or period.window_from, period.window_from), period.window_to


def _count_items(session: Session, start: date, end: date, feed_ids: list[int] | None) -> int:
    if end < start:
        return 0
    query = select(func.count(Item.id)).where(Item.published >= start, Item.published <= end)
    if feed_ids is not None:
        query = query.where(Item.feed_id.in_(feed_ids))
    return session.scalar(query) or 0


def _build(session: Session, settings: Settings, series: Series, period: Period,
           row: SeriesPeriod | None, now: datetime, *, manual: bool) -> PeriodResult:
    occurrence = period.occurrence
    start, end = _window(session, series, period)
    feed_ids = _feed_ids(session, series.feeds) if series.feeds else None
    count = _count_items(session, start, end, feed_ids)
    if count < series.min_items:
        source = f" from {', '.join(series.feeds)}" if series.feeds else ""
        reason = (f"{plural(count, 'item')}{source} between {start} and {end}, fewer than "
                  f"the series' minimum of {series.min_items}")
        if manual and now < period.build_at and row is None:
            # built early by hand: nothing is recorded, so the build time tries again
            return PeriodResult(series.slug, occurrence.utc, "skipped",
                                reason=f"{reason} (not recorded: its build time, "
                                       f"{_utc(period.build_at)}, tries again)",
                                window_from=start, window_to=end)
        row = row or _period_row(series, period, "skipped", "")
        row.window_from, row.window_to, row.reason = start, end, reason
        session.add(row)
        session.flush()
        return PeriodResult(series.slug, occurrence.utc, "skipped", reason=reason,
                            window_from=start, window_to=end)
    if row is None:
        row = _period_row(series, period, "built", "")
        session.add(row)
    row.window_from, row.window_to = start, end
    number = 1 + (session.scalar(select(func.max(SeriesPeriod.number))
                                 .where(SeriesPeriod.series_id == series.id)) or 0)
    titles = issue_titles(series.titles, number, occurrence.local.date(),
                          settings.sender_name[:MAX_TITLE - NUMBER_ROOM].strip())
    issue = create_issue(
        session, _issue_slug(session, series.slug, occurrence), start, end, titles.pop(""),
        titles=titles, intros=series.intros, languages=settings.languages,
        lists=series.lists, segments=series.segments, focus=series.focus)
    if feed_ids is not None:
        kept = [e.item for e in issue.entries if e.item.feed_id in feed_ids]
        issue.entries = [IssueItem(item=item, position=n) for n, item in enumerate(kept)]
    issue.series_id, issue.number, issue.approval = series.id, number, series.approval
    if series.approval == "required":
        # built by the calendar, so it goes straight to review: anyone may approve it
        submit(session, issue, f"series {series.slug}", "built by the calendar", now=now)
    row.status, row.reason, row.number = "built", "", number
    session.flush()
    row.issue_id = issue.id
    send_at = None
    if occurrence.utc > now or not manual:
        # the runner builds at the build time, so with no build-ahead the send time is
        # now or (catching up, within NEWSLETTER_CATCH_UP_HOURS) a little earlier: due at
        # once, and the send side's own catch-up limit applies to it. By hand, the send
        # time is ahead, but a local-time send may start earlier: a zone whose hour has
        # passed gets it at once, the others at their hour
        if series.local_time:
            schedule_issue(session, issue, local_time=occurrence.local.time(),
                           on=occurrence.local.date(), timezone=series.timezone, now=now,
                           past_ok=True)
        else:
            schedule_issue(session, issue, at=occurrence.utc, timezone=series.timezone,
                           now=now, past_ok=not manual)
        send_at = issue.send_at
    else:
        row.reason = (f"built after its send time ({_utc(occurrence.utc)}): left a draft; "
                      f"send it with `newsletter issues send {issue.slug}`")
    session.flush()
    return PeriodResult(series.slug, occurrence.utc, "built", issue.slug, number, row.reason,
                        start, end, send_at)


def _issue_slug(session: Session, series_slug: str, occurrence: Occurrence) -> str:
    """`semanal-2026-12-07`; with the time too when that day has another issue already."""
    slug = f"{series_slug}-{occurrence.local:%Y-%m-%d}"
    if session.scalar(select(Issue.id).where(Issue.slug == slug)) is None:
        return slug
    return f"{slug}-{occurrence.local:%H%M}"
