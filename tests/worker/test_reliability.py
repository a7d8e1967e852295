"""The delivery engine under failure, with real processes: a PostgreSQL ledger, a private
Redis broker, `newsletter worker` processes, `newsletter scheduler`, an SMTP server."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from newsletter.db import make_engine, session_factory
from newsletter.issues import get_issue
from newsletter.settings import load_settings
from tests.servers import PostgresServer, RedisServer, SmtpServer
from tests.worker.cluster import (
    Process,
    newsletter,
    populate,
    received,
    service_env,
    start_scheduler,
    start_workers,
    wait_until,
)
from worker import control
from worker.ledger import counts
from worker.runtime import Runtime
from worker.transports import MemoryTransport

pytestmark = pytest.mark.timeout(300)
SLUG = "2019-10"


@pytest.fixture
def pg_url(postgres_server: PostgresServer) -> Iterator[str]:
    name = f"rel_{os.getpid()}_{random.randrange(10**9)}"
    postgres_server.create_database(name)
    yield postgres_server.url_for(name)
    postgres_server.drop_database(name)


@pytest.fixture
def env(tmp_path: Path, pg_url: str, redis_server: RedisServer,
        smtp_server: SmtpServer) -> dict[str, str]:
    return service_env(
        tmp_path, pg_url, redis_server.url, smtp_server.url,
        batch_size="10", lease_seconds="4", retry_base_seconds="1",
        retry_max_delay_seconds="3", sweep_seconds="1", requeue_after_seconds="5",
        smtp_timeout="5",
    )


@pytest.fixture
def cluster(env: dict[str, str], tmp_path: Path) -> Iterator[list[Process]]:
    beat = start_scheduler(env, tmp_path)
    workers = start_workers(env, tmp_path, 2)
    try:
        yield workers
    finally:
        for p in [*workers, beat]:
            p.stop()


def status(env: dict[str, str], cwd: Path) -> dict[str, int]:
    out = newsletter(env, cwd, "issues", "status", SLUG, "--json").stdout
    return dict(json.loads(out))


def finished(by_status: dict[str, int]) -> int:
    return by_status["sent"] + by_status["bounced"] + by_status["failed"]


def settle(env: dict[str, str], cwd: Path, expected_final: int, timeout: float = 120) -> None:
    """Wait for `expected_final` deliveries in a final state, then check that `issues
    status` says so too. The waiting reads the ledger in this process: a CLI process a
    poll would take a core's worth of CPU from the workers under test."""
    engine = make_engine(env["NEWSLETTER_DATABASE_URL"])
    sessions = session_factory(engine)

    def done() -> bool:
        with sessions() as session:
            return finished(counts(session, get_issue(session, SLUG).id)) == expected_final

    try:
        wait_until(done, timeout, f"{expected_final} deliveries to reach a final state")
    finally:
        engine.dispose()
    assert finished(status(env, cwd)) == expected_final


def test_sigkill_workers_again_and_again_loses_nobody(
    env: dict[str, str], tmp_path: Path, cluster: list[Process], smtp_server: SmtpServer
) -> None:
    emails = populate(env["NEWSLETTER_DATABASE_URL"], 400)
    newsletter(env, tmp_path, "issues", "send", SLUG, "--no-wait")
    rng = random.Random(7)
    kills = 0
    for _ in range(6):
        time.sleep(rng.uniform(0.1, 0.6))
        victim = rng.choice(cluster)
        victim.kill()
        kills += 1
        victim.restart()
        victim.wait_for(" ready.")
    settle(env, tmp_path, len(emails))
    got = received(smtp_server)
    assert set(got) == set(emails), "every recipient got the issue"
    duplicates = sum(n - 1 for n in got.values())
    assert duplicates <= kills, f"{duplicates} duplicates after {kills} kills"
    assert status(env, tmp_path)["sent"] == len(emails)


def test_redis_restart_in_the_middle_of_a_send(
    env: dict[str, str], tmp_path: Path, cluster: list[Process], smtp_server: SmtpServer,
    redis_server: RedisServer,
) -> None:
    emails = populate(env["NEWSLETTER_DATABASE_URL"], 300)
    newsletter(env, tmp_path, "issues", "send", SLUG, "--no-wait")
    wait_until(lambda: len(smtp_server.messages) >= 20, 60, "the send to start")
    redis_server.restart()  # an empty Redis: every queued batch is gone
    settle(env, tmp_path, len(emails), timeout=150)
    got = received(smtp_server)
    assert set(got) == set(emails)
    assert max(got.values()) == 1


def test_4xx_for_a_while_then_everyone_delivered_once(
    env: dict[str, str], tmp_path: Path, cluster: list[Process], smtp_server: SmtpServer
) -> None:
    emails = populate(env["NEWSLETTER_DATABASE_URL"], 120)
    smtp_server.fail_next(60, "451 4.7.1 Greylisted, try again later")
    newsletter(env, tmp_path, "issues", "send", SLUG, "--no-wait")
    settle(env, tmp_path, len(emails))
    got = received(smtp_server)
    assert set(got) == set(emails) and max(got.values()) == 1
    rows = json.loads(newsletter(env, tmp_path, "issues", "deliveries", SLUG, "--json").stdout)
    assert sum(1 for r in rows if r["attempts"] > 1) == 60


def test_5xx_bounces_exactly_those_and_5_1_x_suppresses(
    env: dict[str, str], tmp_path: Path, cluster: list[Process], smtp_server: SmtpServer
) -> None:
    emails = populate(env["NEWSLETTER_DATABASE_URL"], 80)
    gone = set(emails[5:10])
    full = set(emails[20:22])
    smtp_server.reject_recipients({**{e: "550 5.1.1 No such user" for e in gone},
                                   **{e: "552 5.2.2 Mailbox full" for e in full}})
    newsletter(env, tmp_path, "issues", "send", SLUG)
    settle(env, tmp_path, len(emails))
    assert set(received(smtp_server)) == set(emails) - gone - full
    bounced = json.loads(newsletter(env, tmp_path, "issues", "deliveries", SLUG, "--status",
                                    "bounced", "--json").stdout)
    assert {r["email"] for r in bounced} == gone | full
    assert all(r["attempts"] == 1 for r in bounced)  # never retried
    suppressed = json.loads(newsletter(env, tmp_path, "suppressions", "list", "--json").stdout)
    assert {s["email"] for s in suppressed} == gone  # 5.1.x only
    people = json.loads(newsletter(env, tmp_path, "subscribers", "list", "--status", "bounced",
                                   "--json").stdout)
    assert {p["email"] for p in people} == gone


def test_relay_down_then_back_resumes_by_itself(
    env: dict[str, str], tmp_path: Path, cluster: list[Process], smtp_server: SmtpServer
) -> None:
    emails = populate(env["NEWSLETTER_DATABASE_URL"], 150)
    port = smtp_server.port
    smtp_server.stop()
    newsletter(env, tmp_path, "issues", "send", SLUG, "--no-wait")
    time.sleep(12)  # down for a while: connection failures, never bounces
    s = status(env, tmp_path)
    assert s["bounced"] == 0 and s["sent"] == 0 and s["failed"] == 0
    smtp_server.start(port=port)
    settle(env, tmp_path, len(emails), timeout=120)
    got = received(smtp_server)
    assert set(got) == set(emails) and max(got.values()) == 1


def test_two_sends_at_once_and_send_after_cancel(
    env: dict[str, str], tmp_path: Path, cluster: list[Process], smtp_server: SmtpServer
) -> None:
    emails = populate(env["NEWSLETTER_DATABASE_URL"], 200)
    argv = [sys.executable, "-m", "newsletter", "issues", "send", SLUG]
    both = [subprocess.Popen(argv, env=env, cwd=tmp_path, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for p in both:
        out, err = p.communicate(timeout=200)
        assert p.returncode == 0, out + err
    settle(env, tmp_path, len(emails))
    got = received(smtp_server)
    assert set(got) == set(emails) and max(got.values()) == 1

    populate_more = newsletter(env, tmp_path, "issues", "create", "2019-09", "--from",
                               "2019-09-01", "--to", "2019-09-30")
    assert "created" in populate_more.stdout
    newsletter(env, tmp_path, "issues", "cancel", "2019-09", "--yes")
    again = newsletter(env, tmp_path, "issues", "send", "2019-09", check=False)
    assert again.returncode == 1 and "cancelled" in again.stderr
    time.sleep(2)
    assert len(smtp_server.messages) == len(emails)


def test_a_rate_limit_holds_for_two_workers_together(
    env: dict[str, str], tmp_path: Path, cluster: list[Process], smtp_server: SmtpServer
) -> None:
    """20 a second, shared through Redis: 80 messages take at least 3 s (a full bucket of
    20 at once, then 20 a second), and no second holds more than bucket plus rate."""
    emails = populate(env["NEWSLETTER_DATABASE_URL"], 80)
    newsletter(env, tmp_path, "limits", "set", "--per-second", "20")
    newsletter(env, tmp_path, "issues", "send", SLUG, "--no-wait")
    settle(env, tmp_path, len(emails))
    times = sorted(m.accepted_at for m in smtp_server.messages)
    assert len(times) == len(emails) and set(received(smtp_server)) == set(emails)
    assert times[-1] - times[0] >= 3.0 - 0.05, "faster than the limit allows"
    busiest = max(sum(1 for t in times if start <= t < start + 1.0) for start in times)
    assert busiest <= 20 + 20 + 1


def test_a_pause_stops_the_workers_within_two_seconds(
    env: dict[str, str], tmp_path: Path, cluster: list[Process], smtp_server: SmtpServer
) -> None:
    """Real workers in the middle of a batch (a limit keeps them at it for seconds):
    once the pause is committed, nothing more is accepted after 2 s; resumed, every
    subscriber has the issue once."""
    emails = populate(env["NEWSLETTER_DATABASE_URL"], 300)
    newsletter(env, tmp_path, "limits", "set", "--per-second", "20")
    # one batch of 500: a worker in the middle of it, not starting a new one every 10
    newsletter({**env, "NEWSLETTER_BATCH_SIZE": "500"}, tmp_path, "issues", "send", SLUG,
               "--no-wait")
    wait_until(lambda: len(smtp_server.messages) >= 30, 60, "the send to be under way")
    engine = make_engine(env["NEWSLETTER_DATABASE_URL"])
    try:  # what `issues pause` and the newsroom's button call, timed to its commit
        control.pause(Runtime(load_settings(database_url=env["NEWSLETTER_DATABASE_URL"]),
                              session_factory(engine), MemoryTransport()), SLUG)
        paused_at = time.monotonic()
    finally:
        engine.dispose()
    time.sleep(4)
    late = [m for m in smtp_server.messages if m.accepted_at > paused_at + 2.0]
    assert late == [], f"{len(late)} messages accepted more than 2 s after the pause"
    assert len(smtp_server.messages) < len(emails)
    newsletter(env, tmp_path, "limits", "set", "--per-second", "0")
    newsletter(env, tmp_path, "issues", "resume", SLUG)
    settle(env, tmp_path, len(emails))
    got = received(smtp_server)
    assert set(got) == set(emails) and max(got.values()) == 1
