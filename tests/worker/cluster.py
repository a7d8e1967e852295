"""Real delivery processes for tests: `newsletter worker` and `newsletter scheduler`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import date
from pathlib import Path

import pytest

from newsletter.cli.demo import sample_items_text
from newsletter.db import make_engine, session_factory, upgrade
from newsletter.ingest.text import parse_text
from newsletter.issues import create_issue
from newsletter.items import store_items
from subscribers.importer import import_csv
from tests.conftest_servers import record_started
from tests.servers import SmtpServer


class Process:
    """A `python -m newsletter ...` subprocess in its own process group, log collected."""

    def __init__(self, args: list[str], env: dict[str, str], cwd: Path) -> None:
        self.args = args
        self.env = env
        self.cwd = cwd
        self.lines: list[str] = []
        self.proc = self._spawn()

    def _spawn(self) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "newsletter", *self.args], env=self.env, cwd=self.cwd,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        )
        threading.Thread(target=self._read, args=(proc,), daemon=True).start()
        return proc

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            self.lines.append(line.rstrip())

    def wait_for(self, text: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(text in line for line in self.lines):
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        pytest.fail(f"`newsletter {' '.join(self.args)}` did not say {text!r}:\n"
                    + "\n".join(self.lines[-40:]))

    def kill(self) -> None:
        """SIGKILL the whole process group: no cleanup, no acks, no goodbyes."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()

    def restart(self) -> None:
        self.lines.append("---- restarted ----")
        self.proc = self._spawn()

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=15)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                self.kill()


def service_env(tmp_path: Path, db_url: str, broker_url: str, smtp_url: str,
                **settings: str) -> dict[str, str]:
    """The environment of CLI and worker subprocesses: this machine's, minus any
    NEWSLETTER_* of its own, plus the test's services and `settings` (NAME=value)."""
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")},
        "NEWSLETTER_VAR_DIR": str(tmp_path / "var"),
        "NEWSLETTER_DATABASE_URL": db_url,
        "NEWSLETTER_BROKER_URL": broker_url,
        "NEWSLETTER_SMTP_URL": smtp_url,
        "NEWSLETTER_SECRET_KEY": "test-secret",
        "NEWSLETTER_ALLOW_BLOCKED_SENDING": "true",  # the tests' relays are staging relays
        **{f"NEWSLETTER_{name.upper()}": value for name, value in settings.items()},
    }


def start_workers(env: dict[str, str], cwd: Path, count: int) -> list[Process]:
    workers = [Process(["worker", "-c", "1", "--loglevel", "INFO"], env, cwd)
               for _ in range(count)]
    for w in workers:
        w.wait_for(" ready.")
        record_started(f"started `newsletter worker -c 1`, pid {w.proc.pid}")
    return workers


def start_scheduler(env: dict[str, str], cwd: Path) -> Process:
    beat = Process(["scheduler", "--loglevel", "INFO"], env, cwd)
    beat.wait_for("beat: Starting")
    record_started(f"started `newsletter scheduler` (Celery beat), pid {beat.proc.pid}")
    return beat


def people_csv(count: int) -> tuple[str, list[str]]:
    countries = ["CR", "NI", "SV", "HN", "GT", "BZ", "MX", "PA", ""]
    rows = ["email,name,country,language"]
    emails = []
    for n in range(count):
        email = f"person{n:05d}@example.org"
        emails.append(email)
        rows.append(f"{email},Person {n},{countries[n % len(countries)]},{'es' if n % 3 else 'en'}")
    return "\n".join(rows) + "\n", emails


def populate(db_url: str, count: int, slug: str = "2019-10") -> list[str]:
    """Sample items, `count` subscribers and a draft issue; returns the addresses."""
    engine = make_engine(db_url)
    upgrade(engine)
    sessions = session_factory(engine)
    csv_text, emails = people_csv(count)
    with sessions() as session, session.begin():
        store_items(session, parse_text(sample_items_text(), "sample"))
        import_csv(session, csv_text, default_language="en")
        create_issue(session, slug, date(2019, 9, 1), date(2019, 10, 31))
    engine.dispose()
    return emails


def newsletter(env: dict[str, str], cwd: Path, *args: str,
               check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([sys.executable, "-m", "newsletter", *args], env=env, cwd=cwd,
                            capture_output=True, text=True, timeout=300)
    if check:
        assert result.returncode == 0, (
            f"newsletter {' '.join(args)}:\n{result.stdout}{result.stderr}")
    return result


def received(smtp: SmtpServer) -> Counter[str]:
    return Counter(r for m in smtp.messages for r in m.rcpt_tos)


def wait_until(condition: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.25)
    pytest.fail(f"timed out after {timeout}s waiting for {what}")
