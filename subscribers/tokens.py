"""Signed links for a subscriber: unsubscribe and preferences work without a login.

A token is `<id>.<signature>`, and the signature covers the purpose, the id and the
subscriber's own random `token_salt`. Ids are reused (SQLite hands the highest id out
again after a delete; a database reset hands them all out again), the salt is not: a
link mailed to someone who was erased does not verify for whoever holds the id next.
So a token is only checked against the row it names (`token_id`, then `read_token`
with that row's salt).

Rows that existed before salts were introduced keep the empty salt, whose signature is
the one their links were mailed with (`purpose:id`), so those links go on working.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

# the largest id subscribers.id holds (INTEGER: 32 bits on PostgreSQL, which refuses to
# compare a larger number with it; SQLite allocates ids in order and never gets there)
MAX_ID = 2**31 - 1
_MAX_ID_DIGITS = len(str(MAX_ID))


def new_salt() -> str:
    """A fresh per-subscriber salt: 128 random bits, URL-safe, no ':'."""
    return secrets.token_urlsafe(16)


def new_salts(count: int) -> list[str]:
    """`count` fresh salts, as `new_salt` makes them, from one read of the system's
    random source (an import needs one per new subscriber)."""
    raw = secrets.token_bytes(16 * count)
    encode = base64.urlsafe_b64encode
    return [encode(raw[i:i + 16]).rstrip(b"=").decode("ascii") for i in range(0, 16 * count, 16)]


def _sign(secret: str, message: str) -> str:
    digest = hmac.new(secret.encode(), message.encode(), hashlib.sha256).digest()[:18]
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def _message(purpose: str, subscriber_id: int, salt: str) -> str:
    # the empty salt signs exactly what links signed before salts existed
    return f"{purpose}:{subscriber_id}:{salt}" if salt else f"{purpose}:{subscriber_id}"


def make_token(secret: str, subscriber_id: int, purpose: str, salt: str) -> str:
    return f"{subscriber_id}.{_sign(secret, _message(purpose, subscriber_id, salt))}"


def token_id(token: str) -> int | None:
    """The subscriber id a token names, not yet verified (None: not a token of ours).

    Only the canonical spelling counts (no sign, no leading zero, no more digits than
    an id can have), so one link has one spelling and a huge number never reaches the
    database.
    """
    sid, dot, _ = token.partition(".")
    if not dot or not (0 < len(sid) <= _MAX_ID_DIGITS and sid.isascii() and sid.isdigit()):
        return None
    if sid != "0" and sid.startswith("0"):
        return None
    value = int(sid)
    return value if value <= MAX_ID else None


def read_token(secret: str, token: str, purpose: str, salt: str) -> int | None:
    """The subscriber id a token was made for, if we made it for `purpose` and for the
    subscriber whose salt is `salt`; None otherwise."""
    subscriber_id = token_id(token)
    if subscriber_id is None:
        return None
    signature = token.partition(".")[2]
    expected = _sign(secret, _message(purpose, subscriber_id, salt))
    # compare bytes: compare_digest refuses non-ASCII str, and a token is untrusted input
    valid = hmac.compare_digest(signature.encode("utf-8", "replace"), expected.encode())
    return subscriber_id if valid else None


def subscriber_links(
    base_url: str, secret: str, subscriber_id: int, salt: str
) -> tuple[str, str]:
    """(one-click unsubscribe URL, preferences URL)."""
    unsubscribe = make_token(secret, subscriber_id, "unsubscribe", salt)
    preferences = make_token(secret, subscriber_id, "preferences", salt)
    return f"{base_url}/u/{unsubscribe}", f"{base_url}/p/{preferences}"


def confirm_link(base_url: str, secret: str, subscriber_id: int, salt: str) -> str:
    """The double opt-in link: opening it and pressing the button confirms the address."""
    return f"{base_url}/c/{make_token(secret, subscriber_id, 'confirm', salt)}"
