"""What an SMTP reply means for a delivery: pure functions, no I/O.

2xx: sent. 4xx or a lost connection: deferred, tried again later. 5xx: bounced and
never retried; 5.1.x (no such mailbox) also suppresses the address at once; 5.7.x
(policy, authentication, relaying) is the sender's configuration, so the delivery
fails without blaming the subscriber.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

ENHANCED = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
QUEUE_IDS = (
    re.compile(r"queued as\s+<?([A-Za-z0-9._-]{4,})>?", re.I),  # Postfix
    re.compile(r"\bid=<?([A-Za-z0-9._-]{4,})>?", re.I),  # Exim and others
)


@dataclass(frozen=True)
class Outcome:
    status: str  # sent | deferred | bounced | failed
    suppress: bool = False  # the address is dead: never mail it again
    sender_problem: bool = False  # fix the sending setup; the subscriber is not at fault


def enhanced_code(reply: str) -> tuple[int, int, int] | None:
    found = ENHANCED.search(reply)
    return (int(found[1]), int(found[2]), int(found[3])) if found else None


def classify(code: int | None, reply: str) -> Outcome:
    """The outcome of one attempt; `code` None means the connection failed."""
    if code is not None and 200 <= code < 300:
        return Outcome("sent")
    if code is None or 400 <= code < 500:
        return Outcome("deferred")
    enhanced = enhanced_code(reply)
    if enhanced and enhanced[0] == 5 and enhanced[1] == 7:
        return Outcome("failed", sender_problem=True)
    if enhanced and enhanced[0] == 5 and enhanced[1] == 1:
        return Outcome("bounced", suppress=True)
    return Outcome("bounced")


def queue_id(reply: str) -> str | None:
    """The server's id for an accepted message ('250 2.0.0 Ok: queued as 4XyZ'), if given."""
    for pattern in QUEUE_IDS:
        found = pattern.search(reply)
        if found:
            return found[1]
    return None


def next_attempt(
    attempts: int,
    first_attempt: datetime,
    now: datetime,
    *,
    base_seconds: int,
    max_delay_seconds: int,
    give_up_after_seconds: int,
) -> datetime | None:
    """When to try a deferred message again (doubling delays), or None: give up."""
    if (now - first_attempt).total_seconds() >= give_up_after_seconds:
        return None
    delay = min(base_seconds * 2 ** max(attempts - 1, 0), max_delay_seconds)
    return now + timedelta(seconds=delay)
