"""Newsroom accounts: Argon2 passwords, roles, the last admin, the login throttle, and the
`newsletter users` commands."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest
from argon2 import PasswordHasher
from click.testing import CliRunner
from sqlalchemy.orm import Session, sessionmaker

from newsletter import users
from newsletter.cli import cli
from newsletter.users import LoginThrottled, UserError
from tests.newsroom import cheap_argon2  # noqa: F401 (a fixture)

pytestmark = pytest.mark.usefixtures("cheap_argon2")
NOW = datetime(2026, 12, 6, 12, 0)
GOOD = "correct horse battery"


def add(sessions: sessionmaker[Session], email: str, role: str = "editor",
        password: str = GOOD) -> None:
    with sessions() as session, session.begin():
        users.add_user(session, email, password, role, name="", now=NOW)


def login(sessions: sessionmaker[Session], email: str, password: str,
          client: str = "10.0.0.1", at: datetime = NOW) -> users.User | None:
    with sessions() as session, session.begin():
        return users.authenticate(session, email, password, client, now=at)


def test_addresses_are_one_account_whatever_their_case(
        sessions: sessionmaker[Session]) -> None:
    add(sessions, "Ana@Example.ORG", "admin")
    with pytest.raises(UserError, match="already a user ana@example.org"):
        add(sessions, "ana@example.org")
    with sessions() as session:
        [ana] = users.list_users(session)
        assert ana.email == "ana@example.org" and ana.role == "admin"
        assert ana.password_hash.startswith("$argon2id$") and GOOD not in ana.password_hash
    assert login(sessions, "ANA@example.org", GOOD) is not None


@pytest.mark.parametrize(("email", "password", "problem"), [
    ("bo@example.org", "short pass", "shorter than 12"),
    ("bo.lastname@example.org", "BO.LASTNAME@example.org", "is the email address"),
    ("bo.lastname12@example.org", "Bo.Lastname12", "is the email address"),
    ("not an address", GOOD, "not an email address"),
    ("bo@example.org", "undecodable \udcff bytes", "not valid text"),
])
def test_weak_passwords_and_bad_addresses_are_refused(
        email: str, password: str, problem: str) -> None:
    with pytest.raises(UserError, match=problem):
        users.check_password(password, users.normalise_email(email))


def test_the_last_admin_can_be_neither_removed_nor_demoted(
        sessions: sessionmaker[Session]) -> None:
    add(sessions, "ana@example.org", "admin")
    with sessions() as session, session.begin():
        with pytest.raises(UserError, match="last admin"):
            users.remove_user(session, "ana@example.org")
        with pytest.raises(UserError, match="last admin"):
            users.set_role(session, "ana@example.org", "editor")
    add(sessions, "bo@example.org", "admin")
    with sessions() as session, session.begin():
        users.set_role(session, "ana@example.org", "approver")
        with pytest.raises(UserError, match="last admin"):
            users.remove_user(session, "bo@example.org")
    with sessions() as session:
        assert [(u.email, u.role) for u in users.list_users(session)] == [
            ("ana@example.org", "approver"), ("bo@example.org", "admin")]


def test_wrong_password_and_unknown_address_look_the_same(
        sessions: sessionmaker[Session]) -> None:
    add(sessions, "ana@example.org")
    assert login(sessions, "ana@example.org", "wrong password!!") is None
    assert login(sessions, "nobody@example.org", GOOD) is None
    user = login(sessions, "ana@example.org", GOOD)
    assert user is not None and user.last_login_at == NOW


def test_five_failures_for_an_address_lock_it_for_fifteen_minutes(
        sessions: sessionmaker[Session]) -> None:
    add(sessions, "ana@example.org")
    for n in range(users.THROTTLE_FAILURES):  # from five different clients
        assert login(sessions, "ana@example.org", "wrong", client=f"10.0.0.{n}") is None
    with pytest.raises(LoginThrottled, match="15 minutes"):
        login(sessions, "ana@example.org", GOOD, client="10.9.9.9")
    # an unknown address is throttled the same way (no difference to learn from)
    for n in range(users.THROTTLE_FAILURES):
        login(sessions, "ghost@example.org", "wrong", client=f"10.1.0.{n}")
    with pytest.raises(LoginThrottled):
        login(sessions, "ghost@example.org", GOOD, client="10.9.9.9")
    # anything typed as the address is counted, nothing of it stored (PostgreSQL refuses NUL)
    for n in range(users.THROTTLE_FAILURES):
        assert login(sessions, "nul\x00\udcff@example.org", "wrong\udcff",
                     client=f"10.2.0.{n}") is None
    with pytest.raises(LoginThrottled):
        login(sessions, "nul\x00\udcff@example.org", "wrong", client="10.9.9.9")
    later = NOW + users.THROTTLE_WINDOW + timedelta(seconds=1)
    assert login(sessions, "ana@example.org", GOOD, client="10.9.9.9", at=later) is not None


def test_five_failures_from_one_client_lock_that_client(
        sessions: sessionmaker[Session]) -> None:
    add(sessions, "ana@example.org")
    for n in range(users.THROTTLE_FAILURES):  # one client trying many addresses
        login(sessions, f"guess{n}@example.org", "wrong", client="192.0.2.7")
    with pytest.raises(LoginThrottled):
        login(sessions, "ana@example.org", GOOD, client="192.0.2.7")
    assert login(sessions, "ana@example.org", GOOD, client="192.0.2.8") is not None


def test_a_hash_with_old_parameters_is_replaced_at_login(
        sessions: sessionmaker[Session]) -> None:
    add(sessions, "ana@example.org")
    weak = PasswordHasher(time_cost=1, memory_cost=8192).hash(GOOD)
    with sessions() as session, session.begin():
        users.get_user(session, "ana@example.org").password_hash = weak
    assert login(sessions, "ana@example.org", GOOD) is not None
    with sessions() as session:
        stored = users.get_user(session, "ana@example.org").password_hash
    assert stored != weak and not users.hasher().check_needs_rehash(stored)


def test_changing_a_password_needs_the_current_one(sessions: sessionmaker[Session]) -> None:
    add(sessions, "ana@example.org")
    with sessions() as session, session.begin():
        with pytest.raises(UserError, match="current password is wrong"):
            users.change_password(session, "ana@example.org", "not it at all", "a new long one")
        users.change_password(session, "ana@example.org", GOOD, "a new long one")
    assert login(sessions, "ana@example.org", "a new long one") is not None


def test_users_commands(runner: CliRunner) -> None:
    added = runner.invoke(cli, ["users", "add", "Ana@Example.org", "--role", "admin",
                                "--name", "Ana Mora", "--password-stdin"], input=GOOD + "\n")
    assert added.exit_code == 0, added.output
    prompted = runner.invoke(cli, ["users", "add", "bo@example.org", "--role", "editor",
                                   "--language", "es"], input=f"{GOOD}\n{GOOD}\n")
    assert prompted.exit_code == 0, prompted.output
    assert GOOD not in prompted.output  # hidden input
    assert runner.invoke(cli, ["users", "set-role", "bo@example.org", "approver"]).exit_code == 0
    listed = json.loads(runner.invoke(cli, ["users", "list", "--json"]).output)
    assert [(u["email"], u["name"], u["role"], u["language"]) for u in listed] == [
        ("ana@example.org", "Ana Mora", "admin", "en"), ("bo@example.org", "", "approver", "es")]
    assert all("password_hash" not in u for u in listed)
    last = runner.invoke(cli, ["users", "remove", "ana@example.org", "--yes"])
    assert last.exit_code == 1 and "last admin" in last.output
    assert "Traceback" not in last.output
    short = runner.invoke(cli, ["users", "set-password", "bo@example.org", "--password-stdin"],
                          input="short\n")
    assert short.exit_code == 1 and "shorter than 12" in short.output
    assert runner.invoke(cli, ["users", "remove", "bo@example.org", "--yes"]).exit_code == 0
    listed = json.loads(runner.invoke(cli, ["users", "list", "--json"]).output)
    assert [u["email"] for u in listed] == ["ana@example.org"]


def test_a_long_name_still_fits_what_approvals_record() -> None:
    """A name of up to MAX_NAME characters is allowed: the name the newsroom records for
    a step must still fit approvals' 200 characters (else nobody by that name could
    submit or approve an issue), and stay the same person's."""
    from newsletter.approval import clean_name

    long_one = users.User(email="ana@example.org", name="N" * users.MAX_NAME, role="editor")
    assert clean_name(long_one.display_name) == "ana@example.org"
    short = users.User(email="ana@example.org", name="Ana", role="editor")
    assert short.display_name == "Ana <ana@example.org>"
