"""The storage foundation: declarative base, engine, sessions, schema migrations.

The same code runs on SQLite (the embedded default) and PostgreSQL.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from importlib.resources import files
from pathlib import Path
from typing import Any

from sqlalchemy import MetaData, create_engine, event, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

from newsletter.errors import NewsletterError

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


MAX_ID = 2**31 - 1  # the largest id an Integer primary key holds (32 bits on PostgreSQL)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class DatabaseError(NewsletterError):
    """The database cannot be reached or is not in the expected state."""


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def make_engine(url: str) -> Engine:
    """An engine for `url`; SQLite gets WAL and a busy timeout so workers can share the file."""
    parsed = make_url(url)
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(parsed, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(parsed, pool_pre_ping=True)


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session whose work is committed at the end, or rolled back entirely on error."""
    with factory() as session, session.begin():
        yield session


def serialise(session: Session, *keys: str) -> None:
    """Hold, until the session's transaction ends, a lock that every other transaction
    calling this with one of `keys` waits for, in any process on the same database: a
    count-then-record (a throttle) is then one step.

    PostgreSQL: a transaction-level advisory lock per key (`pg_advisory_xact_lock` on 64
    bits of the key's SHA-256, taken in sorted order so two callers never deadlock).
    SQLite locks the whole database for writing: the transaction starts with BEGIN
    IMMEDIATE (the other writers wait, up to the busy timeout). Call it before the
    transaction reads what the lock protects: on SQLite it must be the transaction's
    first statement (pysqlite opens a transaction at the first write only; a transaction
    that has written already holds the lock).
    """
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        for key in sorted(set(keys)):
            number = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big",
                                    signed=True)
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": number})
        return
    if connection.dialect.name == "sqlite":
        raw = connection.connection.dbapi_connection
        if raw is not None and not getattr(raw, "in_transaction", True):
            connection.exec_driver_sql("BEGIN IMMEDIATE")


def _alembic_config(engine: Engine) -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(files("newsletter") / "migrations"))
    config.attributes["engine"] = engine
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Apply migrations up to `revision` (idempotent)."""
    from alembic import command

    try:
        command.upgrade(_alembic_config(engine), revision)
    except Exception as exc:  # driver errors carry the useful text
        raise DatabaseError(
            f"could not migrate the database at {engine.url!r}: {exc}. "
            "Check NEWSLETTER_DATABASE_URL and that the server is running."
        ) from exc


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision(engine: Engine) -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_alembic_config(engine)).get_current_head()


def ensure_schema(engine: Engine) -> None:
    """Bring the schema to the latest revision unless it already is."""
    if current_revision(engine) != head_revision(engine):
        upgrade(engine)
