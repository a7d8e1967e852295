"""`newsletter scheduler` as real processes: two at once, one killed with SIGKILL in the
middle and started again, after downtime. Nobody gets an issue twice, nobody is missed,
and an issue that fell due too long ago is reported, not sent.

With a broker: two schedulers (Celery beat) on a private Redis, a `newsletter worker`,
a PostgreSQL ledger and a recording SMTP server. Without one: two schedulers running
rounds in-process on one SQLite file, sending to a recording SMTP server (one killed
mid-send), and to the outbox (the README's defaults exactly).
"""

from __future__ import annotations

import os
import random
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from sqlalchemy import select

from newsletter.db import make_engine, session_factory, utcnow
from newsletter.issues import create_issue
from newsletter.models import Delivery, Issue
from newsletter.schedules import schedule_issue
from tests.conftest_servers import record_started
from tests.servers import PostgresServer, RedisServer, SmtpServer
from tests.worker.cluster import Process, populate, service_env, start_workers, wait_until
from worker import lease

pytestmark = pytest.mark.timeout(120)

ON_TIME, LATE, TOO_LATE = "2019-10", "late-1h", "late-3d"
MID = re.compile(r"<(.+)\.\d+\.[a-z2-7]{10}@")  # <slug.delivery.issue-key@domain>


def prepare(db_url: str, people: int, due_in: float) -> list[str]:
    """`people` subscribers and three scheduled issues: one due in `due_in` seconds, one
    that fell due an hour ago, one three days ago (past the 24 h catch-up limit)."""
    emails = populate(db_url, people, ON_TIME)
    engine = make_engine(db_url)
    now = utcnow()
    with session_factory(engine)() as session, session.begin():
        for slug in (LATE, TOO_LATE):
            create_issue(session, slug, date(2019, 9, 1), date(2019, 10, 31))
        for slug, at in ((ON_TIME, now + timedelta(seconds=due_in)),
                         (LATE, now - timedelta(hours=1)), (TOO_LATE, now - timedelta(days=3))):
            issue = session.scalars(select(Issue).where(Issue.slug == slug)).one()
            schedule_issue(session, issue, at=at, timezone="UTC", now=now, past_ok=True)
    engine.dispose()
    return emails


def states(db_url: str) -> dict[str, tuple[str, str]]:
    engine = make_engine(db_url)
    with session_factory(engine)() as session:
        found = {i.slug: (i.status, i.status_note) for i in session.scalars(select(Issue))}
    engine.dispose()
    return found


def holder_pid(db_url: str) -> int | None:
    """The pid of the process holding the round lease (host:pid:token), if it is held."""
    engine = make_engine(db_url)
    held = lease.current(session_factory(engine), lease.ROUND)
    engine.dispose()
    if held is None or held.until < utcnow():
        return None
    return int(held.holder.split(":")[1])


def check_exactly_once(got: Counter[tuple[str, str]], emails: list[str],
                       db_url: str) -> None:
    for slug in (ON_TIME, LATE):
        per_person = Counter({e: got[(slug, e)] for e in emails})
        missed = [e for e, n in per_person.items() if n == 0]
        duplicated = {e: n for e, n in per_person.items() if n > 1}
        assert not missed and not duplicated, f"{slug}: missed {missed[:5]}, twice {duplicated}"
    assert not any(slug == TOO_LATE for slug, _ in got), "an issue past the limit went out"
    found = states(db_url)
    assert found[ON_TIME][0] == found[LATE][0] == "sent"
    status, note = found[TOO_LATE]
    assert status == "draft" and "fell due" in note and "more than 24 h ago" in note


def kill_the_holder_mid_send(schedulers: list[Process], db_url: str,
                             sent: Callable[[], int], people: int, *,
                             in_process: bool) -> Process:
    """SIGKILL a scheduler while the on-time issue is being sent (some of it out, not
    all), then start it again. In-process, the one holding the round lease (it is the
    one sending); with a broker the rounds run on the worker, and either beat will do."""
    deadline = time.monotonic() + 60
    while not people // 5 <= sent() < people - people // 5:
        assert sent() < people - people // 5, "the issue went out before it could be cut"
        assert time.monotonic() < deadline, "timed out waiting for the on-time issue"
        time.sleep(0.02)
    pid = holder_pid(db_url)
    victim = next((s for s in schedulers if s.proc.pid == pid), None)
    if in_process:
        assert victim is not None, f"the lease holder {pid} is not one of the schedulers"
    victim = victim or schedulers[0]
    victim.kill()
    victim.restart()
    return victim


# ---- with a broker: Celery beat, a worker, PostgreSQL, Redis, SMTP ---------------------

@pytest.fixture
def pg_url(postgres_server: PostgresServer) -> Iterator[str]:
    name = f"sched_{os.getpid()}_{random.randrange(10**9)}"
    postgres_server.create_database(name)
    yield postgres_server.url_for(name)
    postgres_server.drop_database(name)


def test_two_schedulers_with_a_broker_send_once_after_a_kill_and_downtime(
    tmp_path: Path, pg_url: str, redis_server: RedisServer, smtp_server: SmtpServer,
) -> None:
    people = 100
    env = service_env(tmp_path, pg_url, redis_server.url, smtp_server.url,
                      scheduler_seconds="0.5", sweep_seconds="1", batch_size="10",
                      lease_seconds="4", requeue_after_seconds="3", rate_per_second="40")
    emails = prepare(pg_url, people, due_in=12)
    workers = start_workers(env, tmp_path, 1)
    schedulers = [Process(["scheduler", "--loglevel", "INFO"], env, tmp_path)
                  for _ in range(2)]
    try:
        for s in schedulers:
            s.wait_for("beat: Starting")
            record_started(f"started `newsletter scheduler` (Celery beat), pid {s.proc.pid}")

        def on_time_sent() -> int:
            return sum(1 for m in smtp_server.messages if _slug(m.content) == ON_TIME)

        victim = kill_the_holder_mid_send(schedulers, pg_url, on_time_sent, people,
                                          in_process=False)
        victim.wait_for("beat: Starting")
        wait_until(lambda: len(smtp_server.messages) >= 2 * people, 60, "both issues sent")
        wait_until(lambda: states(pg_url)[ON_TIME][0] == "sent", 30, "the issue marked sent")
        time.sleep(2)  # rounds keep coming: anything sent twice would show now
        got = Counter((_slug(m.content), r) for m in smtp_server.messages for r in m.rcpt_tos)
        check_exactly_once(got, emails, pg_url)
    finally:
        for p in [*schedulers, *workers]:
            p.stop()
    assert any("newsletter.round" in line and "succeeded" in line for w in workers
               for line in w.lines), "the worker ran the rounds"


def _slug(content: bytes) -> str:
    message = message_from_bytes(content, policy=policy.default)
    found = MID.match(str(message["Message-ID"]))
    return found.group(1) if found else ""


# ---- embedded defaults: no broker, SQLite, rounds in-process -----------------------------
# The outbox names its files by Message-ID (a re-send replaces its file), so it cannot
# show a message sent twice: these schedulers send to a recording SMTP server instead.

def test_two_in_process_schedulers_on_sqlite_send_once_after_a_kill_and_downtime(
    tmp_path: Path, smtp_server: SmtpServer,
) -> None:
    people = 150
    db_url = f"sqlite:///{tmp_path / 'var' / 'newsletter.db'}"
    env = service_env(tmp_path, db_url, "", smtp_server.url, lease_seconds="3",
                      batch_size="10", requeue_after_seconds="3", rate_per_second="50")
    emails = prepare(db_url, people, due_in=6)
    schedulers = [Process(["scheduler", "--interval", "0.5"], env, tmp_path) for _ in range(2)]
    try:
        for s in schedulers:
            s.wait_for("rounds in this process")
            record_started(f"started `newsletter scheduler` (in-process), pid {s.proc.pid}")

        def on_time_sent() -> int:
            return sum(1 for m in smtp_server.messages if _slug(m.content) == ON_TIME)

        victim = kill_the_holder_mid_send(schedulers, db_url, on_time_sent, people,
                                          in_process=True)
        victim.wait_for("rounds in this process")
        wait_until(lambda: states(db_url)[ON_TIME][0] == "sent", 60, "the issue sent")
        wait_until(lambda: states(db_url)[LATE][0] == "sent", 60, "the late issue sent")
        time.sleep(1.5)  # rounds keep coming: anything sent twice would show now
        got = Counter((_slug(m.content), r) for m in smtp_server.messages for r in m.rcpt_tos)
        # SIGKILL can land between the relay's 250 and the ledger's record of it: that one
        # message may go twice (at most one per crash, as the README says); nothing else
        twice = {k: n for k, n in got.items() if n > 1}
        assert sum(n - 1 for n in twice.values()) <= 1, f"sent twice: {twice}"
        assert all(slug == ON_TIME for slug, _ in twice), f"not killed, yet twice: {twice}"
        check_exactly_once(Counter({k: min(n, 1) for k, n in got.items()}), emails, db_url)
        assert not any(n > 1 for (slug, _), n in got.items() if slug == LATE)
    finally:
        for p in schedulers:
            p.stop()
    assert [s.proc.returncode for s in schedulers] == [0, 0], "SIGTERM: a clean exit"
    log = "\n".join(line for s in schedulers for line in s.lines)
    assert log.count("scheduler: stopped") == 2  # not the victim's first life (SIGKILL)
    assert log.count(f"started {LATE}:") == 1 and log.count(f"skipped {TOO_LATE}:") == 1, log


def test_two_in_process_schedulers_on_the_outbox_write_each_message_once(
    tmp_path: Path,
) -> None:
    """The README's first command's settings exactly (SQLite, no broker, the outbox), two
    schedulers at once, nobody killed: one file per person per issue, each written once
    (every write is counted: the outbox's reply names the file, and the ledger records
    one attempt per delivery)."""
    people = 60
    db_url = f"sqlite:///{tmp_path / 'var' / 'newsletter.db'}"
    outbox = tmp_path / "var" / "outbox"
    env = service_env(tmp_path, db_url, "", "", batch_size="10")
    emails = prepare(db_url, people, due_in=3)
    schedulers = [Process(["scheduler", "--interval", "0.3"], env, tmp_path) for _ in range(2)]
    try:
        for s in schedulers:
            s.wait_for("rounds in this process")
        wait_until(lambda: states(db_url)[ON_TIME][0] == "sent"
                   and states(db_url)[LATE][0] == "sent", 60, "both issues sent")
        time.sleep(1)
    finally:
        for p in schedulers:
            p.stop()
    got: Counter[tuple[str, str]] = Counter()
    for path in outbox.glob("*.eml"):
        message = message_from_bytes(path.read_bytes(), policy=policy.default)
        for address in message["To"].addresses:
            got[(_slug(path.read_bytes()), address.addr_spec)] += 1
    check_exactly_once(got, emails, db_url)
    engine = make_engine(db_url)
    with session_factory(engine)() as session:
        attempts = Counter(session.scalars(select(Delivery.attempts)))
    engine.dispose()
    assert attempts == Counter({1: 2 * people}), attempts  # nothing was tried twice
