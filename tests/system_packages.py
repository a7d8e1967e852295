"""The machine's software the suite needs, and installing what is missing (Debian/Ubuntu).

README command 2 is the whole set-up: on a fresh machine the first run installs the
server binaries the tests start privately (Redis, PostgreSQL), the Chromium the layout
tests drive, the Node.js/npm that fetches the pinned html-validate and mjml, and
Postfix's smtp-sink and smtp-source for the delivery benchmark's test (Postfix installed
with "No configuration": no mail server runs), and SpamAssassin, which scores rendered
issues offline (the rules Debian ships, no network tests), with apt-get, once per session,
when it may: as root, or through `sudo -n` (no password prompt). Otherwise it says what to run,
and the tests that need a missing program fail with that hint (never skipped).
NEWSLETTER_TESTS_NO_INSTALL=1 turns installing off.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from newsletter.screenshots import BrowserMissing, find_chromium
from tests.servers import ServerUnavailable, find_postgres_bindir

NO_INSTALL_ENV = "NEWSLETTER_TESTS_NO_INSTALL"
SBIN = Path("/usr/sbin")  # a module attribute so tests can point it elsewhere

# What the tests run -> the Debian package that provides it.
APT_PACKAGES: dict[str, str] = {
    "redis-server": "redis-server",
    "initdb": "postgresql",
    "postgres": "postgresql",
    "chromium": "chromium",
    "node": "nodejs",
    "npm": "npm",
    "smtp-sink": "postfix",
    "smtp-source": "postfix",
    "spamassassin": "spamassassin",
    "dovecot": "dovecot-imapd",
    "dnsmasq": "dnsmasq-base",
}
# Answers to the questions a package would ask while installing.
DEBCONF = {"postfix": "postfix postfix/main_mailer_type select No configuration"}


def _postgres(name: str) -> str | None:
    try:
        return str(find_postgres_bindir() / name)
    except ServerUnavailable:
        return None


def _chromium(name: str) -> str | None:
    try:
        return str(find_chromium())
    except BrowserMissing:
        return None


def _sbin(name: str) -> str | None:
    """On PATH, or in /usr/sbin where Postfix puts its tools (not on a user's PATH)."""
    found = shutil.which(name)
    if found is None and os.access(SBIN / name, os.X_OK):
        return str(SBIN / name)
    return found


# How each program is looked for: where the code that starts it looks.
_FINDERS: dict[str, Callable[[str], str | None]] = {
    "initdb": _postgres,
    "postgres": _postgres,
    "chromium": _chromium,
    "smtp-sink": _sbin,
    "smtp-source": _sbin,
    "dovecot": _sbin,
    "dnsmasq": _sbin,
}


def locate(program: str) -> str | None:
    """The path of `program` as the tests would find it, or None."""
    return _FINDERS.get(program, shutil.which)(program)


def missing_programs(find: Callable[[str], str | None] = locate) -> list[str]:
    """The programs the suite needs that `find` cannot find, in APT_PACKAGES order."""
    return [program for program in APT_PACKAGES if find(program) is None]


def apt_packages(programs: Iterable[str]) -> list[str]:
    """The Debian packages that provide `programs`, each once, in a stable order."""
    packages: list[str] = []
    for program in programs:
        package = APT_PACKAGES[program]
        if package not in packages:
            packages.append(package)
    return packages


def install_command(packages: Sequence[str]) -> str:
    return f"sudo apt-get install -y {' '.join(packages)}"


@dataclass(frozen=True)
class Outcome:
    """What happened to the missing packages, as one line for the end-of-run summary."""

    packages: tuple[str, ...]
    installed: bool
    message: str


def _privilege() -> list[str] | None:
    """The prefix that runs apt-get as root without asking anyone: [] as root, sudo -n."""
    if os.geteuid() == 0:
        return []
    sudo = shutil.which("sudo")
    if sudo is None:
        return None
    try:
        allowed = subprocess.run([sudo, "-n", "true"], capture_output=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return [sudo, "-n"] if allowed.returncode == 0 else None


def install_missing(
    packages: Sequence[str], announce: Callable[[str], None], *, timeout: float = 1800
) -> Outcome:
    """apt-get install `packages` if this process may; say what happened either way."""
    wanted = tuple(packages)
    hint = f"install them with `{install_command(wanted)}`"
    if os.environ.get(NO_INSTALL_ENV, "") not in ("", "0"):
        return Outcome(wanted, False, f"missing {', '.join(wanted)} ({NO_INSTALL_ENV} is "
                                      f"set, so not installing): {hint}")
    apt_get = shutil.which("apt-get")
    prefix = _privilege()
    if apt_get is None or prefix is None:
        why = "no apt-get on this machine" if apt_get is None else "not root and no `sudo -n`"
        return Outcome(wanted, False, f"missing {', '.join(wanted)} ({why}): {hint}; "
                                      "the tests that need them will fail with that hint")
    announce(f"installing {', '.join(wanted)} with apt-get (the tests need them; this "
             f"happens once per machine; {NO_INSTALL_ENV}=1 turns it off)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    answers = "".join(DEBCONF[p] + "\n" for p in wanted if p in DEBCONF)
    steps = [([apt_get, "update", "-qq"], None), ([apt_get, "install", "-y", "-qq", *wanted], None)]
    if answers:
        steps.insert(0, (["debconf-set-selections"], answers))
    for argv, stdin in steps:
        try:
            result = subprocess.run([*prefix, *argv], env=env, input=stdin or "",
                                    capture_output=True, text=True, timeout=timeout)
        except (OSError, subprocess.SubprocessError) as exc:
            return Outcome(wanted, False, f"`{' '.join(argv)}` failed ({exc}): {hint}")
        if result.returncode != 0:
            output = (result.stdout + result.stderr).strip()[-2000:]
            return Outcome(wanted, False, f"`{' '.join(argv[:2])}` failed with status "
                                          f"{result.returncode}: {hint}\n{output}")
    return Outcome(wanted, True, f"installed {', '.join(wanted)} with apt-get")


def ensure_installed(announce: Callable[[str], None]) -> Outcome | None:
    """Install what the suite needs and the machine lacks; None when nothing is missing."""
    packages = apt_packages(missing_programs())
    if not packages:
        return None
    outcome = install_missing(packages, announce)
    if outcome.installed:
        still = apt_packages(missing_programs())
        if still:
            return Outcome(outcome.packages, False, f"apt-get installed "
                           f"{', '.join(outcome.packages)} but {', '.join(still)} still cannot "
                           f"be found: {install_command(still)}")
    return outcome
