"""What a delivering process holds: settings, database sessions, one transport.

The CLI configures it explicitly; a Celery worker process builds it from the
environment on first use (after the fork, so no connection crosses processes).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from newsletter.db import make_engine, session_factory
from newsletter.settings import Settings, get_settings
from worker.transports import OutboxTransport, SMTPTransport, Transport


@dataclass
class Runtime:
    settings: Settings
    sessions: sessionmaker[Session]
    transport: Transport


def transport_for(settings: Settings) -> Transport:
    if settings.smtp_url:
        return SMTPTransport(
            settings.smtp_url, timeout=settings.smtp_timeout, local_hostname=settings.sender_domain
        )
    return OutboxTransport(settings.resolved_outbox_dir)


def build(settings: Settings, transport: Transport | None = None) -> Runtime:
    engine = make_engine(settings.resolved_database_url)
    return Runtime(settings, session_factory(engine), transport or transport_for(settings))


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
