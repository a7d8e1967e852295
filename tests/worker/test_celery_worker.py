"""End to end on real parts: the CLI and a `newsletter worker` process (Celery, prefork)
on a private Redis broker, delivering to an SMTP server on loopback."""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import chdir
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from click.testing import CliRunner

from newsletter.cli import cli
from newsletter.cli.demo import demo_subscribers_csv, sample_items_text
from tests.conftest_servers import record_started
from tests.servers import RedisServer, SmtpServer
from tests.worker.cluster import Process, newsletter, service_env

pytestmark = pytest.mark.timeout(180)


@pytest.fixture
def env(tmp_path: Path, db_url: str, redis_server: RedisServer,
        smtp_server: SmtpServer) -> dict[str, str]:
    return service_env(tmp_path, db_url, redis_server.url, smtp_server.url, batch_size="7",
                       public_base_url="https://news.example.org")


@pytest.fixture
def worker(env: dict[str, str], tmp_path: Path) -> Iterator[Process]:
    w = Process(["worker", "-c", "2", "--loglevel", "INFO"], env, tmp_path)
    try:
        w.wait_for(" ready.")
        record_started(f"started `newsletter worker -c 2` (Celery, prefork), pid {w.proc.pid}")
        yield w
    finally:
        w.stop()


def test_worker_delivers_each_subscriber_exactly_once(
    env: dict[str, str], tmp_path: Path, worker: Process, smtp_server: SmtpServer,
    redis_server: RedisServer,
) -> None:
    (tmp_path / "items.txt").write_text(sample_items_text(), encoding="utf-8")
    people = demo_subscribers_csv()
    (tmp_path / "people.csv").write_text(people, encoding="utf-8")
    expected = sorted(line.split(",")[0] for line in people.splitlines()[1:])
    # the set-up through the same command in this process (a CLI process costs ~1 s of
    # CPU); the send, the re-send and the status below are real `newsletter` processes
    for args in (["items", "import", "items.txt"], ["subscribers", "import", "people.csv"],
                 ["issues", "create", "2019-10", "--from", "2019-09-01", "--to", "2019-10-31"]):
        with chdir(tmp_path):
            result = CliRunner(env=env).invoke(cli, args)
        assert result.exit_code == 0, f"newsletter {' '.join(args)}:\n{result.output}"

    sent = newsletter(env, tmp_path, "issues", "send", "2019-10", "--json")
    summary = json.loads(sent.stdout)
    assert summary["counts"]["sent"] == len(expected) == 33
    assert summary["batches"] == 5  # 33 rows in batches of 7

    received = smtp_server.wait_for_messages(len(expected), timeout=30)
    rcpts = Counter(r for m in received for r in m.rcpt_tos)
    assert sorted(rcpts) == expected and set(rcpts.values()) == {1}
    for m in received:
        msg = message_from_bytes(m.content, policy=policy.default)
        assert msg.get_content_type() == "multipart/alternative"
        assert [p.get_content_type() for p in msg.iter_parts()] == ["text/plain", "text/html"]
        assert str(msg["To"]).endswith(f"<{m.rcpt_tos[0]}>")
        assert msg["Message-ID"].startswith("<2019-10.")
        assert str(msg["List-Unsubscribe"]).startswith("<https://news.example.org/u/")
        assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        # VERP: each delivery's own envelope sender, at the sender's domain
        assert re.fullmatch(r"bounces\+\d+\.[a-z2-7]{10}@example\.org", m.mail_from)
    assert len({m.mail_from for m in received}) == len(received)
    # the batches really ran in the worker's child processes, not in the CLI
    assert sum("newsletter.deliver_batch" in line and "succeeded" in line
               for line in worker.lines) == 5

    again = json.loads(newsletter(env, tmp_path, "issues", "send", "2019-10", "--json").stdout)
    assert again["planned"] == 0 and again["batches"] == 0
    time.sleep(1)
    assert len(smtp_server.messages) == len(expected)

    status = json.loads(newsletter(env, tmp_path, "issues", "status", "2019-10", "--json").stdout)
    assert status == {"queued": 0, "sending": 0, "sent": 33, "deferred": 0, "bounced": 0,
                      "failed": 0, "cancelled": 0}
