"""The suite sets up the machine it needs (tests/system_packages.py), and says so."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests import system_packages
from tests.system_packages import apt_packages, install_missing, locate, missing_programs

ROOT = Path(__file__).resolve().parents[1]


def finder(*present: str) -> Callable[[str], str | None]:
    return lambda program: f"/usr/bin/{program}" if program in present else None


ALL = ("redis-server", "initdb", "postgres", "chromium", "node", "npm", "smtp-sink",
       "smtp-source", "spamassassin", "dovecot", "dnsmasq")


def but(*absent: str) -> tuple[str, ...]:
    return tuple(p for p in ALL if p not in absent)


@pytest.mark.parametrize(("present", "packages"), [
    ((), ["redis-server", "postgresql", "chromium", "nodejs", "npm", "postfix", "spamassassin",
          "dovecot-imapd", "dnsmasq-base"]),
    (ALL, []),
    (but("postgres"), ["postgresql"]),  # initdb alone (libpq's tools) is not the server
    (but("redis-server", "node", "npm"), ["redis-server", "nodejs", "npm"]),
    (but("npm"), ["npm"]),
    (but("smtp-source"), ["postfix"]),
    (but("spamassassin"), ["spamassassin"]),
    (but("dovecot"), ["dovecot-imapd"]),
    (but("dnsmasq"), ["dnsmasq-base"]),
])
def test_missing_programs_become_the_apt_packages_ci_installed(
    present: tuple[str, ...], packages: list[str]
) -> None:
    assert apt_packages(missing_programs(finder(*present))) == packages


def test_programs_are_looked_for_where_the_tests_look(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("redis-server", "chrome"):
        program = tmp_path / name
        program.write_text("#!/bin/sh\n")
        program.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("NEWSLETTER_CHROMIUM", str(tmp_path / "chrome"))
    monkeypatch.setattr("tests.servers.PG_LIB_GLOB", str(tmp_path / "nowhere" / "*"))
    assert locate("redis-server") == str(tmp_path / "redis-server")
    assert locate("chromium") == str(tmp_path / "chrome")  # as newsletter.screenshots finds it
    assert locate("npm") is None
    assert locate("initdb") is None
    monkeypatch.setattr(system_packages, "SBIN", tmp_path / "nowhere")
    assert apt_packages(missing_programs()) == ["postgresql", "nodejs", "npm", "postfix",
                                                "spamassassin", "dovecot-imapd",
                                                "dnsmasq-base"]


def test_when_it_may_not_install_it_says_what_to_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(system_packages.NO_INSTALL_ENV, "1")
    said: list[str] = []
    outcome = install_missing(["chromium", "nodejs", "npm"], said.append)
    assert not outcome.installed and said == []
    assert "sudo apt-get install -y chromium nodejs npm" in outcome.message


def test_a_run_without_tests_fails_loudly_and_still_lists_the_servers() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "tests/test_deployment.py",
         "-k", "no_test_has_this_name"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == pytest.ExitCode.NO_TESTS_COLLECTED, result.stdout
    assert "private test servers" in result.stdout
    assert "none started in this run" in result.stdout
    assert "NO TESTS RAN (pytest exit status 5)" in result.stdout
