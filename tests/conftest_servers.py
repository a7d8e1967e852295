"""pytest plugin: fixtures that start PRIVATE servers (see tests/servers.py).

Load it with ``-p tests.conftest_servers`` (pyproject's addopts does) or
``from tests.conftest_servers import *`` in a conftest.py.

* ``redis_server``    (session)  -> :class:`tests.servers.RedisServer`
* ``postgres_server`` (session)  -> :class:`tests.servers.PostgresServer`
* ``smtp_server``     (function) -> :class:`tests.servers.SmtpServer`

Before the first test, programs the suite needs and the machine lacks are installed
with apt-get when the run may (as root or with ``sudo -n``; see tests/system_packages.py),
so README command 2 is the whole set-up on a fresh Debian machine. A server binary that
is still missing makes the test FAIL (never skip) with the install hint, so a green run
always means the service-backed tests really ran. Each started
server is announced on stderr, in the ``tests.servers`` log, and in the
terminal summary at the end of the run. Tests using these fixtures get the
``services`` marker automatically (select them with ``-m services``).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterator
from typing import TypeVar

import pytest

from tests import system_packages
from tests.servers import (
    PostgresServer,
    RedisServer,
    ServerUnavailable,
    SmtpServer,
    start_postgres,
    start_redis,
    start_smtp,
)

# Only the fixtures: a star-import in conftest.py must not register the hooks a
# second time when the module is also loaded with -p (duplicate summary lines).
__all__ = ["postgres_server", "redis_server", "smtp_server"]

log = logging.getLogger("tests.servers")

SERVER_FIXTURES = frozenset({"redis_server", "postgres_server", "smtp_server"})

T = TypeVar("T")

# What the fixtures started during this run, for the terminal summary.
_started: list[str] = []
_installed: list[str] = []  # what apt-get was asked for, and what came of it
_smtp_starts = 0


def start_or_fail(what: str, start: Callable[[], T]) -> T:
    """Run `start`; turn :class:`ServerUnavailable` into ``pytest.fail`` (not a skip)."""
    try:
        return start()
    except ServerUnavailable as exc:
        reason = f"cannot start private {what}: {exc}"
    pytest.fail(reason, pytrace=False)  # outside `except`: no chained traceback


def announce(message: str) -> None:
    print(message, file=sys.stderr)
    log.info(message)


def record_started(message: str) -> None:
    """Announce a process a test started, and list it in the end-of-run summary."""
    announce(message)
    _started.append(message)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    tmpdir = tmp_path_factory.mktemp("redis")
    server = start_or_fail("redis-server", lambda: start_redis(tmpdir))
    message = (
        f"started private redis-server on {server.host}:{server.port} "
        f"({server.start_seconds:.2f}s, pid {server.pid}, dir {tmpdir})"
    )
    announce(message)
    _started.append(message)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    tmpdir = tmp_path_factory.mktemp("postgres")
    server = start_or_fail("PostgreSQL", lambda: start_postgres(tmpdir))
    message = (
        f"started private postgres on {server.host}:{server.port} "
        f"(initdb {server.initdb_seconds:.2f}s + start {server.start_seconds:.2f}s, "
        f"data {server.data_dir})"
    )
    announce(message)
    _started.append(message)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    global _smtp_starts
    server = start_or_fail("SMTP server", start_smtp)
    announce(f"started private SMTP server on {server.host}:{server.port}")
    _smtp_starts += 1
    try:
        yield server
    finally:
        server.stop()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if SERVER_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.services)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Once per run, before the first test: install the programs the suite needs."""
    if session.config.option.collectonly or not session.items:
        return
    outcome = system_packages.ensure_installed(announce)
    if outcome is not None:
        announce(outcome.message)
        _installed.append(outcome.message)


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, exitstatus: int
) -> None:
    lines = [*_installed, *_started]
    if _smtp_starts:
        lines.append(f"started {_smtp_starts} private SMTP server(s) on 127.0.0.1 (aiosmtpd)")
    terminalreporter.write_sep("-", "private test servers")
    for line in lines or ["none started in this run"]:
        terminalreporter.write_line(line)
    if exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED:
        terminalreporter.write_line(
            "NO TESTS RAN (pytest exit status 5): check the paths, -k and -m given; "
            "a run that tests nothing is a failure, not a pass", red=True, bold=True)
