"""The scheduler's round: fetch due feeds, build due series issues, start scheduled sends,
sweep. `newsletter scheduler` runs it every few seconds (in-process, or as the
`newsletter.round` Celery task with a broker).

Exactly once comes from the database, never from memory: a round runs only in the
process holding the `round` lease (worker/lease.py), and every object a round acts on
is claimed on its own as well (a feed, a period, an issue: scheduled -> sending, a
ledger row), so even two rounds at once cannot build or send anything twice. A process
that dies half-way leaves its lease to run out; the next round carries on.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from newsletter import zones
from newsletter.approval import sendable
from newsletter.feeds import FetchResult, fetch_due
from newsletter.models import Issue
from newsletter.schedules import unschedule_issue
from newsletter.series import PeriodResult, build_due
from newsletter.settings import Settings
from newsletter.words import plural
from worker import lease
from worker.control import sweep
from worker.delivery import SendError, plan_scheduled, start_issue
from worker.runtime import Runtime

log = logging.getLogger(__name__)

NOTE_LENGTH = 500  # Issue.status_note


class RoundInterrupted(BaseException):
    """The process was asked to stop: the round ends after the batch in hand (a
    BaseException, so the steps' isolation does not swallow it)."""


@dataclass(frozen=True)
class Started:
    slug: str
    planned: int
    batches: int
    status: str
    counts: dict[str, int]


@dataclass(frozen=True)
class NotSent:
    slug: str
    note: str  # why, and what to do: also the issue's status_note


@dataclass
class RoundReport:
    """What one round did. `ran` is False when another process held the lease."""

    at: datetime
    holder: str
    ran: bool = False
    held_by: str = ""
    feeds: list[FetchResult] = field(default_factory=list)
    periods: list[PeriodResult] = field(default_factory=list)
    started: list[Started] = field(default_factory=list)
    not_sent: list[NotSent] = field(default_factory=list)
    swept: dict[str, int] = field(default_factory=dict)  # batches handed back, per issue
    errors: dict[str, str] = field(default_factory=dict)  # step (or issue) -> what failed

    def lines(self) -> list[str]:
        """One line per thing done, for the log."""
        out = [_describe(r) for r in self.feeds]
        out += [_describe(r) for r in self.periods if r.status != "exists"]
        out += [f"started {s.slug}: {plural(s.planned, 'new delivery', 'new deliveries')} "
                f"planned, {plural(s.batches, 'batch', 'batches')} enqueued ({s.status})"
                for s in self.started]
        out += [f"skipped {n.slug}: {n.note}" for n in self.not_sent]
        out += [f"sweep: {n} batches of {slug} handed back to the workers"
                for slug, n in self.swept.items()]
        out += [f"{step} failed: {error}" for step, error in self.errors.items()]
        return out

    def as_dict(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat(), "holder": self.holder, "ran": self.ran,
            "held_by": self.held_by,
            "feeds": [_as_json(r) for r in self.feeds],
            "periods": [_as_json(r) for r in self.periods],
            "started": [dataclasses.asdict(s) for s in self.started],
            "not_sent": [dataclasses.asdict(n) for n in self.not_sent],
            "swept": self.swept, "errors": self.errors,
        }


def _describe(result: FetchResult | PeriodResult) -> str:
    """One log line for a feed fetched or a series period built, skipped or failed."""
    if isinstance(result, FetchResult):
        if result.status == "failed":
            again = (f" (tried again from {result.next_fetch_at:%Y-%m-%d %H:%M} UTC)"
                     if result.next_fetch_at else "")
            return f"feed {result.feed} failed: {result.error}{again}"
        if result.status == "not-modified":
            return f"feed {result.feed}: not modified"
        return f"feed {result.feed}: {result.new} new, {result.updated} updated items"
    when = f"{result.occurs_at:%Y-%m-%d %H:%M} UTC" if result.occurs_at else ""
    if result.status == "built":
        sent = (f"scheduled for {result.send_at:%Y-%m-%d %H:%M} UTC" if result.send_at
                else result.reason or "left a draft")
        return f"built {result.issue} No. {result.number} of series {result.series}: {sent}"
    if result.status == "skipped":
        return f"skipped series {result.series}, the period sent {when}: {result.reason}"
    if result.status == "exists":
        return f"series {result.series}: the period sent {when} was {result.reason}"
    return f"series {result.series} failed: {when} {result.reason}".replace("  ", " ")


def _as_json(result: FetchResult | PeriodResult) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, date | datetime) else v
            for k, v in dataclasses.asdict(result).items()}


def lease_duration(settings: Settings, interval: float | None = None) -> timedelta:
    """How long a round's lease lasts without renewal: a few intervals, at least 10 s, so a
    dead scheduler's turn passes to another soon, and a live one renews it in time."""
    return timedelta(seconds=max(10.0, 3 * (interval or settings.scheduler_seconds)))


@dataclass
class _Turn:
    """The round's hold on the lease; `now` moves on with the monotonic clock, so that
    renewals stay on the timeline of the `now` passed in."""

    runtime: Runtime
    holder: str
    now: datetime
    duration: timedelta
    should_stop: Callable[[], bool] | None = None
    started: float = field(default_factory=time.monotonic)

    def clock(self) -> datetime:
        return self.now + timedelta(seconds=time.monotonic() - self.started)

    def renew(self) -> bool:
        return lease.renew(self.runtime.sessions, lease.ROUND, self.holder, self.clock(),
                           self.duration)

    def keep_alive(self, _counts: dict[str, int] | None = None) -> None:
        """Called between batches of an in-process send: renew, and stop if asked."""
        if self.should_stop is not None and self.should_stop():
            raise RoundInterrupted
        if not self.renew():
            log.warning("the round lease ran out and another process took it; the claims "
                        "on each issue and delivery keep this round's work single")


Step = Callable[[_Turn, RoundReport], None]


def run_round(runtime: Runtime, now: datetime, *, holder: str | None = None,
              interval: float | None = None,
              should_stop: Callable[[], bool] | None = None) -> RoundReport:
    """One round at `now` (naive UTC): (a) fetch due feeds, (b) build due series periods,
    (c) start due scheduled issues, (d) the sweep. A failing step is reported in
    `errors` and the next steps still run. Skipped (ran=False) while another process
    holds the round lease."""
    holder = holder or lease.this_process()
    report = RoundReport(at=now, holder=holder)
    duration = lease_duration(runtime.settings, interval)
    if not lease.take(runtime.sessions, lease.ROUND, holder, now, duration):
        held = lease.current(runtime.sessions, lease.ROUND)
        report.held_by = held.holder if held else ""
        return report
    report.ran = True
    turn = _Turn(runtime, holder, now, duration, should_stop)
    steps: list[tuple[str, Step]] = [("feeds", fetch_feeds), ("series", build_series),
                                     ("start", start_due), ("sweep", sweep_step)]
    try:
        for name, step in steps:
            if not turn.renew():
                report.errors[name] = "the round lease was taken over; the rest of the " \
                                      "round is left to its holder"
                break
            try:
                step(turn, report)
            except Exception as exc:  # one failing step never stops the others
                log.exception("scheduler step %s failed", name)
                report.errors[name] = f"{type(exc).__name__}: {exc}"[:NOTE_LENGTH]
    finally:
        lease.release(runtime.sessions, lease.ROUND, holder, turn.clock())
        for line in report.lines():  # one line per thing done
            log.log(logging.WARNING if line.startswith("skipped") or " failed" in line
                    else logging.INFO, "%s", line)
    return report


def fetch_feeds(turn: _Turn, report: RoundReport) -> None:
    """(a) Fetch the feeds whose interval has passed (each claimed; one failing feed is a
    result, not an error)."""
    report.feeds = fetch_due(turn.runtime.sessions, turn.runtime.settings, turn.now)


def build_series(turn: _Turn, report: RoundReport) -> None:
    """(b) Build each series' due period once (and schedule its issue), or record it skipped."""
    runtime = turn.runtime
    report.periods = build_due(runtime.sessions, runtime.settings, turn.now)
    for result in report.periods:
        if result.status == "built" and result.issue and result.send_at:
            # planned now, as `issues schedule` and `series build` do: `issues deliveries`
            # shows each row's not_before while the issue waits (sending plans again)
            plan_scheduled(runtime.settings, runtime.sessions, result.issue)


def sweep_step(turn: _Turn, report: RoundReport) -> None:
    """(d) Due retries, expired leases, lost batches, local-time rows whose hour came."""
    report.swept = {slug: n for slug, n in sweep(turn.runtime).items() if n}


# ---- (c) starting scheduled issues ----------------------------------------------------

def due_issues(sessions: sessionmaker[Session], now: datetime) -> list[int]:
    """Scheduled issues whose time has come, oldest first."""
    with sessions() as session:
        return list(session.scalars(
            select(Issue.id).where(Issue.status == "scheduled", Issue.send_at <= now)
            .order_by(Issue.send_at, Issue.id)))


def back_to_draft(sessions: sessionmaker[Session], issue_id: int, note: str) -> bool:
    """Scheduled -> draft, if still scheduled (so only one process reports it): the
    schedule is cleared as `issues unschedule` does (rows planned for it and never tried
    go), and `note`, which names the schedule, says why and what to do."""
    with sessions() as session, session.begin():
        won = session.execute(
            update(Issue).where(Issue.id == issue_id, Issue.status == "scheduled")
            .values(status="draft")
            .returning(Issue.id)
        ).first() is not None
        if won:
            issue = session.get(Issue, issue_id, populate_existing=True)
            assert issue is not None  # the row we just updated
            unschedule_issue(session, issue)
            issue.status_note = note[:NOTE_LENGTH]
        return won


def when(issue: Issue) -> str:
    """The issue's schedule as a person gave it: local time and zone."""
    if issue.send_local_time and issue.send_on:
        return f"{issue.send_on.isoformat()} {issue.send_local_time} in each subscriber's zone"
    assert issue.send_at is not None
    zone = zones.zone_named(issue.schedule_timezone) or "UTC"
    return f"{zones.to_local(issue.send_at, zone):%Y-%m-%d %H:%M} {zone}"


def start_due(turn: _Turn, report: RoundReport) -> None:
    """(c) Start every scheduled issue that fell due, unless it is not approved or fell
    due longer ago than the catch-up limit: those go back to draft, with a note."""
    runtime = turn.runtime
    for issue_id in due_issues(runtime.sessions, turn.now):
        try:
            _start_one(turn, report, issue_id)
        except Exception as exc:  # one issue's trouble never holds up the others
            log.exception("could not start issue %s", issue_id)
            report.errors[f"start issue {issue_id}"] = f"{type(exc).__name__}: {exc}"


def _start_one(turn: _Turn, report: RoundReport, issue_id: int) -> None:
    runtime, now = turn.runtime, turn.now
    with runtime.sessions() as session:
        issue = session.get(Issue, issue_id)
        if issue is None or issue.status != "scheduled":
            return
        slug, due_at, schedule, why = issue.slug, issue.send_at, when(issue), sendable(issue)
    assert due_at is not None
    limit = runtime.settings.catch_up_hours
    note = ""
    if why is not None:
        note = (f"not sent: not approved by its time {schedule} ({why}); approve it, then "
                f"schedule it again or send it (`newsletter issues send {slug}`)")
    elif due_at < now - timedelta(hours=limit):
        note = (f"not sent: it fell due at {schedule} while no scheduler was running, more "
                f"than {limit:g} h ago (NEWSLETTER_CATCH_UP_HOURS); send it now with "
                f"`newsletter issues send {slug}`, or schedule it again")
    if not note:
        try:
            started = start_issue(runtime, issue_id, progress=turn.keep_alive)
        except SendError as exc:  # nobody in its audience, say
            note = f"not sent: {exc}"
        else:
            if started is not None:
                report.started.append(Started(started.slug, started.planned, started.batches,
                                              started.status, started.counts))
            return
    if back_to_draft(runtime.sessions, issue_id, note):
        report.not_sent.append(NotSent(slug, note))
