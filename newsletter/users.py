"""People who work in the newsroom: accounts, roles, passwords, and the login throttle.

An account is an email address (unique whatever its case), a name, a role and an
Argon2 password hash (argon2-cffi's defaults; a hash made with older parameters is
replaced at the next good login). Roles grow: an editor prepares items and issues, an
approver also approves, an admin also manages people. There is always at least one admin.

Failed logins are rows in `login_failures`, keyed by address and by client address: five
of either in 15 minutes and logins for it are refused for 15 minutes, whether the address
has an account or not. Pure of the clock: `now` (naive UTC) is passed in.
"""

from __future__ import annotations

import hashlib
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import DateTime, Integer, String, delete, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from newsletter.db import Base, utcnow
from newsletter.errors import N_, NewsletterError

ROLES = ("editor", "approver", "admin")
LANGUAGES = ("en", "es")  # the newsroom's own interface languages
MIN_PASSWORD = 12
MAX_PASSWORD = 1024  # Argon2 takes any length; a megabyte password is a denial of service
MAX_EMAIL = 254
MAX_NAME = 200
MAX_BY = 200  # what an approval keeps of who took a step (approval.MAX_NAME)
THROTTLE_FAILURES = 5
THROTTLE_WINDOW = timedelta(minutes=15)


class UserError(NewsletterError):
    """A change to an account cannot be made as asked."""


class LoginThrottled(NewsletterError):
    """Too many failed logins for this address or from this client."""


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # stored folded to lower case (unique index): one account per address, whatever its case
    email: Mapped[str] = mapped_column(String(MAX_EMAIL), unique=True)
    name: Mapped[str] = mapped_column(String(MAX_NAME), default="")
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))
    language: Mapped[str] = mapped_column(String(8), default="en")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(DateTime)

    @property
    def display_name(self) -> str:
        """What approvals record as `by`: the name, else the address (both unique enough
        for "nobody approves their own issue", since the address is unique). The address
        alone when both would not fit the 200 characters an approval keeps of it."""
        both = f"{self.name} <{self.email}>"
        return both if self.name and len(both) <= MAX_BY else self.email

    def can(self, role: str) -> bool:
        """Whether this user holds `role` or a higher one."""
        return ROLES.index(self.role) >= ROLES.index(role)


class LoginFailure(Base):
    __tablename__ = "login_failures"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # SHA-256 of "email:<address as typed, lower case>" or "ip:<client address>"
    key: Mapped[str] = mapped_column(String(300), index=True)
    at: Mapped[datetime] = mapped_column(DateTime, index=True)


@dataclass(frozen=True)
class UserView:
    """An account as the CLI and pages show it (never the hash)."""

    email: str
    name: str
    role: str
    language: str
    created_at: datetime
    last_login_at: datetime | None

    def as_dict(self) -> dict[str, str | None]:
        return {
            "email": self.email, "name": self.name, "role": self.role,
            "language": self.language, "created_at": self.created_at.isoformat(),
            "last_login_at": self.last_login_at.isoformat() if self.last_login_at else None,
        }


def view(user: User) -> UserView:
    return UserView(user.email, user.name, user.role, user.language, user.created_at,
                    user.last_login_at)


@lru_cache(maxsize=1)
def hasher() -> PasswordHasher:
    return PasswordHasher()


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    """A hash to verify against for unknown addresses, so they take as long as known ones."""
    return hasher().hash("not a password anyone has: " + "x" * MIN_PASSWORD)


def normalise_email(raw: str) -> str:
    email = unicodedata.normalize("NFC", raw).strip().lower()
    local, at, domain = email.partition("@")
    if not (local and at and domain) or "@" in domain or len(email) > MAX_EMAIL \
            or any(c.isspace() or ord(c) < 32 or c == "\x7f" for c in email):
        raise UserError.translatable(
            N_("%(text)r is not an email address: give one like ana@example.org"),
            text=raw.strip()[:80])
    return email


def _clean_name(raw: str) -> str:
    name = unicodedata.normalize("NFC", raw).strip()
    if any(ord(c) < 32 or 0x7f <= ord(c) <= 0x9f or c in "\u2028\u2029<>" for c in name):
        raise UserError.translatable(N_(
            "the name holds a line break, a control character or < >: give a name on one "
            "line"))
    if len(name) > MAX_NAME:
        raise UserError.translatable(N_("the name is longer than %(max)s characters"),
                                     max=MAX_NAME)
    return name


def check_role(role: str) -> str:
    if role not in ROLES:
        raise UserError.translatable(N_("unknown role %(role)r: choose one of %(roles)s"),
                                     role=role[:40], roles=", ".join(ROLES))
    return role


def check_language(language: str) -> str:
    if language not in LANGUAGES:
        raise UserError.translatable(
            N_("unknown interface language %(language)r: choose one of %(languages)s"),
            language=language[:40], languages=", ".join(LANGUAGES))
    return language


def check_password(password: str, email: str) -> None:
    """Length is what makes a password strong; the address is the first guess."""
    if len(password) < MIN_PASSWORD:
        raise UserError.translatable(
            N_("the password is shorter than %(min)s characters: choose a longer one (a few "
               "words make a good one)"), min=MIN_PASSWORD)
    if len(password) > MAX_PASSWORD:
        raise UserError.translatable(N_("the password is longer than %(max)s characters"),
                                     max=MAX_PASSWORD)
    try:
        password.encode()
    except UnicodeEncodeError as exc:
        raise UserError("the password is not valid text (undecodable bytes on standard "
                        "input?): type it again") from exc
    if password.strip().lower() in {email.lower(), email.partition("@")[0].lower()}:
        raise UserError.translatable(N_("the password is the email address: choose another"))


def find_user(session: Session, email: str) -> User | None:
    try:
        address = normalise_email(email)
    except UserError:
        return None
    return session.scalar(select(User).where(User.email == address))


def get_user(session: Session, email: str) -> User:
    user = find_user(session, email)
    if user is None:
        raise UserError.translatable(N_("no user %(email)r"), email=email.strip()[:80],
                                     hint=": see `newsletter users list`")
    return user


def list_users(session: Session) -> list[User]:
    return list(session.scalars(select(User).order_by(User.email)))


def add_user(session: Session, email: str, password: str, role: str, *, name: str = "",
             language: str = "en", now: datetime) -> User:
    address = normalise_email(email)
    check_role(role)
    check_language(language)
    check_password(password, address)
    if find_user(session, address) is not None:
        raise UserError.translatable(
            N_("there is already a user %(email)s"), email=address,
            hint=": change them with `users set-role` or `users set-password`")
    user = User(email=address, name=_clean_name(name), role=role, language=language,
                password_hash=hasher().hash(password), created_at=now)
    session.add(user)
    session.flush()
    return user


def _admins(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(User)
                          .where(User.role == "admin")) or 0


def remove_user(session: Session, email: str) -> None:
    user = get_user(session, email)
    if user.role == "admin" and _admins(session) <= 1:
        raise UserError.translatable(
            N_("%(email)s is the last admin: make someone else admin first"), email=user.email)
    session.delete(user)
    session.flush()


def set_role(session: Session, email: str, role: str) -> User:
    user = get_user(session, email)
    check_role(role)
    if user.role == "admin" and role != "admin" and _admins(session) <= 1:
        raise UserError.translatable(
            N_("%(email)s is the last admin: make someone else admin first"), email=user.email)
    user.role = role
    session.flush()
    return user


def set_password(session: Session, email: str, password: str) -> User:
    user = get_user(session, email)
    check_password(password, user.email)
    user.password_hash = hasher().hash(password)
    session.flush()
    return user


def set_language(session: Session, email: str, language: str) -> User:
    user = get_user(session, email)
    user.language = check_language(language)
    session.flush()
    return user


def _bytes(password: str) -> bytes:
    return password[:MAX_PASSWORD + 1].encode("utf-8", "surrogatepass")


def verify_password(user: User, password: str) -> bool:
    if len(password) > MAX_PASSWORD:
        return False
    try:
        return hasher().verify(user.password_hash, _bytes(password))
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def change_password(session: Session, email: str, current: str, new: str) -> User:
    """The account page: the current password proves it is the person, not a left-open tab."""
    user = get_user(session, email)
    if not verify_password(user, current):
        raise UserError.translatable(N_("the current password is wrong"))
    return set_password(session, email, new)


# --- logging in ---------------------------------------------------------------------

def _keys(email: str, client: str) -> tuple[str, str]:
    """Hashed: what people type into the Email field (sometimes a password, sometimes a
    NUL that PostgreSQL would refuse) is never stored."""
    return (hashlib.sha256(f"email:{email.strip().lower()}".encode(errors="replace")).hexdigest(),
            hashlib.sha256(f"ip:{client}".encode(errors="replace")).hexdigest())


def throttled(session: Session, email: str, client: str, *, now: datetime) -> bool:
    since = now - THROTTLE_WINDOW
    for key in _keys(email, client):
        count = session.scalar(select(func.count()).select_from(LoginFailure)
                               .where(LoginFailure.key == key, LoginFailure.at > since))
        if (count or 0) >= THROTTLE_FAILURES:
            return True
    return False


def authenticate(session: Session, email: str, password: str, client: str, *,
                 now: datetime) -> User | None:
    """The user these credentials belong to, or None (the same for an unknown address
    and a wrong password, and about as slow). Raises LoginThrottled after
    THROTTLE_FAILURES failures in THROTTLE_WINDOW for the address or the client; a
    failure is recorded, a success clears the address's failures and rehashes the
    password if Argon2's parameters changed since it was hashed."""
    if throttled(session, email, client, now=now):
        raise LoginThrottled(
            f"too many failed logins: try again in {THROTTLE_WINDOW.seconds // 60} minutes")
    user = find_user(session, email)
    if user is None:
        try:
            hasher().verify(_dummy_hash(), _bytes(password))
        except VerificationError:
            pass
    elif verify_password(user, password):
        if hasher().check_needs_rehash(user.password_hash):
            user.password_hash = hasher().hash(password)
        user.last_login_at = now
        session.execute(delete(LoginFailure).where(LoginFailure.key == _keys(email, client)[0]))
        session.flush()
        return user
    # old failures nobody will count again (an index on `at` keeps this cheap)
    session.execute(delete(LoginFailure).where(LoginFailure.at <= now - THROTTLE_WINDOW))
    for key in _keys(email, client):
        session.add(LoginFailure(key=key, at=now))
    session.flush()
    return None
