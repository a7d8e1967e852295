"""Reading what comes back by mail: DSNs, non-standard bounces, ARF, auto-replies."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from worker.bounce_parse import Report, classify

FIXTURES = Path(__file__).parent.parent / "fixtures" / "bounces"
KINDS = {"hard", "soft", "delayed", "complaint", "unsubscribe", "auto-reply", "unrelated"}


def read(name: str) -> Report:
    return classify((FIXTURES / name).read_bytes(), "example.org")


@pytest.mark.parametrize("name, kind, status, recipient, delivery", [
    ("postfix-dsn-5.1.1.eml", "hard", "5.1.1", "nadie@example.net", 42),
    ("exim-permanent.eml", "hard", "", "pedro@example.com", 43),
    ("delayed-4.2.2.eml", "delayed", "4.2.2", "lucia@example.net", 44),
    ("blocked-5.7.1.eml", "soft", "5.7.1", "rosa@example.com", 45),
    ("arf-complaint.eml", "complaint", "", "marta@example.net", 46),
    ("vacation-es.eml", "auto-reply", "", "", 47),
    ("outlook-auto-reply.eml", "auto-reply", "", "", 48),
    ("human-reply.eml", "unrelated", "", "", 49),
    ("mailto-unsubscribe.eml", "unsubscribe", "", "", 50),
])
def test_each_kind_of_report_is_read_as_what_it_is(
        name: str, kind: str, status: str, recipient: str, delivery: int) -> None:
    report = read(name)
    assert (report.kind, report.status, report.recipient) == (kind, status, recipient)
    assert report.token is not None and report.token.delivery_id == delivery
    assert report.diagnostic  # every decision has its evidence in words


def test_the_evidence_is_what_the_server_said() -> None:
    report = read("postfix-dsn-5.1.1.eml")
    assert report.diagnostic.startswith("550 5.1.1 <nadie@example.net>: Recipient address")
    assert report.original_message_id == "<2019-10.42.abcdefghij@example.org>"
    complaint = read("arf-complaint.eml")
    assert complaint.original_message_id == "<2019-10.46.abcdefghij@example.org>"
    assert "abuse" in complaint.diagnostic


def test_a_vacation_reply_that_quotes_failure_words_is_still_a_vacation_reply() -> None:
    # its body says "Mail delivery failed" and "550 5.1.1": a person wrote it
    assert read("vacation-es.eml").kind == "auto-reply"


def test_a_verp_address_of_another_domain_names_nothing() -> None:
    raw = (FIXTURES / "postfix-dsn-5.1.1.eml").read_bytes()
    report = classify(raw, "elsewhere.example")
    assert report.kind == "hard" and report.token is None
    # the envelope recipient wins over the headers when it came by SMTP
    by_envelope = classify(raw, "example.org",
                           envelope_to=("bounces+7.abcdefghij@example.org",))
    assert by_envelope.token is not None and by_envelope.token.delivery_id == 7


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2000))
def test_no_bytes_end_in_a_traceback(raw: bytes) -> None:
    assert classify(raw, "example.org").kind in KINDS


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(sorted(p.name for p in FIXTURES.glob("*.eml"))),
       cut=st.integers(0, 3000), noise=st.binary(max_size=40))
def test_a_truncated_or_garbled_report_ends_in_no_traceback(
        name: str, cut: int, noise: bytes) -> None:
    raw = (FIXTURES / name).read_bytes()
    assert classify(raw[:cut] + noise + raw[cut:][:200], "example.org").kind in KINDS


def test_a_report_the_email_package_trips_over_is_unrelated_not_a_crash() -> None:
    """An RFC 2231 charset on the report's Content-Type and a byte that is not ASCII made
    the email package raise TypeError in get_payload (review; it blocked every intake)."""
    raw = (b"Content-Type: multipart/report; report-type=delivery-status; "
           b"charset*=utf-8''x\r\n\r\n\xff\r\n")
    report = classify(raw, "example.org")
    assert report.kind == "unrelated" and "not a readable message" in report.diagnostic


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(params=st.text(alphabet="abcdefghij*'=;- \"", max_size=40),
       body=st.binary(max_size=200))
def test_no_report_header_parameters_end_in_a_traceback(params: str, body: bytes) -> None:
    raw = (f"Content-Type: multipart/report; report-type=delivery-status; {params}\r\n\r\n"
           .encode() + body)
    assert classify(raw, "example.org").kind in KINDS
