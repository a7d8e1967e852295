"""Signed links for a subscriber: unsubscribe and preferences work without a login."""

from __future__ import annotations

import base64
import hashlib
import hmac


def _sign(secret: str, message: str) -> str:
    digest = hmac.new(secret.encode(), message.encode(), hashlib.sha256).digest()[:18]
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def make_token(secret: str, subscriber_id: int, purpose: str) -> str:
    return f"{subscriber_id}.{_sign(secret, f'{purpose}:{subscriber_id}')}"


def read_token(secret: str, token: str, purpose: str) -> int | None:
    """The subscriber id a token was made for, or None if it was not made by us."""
    sid, _, signature = token.partition(".")
    if not (sid.isascii() and sid.isdigit()):
        return None
    expected = _sign(secret, f"{purpose}:{int(sid)}")
    # compare bytes: compare_digest refuses non-ASCII str, and a token is untrusted input
    valid = hmac.compare_digest(signature.encode("utf-8", "replace"), expected.encode())
    return int(sid) if valid else None


def subscriber_links(base_url: str, secret: str, subscriber_id: int) -> tuple[str, str]:
    """(one-click unsubscribe URL, preferences URL)."""
    unsubscribe = make_token(secret, subscriber_id, "unsubscribe")
    preferences = make_token(secret, subscriber_id, "preferences")
    return f"{base_url}/u/{unsubscribe}", f"{base_url}/p/{preferences}"


def confirm_link(base_url: str, secret: str, subscriber_id: int) -> str:
    """The double opt-in link: opening it and pressing the button confirms the address."""
    return f"{base_url}/c/{make_token(secret, subscriber_id, 'confirm')}"
