"""VERP: an envelope sender of its own for each delivery, so a bounce names it.

A relay that accepts a message (250) and fails to deliver it later mails a bounce to the
envelope sender (the Return-Path), not to the From address. Each delivery is sent with

    bounces+<delivery id>.<mac>@<bounce domain>

where `mac` is 10 characters of an HMAC (NEWSLETTER_SECRET_KEY) over the delivery id and
its issue's key (`worker.mime.issue_key`), so that a bounce cannot be forged for a
delivery by guessing its number, and a bounce for a message sent from a database made
again does not land on the delivery that now has its number. Lower case only: some
mail systems lower-case local parts on the way back. The bounce domain is
NEWSLETTER_BOUNCE_DOMAIN, by default the sender's: its MX must reach
`newsletter bounces receive` (or a mailbox it reads).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass

PREFIX = "bounces"
UNSUBSCRIBE_PREFIX = "unsubscribe"
MAC_CHARS = 10
_LOCAL = re.compile(rf"{PREFIX}\+(\d{{1,18}})\.([a-z2-7]{{{MAC_CHARS}}})")


@dataclass(frozen=True)
class Token:
    delivery_id: int
    mac: str


def _mac(secret_key: str, delivery_id: int, issue_key: str) -> str:
    digest = hmac.new(secret_key.encode(), f"verp {delivery_id} {issue_key}".encode(),
                      hashlib.sha256).digest()
    return base64.b32encode(digest[:10]).decode("ascii").lower()[:MAC_CHARS]


def bounce_address(secret_key: str, domain: str, delivery_id: int, issue_key: str) -> str:
    """The envelope sender of one delivery."""
    return f"{PREFIX}+{delivery_id}.{_mac(secret_key, delivery_id, issue_key)}@{domain}"


def parse(address: str, domain: str) -> Token | None:
    """The delivery a bounce address names, or None when it is not one of ours for
    `domain` (any case, with or without angle brackets). The mac is not checked here:
    `check` needs the delivery's issue key."""
    local, _, at = address.strip().strip("<>").rpartition("@")
    if at.lower().rstrip(".") != domain.lower() or len(local) > 64:
        return None
    found = _LOCAL.fullmatch(local.lower())
    if found is None:
        return None
    return Token(int(found[1]), found[2])


def check(secret_key: str, token: Token, issue_key: str) -> bool:
    """Whether `token` was made by us for that delivery of that issue."""
    return hmac.compare_digest(token.mac, _mac(secret_key, token.delivery_id, issue_key))


def unsubscribe_mailto(bounce_address: str) -> str:
    """The List-Unsubscribe mailto of a delivery: its VERP token with the unsubscribe
    prefix (`worker.bounce_parse` reads a message to it as a request to unsubscribe)."""
    token = bounce_address.removeprefix(f"{PREFIX}+")
    return f"mailto:{UNSUBSCRIBE_PREFIX}+{token}?subject=unsubscribe"
