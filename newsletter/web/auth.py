"""Who is asking: the newsroom's session cookie, CSRF tokens and permissions.

The cookie is Flask's signed cookie, signed with a key derived from
NEWSLETTER_SECRET_KEY (never the key itself, which also signs subscribers' links),
HttpOnly, SameSite=Lax, Secure when the public URL is https. It holds the token of a
server-side session (`users.start_session`: a row in `user_sessions`, valid for
SESSION_HOURS from the login) and a CSRF token. The session and its user are read from
the database on every request, so logging out (the row is revoked), a new password, a
new role or a removal ends it at the next click, whoever holds a copy of the cookie.

What a user may open is `users.PERMISSIONS`; every view is wrapped in `require(name)`,
which answers 403 to the others and leaves its permission on the view (`PERMISSION`) for
the tests to check that none is forgotten.

Every POST, PUT, PATCH or DELETE under /admin, the login form included, carries the
session's CSRF token in a hidden field `csrf_token`, or is refused with 400 and changes
nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar, cast

from flask import Flask, abort, g, request, session
from sqlalchemy.orm import Session

from newsletter.db import utcnow
from newsletter.users import (
    PERMISSIONS,
    SESSION_LIFETIME,
    User,
    end_session,
    session_user,
    start_session,
)

SESSION_COOKIE = "newsroom_session"
SESSION_HOURS = int(SESSION_LIFETIME.total_seconds() // 3600)
SESSION_TOKEN = "sid"
PERMISSION = "permission"  # the attribute `require` leaves on a view
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
        PERMANENT_SESSION_LIFETIME=SESSION_LIFETIME,
        SESSION_REFRESH_EACH_REQUEST=False,  # the lifetime counts from the login
    )


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


def log_in(db: Session, user: User) -> None:
    """A fresh session for `user`: a new row in `user_sessions` and a new cookie; nothing
    of the anonymous one survives (no fixation)."""
    token = start_session(db, user, request.headers.get("User-Agent", ""), now=utcnow())
    session.clear()
    session.permanent = True
    session[SESSION_TOKEN] = token
    session[CSRF_FIELD] = secrets.token_urlsafe(32)


def session_token() -> str:
    """This request's session token ("" when there is none)."""
    token = session.get(SESSION_TOKEN)
    return token if isinstance(token, str) else ""


def log_out(db: Session) -> None:
    """Revoke this session in the database and clear the cookie."""
    token = session_token()
    if token:
        end_session(db, token)
    session.clear()


def load_user(db: Session) -> User | None:
    """The logged-in user, read again from the database with their session; None (and a
    cleared cookie) when the session is unknown, revoked or older than SESSION_HOURS, or
    the user was removed."""
    token = session_token()
    if not token:
        return None
    user = session_user(db, token, now=utcnow())
    if user is None:
        session.clear()
    return user


def current_user() -> User:
    """The user this request is for (set by the blueprint's before_request)."""
    user = g.get("user")
    if not isinstance(user, User):
        abort(401)
    return user


def require(permission: str) -> Callable[[F], F]:
    """A view only users whose role holds `permission` may open (403 for the others)."""
    if permission not in PERMISSIONS:
        raise ValueError(f"unknown permission {permission!r}")

    def decorate(view: F) -> F:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if not current_user().may(permission):
                abort(403)
            return view(*args, **kwargs)

        setattr(wrapper, PERMISSION, permission)
        return cast(F, wrapper)

    return decorate
