"""What every command needs: settings, a migrated database, the delivery runtime."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import wraps
from typing import Any, TypeVar, cast

import click
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from newsletter.db import ensure_schema, make_engine, session_factory
from newsletter.errors import NewsletterError
from newsletter.settings import Settings

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class App:
    settings: Settings
    _engine: Engine | None = field(default=None, repr=False)

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = make_engine(self.settings.resolved_database_url)
            ensure_schema(self._engine)
        return self._engine

    @property
    def sessions(self) -> sessionmaker[Session]:
        return session_factory(self.engine)

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        with self.sessions() as session, session.begin():
            yield session


pass_app = click.make_pass_decorator(App)


def user_errors(func: F) -> F:
    """Turn the library's errors into a clean CLI message and exit status 1."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except NewsletterError as exc:
            raise click.ClickException(str(exc)) from exc

    return cast(F, wrapper)


def refuse_insecure_mailing(app: App, *, force: bool = False) -> None:
    """Stop before mailing real people by SMTP with settings that would make links
    forgeable, or while `newsletter doctor` finds a blocker (worker.preflight; `force`:
    a staging relay)."""
    from worker.preflight import mailing_blocker

    problem = mailing_blocker(app.settings, force=force)
    if problem:
        raise click.ClickException(problem)
