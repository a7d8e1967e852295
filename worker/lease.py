"""Named leases in the database, taken in turn by scheduler processes (`scheduler_leases`).

A lease is a claimed row, not a lock held in memory or on a connection: it works on
SQLite and PostgreSQL alike, survives a restart of whoever holds it, and simply runs
out when its holder dies. Every statement about leases is here. `now` is passed in.
"""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from newsletter.models import SchedulerLease

ROUND = "round"

_token: tuple[int, str] | None = None


def this_process() -> str:
    """Who we are, as a lease holder: host, pid and a token new in every process (a
    forked Celery child is a new holder, and a reused pid is not mistaken for the dead)."""
    global _token
    if _token is None or _token[0] != os.getpid():
        _token = (os.getpid(), uuid.uuid4().hex[:8])
    return f"{socket.gethostname()}:{_token[0]}:{_token[1]}"


@dataclass(frozen=True)
class Lease:
    name: str
    holder: str
    until: datetime
    last_round_at: datetime | None


def take(sessions: sessionmaker[Session], name: str, holder: str, now: datetime,
         duration: timedelta) -> bool:
    """Hold `name` until now + duration if it is free (run out) or already ours.

    One conditional UPDATE: of two processes asking at once, exactly one gets it (the
    other's UPDATE matches no row once the first commits). The first ever take INSERTs
    the row; a unique violation there means someone else inserted it first."""
    with sessions() as session, session.begin():
        taken = session.execute(
            update(SchedulerLease)
            .where(SchedulerLease.name == name,
                   or_(SchedulerLease.until < now, SchedulerLease.holder == holder))
            .values(holder=holder, until=now + duration)
            .returning(SchedulerLease.name)
        ).first() is not None
        if taken:
            return True
        if session.get(SchedulerLease, name) is not None:
            return False  # held by another process
    try:
        with sessions() as session, session.begin():
            session.add(SchedulerLease(name=name, holder=holder, until=now + duration))
    except IntegrityError:
        return False
    return True


def renew(sessions: sessionmaker[Session], name: str, holder: str, now: datetime,
          duration: timedelta) -> bool:
    """Extend a lease we hold; False if it ran out and another process took it."""
    with sessions() as session, session.begin():
        return bool(session.execute(
            update(SchedulerLease)
            .where(SchedulerLease.name == name, SchedulerLease.holder == holder)
            .values(until=now + duration)
            .returning(SchedulerLease.name)
        ).first() is not None)


def release(sessions: sessionmaker[Session], name: str, holder: str, now: datetime) -> None:
    """Give the lease up at the end of a round (if still ours), noting when the round ran."""
    with sessions() as session, session.begin():
        session.execute(
            update(SchedulerLease)
            .where(SchedulerLease.name == name, SchedulerLease.holder == holder)
            .values(until=now, last_round_at=now)
            .execution_options(synchronize_session=False)
        )


def current(sessions: sessionmaker[Session], name: str) -> Lease | None:
    with sessions() as session:
        row = session.scalar(select(SchedulerLease).where(SchedulerLease.name == name))
        return Lease(row.name, row.holder, row.until, row.last_round_at) if row else None
