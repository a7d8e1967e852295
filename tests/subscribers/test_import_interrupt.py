"""Killing `newsletter subscribers import` halfway: whole batches stay, a re-run finishes.

The real CLI runs in a child process on a 200,000-row file; once some batches are
committed (a COUNT in this process sees them), it gets SIGKILL (no chance to clean
up) or SIGINT (Ctrl-C: exit status 130 and a message), on SQLite and PostgreSQL.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from subscribers.models import MailingList, Subscriber, Subscription

ROOT = Path(__file__).resolve().parents[2]
ROWS = 200_000
BATCH = 5_000


@pytest.fixture(scope="module")
def big_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("interrupt") / "people.csv"
    countries = ("CR", "NI", "Guatemala", "México", "")
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write("email,name,country,language\r\n")
        out.writelines(f"person.{i}@example{i % 97}.org,Persona {i},{countries[i % 5]},"
                       f"{'es-GT' if i % 3 else 'en'}\r\n" for i in range(ROWS))
    return path


def counts(sessions: sessionmaker[Session]) -> tuple[int, int, int]:
    """(subscribers, distinct addresses, subscriptions)."""
    with sessions() as session:
        return (
            session.scalar(select(func.count()).select_from(Subscriber)) or 0,
            session.scalar(select(func.count(func.distinct(Subscriber.email_key)))) or 0,
            session.scalar(select(func.count()).select_from(Subscription)) or 0,
        )


def start_import(cli_env: dict[str, str], path: Path) -> subprocess.Popen[str]:
    argv = [sys.executable, "-m", "newsletter", "subscribers", "import", str(path),
            "--list", "news", "--silent", "--batch-size", str(BATCH)]
    env = dict(os.environ, **cli_env, PYTHONPATH=str(ROOT))
    return subprocess.Popen(argv, env=env, cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def wait_for_some_batches(sessions: sessionmaker[Session], proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 120
    while counts(sessions)[0] < BATCH:
        assert proc.poll() is None, f"the import ended first: {proc.communicate()}"
        assert time.monotonic() < deadline, "no batch was committed within 120 s"
        time.sleep(0.02)


@pytest.fixture
def news_list(sessions: sessionmaker[Session]) -> sessionmaker[Session]:
    with sessions() as session, session.begin():
        session.add(MailingList(name="news", opt_in="single"))
    return sessions


def check_consistent(sessions: sessionmaker[Session]) -> int:
    people, distinct, subscribed = counts(sessions)
    assert 0 < people < ROWS, "killed too late to prove anything"
    assert people % BATCH == 0, f"{people} is not a whole number of batches"
    assert distinct == people == subscribed  # no duplicates; everyone has their subscription
    return people


def finish(cli_env: dict[str, str], path: Path, sessions: sessionmaker[Session],
           already: int) -> None:
    proc = start_import(cli_env, path)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert f"{ROWS - already} added, 0 updated, {already} unchanged" in out
    assert counts(sessions) == (ROWS, ROWS, ROWS)


def test_sigkill_halfway_then_rerun(
    news_list: sessionmaker[Session], cli_env: dict[str, str], big_csv: Path
) -> None:
    proc = start_import(cli_env, big_csv)
    wait_for_some_batches(news_list, proc)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    finish(cli_env, big_csv, news_list, check_consistent(news_list))


def test_ctrl_c_says_how_far_it_got_and_exits_130(
    news_list: sessionmaker[Session], cli_env: dict[str, str], big_csv: Path
) -> None:
    proc = start_import(cli_env, big_csv)
    wait_for_some_batches(news_list, proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    committed = check_consistent(news_list)
    assert (f"interrupted after {committed} rows; run the same command again to finish"
            in err)
    finish(cli_env, big_csv, news_list, committed)
