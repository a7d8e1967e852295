"""Upgrading a database that holds data: nothing may be lost on SQLite or PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from newsletter.db import make_engine, session_factory, upgrade
from newsletter.issues import content_of, get_issue

pytestmark = pytest.mark.empty_database

NOW = {"now": "2019-10-01 00:00:00"}
TABLES = ("items", "item_translations", "issues", "issue_items", "issue_variants",
          "subscribers", "lists", "subscriptions", "deliveries", "issue_targets")

# One of everything, as the schema stood at revision 0005 (before issue 8).
ROWS_AT_0005 = [
    "INSERT INTO items (id, source_key, published, title, place, body, language, countries, "
    "created_at) VALUES (1, 'k1', '2019-10-10', 'Rain', 'San José', 'One.', 'en', 'CR', :now)",
    "INSERT INTO item_translations (item_id, language, title, place, body, updated_at) "
    "VALUES (1, 'es', 'Lluvia', 'San José', 'Uno.', :now)",
    "INSERT INTO issues (id, slug, title, date_from, date_to, status, created_at, focus, "
    "status_note) VALUES (1, '2019-10', 'October', '2019-10-01', '2019-10-31', 'sent', :now, "
    "'first', '')",
    "INSERT INTO issue_items (issue_id, item_id, position) VALUES (1, 1, 0)",
    "INSERT INTO issue_variants (issue_id, language, country, subject, html, text, "
    "rendered_at) VALUES (1, 'en', '', 'October', '<p>One.</p>', 'One.', :now)",
    "INSERT INTO subscribers (id, email, email_key, email_hash, name, country, language, "
    "status, attributes, created_at, updated_at) VALUES (1, 'ana@example.org', "
    "'ana@example.org', 'h1', 'Ana', 'CR', 'es', 'active', '{}', :now, :now)",
    "INSERT INTO lists (id, name, description, opt_in, created_at) "
    "VALUES (1, 'partners', '', 'double', :now)",
    "INSERT INTO subscriptions (list_id, subscriber_id, status, created_at, updated_at) "
    "VALUES (1, 1, 'confirmed', :now, :now)",
    "INSERT INTO deliveries (issue_id, subscriber_id, language, country, status, attempts, "
    "created_at, updated_at) VALUES (1, 1, 'es', 'CR', 'sent', 1, :now, :now)",
    "INSERT INTO issue_targets (issue_id, list_id) VALUES (1, 1)",
]


def _counts(conn: Connection) -> dict[str, int]:
    return {t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one() for t in TABLES}


def test_upgrading_a_populated_database_keeps_every_row(db_url: str) -> None:
    """0006 and 0008 rebuild `subscribers` on SQLite (batch mode): with foreign keys on,
    dropping the old table cascaded into subscriptions and deliveries."""
    engine = make_engine(db_url)
    try:
        upgrade(engine, "0005")
        with engine.begin() as conn:
            for statement in ROWS_AT_0005:
                conn.execute(text(statement), NOW)
            before = _counts(conn)
        assert set(before.values()) == {1}
        upgrade(engine)
        with engine.connect() as conn:
            assert _counts(conn) == before
            salt, language = conn.execute(
                text("SELECT token_salt, language FROM subscribers")).one()
            assert (salt, language) == ("", "es")
            assert conn.execute(text("SELECT edited FROM items")).scalar_one() == ""
        indexes = {i["name"] for i in inspect(engine).get_indexes("subscribers")}
        assert {"ix_subscribers_status", "ix_subscribers_email_hash"} <= indexes
        with session_factory(engine)() as session:
            content = content_of(get_issue(session, "2019-10"))
            assert content.title_in("es") == "October" and content.intro_in("es") == []
        # the migrations may switch SQLite's foreign keys off: they are back on after
        with pytest.raises(IntegrityError), engine.begin() as conn:
            conn.execute(text("INSERT INTO subscriptions (list_id, subscriber_id, status, "
                              "created_at, updated_at) VALUES (1, 99, 'confirmed', :now, "
                              ":now)"), NOW)
    finally:
        engine.dispose()



def test_the_migrated_schema_is_the_models_schema(db_url: str) -> None:
    """What `upgrade` builds is what the models declare: no table, column or index that
    one has and the other lacks (0018 dropped two indexes from both)."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    import newsletter.models  # noqa: F401  (registers every table on Base)
    import subscribers.models  # noqa: F401
    from newsletter.db import Base

    engine = make_engine(db_url)
    try:
        upgrade(engine)
        with engine.connect() as conn:
            differences = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        assert differences == []
        indexes = {i["name"] for i in inspect(engine).get_indexes("subscribers")}
        assert "ix_subscribers_country" not in indexes
        assert "ix_subscribers_country_language_status" in indexes
    finally:
        engine.dispose()
