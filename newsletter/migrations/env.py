"""Alembic environment: runs on the engine handed in by `newsletter.db.upgrade`.

On SQLite, batch mode changes a table by copying it, dropping the old one and renaming
the copy. With foreign keys on (newsletter.db turns them on for every connection),
dropping `subscribers` would first delete every row that cascades from it: their
subscriptions and deliveries. So foreign keys are off while migrations run, as SQLite's
own procedure for altering a table says, checked before the commit, and on again after.
"""

from __future__ import annotations

from alembic import context

import newsletter.models  # noqa: F401  (registers tables)
import newsletter.users  # noqa: F401
import subscribers.models  # noqa: F401
from newsletter.db import Base, DatabaseError, make_engine
from newsletter.settings import get_settings

engine = context.config.attributes.get("engine") or make_engine(
    get_settings().resolved_database_url
)

with engine.connect() as connection:
    sqlite = connection.dialect.name == "sqlite"
    if sqlite:  # a no-op inside a transaction: set before it begins
        connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
        connection.commit()
    try:
        with connection.begin():
            context.configure(
                connection=connection,
                target_metadata=Base.metadata,
                render_as_batch=sqlite,
            )
            context.run_migrations()
            if sqlite and (broken := connection.exec_driver_sql(
                    "PRAGMA foreign_key_check").first()):
                raise DatabaseError(f"a migration left a row without its parent: {broken}")
    finally:
        if sqlite:
            connection.exec_driver_sql("PRAGMA foreign_keys=ON")
            connection.commit()
