"""Who is asking: the newsroom's session cookie, CSRF tokens and roles.

The session is Flask's signed cookie, signed with a key derived from
NEWSLETTER_SECRET_KEY (never the key itself, which also signs subscribers' links),
HttpOnly, SameSite=Lax, Secure when the public URL is https, valid for SESSION_HOURS.
It holds the user's id, a fingerprint of their password hash (a new password logs every
other session out) and a CSRF token. The user is loaded from the database on every
request, so a user removed or demoted is refused at their next click.

Every POST, PUT, PATCH or DELETE under /admin, the login form included, carries the
session's CSRF token in a hidden field `csrf_token`, or is refused with 400 and changes
nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from datetime import timedelta
from functools import wraps
from typing import Any, TypeVar, cast

from flask import Flask, abort, g, request, session
from sqlalchemy.orm import Session

from newsletter.users import ROLES, User

SESSION_COOKIE = "newsroom_session"
SESSION_HOURS = 12
CSRF_FIELD = "csrf_token"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

F = TypeVar("F", bound=Callable[..., Any])


def session_key(secret_key: str) -> bytes:
    """The cookie-signing key: HMAC of the project's secret with a label of its own, so a
    session cookie and a subscriber's link never share a key."""
    return hmac.new(secret_key.encode(), b"newsletter newsroom session v1",
                    hashlib.sha256).digest()


def configure_sessions(app: Flask, secret_key: str, public_base_url: str) -> None:
    app.secret_key = session_key(secret_key)
    app.config.update(
        SESSION_COOKIE_NAME=SESSION_COOKIE,
        SESSION_COOKIE_PATH="/admin",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=public_base_url.lower().startswith("https://"),
        PERMANENT_SESSION_LIFETIME=timedelta(hours=SESSION_HOURS),
        SESSION_REFRESH_EACH_REQUEST=False,  # the lifetime counts from the login
    )


def _fingerprint(user: User) -> str:
    key = cast(bytes, _app_key())
    return hmac.new(key, f"{user.id}:{user.password_hash}".encode(),
                    hashlib.sha256).hexdigest()[:32]


def _app_key() -> Any:
    from flask import current_app

    return current_app.secret_key


def csrf_token() -> str:
    """The session's CSRF token, made on first use (templates call it for every form)."""
    token = session.get(CSRF_FIELD)
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        session[CSRF_FIELD] = token
    return token


def check_csrf() -> None:
    """Refuse (400) an unsafe request whose form does not carry the session's token."""
    if request.method not in UNSAFE_METHODS:
        return
    expected = session.get(CSRF_FIELD)
    sent = request.form.get(CSRF_FIELD, "")
    if not (isinstance(expected, str) and expected
            and hmac.compare_digest(expected.encode(), sent.encode())):
        abort(400, description="csrf")


def log_in(user: User) -> None:
    """A fresh session for `user`: nothing of the anonymous one survives (no fixation)."""
    session.clear()
    session.permanent = True
    session["uid"] = user.id
    session["auth"] = _fingerprint(user)
    session["at"] = int(time.time())  # the lifetime counts from here, however often re-signed
    session[CSRF_FIELD] = secrets.token_urlsafe(32)


def log_out() -> None:
    session.clear()


def load_user(db: Session) -> User | None:
    """The logged-in user, read again from the database; None (and a cleared session)
    when there is none, they were removed, or their password changed since."""
    uid, at = session.get("uid"), session.get("at")
    if not isinstance(uid, int):
        return None
    if not isinstance(at, int) or time.time() - at > SESSION_HOURS * 3600:
        session.clear()
        return None
    user = db.get(User, uid)
    if user is None or user.role not in ROLES or not hmac.compare_digest(
            str(session.get("auth", "")), _fingerprint(user)):
        session.clear()
        return None
    return user


def current_user() -> User:
    """The user this request is for (set by the blueprint's before_request)."""
    user = g.get("user")
    if not isinstance(user, User):
        abort(401)
    return user


def refresh_login(user: User) -> None:
    """After a password change: keep this session, log out the others."""
    session["auth"] = _fingerprint(user)


def require_role(role: str) -> Callable[[F], F]:
    """A view only users with `role` or a higher one may open (403 for the others)."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}")

    def decorate(view: F) -> F:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if not current_user().can(role):
                abort(403)
            return view(*args, **kwargs)

        return cast(F, wrapper)

    return decorate
