"""What each SMTP reply does to a delivery, and when a deferred one is tried again."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from worker.replies import Outcome, classify, next_attempt, queue_id


@pytest.mark.parametrize(
    ("code", "reply", "expected"),
    [
        (250, "2.0.0 Ok: queued as 4Xyz1", Outcome("sent")),
        (None, "connection refused", Outcome("deferred")),
        (421, "4.3.2 Service shutting down", Outcome("deferred")),
        (451, "4.7.1 Greylisted", Outcome("deferred")),
        (550, "5.1.1 <a@b.org>: Recipient address rejected: User unknown",
         Outcome("bounced", suppress=True)),
        (553, "5.1.3 Bad recipient address syntax", Outcome("bounced", suppress=True)),
        (552, "5.2.2 Mailbox full", Outcome("bounced")),
        (550, "Mailbox unavailable", Outcome("bounced")),
        (550, "5.7.1 Relaying denied", Outcome("failed", sender_problem=True)),
        (554, "5.7.26 Unauthenticated email is not accepted (DMARC)",
         Outcome("failed", sender_problem=True)),
    ],
)
def test_classify(code: int | None, reply: str, expected: Outcome) -> None:
    assert classify(code, reply) == expected


def test_queue_id_is_read_from_common_replies() -> None:
    assert queue_id("250 2.0.0 Ok: queued as 4XyZ12") == "4XyZ12"
    assert queue_id("250 OK id=1qAbCd-0004kd-Ab") == "1qAbCd-0004kd-Ab"
    assert queue_id("250 Accepted") is None


def test_backoff_doubles_up_to_a_ceiling_then_gives_up() -> None:
    first = datetime(2019, 10, 1, 12, 0)
    delays = []
    for attempt in range(1, 8):
        now = first + timedelta(minutes=attempt)
        at = next_attempt(attempt, first, now, base_seconds=60, max_delay_seconds=600,
                          give_up_after_seconds=86400)
        assert at is not None
        delays.append((at - now).total_seconds())
    assert delays == [60, 120, 240, 480, 600, 600, 600]
    late = first + timedelta(days=1)
    assert next_attempt(9, first, late, base_seconds=60, max_delay_seconds=600,
                        give_up_after_seconds=86400) is None
