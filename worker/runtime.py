"""What a delivering process holds: settings, database sessions, one transport.

The CLI configures it explicitly; a Celery worker process builds it from the
environment on first use (after the fork, so no connection crosses processes).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from newsletter.db import make_engine, session_factory
from newsletter.settings import Settings, get_settings
from worker.ratelimit import Limiter, Limits, LocalLimiter, RedisLimiter, Unlimited
from worker.transports import OutboxTransport, RelayPool, SMTPTransport, Transport


@dataclass
class Runtime:
    settings: Settings
    sessions: sessionmaker[Session]
    transport: Transport

    @contextmanager
    def batch_session(self) -> Iterator[Session]:
        """One connection held for a whole batch, in autocommit: recording a reply is one
        statement and one round trip, not a pool checkout, a ping and a COMMIT. Every
        ledger write of a batch is a single statement, so autocommit loses no atomicity.
        On PostgreSQL the commits are asynchronous (synchronous_commit off): a worker
        that dies loses nothing committed; only a database crash could forget the last
        milliseconds, and those messages would be sent again, never lost."""
        engine = self.sessions.kw["bind"]
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            postgres = conn.dialect.name == "postgresql"
            if postgres:
                conn.exec_driver_sql("SET synchronous_commit TO off")
            try:
                with Session(bind=conn, expire_on_commit=False) as session:
                    yield session
            finally:
                if postgres and not conn.closed and not conn.invalidated:
                    # the connection goes back to the pool: other work commits durably
                    conn.exec_driver_sql("RESET synchronous_commit")


def limiter_for(settings: Settings) -> Limiter:
    defaults = Limits(settings.rate_per_second, settings.rate_per_hour)
    if settings.resolved_redis_url:
        import redis

        return RedisLimiter(redis.Redis.from_url(settings.resolved_redis_url), defaults)
    if defaults.per_second or defaults.per_hour:
        return LocalLimiter(defaults)
    return Unlimited()


def transport_for(settings: Settings) -> Transport:
    """SMTP relays (with failover and shared rate limits) or, without any, the outbox."""
    if settings.smtp_urls:
        relays = [
            SMTPTransport(url, timeout=settings.smtp_timeout,
                          local_hostname=settings.sender_domain)
            for url in settings.smtp_urls
        ]
        return RelayPool(relays, limiter_for(settings))
    return OutboxTransport(settings.resolved_outbox_dir)


def build(settings: Settings, transport: Transport | None = None) -> Runtime:
    """What a delivering process needs; every message it sends is DKIM-signed when the
    settings name a key (worker.dkim)."""
    from worker.dkim import signing

    engine = make_engine(settings.resolved_database_url)
    return Runtime(settings, session_factory(engine),
                   signing(transport or transport_for(settings), settings))


_current: Runtime | None = None


def configure(runtime: Runtime | None) -> None:
    """Make `runtime` the one tasks in this process use (None: rebuild from the environment)."""
    global _current
    if _current is not None and _current is not runtime:
        _current.transport.close()
    _current = runtime


def current() -> Runtime:
    global _current
    if _current is None:
        _current = build(get_settings())
    return _current
