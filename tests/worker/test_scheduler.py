"""The scheduler's round with a clock passed in (and time-machine for the ledger's own
clock), on SQLite and PostgreSQL: what starts, what is held back and why, the lease."""

from __future__ import annotations

import functools
import json
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from email import message_from_bytes, policy
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest
import time_machine
from click.testing import CliRunner
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from newsletter.approval import approve
from newsletter.cli import cli
from newsletter.feeds import add_feed
from newsletter.models import Delivery, Issue
from newsletter.schedules import schedule_issue
from newsletter.series import SeriesSpec, create_series
from newsletter.settings import Settings
from subscribers.models import Subscriber
from subscribers.people import NewSubscriber, add
from tests.conftest import FIXTURES
from tests.worker.conftest import runtime_with
from worker import lease
from worker.delivery import plan_issue, start_issue
from worker.runtime import Runtime, configure
from worker.scheduler import RoundReport, run_round
from worker.transports import MemoryTransport

NOW = datetime(2026, 12, 7, 15, 0)  # 09:00 in Costa Rica (UTC-6)
HOUR = timedelta(hours=1)
EVERYONE = 5  # tests/worker/conftest.py PEOPLE


def schedule(sessions: sessionmaker[Session], settings: Settings, slug: str, at: datetime, *,
             timezone: str = "America/Costa_Rica", approval: str = "none",
             review: str = "") -> int:
    """As `issues schedule` does: the schedule, and the deliveries planned at once."""
    with sessions() as session, session.begin():
        issue = session.scalars(select(Issue).where(Issue.slug == slug)).one()
        issue.approval, issue.review = approval, review
        schedule_issue(session, issue, at=at, timezone=timezone, now=at, past_ok=True)
        assert plan_issue(settings, session, issue) == EVERYONE
        return issue.id


def issue_state(sessions: sessionmaker[Session], slug: str) -> tuple[str, str]:
    with sessions() as session:
        issue = session.scalars(select(Issue).where(Issue.slug == slug)).one()
        return issue.status, issue.status_note


def unscheduled(sessions: sessionmaker[Session], slug: str) -> bool:
    """The schedule was cleared (the note keeps it) and no planned row is left."""
    with sessions() as session:
        issue = session.scalars(select(Issue).where(Issue.slug == slug)).one()
        rows = session.scalar(select(func.count()).where(Delivery.issue_id == issue.id))
        return issue.send_at is None and issue.schedule_timezone is None and rows == 0


def delivered(memory: MemoryTransport) -> list[str]:
    return sorted(e.recipient for e in memory.sent)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The feed is served on 127.0.0.1: NEWSLETTER_FEED_ALLOW_PRIVATE lets it be fetched."""
    return settings.model_copy(update={"feed_allow_private": True})


@pytest.fixture
def runtime(settings: Settings, sessions: sessionmaker[Session],
            memory: MemoryTransport) -> Iterator[Runtime]:
    rt = runtime_with(settings, sessions, memory)
    configure(rt)  # the in-process batches (no broker) use it
    yield rt
    configure(None)


def at(now: datetime) -> time_machine.travel:
    """The wall clock (the ledger's own utcnow) at `now`, standing still."""
    return time_machine.travel(now, tick=False)


def test_a_due_issue_starts_once_and_goes_to_everyone(
    runtime: Runtime, sessions: sessionmaker[Session], issue_slug: str,
    memory: MemoryTransport,
) -> None:
    schedule(sessions, runtime.settings, issue_slug, NOW + HOUR)
    with at(NOW):
        early = run_round(runtime, NOW, holder="a")
    assert early.ran and not early.started and not memory.sent
    with sessions() as session, session.begin():  # joins after the schedule was planned
        add(session, NewSubscriber("zoe@example.org", country="CR", language="es"),
            default_language="es")

    with at(NOW + HOUR):
        report = run_round(runtime, NOW + HOUR, holder="a")
    assert [(s.slug, s.planned, s.status) for s in report.started] == [(issue_slug, 1, "sent")]
    assert report.lines() == [f"started {issue_slug}: 1 new delivery planned, 1 batch "
                              "enqueued (sent)"]
    assert len(delivered(memory)) == len(set(delivered(memory))) == EVERYONE + 1
    assert "zoe@example.org" in delivered(memory)
    assert issue_state(sessions, issue_slug)[0] == "sent"

    with at(NOW + 2 * HOUR):
        again = run_round(runtime, NOW + 2 * HOUR, holder="b")
    assert again.ran and not again.started and not again.errors
    assert len(memory.sent) == EVERYONE + 1


def test_not_approved_by_its_time_goes_back_to_draft_with_a_note(
    runtime: Runtime, sessions: sessionmaker[Session], issue_slug: str,
    memory: MemoryTransport,
) -> None:
    schedule(sessions, runtime.settings, issue_slug, NOW, approval="required", review="in_review")
    with at(NOW):
        report = run_round(runtime, NOW, holder="a")
    status, note = issue_state(sessions, issue_slug)
    assert status == "draft" and not memory.sent and unscheduled(sessions, issue_slug)
    assert note.startswith("not sent: not approved by its time 2026-12-07 09:00 "
                           "America/Costa_Rica (")
    assert "review" in note and "; approve it, then schedule it again or send it" in note
    assert f"newsletter issues send {issue_slug}" in note
    assert [(n.slug, n.note) for n in report.not_sent] == [(issue_slug, note)]
    assert report.lines() == [f"skipped {issue_slug}: {note}"]
    with at(NOW + HOUR):  # reported once, not at every round
        assert not run_round(runtime, NOW + HOUR, holder="a").not_sent


def test_an_approved_issue_goes_out(
    runtime: Runtime, sessions: sessionmaker[Session], issue_slug: str,
    memory: MemoryTransport,
) -> None:
    schedule(sessions, runtime.settings, issue_slug, NOW, approval="required", review="approved")
    with at(NOW):
        report = run_round(runtime, NOW, holder="a")
    assert [s.slug for s in report.started] == [issue_slug]
    assert len(memory.sent) == EVERYONE


@pytest.mark.parametrize(("late", "goes_out"), [(timedelta(hours=23), True),
                                               (timedelta(hours=25), False)])
def test_catch_up_within_the_limit_and_beyond(
    runtime: Runtime, sessions: sessionmaker[Session], issue_slug: str,
    memory: MemoryTransport, late: timedelta, goes_out: bool,
) -> None:
    assert runtime.settings.catch_up_hours == 24
    schedule(sessions, runtime.settings, issue_slug, NOW - late)
    with at(NOW):
        report = run_round(runtime, NOW, holder="a")
    status, note = issue_state(sessions, issue_slug)
    if goes_out:
        assert status == "sent" and len(memory.sent) == EVERYONE and not note
    else:
        assert status == "draft" and not memory.sent and not report.started
        assert unscheduled(sessions, issue_slug)
        assert note.startswith("not sent: it fell due at 2026-12-06 08:00 America/Costa_Rica "
                               "while no scheduler was running, more than 24 h ago")
        assert [n.slug for n in report.not_sent] == [issue_slug]


def test_the_lease_is_taken_held_renewed_and_runs_out(
    sessions: sessionmaker[Session],
) -> None:
    ten = timedelta(seconds=10)
    assert lease.take(sessions, "round", "a", NOW, ten)
    assert not lease.take(sessions, "round", "b", NOW + timedelta(seconds=5), ten)
    assert lease.take(sessions, "round", "a", NOW + timedelta(seconds=5), ten)  # ours: renewed
    assert lease.renew(sessions, "round", "a", NOW + timedelta(seconds=12), ten)
    assert not lease.take(sessions, "round", "b", NOW + timedelta(seconds=20), ten)
    assert not lease.renew(sessions, "round", "b", NOW + timedelta(seconds=20), ten)
    # "a" died: its lease (until 22 s) runs out, and "b" gets it
    assert lease.take(sessions, "round", "b", NOW + timedelta(seconds=23), ten)
    assert not lease.renew(sessions, "round", "a", NOW + timedelta(seconds=24), ten)
    lease.release(sessions, "round", "b", NOW + timedelta(seconds=25))
    held = lease.current(sessions, "round")
    assert held is not None and held.holder == "b"
    assert held.last_round_at == NOW + timedelta(seconds=25)
    assert lease.take(sessions, "round", "a", NOW + timedelta(seconds=26), ten)


def test_a_round_is_skipped_while_another_process_holds_the_lease(
    runtime: Runtime, sessions: sessionmaker[Session], issue_slug: str,
    memory: MemoryTransport,
) -> None:
    schedule(sessions, runtime.settings, issue_slug, NOW)
    assert lease.take(sessions, "round", "other", NOW, timedelta(seconds=30))
    with at(NOW):
        skipped = run_round(runtime, NOW, holder="me")
    assert not skipped.ran and skipped.held_by == "other" and not memory.sent
    with at(NOW + timedelta(seconds=31)):
        report = run_round(runtime, NOW + timedelta(seconds=31), holder="me")
    assert report.ran and [s.slug for s in report.started] == [issue_slug]


def test_two_rounds_at_the_same_now_start_the_issue_once(
    runtime: Runtime, sessions: sessionmaker[Session], issue_slug: str,
    memory: MemoryTransport,
) -> None:
    schedule(sessions, runtime.settings, issue_slug, NOW)
    with at(NOW):
        reports = [run_round(runtime, NOW, holder=h) for h in ("a", "b")]
    assert [r.ran for r in reports] == [True, False]
    assert sum(len(r.started) for r in reports) == 1
    assert len(memory.sent) == EVERYONE


def test_two_processes_claiming_the_same_issue_at_once_start_it_once(
    runtime: Runtime, sessions: sessionmaker[Session], issue_slug: str,
    memory: MemoryTransport,
) -> None:
    """Without the round lease (two rounds at once): the issue's own claim decides."""
    issue_id = schedule(sessions, runtime.settings, issue_slug, NOW)
    barrier = threading.Barrier(2)
    results: list[object] = []

    def claim() -> None:
        barrier.wait()
        results.append(start_issue(runtime, issue_id))

    with at(NOW):
        threads = [threading.Thread(target=claim) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
    assert sorted(r is None for r in results) == [False, True]
    assert len(delivered(memory)) == len(set(delivered(memory))) == EVERYONE
    with sessions() as session:
        assert session.scalar(select(Delivery.id).where(Delivery.attempts != 1)) is None


def test_a_failing_step_is_reported_and_the_others_still_run(
    runtime: Runtime, sessions: sessionmaker[Session], issue_slug: str,
    memory: MemoryTransport, monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(_runtime: Runtime) -> dict[str, int]:
        raise RuntimeError("the sweep broke")

    monkeypatch.setattr("worker.scheduler.sweep", broken)
    schedule(sessions, runtime.settings, issue_slug, NOW)
    with at(NOW):
        report = run_round(runtime, NOW, holder="a")
    assert report.errors == {"sweep": "RuntimeError: the sweep broke"}
    assert [s.slug for s in report.started] == [issue_slug] and len(memory.sent) == EVERYONE
    assert "sweep failed: RuntimeError: the sweep broke" in report.lines()
    held = lease.current(sessions, "round")
    assert held is not None and held.until <= NOW + timedelta(seconds=5)  # released


def test_scheduler_once_prints_the_round_as_json(
    runner: CliRunner, settings: Settings, sessions: sessionmaker[Session], issue_slug: str,
) -> None:
    schedule(sessions, settings, issue_slug, NOW - HOUR)
    with at(NOW):
        result = runner.invoke(cli, ["scheduler", "--once", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["ran"] and report["errors"] == {}
    assert [(s["slug"], s["planned"], s["status"]) for s in report["started"]] == [
        (issue_slug, 0, "sent")]  # everyone was planned when it was scheduled
    assert len(list(settings.resolved_outbox_dir.glob("*.eml"))) == EVERYONE
    with at(NOW + HOUR):
        quiet = runner.invoke(cli, ["scheduler", "--once"])
    assert quiet.exit_code == 0 and quiet.output == "round done: nothing was due\n"


def test_scheduler_help_has_an_example(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["scheduler", "--help"])
    assert result.exit_code == 0
    assert "Example:" in result.output and "--once" in result.output
    assert "--interval" in result.output and "--json" in result.output
    alone = runner.invoke(cli, ["scheduler", "--json"])
    assert alone.exit_code == 2 and "--json goes with --once" in alone.output


# ---- the whole calendar, round after round: a feed, a series, approval, local time ----

CR = "America/Costa_Rica"
MONDAY_0900_CR = datetime(2026, 12, 7, 15, 0)
READERS = {"ana@example.org": "CR", "luis@example.org": "NI", "marta@example.org": "MX",
           "pepe@example.org": "ES"}


@pytest.fixture
def feed_url() -> Iterator[str]:
    """The feed fixtures, served by a real HTTP server on loopback."""
    handler = functools.partial(QuietFiles, directory=str(FIXTURES / "feeds"))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/rss20-es.xml"
    httpd.shutdown()
    httpd.server_close()


class QuietFiles(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def a_weekly_digest(sessions: sessionmaker[Session], settings: Settings, feed_url: str,
                    now: datetime, **spec: object) -> None:
    """The README's digest: weekly, Spanish, Costa Rica first, fed from a feed."""
    with sessions() as session, session.begin():
        add_feed(session, feed_url, name="noticias", language="es", allow_private=True)
        for email, country in READERS.items():
            add(session, NewSubscriber(email, country=country, language="es"),
                default_language="es")
        create_series(session, SeriesSpec(
            slug="semanal", timezone=CR, every="weekly on monday at 09:00",
            feeds=("noticias",), focus="first", titles={"es": "Boletín semanal"},
            **spec), languages=settings.languages, now=now)  # type: ignore[arg-type]


def rounds(runtime: Runtime, start: datetime, end: datetime,
           every: timedelta = timedelta(minutes=20)) -> list[RoundReport]:
    """A scheduler ticking from `start` to `end`, the wall clock moving along."""
    reports, now = [], start
    while now <= end:
        with at(now):
            reports.append(run_round(runtime, now, holder="scheduler"))
        now += every
    return reports


def test_a_weekly_digest_from_a_feed_approved_and_sent_at_nine_in_each_zone(
    runtime: Runtime, sessions: sessionmaker[Session], settings: Settings,
    memory: MemoryTransport, feed_url: str,
) -> None:
    thursday = datetime(2026, 12, 3, 18, 0)
    a_weekly_digest(sessions, settings, feed_url, thursday, approval="required",
                    local_time=True)
    with sessions() as session, session.begin():  # a feed that fails: reported, not fatal
        add_feed(session, feed_url.replace("rss20-es", "gone"), name="rota",
                 allow_private=True)
    with at(thursday):
        first = run_round(runtime, thursday, holder="scheduler")
    assert [(f.feed, f.status, f.new) for f in first.feeds] == [("noticias", "ok", 3),
                                                                ("rota", "failed", 0)]
    assert first.lines()[0] == "feed noticias: 3 new, 0 updated items"
    assert first.lines()[1].startswith("feed rota failed: ")
    assert "404" in first.lines()[1] and "(tried again from 2026-12-03 " in first.lines()[1]
    assert first.periods == [] and not first.errors
    assert json.loads(json.dumps(first.as_dict()))["feeds"][0]["new"] == 3

    # built a day ahead (time to approve), once however many rounds pass
    build_time = MONDAY_0900_CR - timedelta(hours=24)
    reports = rounds(runtime, build_time - HOUR, build_time + 3 * HOUR)
    built = [p for r in reports for p in r.periods if p.status == "built"]
    as_json = [json.loads(json.dumps(r.as_dict())) for r in reports]
    assert [p["send_at"] for r in as_json for p in r["periods"]] == ["2026-12-07T08:00:00"]
    assert [(p.issue, p.number) for p in built] == [("semanal-2026-12-07", 1)]
    assert "built semanal-2026-12-07 No. 1 of series semanal: scheduled for 2026-12-07 " \
           "08:00 UTC" in [line for r in reports for line in r.lines()]
    with sessions() as session, session.begin():
        issue = session.scalars(select(Issue).where(Issue.series_id.is_not(None))).one()
        assert (issue.status, issue.review, len(issue.entries)) == ("scheduled", "in_review", 3)
        # planned when built: `issues deliveries --json` shows each reader's not_before
        planned = {email: not_before for email, not_before in session.execute(
            select(Subscriber.email, Delivery.not_before).join(Subscriber)
            .where(Delivery.issue_id == issue.id))}
        assert planned == {email: MONDAY_0900_CR - (7 * HOUR if country == "ES" else 0 * HOUR)
                           for email, country in READERS.items()}
        approve(session, issue, "Luis", "listo", now=MONDAY_0900_CR - 9 * HOUR)

    # 09:00 comes first in Madrid (08:00 UTC), then in Central America (15:00 UTC)
    madrid = rounds(runtime, MONDAY_0900_CR - 8 * HOUR, MONDAY_0900_CR - 7 * HOUR)
    assert [s.slug for r in madrid for s in r.started] == ["semanal-2026-12-07"]
    assert delivered(memory) == ["pepe@example.org"]
    rounds(runtime, MONDAY_0900_CR - HOUR, MONDAY_0900_CR + HOUR)
    assert delivered(memory) == sorted(READERS)
    assert issue_state(sessions, "semanal-2026-12-07")[0] == "sent"
    ana = next(e for e in memory.sent if e.recipient == "ana@example.org")
    subject = str(message_from_bytes(ana.message, policy=policy.default)["Subject"])
    assert subject.startswith("Boletín semanal")
    with sessions() as session:  # Costa Rica's news first for Ana (an item is about CR)
        assert session.scalar(select(Delivery.country).join(Subscriber).where(
            Subscriber.email == "ana@example.org")) == "CR"


@pytest.mark.parametrize(("back", "goes_out"), [(timedelta(hours=3), True),
                                               (timedelta(hours=26), False)])
def test_a_period_missed_while_down_is_built_once_or_recorded_skipped(
    runtime: Runtime, sessions: sessionmaker[Session], settings: Settings,
    memory: MemoryTransport, feed_url: str, back: timedelta, goes_out: bool,
) -> None:
    a_weekly_digest(sessions, settings, feed_url, datetime(2026, 12, 3, 18, 0))
    # no scheduler ran until `back` after Monday 09:00; then one ticks every 10 minutes
    returned = MONDAY_0900_CR + back
    reports = rounds(runtime, returned, returned + 2 * HOUR, timedelta(minutes=10))
    periods = [p for r in reports for p in r.periods if p.status != "exists"]
    started = [s.slug for r in reports for s in r.started]
    if goes_out:
        assert [(p.status, p.issue) for p in periods] == [("built", "semanal-2026-12-07")]
        assert started == ["semanal-2026-12-07"]
        assert delivered(memory) == sorted(READERS)
    else:
        assert [(p.status, p.occurs_at) for p in periods] == [("skipped", MONDAY_0900_CR)]
        assert "missed" in periods[0].reason and started == [] and not memory.sent
    assert not any(r.errors for r in reports)
