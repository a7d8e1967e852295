"""People who work in the newsroom: accounts, roles, passwords, and the login throttle.

An account is an email address (unique whatever its case), a name, a role and an
Argon2 password hash (argon2-cffi's defaults; a hash made with older parameters is
replaced at the next good login). Roles grow: an editor prepares items, issues, series and
feeds; an approver also approves, schedules and sends; an admin also manages people and
changes or exports subscribers. There is always at least one admin. What each role may do
is `PERMISSIONS`, the one table the newsroom's views, its templates and `users list` read
(`User.may`).

A login is a row in `user_sessions` (`start_session`): the browser's cookie carries a
random token, the table only its SHA-256. Logging out revokes the row, so a copied cookie
is worth nothing after it; a new password, a new role or a removal revokes the user's
other sessions (`revoke_sessions`).

Failed logins are rows in `login_failures`, keyed by address and by client address: five
of either in 15 minutes and logins for it are refused for 15 minutes, whether the address
has an account or not. Counting and recording are one step for every process on the
database (`db.serialise` on both keys). Pure of the clock: `now` (naive UTC) is passed in.
"""

from __future__ import annotations

import hashlib
import secrets
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import (
    Boolean,
    DateTime,
    ForeignKey,
    Integer,
    String,
    delete,
    func,
    select,
    update,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from newsletter.db import Base, serialise, utcnow
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
SESSION_LIFETIME = timedelta(hours=12)  # from the login, however busy the session is
SEEN_EVERY = timedelta(minutes=1)  # how stale `last_seen_at` may get (one write a minute)
MAX_AGENT = 120  # what a session keeps of the browser's User-Agent

_EVERYONE = ROLES
_APPROVERS = ("approver", "admin")
_ADMINS = ("admin",)
# What each role may do: the one place the newsroom's guards (`web.auth.require`), its
# templates (`user.may`) and `newsletter users list` read.
PERMISSIONS: dict[str, tuple[str, ...]] = {
    "newsroom.read": _EVERYONE,  # dashboard, items, issues, previews, series, feeds, progress
    "account.change": _EVERYONE,  # one's own language, password and sessions
    "items.change": _EVERYONE,  # edit, translate, delete, upload
    "issues.change": _EVERYONE,  # create, build, change items and texts, submit, test-send
    "series.change": _EVERYONE,  # create, pause, resume, delete, build now
    "feeds.change": _EVERYONE,  # add, fetch now, remove
    "issues.approve": _APPROVERS,  # approve or reject someone else's issue
    "issues.schedule": _APPROVERS,  # schedule and unschedule
    "issues.send": _APPROVERS,  # send now, pause, resume, cancel a send
    "subscribers.read": _EVERYONE,  # search, counts, one person's history
    "subscribers.change": _ADMINS,  # unsubscribe, suppress
    "subscribers.export": _ADMINS,  # the CSV download: everyone's personal data at once
    "users.manage": _ADMINS,  # add, change role, remove, log out
}


def permissions_of(role: str) -> list[str]:
    """The permissions `role` holds, in the table's order."""
    return [name for name, roles in PERMISSIONS.items() if role in roles]


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

    def may(self, permission: str) -> bool:
        """Whether this user's role holds `permission` (a key of PERMISSIONS)."""
        if permission not in PERMISSIONS:
            raise ValueError(f"unknown permission {permission!r}")
        return self.role in PERMISSIONS[permission]


class LoginFailure(Base):
    __tablename__ = "login_failures"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # SHA-256 of "email:<address as typed, lower case>" or "ip:<client address>"
    key: Mapped[str] = mapped_column(String(300), index=True)
    at: Mapped[datetime] = mapped_column(DateTime, index=True)


class UserSession(Base):
    """One login: the cookie carries a random token, this row only its SHA-256."""

    __tablename__ = "user_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, index=True)
    last_seen_at: Mapped[datetime] = mapped_column(DateTime)
    user_agent: Mapped[str] = mapped_column(String(MAX_AGENT), default="")
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)


@dataclass(frozen=True)
class UserView:
    """An account as the CLI and pages show it (never the hash)."""

    email: str
    name: str
    role: str
    language: str
    created_at: datetime
    last_login_at: datetime | None

    @property
    def permissions(self) -> list[str]:
        return permissions_of(self.role)

    def as_dict(self) -> dict[str, str | list[str] | None]:
        return {
            "email": self.email, "name": self.name, "role": self.role,
            "language": self.language, "created_at": self.created_at.isoformat(),
            "last_login_at": self.last_login_at.isoformat() if self.last_login_at else None,
            "permissions": self.permissions,
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
    """Remove the account and every session of it."""
    user = get_user(session, email)
    if user.role == "admin" and _admins(session) <= 1:
        raise UserError.translatable(
            N_("%(email)s is the last admin: make someone else admin first"), email=user.email)
    session.execute(delete(UserSession).where(UserSession.user_id == user.id))
    session.delete(user)
    session.flush()


def set_role(session: Session, email: str, role: str, *, keep: str | None = None) -> User:
    """Give the user `role`; a change revokes their sessions but `keep` (a cookie's token:
    the session of an admin who changes their own role)."""
    user = get_user(session, email)
    check_role(role)
    if user.role == "admin" and role != "admin" and _admins(session) <= 1:
        raise UserError.translatable(
            N_("%(email)s is the last admin: make someone else admin first"), email=user.email)
    if role != user.role:
        revoke_sessions(session, user.email, keep=keep)
    user.role = role
    session.flush()
    return user


def set_password(session: Session, email: str, password: str, *,
                 keep: str | None = None) -> User:
    """A new password; every session of the user ends but `keep` (a cookie's token)."""
    user = get_user(session, email)
    check_password(password, user.email)
    user.password_hash = hasher().hash(password)
    revoke_sessions(session, user.email, keep=keep)
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


def change_password(session: Session, email: str, current: str, new: str, *,
                    keep: str | None = None) -> User:
    """The account page: the current password proves it is the person, not a left-open tab.
    The user's other sessions end; `keep` is this one's token."""
    user = get_user(session, email)
    if not verify_password(user, current):
        raise UserError.translatable(N_("the current password is wrong"))
    return set_password(session, email, new, keep=keep)


# --- sessions -----------------------------------------------------------------------

@dataclass(frozen=True)
class SessionView:
    """A session as the account page and `users sessions` show it (never its token)."""

    id: int
    created_at: datetime
    last_seen_at: datetime
    user_agent: str
    current: bool = False

    def as_dict(self) -> dict[str, str | int | bool]:
        return {"id": self.id, "created_at": self.created_at.isoformat(),
                "last_seen_at": self.last_seen_at.isoformat(),
                "user_agent": self.user_agent, "current": self.current}


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode(errors="replace")).hexdigest()


def _agent(raw: str) -> str:
    """The User-Agent, on one line and short: enough to tell a laptop from a phone."""
    text = "".join(c for c in raw if c.isprintable())
    return " ".join(text.split())[:MAX_AGENT]


def purge_sessions(session: Session, *, now: datetime) -> int:
    """Delete sessions past their lifetime (revoked or not): nobody can use them again."""
    result = session.execute(delete(UserSession)
                             .where(UserSession.created_at <= now - SESSION_LIFETIME))
    return int(getattr(result, "rowcount", 0) or 0)


def start_session(session: Session, user: User, user_agent: str = "", *,
                  now: datetime) -> str:
    """A new session for `user`; the token its cookie carries (stored only hashed).
    Expired sessions of everyone are purged on the way."""
    purge_sessions(session, now=now)
    token = secrets.token_urlsafe(32)
    session.add(UserSession(token_hash=_token_hash(token), user_id=user.id, created_at=now,
                            last_seen_at=now, user_agent=_agent(user_agent), revoked=False))
    session.flush()
    return token


def _live(now: datetime) -> tuple[object, ...]:
    return (UserSession.revoked.is_(False),
            UserSession.created_at > now - SESSION_LIFETIME)


def session_user(session: Session, token: str, *, now: datetime) -> User | None:
    """The user whose live session `token` is, or None (unknown, revoked, expired, the
    user removed). Notes the time it was seen, at most once a SEEN_EVERY."""
    if not token:
        return None
    row = session.scalar(select(UserSession).where(
        UserSession.token_hash == _token_hash(token), *_live(now)))  # type: ignore[arg-type]
    if row is None:
        return None
    user = session.get(User, row.user_id)
    if user is None or user.role not in ROLES:
        return None
    if now - row.last_seen_at >= SEEN_EVERY:
        row.last_seen_at = now
        session.flush()
    return user


def end_session(session: Session, token: str) -> None:
    """Log out: the session with this token is revoked (nothing happens for another)."""
    session.execute(update(UserSession).where(UserSession.token_hash == _token_hash(token))
                    .values(revoked=True))


def revoke_sessions(session: Session, email: str, *, keep: str | None = None) -> int:
    """Revoke every session of the user but the one whose token is `keep`; how many."""
    user = get_user(session, email)
    query = update(UserSession).where(UserSession.user_id == user.id,
                                      UserSession.revoked.is_(False))
    if keep:
        query = query.where(UserSession.token_hash != _token_hash(keep))
    result = session.execute(query.values(revoked=True))
    session.flush()
    return int(getattr(result, "rowcount", 0) or 0)


def active_sessions(session: Session, email: str, *, now: datetime,
                    current: str | None = None) -> list[SessionView]:
    """The user's live sessions, most recently seen first; `current` marks this one."""
    user = get_user(session, email)
    mine = _token_hash(current) if current else ""
    rows = session.scalars(select(UserSession).where(
        UserSession.user_id == user.id, *_live(now))  # type: ignore[arg-type]
        .order_by(UserSession.last_seen_at.desc(), UserSession.id.desc()))
    return [SessionView(r.id, r.created_at, r.last_seen_at, r.user_agent,
                        r.token_hash == mine) for r in rows]


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
    password if Argon2's parameters changed since it was hashed.

    The count and the record are one step for every process on the database: the caller's
    transaction holds a lock on both keys (`db.serialise`) until it commits, so guesses
    sent together to several processes cannot all be tried before any is counted. Call
    it first in its transaction and commit soon after."""
    serialise(session, *_keys(email, client))
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
