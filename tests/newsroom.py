"""Helpers for newsroom tests: a real `newsletter serve` on loopback, users, logging in.

    with serve_newsroom(tmp_path) as (base_url, env):
        add_user(env, "ana@example.org", "admin", PASSWORD)
        login(page, base_url, "ana@example.org", PASSWORD)

`cheap_argon2` (a fixture: `pytestmark = pytest.mark.usefixtures("cheap_argon2")`) makes
in-process hashing fast: still Argon2, with the smallest parameters instead of the
defaults' 0.3 s a hash on this machine. The server subprocess keeps the defaults.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from playwright.sync_api import Page

from newsletter import users
from newsletter.db import make_engine, session_factory, utcnow

PASSWORD = "correct horse battery"
START_TIMEOUT = 30.0


@pytest.fixture
def cheap_argon2(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    fast = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    monkeypatch.setattr(users, "hasher", lambda: fast)
    users._dummy_hash.cache_clear()
    yield
    users._dummy_hash.cache_clear()


@contextmanager
def serve_newsroom(tmp_path: Path, **settings: str) -> Iterator[tuple[str, dict[str, str]]]:
    """`newsletter serve` on 127.0.0.1 (a port the system picks) over a new SQLite
    database in `tmp_path`; yields (base URL, the environment the server runs with).
    Extra NEWSLETTER_* variables come as keyword arguments (`NEWSLETTER_LANGUAGES="en,es"`)."""
    env = {
        **os.environ,
        "NEWSLETTER_VAR_DIR": str(tmp_path / "var"),
        "NEWSLETTER_DATABASE_URL": f"sqlite:///{tmp_path / 'newsroom.db'}",
        "NEWSLETTER_BROKER_URL": "",
        "NEWSLETTER_SMTP_URL": "",
        "NEWSLETTER_SECRET_KEY": "newsroom-test-secret",
        "NEWSLETTER_PUBLIC_BASE_URL": "http://127.0.0.1",
        **settings,
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "newsletter", "serve", "--host", "127.0.0.1", "--port", "0"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        first = process.stdout.readline()  # "serving on http://127.0.0.1:PORT (...)"
        if not first.startswith("serving on "):
            process.kill()
            raise RuntimeError(f"newsletter serve did not start: {first}"
                               f"{process.stderr.read() if process.stderr else ''}")
        base_url = first.split()[2]
        _wait_for(base_url + "/healthz")
        yield base_url, env
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_for(url: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError):
            if time.monotonic() > deadline:
                raise
        time.sleep(0.05)  # polling a server that is starting, not waiting for a time


def add_user(env: dict[str, str], email: str, role: str, password: str = PASSWORD, *,
             name: str = "", language: str = "en") -> None:
    """An account in the served database (through the library, as `users add` does)."""
    engine = make_engine(env["NEWSLETTER_DATABASE_URL"])
    try:
        with session_factory(engine)() as session, session.begin():
            users.add_user(session, email, password, role, name=name, language=language,
                           now=utcnow())
    finally:
        engine.dispose()


def login(page: Page, base_url: str, email: str, password: str = PASSWORD) -> None:
    """Log in through the form, by its labels, and wait for the page after it."""
    page.goto(base_url + "/admin/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    with page.expect_navigation():
        page.get_by_role("button", name="Log in").click()
