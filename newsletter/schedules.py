"""When an issue goes out: at one instant, or at a local time in each subscriber's zone.

Scheduling sets the issue's `send_at` (UTC, the moment sending starts) and status
"scheduled"; `newsletter scheduler` starts it then (worker/scheduler.py). A local-time
send starts when the first zone of its audience reaches the local time; each delivery
row carries its own `not_before` (`LocalTimes`, used by worker/ledger.plan), so the
others are released as their hour comes. Pure functions take `now`; nothing here reads
the clock.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, cast

from sqlalchemy import ColumnElement, delete, func, select, update
from sqlalchemy.orm import Session

from newsletter import zones
from newsletter.approval import sendable
from newsletter.errors import N_, NewsletterError, Term
from newsletter.issues import audience_of
from newsletter.models import Delivery, Issue
from subscribers.models import Subscriber


class ScheduleError(NewsletterError):
    """An issue cannot be scheduled (or unscheduled) as asked."""


SCHEDULABLE = ("draft", "scheduled")
HORIZON = timedelta(days=3660)  # about ten years: further is a typing mistake


def timezone_attribute() -> ColumnElement[Any]:
    """The subscriber's `timezone` attribute as text (NULL without one), on every database."""
    return cast(ColumnElement[Any], Subscriber.attributes[zones.ATTRIBUTE].as_string())


# --- reading what a person typed --------------------------------------------------------

def parse_zone(text: str, option: str = "--timezone") -> str:
    """An IANA zone name as tzdata spells it, or an error saying what to write."""
    zone = zones.zone_named(text)
    if zone is None:
        shown = text if len(text) <= 80 else text[:77] + "..."
        raise ScheduleError.translatable(
            N_("%(option)s %(zone)r is not a time zone: use an IANA name such as "
               "America/Costa_Rica, Europe/Madrid or UTC"), option=option, zone=shown)
    return zone


def parse_wall_time(text: str) -> time:
    """"09:00" or "9:00" (24-hour clock, minutes required)."""
    hours, sep, minutes = text.strip().partition(":")
    if (sep and hours.isascii() and minutes.isascii() and hours.isdigit()
            and minutes.isdigit() and len(hours) <= 2 and len(minutes) == 2
            and int(hours) < 24 and int(minutes) < 60):
        return time(int(hours), int(minutes))
    raise ScheduleError.translatable(
        N_("%(text)r is not a time: use HH:MM on a 24-hour clock, e.g. 09:00"), text=text[:40],
        hint=" (--local-time)")


def parse_day(text: str) -> date:
    """A date as YYYY-MM-DD."""
    try:
        if len(text.strip()) == 10 and text.isascii():
            return date.fromisoformat(text.strip())
    except ValueError:
        pass
    raise ScheduleError.translatable(
        N_("%(text)r is not a date: use YYYY-MM-DD, e.g. 2026-12-07"), text=text[:40],
        hint=" (--on)")


def parse_instant(text: str, zone: str) -> datetime:
    """"2026-12-07 09:00" as a wall time in `zone` (or with its own offset, e.g.
    "2026-12-07T09:00+01:00"), returned as naive UTC."""
    value = text.strip()
    try:
        if not value.isascii() or len(value) < 16 or len(value) > 32:
            raise ValueError(value)
        parsed = datetime.fromisoformat(value)
        if parsed.tzinfo is not None:
            return parsed.astimezone(UTC).replace(tzinfo=None)
        return zones.to_utc(parsed.date(), parsed.time(), zone)
    except (ValueError, OverflowError):
        raise ScheduleError.translatable(
            N_("%(text)r is not a date and time: use \"YYYY-MM-DD HH:MM\", e.g. "
               "\"2026-12-07 09:00\""), text=text[:40], hint=" (--at)") from None


# --- the zones of an audience -----------------------------------------------------------

@dataclass(frozen=True)
class LocalTimes:
    """A local-time send: `wall` on `on` in each subscriber's zone, `fallback` for those
    with neither a valid `timezone` attribute nor a country. worker/ledger.plan turns it
    into one not_before per subscriber."""

    on: date
    wall: time
    fallback: str

    def for_zone(self, zone: str) -> datetime:
        return zones.to_utc(self.on, self.wall, zone)

    def for_attribute(self, value: object) -> datetime | None:
        """The instant for a subscriber whose attribute is `value` (None: not a zone)."""
        zone = zones.zone_named(value)
        return self.for_zone(zone) if zone else None

    def for_country(self, country: str | None) -> datetime:
        return self.for_zone(zones.country_zone(country) or self.fallback)

    def for_subscriber(self, attribute: object, country: str | None) -> datetime:
        return self.for_zone(zones.resolve(attribute, country, self.fallback).zone)


@dataclass(frozen=True)
class ZoneTime:
    """One zone of an audience: how many subscribers, and when 'the local time' is there."""

    zone: str
    subscribers: int
    local: datetime  # the wall time there (naive)
    utc: datetime  # naive UTC
    via: tuple[str, ...]  # how its subscribers got it: attribute, country, fallback


@dataclass(frozen=True)
class CountryChoice:
    """A country with several zones whose subscribers (without a `timezone` attribute)
    get the one chosen zone."""

    country: str
    zone: str
    zones: int  # how many the country has
    subscribers: int

    def __str__(self) -> str:
        who = ("its subscriber without a timezone attribute gets" if self.subscribers == 1
               else f"its {self.subscribers} subscribers without a timezone attribute get")
        return (f"{self.country} has {self.zones} time zones: {who} {self.zone}; to send "
                "at someone's own hour elsewhere, set their `timezone` attribute (e.g. a "
                "timezone column in `newsletter subscribers import`)")


@dataclass
class Schedule:
    """What scheduling decided: when sending starts, and in which zones at what time."""

    slug: str
    send_at: datetime  # naive UTC
    timezone: str  # the fallback zone (a local-time send) or the zone the time was given in
    local_time: time | None = None
    on: date | None = None
    zones: list[ZoneTime] = field(default_factory=list)
    choices: list[CountryChoice] = field(default_factory=list)
    waiting_for: str | None = None  # why it would not go out now (approval)

    def lines(self) -> list[str]:
        """The report a person reads after scheduling."""
        if self.local_time is None:
            local = zones.to_local(self.send_at, self.timezone)
            utc = "" if self.timezone == "UTC" else f" ({self.send_at:%Y-%m-%d %H:%M} UTC)"
            out = [f"issue {self.slug} scheduled for {local:%Y-%m-%d %H:%M} {self.timezone}"
                   f"{utc}"]
        else:
            out = [f"issue {self.slug} scheduled for {self.local_time:%H:%M} on {self.on} in "
                   f"each subscriber's time zone; sending starts "
                   f"{self.send_at:%Y-%m-%d %H:%M} UTC"]
            for z in self.zones:
                out.append(f"  {z.zone}: {z.subscribers} subscriber"
                           f"{'s' if z.subscribers != 1 else ''} at {z.local:%Y-%m-%d %H:%M}"
                           f" local = {z.utc:%Y-%m-%d %H:%M} UTC ({', '.join(z.via)})")
            out += [f"  {choice}" for choice in self.choices]
        if self.waiting_for:
            out.append(f"  not approved yet: it {self.waiting_for}; unless approved by then it "
                       "does not go out")
        return out

    def as_dict(self) -> dict[str, Any]:
        return {
            "issue": self.slug,
            "send_at": iso_utc(self.send_at),
            "timezone": self.timezone,
            "local_time": f"{self.local_time:%H:%M}" if self.local_time else None,
            "on": self.on.isoformat() if self.on else None,
            "zones": [{"zone": z.zone, "subscribers": z.subscribers,
                       "local": z.local.isoformat(timespec="minutes"),
                       "utc": iso_utc(z.utc), "via": list(z.via)} for z in self.zones],
            "several_zone_countries": [
                {"country": c.country, "zone": c.zone, "zones": c.zones,
                 "subscribers": c.subscribers} for c in self.choices],
            "waiting_for": self.waiting_for,
        }


def iso_utc(value: datetime | None) -> str | None:
    """Naive UTC as ISO 8601 with its offset: "2026-12-07T15:00:00+00:00"."""
    return None if value is None else value.isoformat(timespec="seconds") + "+00:00"


def audience_pairs(session: Session, issue: Issue) -> list[tuple[object, str | None, int]]:
    """(timezone attribute, country, subscribers) for the issue's audience."""
    attribute = timezone_attribute()
    rows = session.execute(
        select(attribute, Subscriber.country, func.count())
        .where(audience_of(session, issue))
        .group_by(attribute, Subscriber.country))
    return [(attr, country, int(n)) for attr, country, n in rows]


def zone_times(pairs: list[tuple[object, str | None, int]],
               times: LocalTimes) -> tuple[list[ZoneTime], list[CountryChoice]]:
    """The zones an audience falls into (the fallback always among them: a subscriber
    who joins without a zone gets it), and the several-zone countries' choices."""
    counts: Counter[str] = Counter()
    via: defaultdict[str, set[str]] = defaultdict(set)
    chosen: Counter[tuple[str, str]] = Counter()
    for attribute, country, n in pairs:
        found = zones.resolve(attribute, country, times.fallback)
        counts[found.zone] += n
        via[found.zone].add(found.via)
        code = (country or "").upper()
        if found.via == "country" and len(zones.zones_of_country(code)) > 1:
            chosen[(code, found.zone)] += n
    counts[times.fallback] += 0
    via[times.fallback].add("fallback")
    found_zones = [
        ZoneTime(zone, counts[zone], zones.to_local(times.for_zone(zone), zone),
                 times.for_zone(zone), tuple(sorted(via[zone])))
        for zone in counts
    ]
    found_zones.sort(key=lambda z: (z.utc, z.zone))
    choices = [CountryChoice(code, zone, len(zones.zones_of_country(code)), n)
               for (code, zone), n in sorted(chosen.items())]
    return found_zones, choices


# --- scheduling -------------------------------------------------------------------------

def schedule_issue(
    session: Session,
    issue: Issue,
    *,
    at: datetime | None = None,
    local_time: time | None = None,
    on: date | None = None,
    timezone: str,
    now: datetime,
    past_ok: bool = False,
) -> Schedule:
    """Schedule `issue`: at `at` (naive UTC), or at `local_time` on `on` in each
    subscriber's own zone (`timezone` for those without one). `now` is naive UTC.

    A time already past is refused unless `past_ok` (the scheduler catching up on a
    period that fell due). Rows planned for an earlier schedule that were never tried are
    dropped: the next plan gives everyone the new time."""
    if issue.status not in SCHEDULABLE:
        raise ScheduleError.translatable(
            N_("issue %(slug)r is %(status)s: only a draft (or a scheduled issue) can be "
               "scheduled"), slug=issue.slug, status=Term(issue.status))
    if (at is None) == (local_time is None):
        raise ScheduleError("give a time to send at (--at), or a local time and a date "
                            "(--local-time and --on), not both")
    if local_time is not None and on is None:
        raise ScheduleError("--local-time needs --on: the date, e.g. --on 2026-12-07")
    zone = parse_zone(timezone)
    for day in (at.date() if at else None, on):
        if day is not None and not now.date() - HORIZON <= day <= now.date() + HORIZON:
            raise ScheduleError.translatable(
                N_("%(day)s is more than ten years away: check the date"), day=day)
    result = _zones_for(session, issue, at, local_time, on, zone)
    if at is not None:
        issue.send_local_time, issue.send_on = None, None
    else:
        issue.send_local_time, issue.send_on = f"{local_time:%H:%M}", on
    if result.send_at < now and not past_ok:
        first = result.zones[0] if result.zones else None
        hint = f" (`newsletter issues send {issue.slug}`)"
        utc = f"{result.send_at:%Y-%m-%d %H:%M}"
        if first is None:
            raise ScheduleError.translatable(
                N_("%(utc)s UTC is in the past: choose a later time, or send it now"),
                utc=utc, hint=hint)
        raise ScheduleError.translatable(
            N_("%(local)s in %(zone)s = %(utc)s UTC is in the past: choose a later time, or "
               "send it now"), local=f"{first.local:%Y-%m-%d %H:%M}", zone=first.zone,
            utc=utc, hint=hint)
    hold_issue(session, issue)
    forget_unattempted(session, issue)
    issue.send_at, issue.schedule_timezone = result.send_at, zone
    issue.status, issue.status_note = "scheduled", ""
    result.waiting_for = sendable(issue)
    session.flush()
    return result


def _zones_for(session: Session, issue: Issue, at: datetime | None, local_time: time | None,
               on: date | None, zone: str) -> Schedule:
    """When sending starts and the audience's zones, for a time or a local time and day."""
    if at is not None:
        result = Schedule(issue.slug, at, zone)
        everyone = sum(n for _attr, _country, n in audience_pairs(session, issue))
        result.zones = [ZoneTime(zone, everyone, zones.to_local(at, zone), at, ("given",))]
        return result
    assert local_time is not None and on is not None
    found, choices = zone_times(audience_pairs(session, issue), LocalTimes(on, local_time, zone))
    return Schedule(issue.slug, found[0].utc, zone, local_time, on, found, choices)


def current_schedule(session: Session, issue: Issue) -> Schedule | None:
    """The schedule of a scheduled issue as `schedule_issue` reported it (its zones for
    today's audience), or None when it is not scheduled."""
    if issue.status != "scheduled" or issue.send_at is None:
        return None
    zone = issue.schedule_timezone or "UTC"
    if issue.send_local_time and issue.send_on:
        result = _zones_for(session, issue, None, parse_wall_time(issue.send_local_time),
                            issue.send_on, zone)
    else:
        result = _zones_for(session, issue, issue.send_at, None, None, zone)
    result.waiting_for = sendable(issue)
    return result


def hold_issue(session: Session, issue: Issue,
               error: type[NewsletterError] = ScheduleError) -> None:
    """Lock the issue's row while it is still a draft or scheduled (the first write of a
    change to it: a schedule here, an edit in issue_edits): a send the scheduler started
    since the issue was read (scheduled -> sending, worker/delivery.start_issue) is never
    changed under it, turned back into a draft or a new schedule, nor its planned rows
    dropped; a start that comes later waits for this change. Raises `error` otherwise."""
    held = session.execute(
        update(Issue).where(Issue.id == issue.id, Issue.status.in_(SCHEDULABLE))
        .values(status=Issue.status).returning(Issue.id)
        .execution_options(synchronize_session=False)
    ).first()
    if held is None:
        now_is = session.scalar(select(Issue.status).where(Issue.id == issue.id))
        raise error.translatable(
            N_("issue %(slug)r changed meanwhile: it is %(status)s now (the scheduler started "
               "sending it, or someone else changed it)"), slug=issue.slug,
            status=Term(now_is or "deleted"),
            hint=f"; `newsletter issues status {issue.slug}` shows where it is")


def forget_unattempted(session: Session, issue: Issue) -> int:
    """Remove the issue's planned rows that were never tried (a schedule changed or
    dropped before sending started); returns how many."""
    result = session.execute(
        delete(Delivery).where(Delivery.issue_id == issue.id, Delivery.status == "queued",
                               Delivery.attempts == 0)
        .returning(Delivery.id))
    return len(result.all())


def unschedule_issue(session: Session, issue: Issue) -> int:
    """Back to draft: the schedule is cleared, rows planned for it and never tried are
    removed. Returns how many rows were removed."""
    if issue.status not in SCHEDULABLE:
        raise ScheduleError.translatable(
            N_("issue %(slug)r is %(status)s: only a scheduled issue can be unscheduled"),
            slug=issue.slug, status=Term(issue.status),
            hint=" (`newsletter issues pause` stops a send)")
    hold_issue(session, issue)
    removed = forget_unattempted(session, issue)
    issue.status, issue.status_note = "draft", ""
    issue.send_at = issue.send_local_time = issue.send_on = issue.schedule_timezone = None
    session.flush()
    return removed


def send_times(issue: Issue) -> datetime | LocalTimes | None:
    """Each delivery's not_before for worker/ledger.plan: one instant, a local time per
    subscriber's zone, or None (an unscheduled send: at once)."""
    if issue.send_local_time and issue.send_on:
        return LocalTimes(issue.send_on, parse_wall_time(issue.send_local_time),
                          issue.schedule_timezone or "UTC")
    return issue.send_at


def describe(issue: Issue) -> dict[str, Any] | None:
    """The issue's schedule in UTC and local time, for `issues show` (None: none)."""
    if issue.send_at is None:
        return None
    zone = issue.schedule_timezone or "UTC"
    return {
        "send_at": iso_utc(issue.send_at),
        "timezone": zone,
        "local": zones.to_local(issue.send_at, zone).isoformat(timespec="minutes"),
        "local_time": issue.send_local_time,
        "on": issue.send_on.isoformat() if issue.send_on else None,
    }
