"""Transports against a real SMTP server on loopback, and the outbox directory."""

from __future__ import annotations

import re
import smtplib
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from newsletter.errors import NewsletterError
from tests.servers import SmtpServer
from worker.transports import (
    ConnectionFailure,
    Envelope,
    OutboxTransport,
    PermanentFailure,
    SMTPTransport,
    TemporaryFailure,
    _dot_stuffed,
    _path,
)


def envelope(n: int, rcpt: str = "") -> Envelope:
    rcpt = rcpt or f"r{n}@example.org"
    body = (f"Subject: test {n}\r\nMessage-ID: <m{n}@example.org>\r\n\r\n"
            f".leading dot\r\nbody {n}\r\n")
    return Envelope("news@example.org", rcpt, body.encode(), f"<m{n}@example.org>")


@pytest.fixture(params=["off", "on"])
def pipelining(request: pytest.FixtureRequest) -> str:
    """Every SMTP test runs with and without RFC 2920 pipelining."""
    return str(request.param)


def test_one_connection_carries_many_messages(smtp_server: SmtpServer, pipelining: str) -> None:
    transport = SMTPTransport(smtp_server.url, pipelining=pipelining)
    replies = [transport.send(envelope(n)) for n in range(5)]
    transport.close()
    assert all(r.startswith("250 ") for r in replies)
    received = smtp_server.wait_for_messages(5)
    assert [m.rcpt_tos for m in received] == [[f"r{n}@example.org"] for n in range(5)]
    assert len({m.peer for m in received}) == 1
    # dot-stuffing round-trips: the body arrives as it was sent
    assert b"\r\n.leading dot\r\n" in received[0].content


def test_replies_map_to_temporary_and_permanent_failures(
    smtp_server: SmtpServer, pipelining: str
) -> None:
    smtp_server.reject_recipients({"gone@example.org": "550 5.1.1 No such user"})
    transport = SMTPTransport(smtp_server.url, pipelining=pipelining)
    with pytest.raises(PermanentFailure) as bounced:
        transport.send(envelope(1, "gone@example.org"))
    assert bounced.value.code == 550 and "No such user" in bounced.value.reply
    smtp_server.fail_next(1, "452 4.2.2 Mailbox full")
    with pytest.raises(TemporaryFailure) as deferred:
        transport.send(envelope(2))
    assert deferred.value.code == 452
    # the same connection goes on working after both refusals
    assert transport.send(envelope(3)).startswith("250")
    assert [m.rcpt_tos for m in smtp_server.messages] == [["r3@example.org"]]
    assert not isinstance(deferred.value, ConnectionFailure)
    transport.close()


def test_a_server_that_goes_away_is_a_connection_failure_then_reconnects(
    smtp_server: SmtpServer, pipelining: str
) -> None:
    transport = SMTPTransport(smtp_server.url, timeout=5, pipelining=pipelining)
    transport.send(envelope(1))
    port = smtp_server.port
    smtp_server.stop()
    with pytest.raises(ConnectionFailure):
        transport.send(envelope(2))
    with pytest.raises(ConnectionFailure, match=f"127.0.0.1:{port}"):
        transport.send(envelope(3))  # reconnecting fails too while it is down
    transport.close()


def test_bad_smtp_url_is_explained() -> None:
    with pytest.raises(NewsletterError, match="smtp://host:port"):
        SMTPTransport("http://example.org")


def test_outbox_writes_one_file_per_message_id(tmp_path: Path) -> None:
    outbox = OutboxTransport(tmp_path / "out")
    outbox.send(envelope(1))
    outbox.send(envelope(1))  # a retry of the same delivery replaces, never doubles
    outbox.send(envelope(2))
    files = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert files == ["m1@example.org.eml", "m2@example.org.eml"]
    raw = (tmp_path / "out" / files[0]).read_bytes()
    msg = message_from_bytes(raw, policy=policy.default)
    assert msg["Subject"] == "test 1"
    # the envelope sender first, as a delivery agent writes it
    assert raw.startswith(f"Return-Path: <{envelope(1).sender}>\r\n".encode())


def test_pipelined_rcpt_refusal_then_more_messages(smtp_server: SmtpServer) -> None:
    smtp_server.fail_next(1, "450 4.2.0 Mailbox busy", stage="RCPT")
    transport = SMTPTransport(smtp_server.url, pipelining="on")
    with pytest.raises(TemporaryFailure) as refused:
        transport.send(envelope(1))
    assert refused.value.code == 450 and "Mailbox busy" in refused.value.reply
    for n in range(2, 5):
        assert transport.send(envelope(n)).startswith("250")
    assert [m.rcpt_tos for m in smtp_server.messages] == [[f"r{n}@example.org"]
                                                          for n in range(2, 5)]
    assert b"\r\n.leading dot\r\n" in smtp_server.messages[0].content
    transport.close()


@settings(max_examples=300)
@given(st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)),
               max_size=60))
def test_the_fast_smtp_path_says_what_smtplib_says(address: str) -> None:
    """`_path` skips the email package's parser for plain addresses (bench/delivery.py):
    whatever the address, MAIL FROM and RCPT TO get what smtplib.quoteaddr gives."""
    assert _path(address) == smtplib.quoteaddr(address)


@settings(max_examples=300)
@given(st.binary(max_size=300) | st.lists(st.sampled_from(
    [b".", b"..", b"\r\n", b"\n", b"\r", b"x", b"\r\n.", b"\n.."]), max_size=40).map(b"".join))
def test_dot_stuffing_without_a_regular_expression_is_the_same(message: bytes) -> None:
    assert _dot_stuffed(message) == re.compile(rb"(?m)^\.").sub(b"..", message)
