"""DKIM: keys, their DNS records, and signatures that dkimpy's verifier (an independent
implementation) accepts, on single messages and on every message of a real SMTP send."""

from __future__ import annotations

import json
import re
import stat
import subprocess
from datetime import UTC, datetime
from email import message_from_bytes, policy
from pathlib import Path

import dkim
import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from sqlalchemy.orm import Session, sessionmaker

from newsletter.cli import cli
from newsletter.render import Rendered
from newsletter.settings import Settings, SettingsError, load_settings
from tests.servers import SmtpServer
from worker.delivery import send_issue
from worker.dkim import (
    DkimError,
    Key,
    Signer,
    SigningTransport,
    generate_key,
    key_file_text,
    load_key,
    parse_key,
    write_key_file,
    zone_line,
)
from worker.mime import Headers, build_message
from worker.runtime import build, configure
from worker.transports import SMTPTransport

DOMAIN, SELECTOR = "example.org", "news2026"
KEYS = {algorithm: generate_key(DOMAIN, SELECTOR, algorithm)  # type: ignore[arg-type]
        for algorithm in ("rsa", "ed25519")}
WHEN = datetime(2026, 12, 6, 9, 30, tzinfo=UTC)


def verify(message: bytes, key: Key) -> bool:
    """dkimpy's verdict, with `key`'s record served as the DNS answer for its name."""
    def dns(name: bytes, timeout: int = 5) -> bytes:
        assert name.decode().rstrip(".") == key.record_name
        return key.record.encode()
    return bool(dkim.verify(message, dnsfunc=dns))


def message(subject: str = "Noticias de la región – octubre", name: str = "José Pérez",
            text: str = "Hola.\n\nUna noticia.", html: str = "<p>Hola.</p>") -> bytes:
    return build_message(
        Rendered(subject, html, text),
        Headers("Boletín Regional", "news@example.org", name, "jose@example.com",
                "<2019-10.1.abc@example.org>", "newsletter.example.org",
                "https://news.example.org/u/abc"),
        when=WHEN)


def signature_tags(signed: bytes) -> dict[str, str]:
    header = str(message_from_bytes(signed, policy=policy.SMTP)["DKIM-Signature"])
    return {k.strip(): re.sub(r"\s+", "", v) for k, v in
            (tag.split("=", 1) for tag in header.split(";") if "=" in tag)}


@pytest.mark.parametrize("algorithm", ["rsa", "ed25519"])
def test_a_signed_message_verifies_and_covers_the_headers_that_matter(algorithm: str) -> None:
    key = KEYS[algorithm]
    signed = Signer(key).sign(message())
    assert verify(signed, key)
    tags = signature_tags(signed)
    assert tags["a"] == f"{algorithm}-sha256" and tags["d"] == DOMAIN
    assert tags["s"] == SELECTOR and tags["c"] == "relaxed/simple"
    signed_names = tags["h"].split(":")
    for name in ("from", "to", "subject", "date", "message-id", "list-id", "list-unsubscribe",
                 "list-unsubscribe-post", "mime-version", "content-type"):
        assert name in signed_names
    for name in ("from", "subject", "list-unsubscribe", "list-unsubscribe-post"):
        assert signed_names.count(name) == 2, f"{name} is not oversigned"


@pytest.mark.parametrize("algorithm", ["rsa", "ed25519"])
def test_a_changed_or_added_header_or_body_breaks_it(algorithm: str) -> None:
    key = KEYS[algorithm]
    signed = Signer(key).sign(message())
    assert not verify(signed.replace(b"Subject: Noticias", b"Subject: Noticiaz"), key)
    assert not verify(signed.replace(b"Hola.", b"Hole."), key)
    head, _, body = signed.partition(b"\r\n\r\n")
    for added in (b"From: thief@example.net", b"List-Unsubscribe: <https://evil.example/>",
                  b"Subject: Win a prize"):
        assert not verify(head + b"\r\n" + added + b"\r\n\r\n" + body, key), added
    # an unsigned header a relay adds (Received) does not matter
    assert verify(b"Received: from relay.example.net by mx.example.com\r\n" + signed, key)


def test_a_relay_that_refolds_a_header_does_not_break_it() -> None:
    key = KEYS["rsa"]
    signed = Signer(key).sign(message())
    refolded = signed.replace(b"\r\nMIME-Version: 1.0", b"\r\nMIME-Version:\r\n\t 1.0")
    assert refolded != signed and verify(refolded, key)


@hsettings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(subject=st.text(min_size=1, max_size=200), name=st.text(max_size=80),
       text=st.text(max_size=400), html=st.text(max_size=400),
       algorithm=st.sampled_from(["rsa", "ed25519"]))
def test_whatever_the_content_dkimpy_verifies_our_signature(
        subject: str, name: str, text: str, html: str, algorithm: str) -> None:
    key = KEYS[algorithm]
    assert verify(Signer(key).sign(message(subject, name, text, html)), key)


def test_generated_keys_round_trip_through_their_files(tmp_path: Path) -> None:
    for algorithm, key in KEYS.items():
        path = tmp_path / f"{algorithm}.key"
        write_key_file(key, path)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert path.read_bytes().startswith(b"-----BEGIN")
        assert parse_key(path.read_bytes(), DOMAIN, SELECTOR) == key
        with pytest.raises(DkimError, match="exists.*--force"):
            write_key_file(key, path)
    # the record: what DNS needs, split for a zone file into strings of <= 255 characters
    rsa_key = KEYS["rsa"]
    assert rsa_key.record.startswith("v=DKIM1; k=rsa; p=MIIB")
    assert rsa_key.record_name == "news2026._domainkey.example.org"
    strings = re.findall(r'"([^"]*)"', zone_line(rsa_key))
    assert "".join(strings) == rsa_key.record and max(map(len, strings)) <= 255
    assert KEYS["ed25519"].record.startswith("v=DKIM1; k=ed25519; p=")


def test_keys_written_by_other_tools_are_read(tmp_path: Path) -> None:
    """openssl genpkey writes PKCS#8; dkimpy's dknewkey an Ed25519 base64 seed."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pkcs8 = private.private_bytes(serialization.Encoding.PEM,
                                  serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption())
    key = parse_key(pkcs8, DOMAIN, SELECTOR)
    assert key.algorithm == "rsa" and verify(Signer(key).sign(message()), key)
    seed = KEYS["ed25519"].private  # base64 of the 32-byte seed
    assert parse_key(seed + b"\n", DOMAIN, SELECTOR) == KEYS["ed25519"]
    assert parse_key(key_file_text(KEYS["ed25519"]), DOMAIN, SELECTOR) == KEYS["ed25519"]


@pytest.mark.parametrize("data, problem", [
    (b"", "not an RSA or Ed25519 private key"),
    (b"hello world", "not an RSA or Ed25519 private key"),
    (b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
     "not an RSA or Ed25519 private key"),
    (rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret")), "encrypted"),
    (b"openssl genrsa 512", "512 bits"),
])
def test_an_unusable_key_is_refused_with_what_to_do(data: bytes, problem: str) -> None:
    if data.startswith(b"openssl "):  # cryptography makes no key this short; openssl does
        data = subprocess.run(data.decode().split(), capture_output=True, check=True).stdout
    with pytest.raises(DkimError, match=problem) as caught:
        parse_key(data, DOMAIN, SELECTOR, source="key.pem")
    assert "keygen" in str(caught.value) or "passphrase" in str(caught.value)


@hsettings(max_examples=50, deadline=None)
@given(data=st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_no_key_file_content_ends_in_a_traceback(data: bytes) -> None:
    try:
        key = parse_key(data, DOMAIN, SELECTOR)
    except DkimError:
        return
    assert isinstance(key, Key)


@pytest.mark.parametrize("domain, selector", [("exa mple.org", "s"), ("example.org", ""),
                                              ("example.org", "a;b"), ("ex\nample.org", "s")])
def test_names_that_are_not_dns_names_are_refused(domain: str, selector: str) -> None:
    with pytest.raises(DkimError, match="not a DNS name"):
        generate_key(domain, selector)


def test_settings_need_all_three_and_a_readable_key(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="NEWSLETTER_DKIM_KEY_FILE"):
        load_settings(dkim_domain=DOMAIN, dkim_selector=SELECTOR)
    assert load_key(load_settings()) is None  # nothing set: unsigned
    missing = load_settings(dkim_domain=DOMAIN, dkim_selector=SELECTOR,
                            dkim_key_file=tmp_path / "nope.key")
    with pytest.raises(DkimError, match="cannot read .*nope.key"):
        load_key(missing)


def test_every_message_of_a_real_smtp_send_is_signed(
    settings: Settings, sessions: sessionmaker[Session], smtp_server: SmtpServer,
    issue_slug: str, tmp_path: Path,
) -> None:
    key = KEYS["rsa"]
    write_key_file(key, tmp_path / "dkim.key")
    signing = settings.model_copy(update={"dkim_domain": DOMAIN, "dkim_selector": SELECTOR,
                                          "dkim_key_file": tmp_path / "dkim.key"})
    runtime = build(signing, SMTPTransport(smtp_server.url))
    assert isinstance(runtime.transport, SigningTransport)
    configure(runtime)
    try:
        assert send_issue(runtime, issue_slug).counts["sent"] == 5
    finally:
        configure(None)
    received = smtp_server.messages
    assert len(received) == 5
    for got in received:
        assert got.content.startswith(b"DKIM-Signature: ") and verify(got.content, key)
    # one List-Id for the newsletter, a Feedback-ID naming the issue
    parsed = [message_from_bytes(m.content, policy=policy.default) for m in received]
    assert {str(m["List-Id"]) for m in parsed} == {"<newsletter.example.org>"}
    assert {str(m["Feedback-ID"]) for m in parsed} == {f"{issue_slug}:newsletter:example.org"}


def test_the_cli_makes_a_key_and_shows_its_record(tmp_path: Path, runner: CliRunner) -> None:
    out = tmp_path / "k" / "news.key"
    result = runner.invoke(cli, ["dkim", "keygen", "--selector", SELECTOR, "--domain",
                                 "Example.ORG", "--algorithm", "ed25519", "--out", str(out),
                                 "--json"])
    assert result.exit_code == 0, result.output
    made = json.loads(result.output)
    assert made["record_name"] == "news2026._domainkey.example.org"
    assert made["record"].startswith("v=DKIM1; k=ed25519; p=")
    again = runner.invoke(cli, ["dkim", "keygen", "--selector", SELECTOR, "--domain",
                                DOMAIN, "--out", str(out)])
    assert again.exit_code == 1 and "--force" in again.output
    shown = runner.invoke(cli, ["dkim", "show", "--json"], env={
        "NEWSLETTER_DKIM_DOMAIN": DOMAIN, "NEWSLETTER_DKIM_SELECTOR": SELECTOR,
        "NEWSLETTER_DKIM_KEY_FILE": str(out)})
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.output)["record"] == made["record"]
    assert parse_key(out.read_bytes(), DOMAIN, SELECTOR).record == made["record"]


def test_every_signed_header_is_oversigned() -> None:
    """A Reply-To added on the way (replies to an attacker), a second To or Date: each
    breaks the signature (review: only From, Subject and List-Unsubscribe were)."""
    key = KEYS["rsa"]
    signed = Signer(key).sign(message())
    head, _, body = signed.partition(b"\r\n\r\n")
    for added in (b"Reply-To: thief@example.net", b"To: other@example.net",
                  b"Date: Mon, 01 Jan 2024 00:00:00 +0000", b"Feedback-ID: x:y:z"):
        assert not verify(head + b"\r\n" + added + b"\r\n\r\n" + body, key), added


def test_a_body_ending_in_bare_line_feeds_still_verifies() -> None:
    key = KEYS["ed25519"]
    lf = b"From: a@example.org\r\nTo: b@example.org\r\nSubject: s\r\n\r\nline one\nline two\n"
    assert verify(Signer(key).sign(lf), key)
