"""The whole loop on loopback: send an issue through a relay that accepts everything,
mail bounces, a complaint and a vacation reply back to the VERP addresses, through
`bounces receive`'s SMTP server; then statuses, suppressions and rates are exact.
Importing files, mbox and Maildir; soft bounces counted over time; the CLI."""

from __future__ import annotations

import imaplib
import json
import mailbox
import re
import smtplib
import socket
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from email.utils import make_msgid
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from newsletter.cli import cli
from newsletter.db import make_engine, session_factory, utcnow
from newsletter.issues import create_issue
from newsletter.models import Delivery, MailReport
from newsletter.settings import Settings
from subscribers.models import Subscriber
from subscribers.suppressions import is_suppressed
from tests.dovecot import dovecot
from tests.servers import SmtpServer, free_port
from tests.worker.conftest import runtime_with
from worker.bounce_intake import process, receiver
from worker.bounce_record import rates
from worker.delivery import send_issue
from worker.runtime import configure
from worker.transports import SMTPTransport


def dsn(to: str, recipient: str, status: str, action: str = "failed",
        diagnostic: str = "") -> bytes:
    """A delivery status notification as a relay mails it back (RFC 3464)."""
    return (
        f"From: MAILER-DAEMON@relay.example.net\r\nTo: {to}\r\n"
        f"Subject: Undelivered Mail Returned to Sender\r\n"
        f"Message-ID: {make_msgid(domain='relay.example.net')}\r\n"
        "Auto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="r"\r\n'
        f"\r\n--r\r\nContent-Type: text/plain\r\n\r\nYour message to {recipient} "
        "could not be delivered.\r\n--r\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; relay.example.net\r\n\r\n"
        f"Final-Recipient: rfc822; {recipient}\r\nAction: {action}\r\nStatus: {status}\r\n"
        f"Diagnostic-Code: smtp; {diagnostic or status + ' refused'}\r\n--r--\r\n"
    ).encode()


def arf(recipient: str, original_from: str, message_id: str) -> bytes:
    """A feedback loop's abuse report (RFC 5965), to the FBL address, not to VERP."""
    return (
        "From: fbl@mail.example.net\r\nTo: fbl@example.org\r\nSubject: complaint\r\n"
        "MIME-Version: 1.0\r\nContent-Type: multipart/report; "
        'report-type=feedback-report; boundary="b"\r\n\r\n--b\r\nContent-Type: text/plain'
        "\r\n\r\nA user marked this as spam.\r\n--b\r\nContent-Type: message/feedback-report"
        f"\r\n\r\nFeedback-Type: abuse\r\nUser-Agent: FBL/1\r\nVersion: 1\r\n"
        f"Original-Mail-From: <{original_from}>\r\nOriginal-Rcpt-To: <{recipient}>\r\n"
        f"\r\n--b\r\nContent-Type: message/rfc822\r\n\r\nMessage-ID: {message_id}\r\n"
        f"To: {recipient}\r\n\r\nHello\r\n--b--\r\n").encode()


def vacation(to: str) -> bytes:
    return (f"From: someone@example.com\r\nTo: {to}\r\nSubject: Out of office\r\n"
            "Auto-Submitted: auto-replied\r\n\r\nBack on Monday.\r\n").encode()


@pytest.fixture
def bounce_receiver(settings: Settings) -> Iterator[Any]:
    engine = make_engine(settings.resolved_database_url)
    server = receiver(session_factory(engine), settings, "127.0.0.1", free_port())
    server.start()
    yield server
    server.stop()
    engine.dispose()


def mail(server: Any, sender: str, recipient: str, raw: bytes) -> None:
    with smtplib.SMTP("127.0.0.1", server.port, timeout=10) as client:
        client.sendmail(sender, [recipient], raw)


def sent_through(settings: Settings, sessions: sessionmaker[Session], relay: SmtpServer,
                 slug: str) -> dict[str, tuple[str, str]]:
    """Send `slug` through `relay`; each recipient's (envelope sender, Message-ID)."""
    runtime = runtime_with(settings, sessions, SMTPTransport(relay.url))
    configure(runtime)
    try:
        assert send_issue(runtime, slug).counts["sent"] == 5
    finally:
        configure(None)
        runtime.transport.close()
    return {m.rcpt_tos[0]: (m.mail_from, str(m.message["Message-ID"]))
            for m in relay.messages}


def test_the_whole_loop_on_loopback(
    settings: Settings, sessions: sessionmaker[Session], smtp_server: SmtpServer,
    issue_slug: str, bounce_receiver: Any,
) -> None:
    sent = sent_through(settings, sessions, smtp_server, issue_slug)
    verp = {address: envelope for address, (envelope, _) in sent.items()}
    mail(bounce_receiver, "", verp["carla@example.org"],
         dsn(verp["carla@example.org"], "carla@example.org", "5.2.2",
             diagnostic="552 5.2.2 Mailbox full"))
    mail(bounce_receiver, "", "fbl@example.org",
         arf("eva@example.org", verp["eva@example.org"], sent["eva@example.org"][1]))
    mail(bounce_receiver, "", verp["ana@example.org"], vacation(verp["ana@example.org"]))
    # a mail client's "unsubscribe" to the header's mailto
    dan = next(m.message for m in smtp_server.messages if m.rcpt_tos == ["dan@example.org"])
    mailto = str(dan["List-Unsubscribe"]).split(",")[1].strip().strip("<>")
    address = mailto.removeprefix("mailto:").partition("?")[0]
    mail(bounce_receiver, "dan@example.org", address,
         f"From: dan@example.org\r\nTo: {address}\r\nSubject: unsubscribe\r\n\r\n".encode())
    # a relay that mails the same bounce twice: recorded once
    bob_bounce = dsn(verp["bob@example.org"], "bob@example.org", "5.1.1",
                     diagnostic="550 5.1.1 User unknown")
    mail(bounce_receiver, "", verp["bob@example.org"], bob_bounce)
    mail(bounce_receiver, "", verp["bob@example.org"], bob_bounce)
    with sessions() as session:
        status = dict(session.execute(select(Subscriber.email, Subscriber.status)).all())
        assert status == {"ana@example.org": "active", "bob@example.org": "bounced",
                          "carla@example.org": "active", "dan@example.org": "unsubscribed",
                          "eva@example.org": "complained"}
        suppressed = {a for a in status if is_suppressed(session, a)}
        assert suppressed == {"bob@example.org", "eva@example.org"}
        deliveries = dict(session.execute(
            select(Subscriber.email, Delivery.status).join(Delivery)).all())
        assert deliveries["bob@example.org"] == "bounced"
        assert deliveries["eva@example.org"] == deliveries["ana@example.org"] == "sent"
        reports = {r.kind: r for r in session.scalars(select(MailReport))}
        assert sorted(reports) == ["auto-reply", "complaint", "hard", "soft", "unsubscribe"]
        assert reports["hard"].status == "5.1.1" and "User unknown" in reports["hard"].diagnostic
        assert reports["soft"].decision == "counted: soft bounce 1 of 3 within 30 days"
        assert reports["auto-reply"].decision == "nothing: an automatic reply"
        assert rates(session, 1) == {"hard": 1, "soft": 1, "complaint": 1, "auto-reply": 1,
                                     "unsubscribe": 1}


def test_mail_for_another_domain_is_refused_and_a_database_away_gets_451(
        settings: Settings, tmp_path: Path) -> None:
    broken = settings.model_copy(update={
        "database_url": f"sqlite:///{tmp_path / 'no' / 'such' / 'dir' / 'x.db'}"})
    server = receiver(session_factory(make_engine(broken.resolved_database_url)), broken,
                      "127.0.0.1", free_port())
    server.start()
    try:
        with smtplib.SMTP("127.0.0.1", server.port, timeout=10) as client:
            client.ehlo()
            client.mail("")
            code, text = client.rcpt("someone@elsewhere.example")
            assert code == 550 and b"relaying denied" in text
            assert client.rcpt("bounces+1.abcdefghij@example.org")[0] == 250
            code, text = client.data(vacation("bounces+1.abcdefghij@example.org"))
            assert code == 451 and b"try again later" in text
    finally:
        server.stop()


def test_soft_bounces_count_deliveries_within_the_window(
    settings: Settings, sessions: sessionmaker[Session], smtp_server: SmtpServer,
    issue_slug: str,
) -> None:
    """Three deliveries to one person that soft-bounced within 30 days make a hard bounce;
    a relay reporting one message twice counts once; `delayed` is not a failure."""
    with sessions() as session, session.begin():
        for slug in ("2019-11", "2019-12"):
            create_issue(session, slug, date(2019, 9, 1), date(2019, 10, 31))
    to = {slug: sent_through(settings, sessions, smtp_server, slug)["dan@example.org"][0]
          for slug in (issue_slug, "2019-11", "2019-12")}
    start = utcnow()

    def report(slug: str, status: str, when: datetime, action: str = "failed") -> str:
        raw = dsn(to[slug], "dan@example.org", status, action=action,
                  diagnostic=f"{status} at {when.isoformat()}")
        return process(sessions, settings, raw, source="import", clock=lambda: when).decision

    assert report(issue_slug, "4.4.7", start - timedelta(days=40)) == (
        "counted: soft bounce 1 of 3 within 30 days")
    # the same delivery again, and one still being tried: neither adds to the count
    assert report(issue_slug, "5.2.2", start - timedelta(days=2)) == (
        "counted: soft bounce 1 of 3 within 30 days")  # the first is 38 days older
    assert report("2019-11", "4.2.2", start, action="delayed") == (
        "noted: delayed, the relay still tries (not counted)")
    assert report("2019-11", "4.2.2", start + timedelta(hours=1)) == (
        "counted: soft bounce 2 of 3 within 30 days")
    assert report("2019-12", "5.7.1", start + timedelta(days=1)) == (
        "bounced and suppressed (3 soft bounces within 30 days)")
    with sessions() as session:
        assert is_suppressed(session, "dan@example.org")


def test_a_forged_message_id_names_nobody(
    settings: Settings, sessions: sessionmaker[Session], smtp_server: SmtpServer,
    issue_slug: str, bounce_receiver: Any,
) -> None:
    """A reader sees their own Message-ID and could change its delivery number: a report
    that quotes one, without a VERP address of ours, changes nobody (review: it bounced
    the whole list)."""
    sent = sent_through(settings, sessions, smtp_server, issue_slug)
    mine = sent["eva@example.org"][1]  # <slug.N.key@domain>
    for n in range(1, 20):
        forged = re.sub(r"\.\d+\.", f".{n}.", mine, count=1)
        raw = dsn("postmaster@example.org", "someone@example.org", "5.1.1").replace(
            b"--r--", f"--r\r\nContent-Type: text/rfc822-headers\r\n\r\n"
                      f"Message-ID: {forged}\r\n--r--".encode())
        mail(bounce_receiver, "", "postmaster@example.org", raw)
        mail(bounce_receiver, "", "postmaster@example.org",
             arf("someone@example.org", "attacker@example.net", forged))
    with sessions() as session:
        assert set(session.scalars(select(Subscriber.status))) == {"active"}
        assert not any(is_suppressed(session, a) for a in session.scalars(
            select(Subscriber.email)))
        decisions = set(session.scalars(select(MailReport.decision)))
    assert decisions == {"nothing: it names no delivery of ours (no VERP address)"}


def test_a_forged_verp_address_changes_nothing(
    settings: Settings, sessions: sessionmaker[Session], smtp_server: SmtpServer,
    issue_slug: str,
) -> None:
    sent = sent_through(settings, sessions, smtp_server, issue_slug)
    real = sent["bob@example.org"][0]
    forged = real.split(".")[0] + ".aaaaaaaaaa@example.org"
    outcome = process(sessions, settings, dsn(forged, "bob@example.org", "5.1.1"),
                      source="import")
    assert outcome.subscriber_id is None and "does not hold with that signature" in (
        outcome.decision)
    with sessions() as session:
        assert session.scalar(select(Subscriber.status).where(
            Subscriber.email == "bob@example.org")) == "active"


def test_import_from_files_mbox_and_maildir_then_again(
    settings: Settings, sessions: sessionmaker[Session], smtp_server: SmtpServer,
    issue_slug: str, runner: CliRunner, tmp_path: Path,
) -> None:
    sent = sent_through(settings, sessions, smtp_server, issue_slug)
    eml = tmp_path / "one.eml"
    eml.write_bytes(dsn(sent["bob@example.org"][0], "bob@example.org", "5.1.1"))
    box = mailbox.mbox(tmp_path / "bounces.mbox")
    box.add(dsn(sent["carla@example.org"][0], "carla@example.org", "5.1.2"))
    box.add(vacation(sent["ana@example.org"][0]))
    box.close()
    folder = mailbox.Maildir(tmp_path / "Maildir")
    token = sent["dan@example.org"][0].split("+", 1)[1]
    folder.add(f"From: dan@example.com\r\nTo: unsubscribe+{token}\r\n"
               "Subject: unsubscribe\r\n\r\n".encode())
    folder.close()
    args = ["bounces", "import", str(eml), "--mbox", str(tmp_path / "bounces.mbox"),
            "--maildir", str(tmp_path / "Maildir"), "--json"]
    first = runner.invoke(cli, args)
    assert first.exit_code == 0, first.output
    kinds = json.loads(first.output)["kinds"]
    assert kinds == {"hard": 2, "auto-reply": 1, "unsubscribe": 1}
    again = json.loads(runner.invoke(cli, args).output)
    assert {r["decision"] for r in again["reports"]} == {
        "nothing: this message was recorded before"}
    with sessions() as session:
        status = dict(session.execute(select(Subscriber.email, Subscriber.status)).all())
    assert status["bob@example.org"] == status["carla@example.org"] == "bounced"
    assert status["dan@example.org"] == "unsubscribed" and status["ana@example.org"] == "active"
    listed = json.loads(runner.invoke(cli, ["bounces", "list", "--kind", "hard",
                                            "--json"]).output)
    assert len(listed) == 2 and {r["status"] for r in listed} == {"5.1.1", "5.1.2"}
    shown = runner.invoke(cli, ["bounces", "show", str(listed[0]["id"])])
    assert shown.exit_code == 0 and "Final-Recipient" in shown.output
    # the evidence where people look: the person, and the issue's rates
    bob = json.loads(runner.invoke(cli, ["subscribers", "show", "bob@example.org",
                                         "--json"]).output)
    assert [(r["kind"], r["status"], r["decision"]) for r in bob["mail_reports"]] == [
        ("hard", "5.1.1", "bounced and suppressed (hard bounce 5.1.1)")]
    assert "5.1.1 5.1.1 refused -> bounced and suppressed" in runner.invoke(
        cli, ["subscribers", "show", "bob@example.org"]).output
    status = json.loads(runner.invoke(cli, ["issues", "status", issue_slug, "--json"]).output)
    assert status["reports"] == {"hard": 2, "auto-reply": 1, "unsubscribe": 1}
    assert status["bounced"] == 2 and status["sent"] == 3
    assert "2 hard bounce(s) (40.00%), 0 soft (0.00%), 0 complaint(s)" in runner.invoke(
        cli, ["issues", "status", issue_slug]).output.replace("\n", " ")
    missing = runner.invoke(cli, ["bounces", "import", str(tmp_path / "nope.eml")])
    assert missing.exit_code == 1 and "nope.eml: cannot read it" in missing.output
    assert runner.invoke(cli, ["bounces", "import", "--maildir", str(tmp_path)]).exit_code == 1


def test_an_imap_mailbox_is_read_once_each_message_recorded_before_it_is_seen(
    settings: Settings, sessions: sessionmaker[Session], smtp_server: SmtpServer,
    issue_slug: str, runner: CliRunner,
) -> None:
    """Against a real IMAP server (Dovecot) the tests start."""
    sent = sent_through(settings, sessions, smtp_server, issue_slug)
    with dovecot() as server:
        client = imaplib.IMAP4("127.0.0.1", server.port, timeout=10)
        client.login("bounces", server.password)
        for raw in (dsn(sent["bob@example.org"][0], "bob@example.org", "5.1.1"),
                    vacation(sent["ana@example.org"][0])):
            assert client.append("INBOX", None, None, raw)[0] == "OK"
        first = runner.invoke(cli, ["bounces", "imap", server.url, "--once", "--json"])
        assert first.exit_code == 0, first.output
        assert json.loads(first.output)["kinds"] == {"hard": 1, "auto-reply": 1}
        client.select("INBOX")
        assert client.search(None, "UNSEEN")[1] == [b""]  # both marked seen
        again = runner.invoke(cli, ["bounces", "imap", server.url, "--once"])
        assert again.exit_code == 0 and "0 new message(s)" in again.output
        # --delete takes them out of the mailbox once recorded
        client.append("INBOX", None, None, dsn(sent["eva@example.org"][0],
                                               "eva@example.org", "5.1.2"))
        deleted = runner.invoke(cli, ["bounces", "imap", server.url, "--once", "--delete"])
        assert deleted.exit_code == 0 and "1 new message(s): 1 hard" in deleted.output
        client.select("INBOX")
        assert len(client.search(None, "ALL")[1][0].split()) == 2
        wrong = server.url.replace(server.password, "not-it")
        refused = runner.invoke(cli, ["bounces", "imap", wrong, "--once"])
        assert refused.exit_code == 1 and "IMAP 127.0.0.1" in refused.output
        client.logout()
    with sessions() as session:
        status = dict(session.execute(select(Subscriber.email, Subscriber.status)).all())
    assert status["bob@example.org"] == status["eva@example.org"] == "bounced"
    assert status["ana@example.org"] == "active"


def test_lmtp_answers_each_recipient(settings: Settings, sessions: sessionmaker[Session],
                                     smtp_server: SmtpServer, issue_slug: str) -> None:
    """RFC 2033 4.2: after DATA, one reply per accepted recipient (review: one reply for
    two left the client waiting for the second)."""
    sent = sent_through(settings, sessions, smtp_server, issue_slug)
    engine = make_engine(settings.resolved_database_url)
    server = receiver(session_factory(engine), settings, "127.0.0.1", free_port(), lmtp=True)
    server.start()
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as conn:
            lines = conn.makefile("rb")
            assert lines.readline().startswith(b"220")
            rcpts = [sent["bob@example.org"][0], "postmaster@example.org"]
            conn.sendall(b"LHLO test\r\nMAIL FROM:<>\r\n" + b"".join(
                f"RCPT TO:<{r}>\r\n".encode() for r in rcpts) + b"DATA\r\n")
            replies = []
            while len(replies) < 2 + len(rcpts) + 1:  # LHLO (multi-line), MAIL, RCPTs, DATA
                line = lines.readline()
                if line[3:4] == b" ":
                    replies.append(line)
            assert replies[-1].startswith(b"354")
            conn.sendall(dsn(rcpts[0], "bob@example.org", "5.1.1") + b".\r\n")
            after = [lines.readline() for _ in rcpts]
            assert all(r.startswith(b"250") for r in after), after
    finally:
        server.stop()
        engine.dispose()
    with sessions() as session:
        assert session.scalar(select(Subscriber.status).where(
            Subscriber.email == "bob@example.org")) == "bounced"


def test_a_complaint_is_not_overwritten_by_a_later_bounce_or_unsubscribe(
    settings: Settings, sessions: sessionmaker[Session], smtp_server: SmtpServer,
    issue_slug: str,
) -> None:
    sent = sent_through(settings, sessions, smtp_server, issue_slug)
    to, message_id = sent["eva@example.org"]
    assert process(sessions, settings, arf("eva@example.org", to, message_id),
                   source="import").decision == "complained and suppressed"
    process(sessions, settings, dsn(to, "eva@example.org", "5.1.1"), source="import")
    token = to.split("+", 1)[1]
    unsubscribe = process(sessions, settings, f"To: unsubscribe+{token}\r\nSubject: stop"
                          "\r\n\r\n".encode(), source="import")
    assert unsubscribe.decision == "nothing: they complained already (suppressed)"
    with sessions() as session:
        assert session.scalar(select(Subscriber.status).where(
            Subscriber.email == "eva@example.org")) == "complained"
