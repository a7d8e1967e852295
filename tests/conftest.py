"""Shared fixtures: a database on SQLite and on PostgreSQL, settings, a CLI runner.

The server fixtures (`redis_server`, `postgres_server`, `smtp_server`) come from
`tests/conftest_servers.py`, loaded as a plugin by pyproject's addopts.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from newsletter.db import make_engine, session_factory, upgrade
from newsletter.settings import Settings
from tests.servers import PostgresServer

FIXTURES = Path(__file__).parent / "fixtures"
EMPTY = "empty_database"  # the marker for a test that needs `db_url` unmigrated

# Property-based tests of everything that reads outside input. The suite runs a bounded
# number of examples; NEWSLETTER_FUZZ_EXAMPLES=10000 makes the long run, e.g.
#   NEWSLETTER_FUZZ_EXAMPLES=10000 .venv/bin/python -m pytest -m fuzz
hypothesis_settings.register_profile(
    "suite",
    max_examples=int(os.environ.get("NEWSLETTER_FUZZ_EXAMPLES", "150")),
    deadline=None,
    derandomize=os.environ.get("NEWSLETTER_FUZZ_EXAMPLES") is None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    database=None,
)
hypothesis_settings.load_profile("suite")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", f"{EMPTY}: `db_url` is an empty database (no migration applied)")


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated to the head once per run, for `db_url` to copy."""
    path = tmp_path_factory.mktemp("template") / "migrated.db"
    engine = make_engine(f"sqlite:///{path}")
    try:
        upgrade(engine)
    finally:
        engine.dispose()  # the last connection closing checkpoints the WAL into the file
    return path


@pytest.fixture(scope="session")
def postgres_template(postgres_server: PostgresServer) -> str:
    """A PostgreSQL database migrated to the head once per run, for `db_url` to copy
    (CREATE DATABASE ... TEMPLATE); nothing stays connected to it."""
    name = "t_migrated_template"
    postgres_server.create_database(name)
    engine = make_engine(postgres_server.url_for(name))
    try:
        upgrade(engine)
    finally:
        engine.dispose()
    return name


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database of each kind for this test alone, dropped after it: a copy of one
    migrated to the head once per run (migrating takes longer than copying), or an empty
    one for a test marked `empty_database` (migrations, first use of a new database)."""
    empty = request.node.get_closest_marker(EMPTY) is not None
    if request.param == "sqlite":
        path = tmp_path / "test.db"
        if not empty:
            shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        yield f"sqlite:///{path}"
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    template = None if empty else request.getfixturevalue("postgres_template")
    name = f"t_{uuid.uuid4().hex[:12]}"
    server.create_database(name, template=template)
    try:
        yield server.url_for(name)
    finally:
        server.drop_database(name)


@pytest.fixture
def engine(request: pytest.FixtureRequest, db_url: str) -> Iterator[Engine]:
    """An engine on `db_url`, at the schema's head (the copy is; an empty one is migrated)."""
    engine = make_engine(db_url)
    if request.node.get_closest_marker(EMPTY) is not None:
        upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    return session_factory(engine)


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    return Settings(
        var_dir=tmp_path / "var",
        database_url=db_url,
        broker_url="",
        smtp_url="",
        secret_key="test-secret",
        sender_name="Boletín Regional",
        sender_email="news@example.org",
        public_base_url="https://news.example.org",
    )


@pytest.fixture
def cli_env(settings: Settings) -> dict[str, str]:
    """The environment that makes the `newsletter` command use this test's settings."""
    return {
        "NEWSLETTER_VAR_DIR": str(settings.var_dir),
        "NEWSLETTER_DATABASE_URL": settings.resolved_database_url,
        "NEWSLETTER_BROKER_URL": "",
        "NEWSLETTER_SMTP_URL": "",
        # the tests' relays are staging relays: example.org senders and the placeholder
        # postal address would stop a real send (tests/newsletter/test_doctor.py)
        "NEWSLETTER_ALLOW_BLOCKED_SENDING": "true",
        "NEWSLETTER_SECRET_KEY": settings.secret_key,
        "NEWSLETTER_SENDER_NAME": settings.sender_name,
        "NEWSLETTER_PUBLIC_BASE_URL": settings.public_base_url,
    }


@pytest.fixture
def runner(cli_env: dict[str, str]) -> CliRunner:
    return CliRunner(env=cli_env)
