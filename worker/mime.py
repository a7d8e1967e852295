"""Building one message: multipart/alternative, safe headers, quoted-printable bodies."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime

from newsletter.render import Rendered

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")


def header_text(value: str) -> str:
    """One line of header text that cannot start a new header or smuggle an encoded-word.

    Inputs are validated where users type them; this is the last line of defence
    (CVE-2024-6923 lets `=?...?=` with a newline inject headers in Python < 3.11.10).
    """
    return _CONTROL.sub(" ", value).replace("=?", "= ?").strip()


@dataclass(frozen=True)
class Headers:
    from_name: str
    from_email: str
    to_name: str
    to_email: str
    message_id: str
    list_id: str
    unsubscribe_url: str
    reply_to: str = ""


def build_message(rendered: Rendered, headers: Headers, when: datetime | None = None) -> bytes:
    """The wire bytes of one message (CRLF line endings, ready for SMTP DATA)."""
    utf8 = not (headers.to_email + headers.from_email).isascii()
    msg = EmailMessage(policy=policy.SMTPUTF8 if utf8 else policy.SMTP)
    msg["From"] = Address(header_text(headers.from_name), addr_spec=headers.from_email)
    msg["To"] = Address(header_text(headers.to_name), addr_spec=headers.to_email)
    if headers.reply_to:
        msg["Reply-To"] = headers.reply_to
    msg["Subject"] = header_text(rendered.subject)
    msg["Date"] = format_datetime(when or datetime.now(UTC))
    msg["Message-ID"] = headers.message_id
    msg.set_content(rendered.text, subtype="plain", charset="utf-8", cte="quoted-printable")
    msg.add_alternative(rendered.html, subtype="html", charset="utf-8", cte="quoted-printable")
    head, blank, body = msg.as_bytes().partition(b"\r\n\r\n")
    return head + b"\r\n" + _list_headers(headers) + blank + body


def _list_headers(headers: Headers) -> bytes:
    """List-* headers, written as they are: the email package would turn a long URL into
    an RFC 2047 encoded-word, which no receiver decodes (one-click unsubscribe breaks)."""
    lines = [
        f"List-Id: <{headers.list_id}>",
        f"List-Unsubscribe: <{headers.unsubscribe_url}>",
        "List-Unsubscribe-Post: List-Unsubscribe=One-Click",
    ]
    for line in lines:
        if not line.isascii() or _CONTROL.search(line) or " " in line.partition(": ")[2]:
            raise ValueError(f"unsafe header {line[:80]!r}: list ids and URLs must be ASCII")
        if len(line) > 998:
            raise ValueError(f"header longer than SMTP allows: {line[:80]!r}...")
    return "\r\n".join(lines).encode("ascii")


def message_id(issue_slug: str, delivery_id: int, domain: str) -> str:
    """Stable per delivery: a retried message keeps its id, so receivers can spot a repeat."""
    return f"<{issue_slug}.{delivery_id}@{domain}>"
