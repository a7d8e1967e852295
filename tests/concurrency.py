"""Helpers for tests that run two things at once on a real database."""

from __future__ import annotations

import time

from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker


def someone_waits_for_a_lock(sessions: sessionmaker[Session], within: float) -> bool:
    """True once a backend of this PostgreSQL database waits for a lock (another
    transaction of the test is seen blocked), False if none does within `within` s."""
    deadline = time.monotonic() + within
    with sessions() as session:
        while not session.scalar(text(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND datname = current_database()")):
            if time.monotonic() > deadline:
                return False
            session.rollback()  # a new snapshot of pg_stat_activity
            time.sleep(0.01)
    return True


def people_csv(n: int, start: int = 0) -> bytes:
    """A CSV of `n` valid subscribers, person{start}@example.org onwards."""
    return ("email,name,country,language\n" + "".join(
        f"person{i}@example.org,Person {i},CR,es\n" for i in range(start, start + n)
    )).encode()
