"""DKIM signatures made by the app (RFC 6376): rsa-sha256, or ed25519-sha256 (RFC 8463).

Sending signs when NEWSLETTER_DKIM_DOMAIN, NEWSLETTER_DKIM_SELECTOR and
NEWSLETTER_DKIM_KEY_FILE are set: every message that leaves through a transport (issues,
test sends, confirmations) goes through `SigningTransport`, so nothing is sent unsigned by
one path and signed by another. The signature covers the headers a receiver shows or acts
on (`SIGNED`), each once more than it occurs ("oversigned"), so nobody on the way can add
a second From, a Reply-To or another List-Unsubscribe without breaking it.
Headers are canonicalised "relaxed" (a relay that refolds a header does not break the
signature), the body "simple" (see `Signer`).

Keys: `generate_key` makes one and `dns_record` the TXT record to publish at
`<selector>._domainkey.<domain>`. A key file holds a PEM private key (RSA, PKCS#1 or
PKCS#8, as `openssl genrsa` or `genpkey` write it; or Ed25519 in PKCS#8) or, for Ed25519,
the base64 seed dkimpy's own tools write.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa, utils

from newsletter.errors import NewsletterError
from newsletter.settings import Settings
from worker.mime import dot_line
from worker.transports import Envelope, Transport

Algorithm = Literal["rsa", "ed25519"]
ALGORITHMS: dict[str, bytes] = {"rsa": b"rsa-sha256", "ed25519": b"ed25519-sha256"}
RSA_BITS = 2048
MIN_RSA_BITS = 1024  # receivers ignore shorter keys (RFC 8301)
MAX_KEY_FILE = 64 * 1024
# signed when present, in this order; the oversigned ones once more (present or not)
SIGNED = ("from", "to", "subject", "date", "message-id", "reply-to", "list-id",
          "list-unsubscribe", "list-unsubscribe-post", "feedback-id", "mime-version",
          "content-type", "content-transfer-encoding")
OVERSIGNED = SIGNED  # each once more than it occurs: nobody can add one on the way


class DkimError(NewsletterError):
    """A DKIM key or setting that cannot be used; the message says what to do."""


@dataclass(frozen=True)
class Key:
    domain: str
    selector: str
    algorithm: Algorithm
    private: bytes  # PKCS#1 PEM (RSA) or the base64 seed (Ed25519)
    public: bytes  # the value of the DNS record's p= (base64)

    @property
    def record_name(self) -> str:
        return f"{self.selector}._domainkey.{self.domain}"

    @property
    def record(self) -> str:
        return dns_record(self.algorithm, self.public)


def dns_record(algorithm: Algorithm, public: bytes) -> str:
    """The TXT record's text (`v=DKIM1; k=...; p=...`)."""
    return f"v=DKIM1; k={algorithm}; p={public.decode('ascii')}"


def zone_line(key: Key) -> str:
    """The record as a line of a DNS zone file: TXT strings hold at most 255 characters,
    so a 2048-bit RSA record is split into several (resolvers join them)."""
    text = key.record
    chunks = [text[i : i + 250] for i in range(0, len(text), 250)]
    quoted = " ".join(f'"{chunk}"' for chunk in chunks)
    return f"{key.record_name}. IN TXT ( {quoted} )"


def _from_private(private: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey, domain: str,
                  selector: str) -> Key:
    if isinstance(private, rsa.RSAPrivateKey):
        if private.key_size < MIN_RSA_BITS:
            raise DkimError(f"the RSA key has {private.key_size} bits; receivers ignore keys "
                            f"under {MIN_RSA_BITS}: make a new one with `newsletter dkim "
                            f"keygen` ({RSA_BITS} bits)")
        pem = private.private_bytes(serialization.Encoding.PEM,
                                    serialization.PrivateFormat.TraditionalOpenSSL,
                                    serialization.NoEncryption())
        der = private.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        return Key(domain, selector, "rsa", pem, base64.b64encode(der))
    seed = private.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                 serialization.NoEncryption())
    raw = private.public_key().public_bytes(serialization.Encoding.Raw,
                                            serialization.PublicFormat.Raw)
    return Key(domain, selector, "ed25519", base64.b64encode(seed), base64.b64encode(raw))


def generate_key(domain: str, selector: str, algorithm: Algorithm = "rsa") -> Key:
    """A new key: RSA of RSA_BITS bits, or Ed25519."""
    check_names(domain, selector)
    if algorithm == "rsa":
        return _from_private(rsa.generate_private_key(public_exponent=65537,
                                                      key_size=RSA_BITS), domain, selector)
    if algorithm == "ed25519":
        return _from_private(ed25519.Ed25519PrivateKey.generate(), domain, selector)
    raise DkimError(f"unknown algorithm {algorithm!r}: choose rsa or ed25519")


def key_file_text(key: Key) -> bytes:
    """What a key file holds: PEM for both (PKCS#8 for Ed25519, which openssl reads too)."""
    if key.algorithm == "rsa":
        return key.private
    private = ed25519.Ed25519PrivateKey.from_private_bytes(base64.b64decode(key.private))
    return private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())


def write_key_file(key: Key, path: Path, *, overwrite: bool = False) -> None:
    """Write the private key, readable by its owner only; never replaces a key unless told
    (the DNS record of the old one would stop matching)."""
    if path.exists() and not overwrite:
        raise DkimError(f"{path} exists: a new key needs a new DNS record too; choose "
                        "another --out, or --force to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    descriptor = os.open(path, flags, 0o600)
    with os.fdopen(descriptor, "wb") as out:
        out.write(key_file_text(key))
    path.chmod(0o600)


def check_names(domain: str, selector: str) -> None:
    for what, value in (("domain", domain), ("selector", selector)):
        labels = value.split(".")
        if not value or len(value) > 253 or not all(
                label and len(label) <= 63 and label.isascii()
                and all(c.isalnum() or c in "-_" for c in label) for label in labels):
            raise DkimError(f"DKIM {what} {value[:80]!r} is not a DNS name (letters, digits, "
                            "'-' and '_', dot-separated), e.g. news2026 or example.org")


def parse_key(data: bytes, domain: str, selector: str, *, source: str = "the key") -> Key:
    """A key from a key file's bytes; DkimError says what the file should hold."""
    check_names(domain, selector)
    text = data.strip()
    hint = (f"{source} is not an RSA or Ed25519 private key (PEM, or an Ed25519 base64 "
            "seed): make one with `newsletter dkim keygen`")
    if text.startswith(b"-----BEGIN"):
        if b"ENCRYPTED" in text.split(b"\n", 1)[0]:
            raise DkimError(f"{source} is encrypted: the sender needs it without a "
                            "passphrase (keep the file readable by its owner only)")
        try:
            private = serialization.load_pem_private_key(text, password=None)
        except (ValueError, TypeError) as exc:
            raise DkimError(hint) from exc
        if not isinstance(private, rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey):
            raise DkimError(hint)
        return _from_private(private, domain, selector)
    try:
        seed = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise DkimError(hint) from exc
    if len(seed) != 32:
        raise DkimError(hint)
    return _from_private(ed25519.Ed25519PrivateKey.from_private_bytes(seed), domain, selector)


def load_key(settings: Settings) -> Key | None:
    """The key the settings name, or None when DKIM is not configured."""
    path = settings.dkim_key_file
    if path is None or not settings.dkim_domain:
        return None
    try:
        with path.open("rb") as source:
            data = source.read(MAX_KEY_FILE + 1)
    except OSError as exc:
        raise DkimError(f"NEWSLETTER_DKIM_KEY_FILE: cannot read {path}: "
                        f"{exc.strerror or exc}") from exc
    if len(data) > MAX_KEY_FILE:
        raise DkimError(f"NEWSLETTER_DKIM_KEY_FILE: {path} is too large for a key")
    return parse_key(data, settings.dkim_domain.strip().lower(),
                     settings.dkim_selector.strip(), source=f"NEWSLETTER_DKIM_KEY_FILE {path}")


class Signer:
    """Signs whole messages (CRLF line endings) with one key.

    The signing is ours (about forty lines over `cryptography`), checked against dkimpy's
    verifier in the tests: dkimpy's own signer spends several milliseconds a message
    re-parsing and canonicalising the body in Python, ten times what the signature
    itself costs (bench/dkim_signing.py measures both). The body is canonicalised
    "simple" (c=relaxed/simple, as Amazon SES signs): our bodies are quoted-printable
    with CRLF line ends and no trailing blank lines, so the simple form is the bytes as
    they are and the body hash is one SHA-256 pass."""

    def __init__(self, key: Key, clock: Callable[[], float] = time.time) -> None:
        self.key = key
        self.clock = clock
        self._tags = (f"v=1; a={ALGORITHMS[key.algorithm].decode()}; c=relaxed/simple; "
                      f"d={key.domain}; s={key.selector};").encode("ascii")
        if key.algorithm == "rsa":
            private = serialization.load_pem_private_key(key.private, password=None)
            assert isinstance(private, rsa.RSAPrivateKey)
            self._rsa: rsa.RSAPrivateKey | None = private
            self._ed: ed25519.Ed25519PrivateKey | None = None
        else:
            self._rsa = None
            self._ed = ed25519.Ed25519PrivateKey.from_private_bytes(
                base64.b64decode(key.private))

    def signature(self, message: bytes) -> bytes:
        """The DKIM-Signature header (folded, ending in CRLF) for `message`."""
        # what goes on the wire: SMTP turns a bare LF into CRLF (smtplib does); ours have
        # none, and counting is ten times faster than the substitution
        if message.count(b"\n") != message.count(b"\r\n"):
            message = _BARE_LF.sub(b"\r\n", message)
        head, separator, body = message.partition(b"\r\n\r\n")
        if not separator:
            raise DkimError("could not sign the message: it has no body separator")
        fields = _header_fields(head + b"\r\n")
        names = [name for name, _ in fields]
        include: list[bytes] = []
        for name in SIGNED:
            encoded = name.encode()
            include.extend([encoded] * (names.count(encoded) + (name in OVERSIGNED)))
        body_hash = base64.b64encode(hashlib.sha256(_simple_body(body)).digest())
        header = (b"DKIM-Signature: " + self._tags + b" t=%d;\r\n h=" % int(self.clock())
                  + b":".join(include) + b";\r\n bh=" + body_hash + b";\r\n b=")
        data = hashlib.sha256()
        taken: dict[bytes, int] = {}
        for wanted in include:  # each name picks its next instance from the bottom up
            seen = taken.get(wanted, 0)
            instances = [raw for n, raw in fields if n == wanted]
            taken[wanted] = seen + 1
            if seen < len(instances):
                data.update(_relaxed_header(instances[-1 - seen]))
        data.update(_relaxed_header(header).removesuffix(b"\r\n"))
        if self._rsa is not None:
            signed = self._rsa.sign(data.digest(), padding.PKCS1v15(),
                                    utils.Prehashed(hashes.SHA256()))
        else:
            assert self._ed is not None
            signed = self._ed.sign(data.digest())  # RFC 8463: Ed25519 over the SHA-256
        value = base64.b64encode(signed)
        folded = b"\r\n  ".join(value[i : i + 72] for i in range(0, len(value), 72))
        return header + folded + b"\r\n"

    def sign(self, message: bytes) -> bytes:
        """`message` with its signature on top."""
        return self.signature(message) + message


_WSP_RUN = re.compile(rb"[ \t]+")
_BARE_LF = re.compile(rb"(?<!\r)\n")
_UNFOLD = re.compile(rb"\r\n(?=[ \t])")


def _header_fields(head: bytes) -> list[tuple[bytes, bytes]]:
    """(lowercased name, the raw field with its folds and CRLF) for each header field."""
    fields: list[tuple[bytes, bytes]] = []
    for line in head.split(b"\r\n")[:-1]:
        if line[:1] in (b" ", b"\t") and fields:
            name, raw = fields[-1]
            fields[-1] = (name, raw + line + b"\r\n")
        elif line:
            fields.append((line.split(b":", 1)[0].strip().lower(), line + b"\r\n"))
    return fields


def _relaxed_header(raw: bytes) -> bytes:
    """RFC 6376 3.4.2: name lowercased; value unfolded, runs of WSP as one space, no WSP
    at either end of it; no WSP around the colon."""
    name, _, value = raw.partition(b":")
    value = _WSP_RUN.sub(b" ", _UNFOLD.sub(b"", value.removesuffix(b"\r\n"))).strip(b" ")
    return name.strip().lower() + b":" + value + b"\r\n"


def _simple_body(body: bytes) -> bytes:
    """RFC 6376 3.4.3: the body without the empty lines (CRLFs) at its end, ending in one
    CRLF (added when it has none)."""
    while body.endswith(b"\r\n\r\n"):
        body = body[:-2]
    return body if body.endswith(b"\r\n") else body + b"\r\n"


class SigningTransport:
    """A transport that signs every message before the one it wraps sends it."""

    def __init__(self, inner: Transport, signer: Signer) -> None:
        self.inner = inner
        self.signer = signer

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def last_relay(self) -> str:
        return self.inner.last_relay

    def ready(self) -> None:
        self.inner.ready()

    def send(self, envelope: Envelope) -> str:
        header = self.signer.signature(envelope.message)
        # the header's folded lines start with a space: a dot-safe message stays so
        return self.inner.send(replace(
            envelope, message=header + envelope.message,
            dot_safe=envelope.dot_safe and not dot_line(header)))

    def close(self) -> None:
        self.inner.close()


def signing(transport: Transport, settings: Settings) -> Transport:
    """`transport`, signing when the settings configure DKIM."""
    key = load_key(settings)
    if key is None or isinstance(transport, SigningTransport):
        return transport
    return SigningTransport(transport, Signer(key))
