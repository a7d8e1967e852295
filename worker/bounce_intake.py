"""Where reports come in: an SMTP or LMTP receiver, an IMAP mailbox, mbox files, Maildir
folders.

Each message goes through `process`: classified (`bounce_parse.classify`), its decision
made and stored (`bounce_record.record`) and committed, in that order, before the
receiver answers 250: a receiver that dies between the two leaves the sender to retry,
and the retry is recorded once (reports are unique by their SHA-256). When the database
cannot take it, the receiver answers 451 and the sending server keeps the report.

The receiver is the mail exchanger (or an LMTP target) of NEWSLETTER_BOUNCE_DOMAIN: it
accepts mail for that domain only, so it relays nothing.
"""

from __future__ import annotations

import imaplib
import logging
import mailbox
import re
import ssl
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from newsletter.db import utcnow
from newsletter.errors import NewsletterError
from newsletter.settings import Settings
from worker.bounce_parse import MAX_BYTES, classify
from worker.bounce_record import Outcome, record

log = logging.getLogger(__name__)
Clock = Callable[[], datetime]


class IntakeError(NewsletterError):
    """A file or folder of reports that cannot be read; the message says which."""


def process(sessions: sessionmaker[Session], settings: Settings, raw: bytes, *,
            source: str, envelope_to: tuple[str, ...] = (), clock: Clock = utcnow) -> Outcome:
    """Read, decide, store and commit one message."""
    report = classify(raw, settings.resolved_bounce_domain, envelope_to=envelope_to)
    with sessions() as session, session.begin():
        return record(session, report, raw, settings, source=source, now=clock())


def read_mbox(path: Path) -> Iterator[bytes]:
    """The messages of an mbox file, as bytes."""
    if not path.is_file():
        raise IntakeError(f"{path}: no such mbox file")
    box = mailbox.mbox(path, create=False)
    try:
        for key in box.iterkeys():
            yield box.get_bytes(key)
    finally:
        box.close()


def read_maildir(path: Path) -> Iterator[bytes]:
    """The messages of a Maildir folder (new/ and cur/), as bytes."""
    if not (path / "cur").is_dir() and not (path / "new").is_dir():
        raise IntakeError(f"{path}: not a Maildir folder (it has no cur/ or new/)")
    box = mailbox.Maildir(path, factory=None, create=False)
    for key in box.iterkeys():
        yield box.get_bytes(key)


def read_file(path: Path) -> bytes:
    """One message in a file (.eml)."""
    try:
        with path.open("rb") as source:
            return source.read(MAX_BYTES)
    except OSError as exc:
        raise IntakeError(f"{path}: cannot read it: {exc.strerror or exc}") from exc


class Handler:
    """aiosmtpd handler: mail for the bounce domain only; 250 once it is committed."""

    def __init__(self, sessions: sessionmaker[Session], settings: Settings,
                 source: str = "smtp", clock: Clock = utcnow) -> None:
        self.sessions = sessions
        self.settings = settings
        self.source = source
        self.clock = clock
        self.outcomes: list[Outcome] = []

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:
        domain = address.rpartition("@")[2].lower().rstrip(".")
        if domain != self.settings.resolved_bounce_domain:
            return "550 5.7.1 relaying denied: this server takes mail for " \
                   f"{self.settings.resolved_bounce_domain} only"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        raw = envelope.original_content or envelope.content
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        try:
            outcome = process(self.sessions, self.settings, raw, source=self.source,
                              envelope_to=tuple(envelope.rcpt_tos), clock=self.clock)
        except Exception:  # noqa: BLE001 (the database is away: the sender keeps it)
            log.exception("could not record a report; answered 451")
            return self._each(envelope, "451 4.3.0 cannot store the report now: try again later")
        self.outcomes.append(outcome)
        log.info("report %s: %s: %s", outcome.report_id, outcome.kind, outcome.decision)
        return self._each(envelope, "250 OK recorded")

    def _each(self, envelope: Any, reply: str) -> str:
        """SMTP answers DATA once; LMTP once per accepted recipient (RFC 2033 4.2)."""
        if self.source != "lmtp":
            return reply
        return "\r\n".join([reply] * max(1, len(envelope.rcpt_tos)))


def receiver(sessions: sessionmaker[Session], settings: Settings, host: str, port: int, *,
             lmtp: bool = False, clock: Clock = utcnow) -> Any:
    """A started-on-`start()` aiosmtpd controller on host:port (port 0: any free one)."""
    from aiosmtpd.controller import Controller
    from aiosmtpd.lmtp import LMTP
    from aiosmtpd.smtp import SMTP

    handler = Handler(sessions, settings, "lmtp" if lmtp else "smtp", clock)
    hostname = settings.resolved_bounce_domain

    class _Receiver(Controller):
        def factory(self) -> SMTP:
            kind = LMTP if lmtp else SMTP
            return kind(self.handler, hostname=hostname, data_size_limit=MAX_BYTES,
                        enable_SMTPUTF8=True, decode_data=False)

    return _Receiver(handler, hostname=host, port=port, ready_timeout=10)


IMAP_SCHEMES = {"imap": 143, "imap+starttls": 143, "imaps": 993}
IMAP_TIMEOUT = 30.0
_FETCHED = re.compile(rb"BODY\[\] \{\d+\}$")


def _imap_connect(url: str) -> tuple[imaplib.IMAP4, str]:
    """A logged-in connection and the folder, from imap[s|+starttls]://user:pass@host/FOLDER."""
    parts = urlsplit(url)
    if parts.scheme not in IMAP_SCHEMES or not parts.hostname:
        raise IntakeError(f"not an IMAP address: {parts.scheme or '(none)'}://...: use "
                          "imaps://user:password@host/INBOX (or imap+starttls:// or imap://)")
    if not parts.username or parts.password is None:
        raise IntakeError("the IMAP address needs a user and a password: "
                          "imaps://user:password@host/INBOX")
    port = parts.port or IMAP_SCHEMES[parts.scheme]
    try:
        if parts.scheme == "imaps":
            client: imaplib.IMAP4 = imaplib.IMAP4_SSL(
                parts.hostname, port, ssl_context=ssl.create_default_context(),
                timeout=IMAP_TIMEOUT)
        else:
            client = imaplib.IMAP4(parts.hostname, port, timeout=IMAP_TIMEOUT)
            if parts.scheme == "imap+starttls":
                client.starttls(ssl.create_default_context())
        client.login(unquote(parts.username), unquote(parts.password))
    except (OSError, imaplib.IMAP4.error) as exc:
        raise IntakeError(f"IMAP {parts.hostname}:{port}: {exc}") from exc
    folder = unquote(parts.path.lstrip("/")) or "INBOX"
    return client, folder


def poll_imap(sessions: sessionmaker[Session], settings: Settings, url: str, *,
              delete: bool = False, limit: int = 1000, clock: Clock = utcnow) -> list[Outcome]:
    """One pass over an IMAP folder: each unseen message (at most `limit`) is read without
    marking it, processed and committed, then flagged \\Seen (or deleted with `delete`).
    A message whose report cannot be stored stays unseen for the next pass."""
    client, folder = _imap_connect(url)
    outcomes: list[Outcome] = []
    try:
        kind, _ = client.select(_quote(folder))
        if kind != "OK":
            raise IntakeError(f"IMAP folder {folder!r} cannot be opened")
        kind, found = client.uid("SEARCH", "UNSEEN")
        uids = found[0].split()[:limit] if kind == "OK" and found and found[0] else []
        for uid in uids:
            kind, data = client.uid("FETCH", uid, "(BODY.PEEK[])")
            raw = next((item[1] for item in data if isinstance(item, tuple)
                        and _FETCHED.search(item[0])), None)
            if kind != "OK" or not isinstance(raw, bytes):
                log.warning("IMAP message %s could not be fetched; left for the next pass",
                            uid)
                continue
            try:
                outcomes.append(process(sessions, settings, raw, source="imap", clock=clock))
            except SQLAlchemyError as exc:  # the database is away: this pass ends here
                raise IntakeError(f"cannot store reports now ({exc.__class__.__name__}); "
                                  "the unread messages stay unseen") from exc
            client.uid("STORE", uid, "+FLAGS", "(\\Deleted)" if delete else "(\\Seen)")
        if delete and uids:
            client.expunge()
    except (OSError, imaplib.IMAP4.error) as exc:
        raise IntakeError(f"IMAP: {exc} (the messages not yet read stay unseen)") from exc
    finally:
        try:
            client.logout()
        except (OSError, imaplib.IMAP4.error):
            pass
    return outcomes


def _quote(folder: str) -> str:
    return '"' + folder.replace("\\", "\\\\").replace('"', '\\"') + '"'
