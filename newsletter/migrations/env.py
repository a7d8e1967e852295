"""Alembic environment: runs on the engine handed in by `newsletter.db.upgrade`."""

from __future__ import annotations

from alembic import context

import newsletter.models  # noqa: F401  (registers tables)
import subscribers.models  # noqa: F401
from newsletter.db import Base, make_engine
from newsletter.settings import get_settings

engine = context.config.attributes.get("engine") or make_engine(
    get_settings().resolved_database_url
)

with engine.begin() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    context.run_migrations()
