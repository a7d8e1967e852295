"""Building messages fast: encode a variant once, then fill in each recipient.

A `MessageTemplate` holds a variant's headers and quoted-printable bodies, encoded
once, with slots where per-recipient values go (To, Message-ID, the links). Filling
a slot never re-encodes the body: each encoded segment ends with a soft line break,
so a substituted URL sits on lines of its own and cannot be split by the encoder,
and decoding gives back exactly the personalised text.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy
from email.utils import format_datetime, formataddr
from functools import cached_property, lru_cache

import idna

from newsletter.render import Rendered
from subscribers.validate import CONTROL

_CONTROL = re.compile(f"(?:{CONTROL.pattern})+")  # a run of them, as one space
_SOFT_BREAK = b"=\r\n"
_QP_LINE = 73  # URL chunk per encoded line: 73 + "=" stays within the 76 RFC 2045 allows
_FOLD_AT = 78  # RFC 5322's recommended line length (998 octets is the hard limit)
_PHRASE_LINE = 900  # an ASCII name longer than this (none we accept) is encoded and folded
# UTF-8 octets per encoded-word: 60 in base64, 72 with "=?utf-8?b?" and "?=", so a word
# and the space that folds before it stay within 78 octets (RFC 2047 allows 75 per word)
_WORD_BYTES = 45


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


@dataclass(frozen=True)
class Recipient:
    name: str
    email: str
    message_id: str
    unsubscribe_url: str
    links: Mapping[str, str]  # placeholder -> value, filled into both bodies
    unsubscribe_mailto: str = ""  # a second List-Unsubscribe, for mail clients without https


def _fold(name: str, value: str) -> bytes:
    """A header encoded and folded by the email package (once per variant: ~100 µs).

    An ASCII subject is broken before spaces by us: the email package breaks a long one
    that starts with a "[" ("[TEST es-CR] ...") right after the colon, and readers then
    see it with a leading space."""
    if name == "Subject" and value.isascii():
        lines = _fold_before_spaces(f"{name}: ", value)
        if all(len(line) <= _FOLD_AT for line in lines):
            return ("\r\n".join(lines) + "\r\n").encode("ascii")
    header = policy.SMTP.header_factory(name, value)
    return str(header.fold(policy=policy.SMTP)).encode("ascii")


def ascii_address(email: str) -> str:
    """The address as every server accepts it: an internationalised domain in IDNA form
    (bücher.de -> xn--bcher-kva.de), so no SMTPUTF8 support is needed (local parts are
    ASCII: import refuses others)."""
    if email.isascii():
        return email
    local, _, domain = email.rpartition("@")
    # IDNA 2008 with UTS 46 (as email-validator checks it): Python's own 'idna' codec is
    # IDNA 2003, which maps straße.de to strasse.de, someone else's domain
    return f"{local}@{idna.encode(domain, uts46=True).decode('ascii')}"


def _encoded_words(text: str) -> list[str]:
    """`text` as RFC 2047 encoded-words of whole characters, each short enough to sit on
    a line of its own within the 78 octets RFC 5322 recommends."""
    raw = text.encode("utf-8")
    if len(raw) <= _WORD_BYTES:  # the usual name: one word
        return [f"=?utf-8?b?{binascii.b2a_base64(raw, newline=False).decode()}?="]
    chunks: list[bytes] = []
    chunk = b""
    for char in text:  # never split a character between two words
        encoded = char.encode("utf-8")
        if len(chunk) + len(encoded) > _WORD_BYTES:
            chunks.append(chunk)
            chunk = b""
        chunk += encoded
    chunks.append(chunk)
    return [f"=?utf-8?b?{binascii.b2a_base64(c, newline=False).decode()}?=" for c in chunks]


def _fold_before_spaces(start: str, text: str) -> list[str]:
    """`start + text` as lines of at most 78 octets where a space allows: each break goes
    before a space, so unfolding (which removes only the CRLF) gives the text back,
    inside a quoted string too (RFC 5322 section 3.2.4)."""
    first, *rest = re.split(r"(?= )", text)
    lines, line = [], start + first
    for part in rest:  # each starts with its space
        if len(line) + len(part) > _FOLD_AT and line.strip():
            lines.append(line)
            line = part
        else:
            line += part
    lines.append(line)
    return lines


def _address_header(name: str, display: str, email: str) -> bytes:
    """An address header in a few µs (per recipient), folded by octets so that no line
    comes near the 998 octets SMTP allows (a 200-character name of 4-byte characters is
    800 octets before encoding): an ASCII name as it is, broken before spaces; any other
    as RFC 2047 encoded-words, one per line. The address goes on a line of its own when
    it would take the line past 78."""
    address = ascii_address(email)
    display = header_text(display)
    if not display:
        return f"{name}: {address}\r\n".encode("ascii")
    phrase = formataddr((display, "@")).removesuffix(" <@>") if display.isascii() else ""
    lines = _fold_before_spaces(f"{name}: ", phrase) if phrase else []
    if not lines or max(len(line) for line in lines) > _PHRASE_LINE:
        words = _encoded_words(display)
        lines = [f"{name}: {words[0]}", *(f" {word}" for word in words[1:])]
    if len(lines[-1]) + len(address) + 3 <= _FOLD_AT:
        lines[-1] += f" <{address}>"
    else:
        lines.append(f" <{address}>")
    return ("\r\n".join(lines) + "\r\n").encode("ascii")


def _qp(text: str) -> bytes:
    text = text.replace("\r\n", "\n").replace("\r", "\n")  # a bare CR is not allowed
    encoded = binascii.b2a_qp(text.encode("utf-8"), istext=True)
    return _no_leading_dots(encoded.replace(b"\n", b"\r\n"))


def _no_leading_dots(encoded: bytes) -> bytes:
    """Quoted-printable lines of which none starts with "." (RFC 2049 advises it: a
    transport that forgets to dot-stuff cannot lose the dot, or end the message at a
    lone one), so a whole message is known to be dot-safe without reading it (each
    recipient's SMTP session then skips its pass over the message). A leading "." is
    written =2E, and a line that grows past 76 characters breaks again (softly, never
    inside an =XX escape, never before a ".")."""
    if not encoded.startswith(b".") and b"\n." not in encoded:
        return encoded
    lines: list[bytes] = []
    for line in encoded.split(b"\r\n"):
        if line.startswith(b"."):
            line = b"=2E" + line[1:]
        while len(line) > 76:
            cut = _soft_cut(line)
            lines.append(line[:cut] + b"=")
            line = line[cut:]
        lines.append(line)
    return b"\r\n".join(lines)


def _soft_cut(line: bytes) -> int:
    """Where a soft break goes in a line too long for 76 characters: at most 75 before
    it, never inside an =XX escape, never so that the next line starts with "."."""
    cut = 75
    while b"=" in line[cut - 2 : cut] or line[cut : cut + 1] == b".":
        cut -= 1
    return cut


def _qp_open(text: str) -> bytes:
    """Encoded text ending in a soft break, its last line still within 76 characters."""
    encoded = _qp(text)
    start = encoded.rfind(b"\r\n") + 2 if b"\r\n" in encoded else 0
    last = encoded[start:]
    if len(last) >= 76:
        cut = _soft_cut(last)
        encoded = encoded[:start] + last[:cut] + _SOFT_BREAK + last[cut:]
    return encoded + _SOFT_BREAK


def _qp_value(value: str) -> bytes:
    """A substituted value on lines of its own, each ending in a soft break."""
    raw = value.encode("utf-8")
    if not raw.isascii() or _CONTROL.search(value):
        raise ValueError(f"a link must be ASCII without control characters: {value[:80]!r}")
    raw = raw.replace(b"=", b"=3D")
    chunks = [raw[i : i + _QP_LINE] for i in range(0, len(raw), _QP_LINE)]
    # never leave "=3D" split across chunks
    fixed: list[bytes] = []
    carry = b""
    for chunk in chunks:
        chunk = carry + chunk
        cut = chunk.rfind(b"=", max(0, len(chunk) - 2))
        carry, chunk = (chunk[cut:], chunk[:cut]) if cut != -1 else (b"", chunk)
        fixed.append(chunk)
    if carry:
        fixed.append(carry)
    # each chunk starts a line: a leading "." is written =2E (75 characters at most)
    return b"".join((b"=2E" + c[1:] if c.startswith(b".") else c) + _SOFT_BREAK
                    for c in fixed if c)


def _segments(text: str, slots: Sequence[str]) -> list[bytes | str]:
    """The body encoded around its slots: encoded bytes, and slot names where values go."""
    if not slots:
        return [_qp(text)]
    pattern = re.compile("|".join(re.escape(s) for s in slots))
    parts: list[bytes | str] = []
    position = 0
    for match in pattern.finditer(text):
        parts.append(_qp_open(text[position : match.start()]))
        parts.append(match.group())
        position = match.end()
    parts.append(_qp(text[position:]))
    return parts


@dataclass(frozen=True)
class MessageTemplate:
    head: bytes  # headers every recipient shares
    list_id: str
    text: list[bytes | str]
    html: list[bytes | str]
    boundary: str
    when: datetime | None = None  # a fixed Date (tests); None: the time of each message

    @classmethod
    def build(
        cls,
        rendered: Rendered,
        *,
        from_name: str,
        from_email: str,
        list_id: str,
        reply_to: str = "",
        feedback: str = "",
        slots: Sequence[str] = (),
        when: datetime | None = None,
    ) -> MessageTemplate:
        head = [
            _address_header("From", from_name, from_email),
            _fold("Subject", header_text(rendered.subject)),
        ]
        if reply_to:
            head.append(_fold("Reply-To", reply_to))
        if feedback:
            if not re.fullmatch(r"[A-Za-z0-9._:-]{1,200}", feedback):
                raise ValueError(f"unsafe Feedback-ID {feedback[:80]!r}")
            head.append(f"Feedback-ID: {feedback}\r\n".encode("ascii"))
        head.append(b"MIME-Version: 1.0\r\n")
        return cls(
            head=b"".join(head),
            list_id=list_id,
            text=_segments(rendered.text, slots),
            html=_segments(rendered.html, slots),
            boundary=f"=_{secrets.token_hex(12)}",
            when=when,
        )

    def render(self, to: Recipient) -> bytes:
        """One recipient's wire bytes (CRLF line endings, ready for SMTP DATA)."""
        return self.render_checked(to)[0]

    @cached_property
    def _static_dot_lines(self) -> bool:
        """Whether a part every recipient shares has a line that starts with "."."""
        shared = [self.head, *(p for p in (*self.text, *self.html) if isinstance(p, bytes))]
        return any(dot_line(part) for part in shared)

    def render_checked(self, to: Recipient) -> tuple[bytes, bool]:
        """`render`, and whether no line of the message starts with "." (True: SMTP's
        dot-stuffing would change nothing, and a transport may skip its pass over the
        whole message; False: it must stuff). Shared parts are looked at once per
        template, each recipient's own parts (a few hundred bytes) each time."""
        links = {k: _qp_value(v) for k, v in to.links.items()}
        boundary = self.boundary.encode()

        def body(parts: list[bytes | str]) -> bytes:
            return b"".join(p if isinstance(p, bytes) else links[p] for p in parts)

        own = (
            _date_header(self.when),
            _address_header("To", to.name, to.email),
            b"Message-ID: " + to.message_id.encode("ascii") + b"\r\n",
            _list_headers(self.list_id, to.unsubscribe_url, to.unsubscribe_mailto),
        )
        # the boundary only ever follows "--" or sits inside a header line
        dot_safe = not (self._static_dot_lines
                        or any(dot_line(part) for part in (*own, *links.values())))
        return b"".join((
            self.head,
            *own,
            b'Content-Type: multipart/alternative; boundary="', boundary, b'"\r\n\r\n',
            b"--", boundary, b"\r\n",
            b'Content-Type: text/plain; charset="utf-8"\r\n',
            b"Content-Transfer-Encoding: quoted-printable\r\n\r\n",
            body(self.text), b"\r\n",
            b"--", boundary, b"\r\n",
            b'Content-Type: text/html; charset="utf-8"\r\n',
            b"Content-Transfer-Encoding: quoted-printable\r\n\r\n",
            body(self.html), b"\r\n",
            b"--", boundary, b"--\r\n",
        )), dot_safe


def dot_line(part: bytes) -> bool:
    """Whether a piece of a message might put "." at the start of a line: a line inside
    it does, or it starts with one (a piece may follow a line break)."""
    return part.startswith(b".") or b"\n." in part


_date_cache: tuple[int, bytes] = (0, b"")


def _date_header(when: datetime | None) -> bytes:
    """The Date header: when the message is made (a retry days later says so), computed
    once a second, since it changes no faster."""
    global _date_cache
    if when is not None:
        return f"Date: {format_datetime(when)}\r\n".encode("ascii")
    now = datetime.now(UTC)
    second = int(now.timestamp())
    if _date_cache[0] != second:
        _date_cache = (second, f"Date: {format_datetime(now.replace(microsecond=0))}\r\n"
                       .encode("ascii"))
    return _date_cache[1]


def _list_headers(list_id: str, unsubscribe_url: str, mailto: str = "") -> bytes:
    """List-* headers, written as they are: the email package would turn a long URL into
    an RFC 2047 encoded-word, which no receiver decodes (one-click unsubscribe breaks).
    The https link comes first (RFC 8058's one-click); a mailto after it, folded onto a
    line of its own, for clients that only mail."""
    unsubscribe = f"List-Unsubscribe: <{unsubscribe_url}>"
    if mailto:
        if " " in mailto or "," in mailto or not mailto.startswith("mailto:"):
            raise ValueError(f"unsafe mailto {mailto[:80]!r}")
        unsubscribe += f",\r\n <{mailto}>"
    lines = [
        f"List-Id: <{list_id}>",
        unsubscribe,
        "List-Unsubscribe-Post: List-Unsubscribe=One-Click",
    ]
    for line in lines:
        value = line.partition(": ")[2].replace(",\r\n <", ",<")
        if not line.isascii() or _CONTROL.search(line.replace("\r\n ", " ")) or " " in value:
            raise ValueError(f"unsafe header {line[:80]!r}: list ids and URLs must be ASCII")
        if len(line) > 998:
            raise ValueError(f"header longer than SMTP allows: {line[:80]!r}...")
    return ("\r\n".join(lines) + "\r\n").encode("ascii")


def build_message(rendered: Rendered, headers: Headers, when: datetime | None = None) -> bytes:
    """One finished message (no slots): for test sends and the tests themselves."""
    template = MessageTemplate.build(
        rendered, from_name=headers.from_name, from_email=headers.from_email,
        list_id=headers.list_id, reply_to=headers.reply_to, when=when,
    )
    return template.render(
        Recipient(headers.to_name, headers.to_email, headers.message_id,
                  headers.unsubscribe_url, {})
    )


@lru_cache(maxsize=64)  # the same for every message of an issue: once, not per message
def issue_key(secret_key: str, issue_id: int, created_at: datetime) -> str:
    """Ten characters that tell this issue from any other, in any database: a keyed hash
    of its id and the microsecond it was created (a database reset reuses ids and slugs,
    never both with the same creation time)."""
    digest = hmac.new(secret_key.encode(), f"message-id {issue_id} {created_at.isoformat()}"
                      .encode(), hashlib.sha256).digest()
    return base64.b32encode(digest[:10]).decode("ascii").lower()[:10]


def message_id(issue_slug: str, delivery_id: int, domain: str, key: str) -> str:
    """Stable per delivery (a retried message keeps its id, so receivers can spot a
    repeat) and unique across databases (`key`: `issue_key`)."""
    return f"<{issue_slug}.{delivery_id}.{key}@{domain}>"


def feedback_id(issue_slug: str, list_id: str, sender_domain: str) -> str:
    """Gmail's Feedback-ID (campaign:list:sender), for its per-campaign complaint rates:
    colons separate the fields, so none may hold one."""
    fields = [re.sub(r"[^A-Za-z0-9._-]", "-", value) for value in
              (issue_slug, list_id.partition(".")[0], sender_domain)]
    return ":".join(fields)
