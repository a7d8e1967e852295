"""Where messages go: one small interface, three implementations.

`send` returns the server's reply on success and raises `TemporaryFailure` (try again
later), `PermanentFailure` (this recipient will never get it) or `ConnectionFailure`
(the transport itself is down: nothing about the recipient is known).
"""

from __future__ import annotations

import os
import re
import smtplib
import ssl
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlsplit

from newsletter.errors import NewsletterError
from worker.ratelimit import Limiter, Unlimited


@dataclass(frozen=True)
class Envelope:
    sender: str
    recipient: str
    message: bytes
    message_id: str
    # no line of `message` starts with ".": SMTP's dot-stuffing would change nothing
    # (MessageTemplate.render_checked knows it without reading the whole message)
    dot_safe: bool = False


class TransportError(NewsletterError):
    def __init__(self, reply: str, code: int | None = None) -> None:
        self.reply = reply
        self.code = code
        super().__init__(f"{code} {reply}" if code else reply)


class TemporaryFailure(TransportError):
    """4xx: the server may accept the message later."""


class PermanentFailure(TransportError):
    """5xx: the server refuses this message for good."""


class ConnectionFailure(TemporaryFailure):
    """The server could not be reached or went away mid-conversation."""


class SenderProblem(PermanentFailure):
    """Our side is at fault (login refused, relaying denied): no recipient is to blame."""


class Transport(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def last_relay(self) -> str:
        """Which server took (or refused) the last message."""

    def ready(self) -> None:
        """Wait until the rate limits allow the next message (it may take long)."""

    def send(self, envelope: Envelope) -> str: ...

    def close(self) -> None: ...


_PLAIN_ADDRESS = re.compile(r"[^\s<>()\[\],;:\\\"]+@[^\s<>()\[\],;:\\\"@]+")


def _path(address: str) -> str:
    """`<address>` for MAIL FROM and RCPT TO: our addresses are validated plain ones, so
    the email package's parser (smtplib.quoteaddr, 40 us a message) is needed only for
    anything else (an empty sender stays <>)."""
    if _PLAIN_ADDRESS.fullmatch(address):
        return f"<{address}>"
    return smtplib.quoteaddr(address)


def _dot_stuffed(message: bytes) -> bytes:
    """A line that starts with "." gets another (RFC 5321 4.5.2): two replaces, five
    times faster than a multiline regular expression on a 56 KB message."""
    stuffed = message.replace(b"\n.", b"\n..")
    return b"." + stuffed if stuffed.startswith(b".") else stuffed


_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f<>]")  # never in a Return-Path we write


def _failure(code: int, reply: bytes | str) -> TransportError:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply
    if 400 <= code < 500:
        return TemporaryFailure(text, code)
    return PermanentFailure(text, code)


class SMTPTransport:
    """A real SMTP server; one connection, opened on first use and reused until it fails.

    URL forms: smtp://host:port, smtp+starttls://user:pass@host:587, smtps://host:465.
    """

    name = "smtp"

    def __init__(
        self,
        url: str,
        timeout: float = 30.0,
        local_hostname: str | None = None,
        pipelining: str = "auto",  # auto: when the server offers it; on; off
    ):
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtp+starttls", "smtps") or not parts.hostname:
            raise NewsletterError(
                f"NEWSLETTER_SMTP_URL {url!r} is not an SMTP URL: use smtp://host:port, "
                "smtp+starttls://user:password@host:587 or smtps://host:465"
            )
        self.scheme = parts.scheme
        self.host = parts.hostname
        self.port = parts.port or {"smtps": 465, "smtp+starttls": 587}.get(parts.scheme, 25)
        self.username = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password else None
        self.timeout = timeout
        self.local_hostname = local_hostname
        self.relay = f"{self.host}:{self.port}"
        self.last_relay = self.relay
        self.pipelining = pipelining
        self._conn: smtplib.SMTP | None = None

    def _connect(self) -> smtplib.SMTP:
        try:
            conn: smtplib.SMTP
            if self.scheme == "smtps":
                conn = smtplib.SMTP_SSL(
                    self.host, self.port, self.local_hostname, timeout=self.timeout,
                    context=ssl.create_default_context(),
                )
            else:
                conn = smtplib.SMTP(self.host, self.port, self.local_hostname, self.timeout)
            conn.ehlo()
            if self.scheme == "smtp+starttls":
                conn.starttls(context=ssl.create_default_context())
                conn.ehlo()
            if self.username:
                conn.login(self.username, self.password or "")
        except smtplib.SMTPAuthenticationError as exc:
            raise SenderProblem(
                f"the SMTP server refused the login: {exc.smtp_error!r}; check the user and "
                "password in NEWSLETTER_SMTP_URL", exc.smtp_code,
            ) from exc
        except (OSError, smtplib.SMTPException) as exc:
            raise ConnectionFailure(
                f"cannot connect to the SMTP server {self.host}:{self.port}: {exc}"
            ) from exc
        return conn

    def send(self, envelope: Envelope) -> str:
        if self._conn is None:
            self._conn = self._connect()
        conn = self._conn
        try:
            mail_options: list[str] = []
            if not (envelope.sender + envelope.recipient).isascii():
                if not conn.has_extn("smtputf8"):
                    raise PermanentFailure(
                        "the address is not ASCII and the server does not offer SMTPUTF8"
                    )
                mail_options.append("SMTPUTF8")
            if self.pipelining == "on" or (
                self.pipelining == "auto" and conn.has_extn("pipelining")
            ):
                return self._send_pipelined(conn, envelope, mail_options)
            code, reply = conn.mail(envelope.sender, mail_options)
            if code != 250:
                conn.rset()
                raise _failure(code, reply)
            code, reply = conn.rcpt(envelope.recipient)
            if code not in (250, 251):
                conn.rset()
                raise _failure(code, reply)
            code, reply = conn.data(envelope.message)
            if code != 250:
                raise _failure(code, reply)
            return f"{code} {reply.decode('utf-8', 'replace')}"
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            self.close()
            raise ConnectionFailure(f"the SMTP server went away: {exc}") from exc
        except smtplib.SMTPResponseException as exc:
            raise _failure(exc.smtp_code, exc.smtp_error) from exc

    def ready(self) -> None:
        return None

    @staticmethod
    def _send_pipelined(conn: smtplib.SMTP, envelope: Envelope, mail_options: list[str]) -> str:
        """MAIL, RCPT and DATA in one write (RFC 2920): two round trips a message, not four.
        The first refusal is the one reported; the body goes only after a 354."""
        options = "".join(f" {o}" for o in mail_options)
        conn.send(
            f"MAIL FROM:{_path(envelope.sender)}{options}\r\n"
            f"RCPT TO:{_path(envelope.recipient)}\r\nDATA\r\n".encode("ascii")
        )
        mail, rcpt, data = conn.getreply(), conn.getreply(), conn.getreply()
        refused = next(
            (r for r, ok in ((mail, (250,)), (rcpt, (250, 251))) if r[0] not in ok), None
        )
        if data[0] != 354:
            conn.rset()
            code, reply = refused or data
            raise _failure(code, reply)
        if refused is not None:  # a lax server said 354 anyway: end an empty message
            conn.send(b".\r\n")
            conn.getreply()
            conn.rset()
            raise _failure(*refused)
        body = envelope.message if envelope.dot_safe else _dot_stuffed(envelope.message)
        if not body.endswith(b"\r\n"):
            body += b"\r\n"
        conn.send(body + b".\r\n")
        code, reply = conn.getreply()
        if code != 250:
            raise _failure(code, reply)
        return f"{code} {reply.decode('utf-8', 'replace')}"

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.quit()
            except (TimeoutError, smtplib.SMTPException, OSError):
                conn.close()


_UNSAFE = re.compile(r"[^A-Za-z0-9._@-]+")


class OutboxTransport:
    """`.eml` files in a directory: what a preview or a dry run would have sent.

    Files are named by Message-ID, which is stable per delivery, so sending again
    replaces a file instead of adding a copy. Each starts with `Return-Path:`, the
    envelope sender, as a delivery agent writes it.
    """

    name = "outbox"
    last_relay = "outbox"

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def ready(self) -> None:
        return None

    def send(self, envelope: Envelope) -> str:
        self.directory.mkdir(parents=True, exist_ok=True)
        stem = _UNSAFE.sub("_", envelope.message_id.strip("<>"))
        path = self.directory / f"{stem}.eml"
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        sender = _CONTROL_CHARS.sub("", envelope.sender)
        tmp.write_bytes(f"Return-Path: <{sender}>\r\n".encode("ascii", "replace")
                        + envelope.message)
        os.replace(tmp, path)
        return f"250 written to {path}"

    def close(self) -> None:
        return None


@dataclass
class MemoryTransport:
    """Keeps messages in a list; for tests of code above the transport."""

    name: str = "memory"
    last_relay: str = "memory"
    sent: list[Envelope] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def ready(self) -> None:
        return None

    def send(self, envelope: Envelope) -> str:
        with self._lock:
            self.sent.append(envelope)
        return "250 kept in memory"

    def close(self) -> None:
        return None


class RelayPool:
    """Several SMTP relays in order of preference, with failover and rate limits.

    A relay that cannot be reached is skipped for `cooldown` seconds; if every relay is
    down the send is a `ConnectionFailure` (retried later, never a bounce). Each message
    first waits for its relay's rate limit, which all workers share.
    """

    name = "smtp"

    def __init__(
        self,
        relays: list[SMTPTransport],
        limiter: Limiter | None = None,
        cooldown: float = 60.0,
    ) -> None:
        if not relays:
            raise NewsletterError("no SMTP relay configured: set NEWSLETTER_SMTP_URL")
        self.relays = relays
        self.limiter = limiter or Unlimited()
        self.cooldown = cooldown
        self._down_until: dict[str, float] = {}
        self.last_relay = relays[0].relay
        self._granted: str | None = None  # the relay whose rate limit ready() waited for

    def _candidates(self) -> list[SMTPTransport]:
        now = time.monotonic()
        up = [r for r in self.relays if self._down_until.get(r.relay, 0) <= now]
        return up or self.relays

    def ready(self) -> None:
        relay = self._candidates()[0].relay
        self.limiter.acquire(relay)
        self._granted = relay

    def send(self, envelope: Envelope) -> str:
        failures: list[str] = []
        granted, self._granted = self._granted, None
        for relay in self._candidates():
            if relay.relay != granted:
                self.limiter.acquire(relay.relay)
            granted = None
            try:
                reply = relay.send(envelope)
            except ConnectionFailure as exc:
                self._down_until[relay.relay] = time.monotonic() + self.cooldown
                failures.append(str(exc))
                continue
            except TransportError:
                self.last_relay = relay.relay
                raise
            self._down_until.pop(relay.relay, None)
            self.last_relay = relay.relay
            return reply
        raise ConnectionFailure("; ".join(failures) or "no SMTP relay is reachable")

    def close(self) -> None:
        for relay in self.relays:
            relay.close()
