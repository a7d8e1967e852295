"""The wire form of one message: structure, encodings, line lengths and header safety."""

from __future__ import annotations

import base64
import email
import email.policy
import email.utils
import re
from datetime import UTC, datetime
from email.header import decode_header, make_header
from email.message import EmailMessage

import pytest
from hypothesis import given
from hypothesis import strategies as st

from newsletter.render import Rendered
from subscribers.tokens import subscriber_links
from subscribers.validate import InvalidValue, normalise_email
from tests.servers import SmtpServer
from worker.mime import (
    Headers,
    build_message,
    feedback_id,
    header_text,
    issue_key,
    message_id,
)
from worker.transports import Envelope, SMTPTransport

SUBJECT = "Noticias de octubre — edición especial"
TEXT = (
    "Hola, ¿qué tal? Año nuevo — ñandú, Panamá y Perú.\n"
    + "Una línea muy larga: " + "migración regional " * 20 + "fin.\n"
    + "Última línea."
)
HTML = (
    "<html><body><p>Hola, ¿qué tal? — ñandú</p>"
    + "<p>" + "información " * 30 + "</p>"
    + '<a href="https://news.example.org/' + "a" * 120 + '">enlace</a>'
    + "</body></html>"
)
WHEN = datetime(2024, 10, 1, 12, 30, tzinfo=UTC)
UNSUBSCRIBE = "https://news.example.org/u/42.2D6Uy2WqQNF2k-Ij3l-L2IiM"

EXPECTED_HEADERS = {
    "From", "To", "Subject", "Date", "Message-ID", "List-Id", "List-Unsubscribe",
    "List-Unsubscribe-Post", "MIME-Version", "Content-Type",
}
SINGLE = ("From", "To", "Subject", "Date", "Message-ID", "List-Id", "List-Unsubscribe",
          "List-Unsubscribe-Post")


def make_headers(**overrides: str) -> Headers:
    values = {
        "from_name": "Boletín Regional",
        "from_email": "news@example.org",
        "to_name": "José Pérez",
        "to_email": "jose@example.com",
        "message_id": message_id("2024-10", 42, "example.org", "k3y"),
        "list_id": "2024-10.example.org",
        "unsubscribe_url": UNSUBSCRIBE,
    }
    values.update(overrides)
    return Headers(**values)


def build(subject: str = SUBJECT, **overrides: str) -> bytes:
    return build_message(Rendered(subject, HTML, TEXT), make_headers(**overrides), when=WHEN)


def parse(raw: bytes) -> EmailMessage:
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


def raw_headers(raw: bytes) -> dict[str, list[str]]:
    """Top-level headers as sent: unfolded, but not decoded."""
    block = raw.split(b"\r\n\r\n", 1)[0].decode("ascii")
    unfolded = re.sub(r"\r\n(?=[ \t])", "", block)
    result: dict[str, list[str]] = {}
    for line in unfolded.split("\r\n"):
        name, sep, value = line.partition(":")
        assert sep, line
        result.setdefault(name.lower(), []).append(value.strip())
    return result


def normalised(content: str) -> str:
    return content.replace("\r\n", "\n").strip()


@pytest.fixture
def raw() -> bytes:
    return build()


# --- structure and encodings ------------------------------------------------------------


def test_multipart_alternative_plain_then_html(raw: bytes) -> None:
    msg = parse(raw)
    assert msg.get_content_type() == "multipart/alternative"
    parts = list(msg.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    for part in parts:
        assert part["Content-Transfer-Encoding"] == "quoted-printable"
        assert part.get_content_charset() == "utf-8"
    assert normalised(parts[0].get_content()) == TEXT.strip()
    assert normalised(parts[1].get_content()) == HTML.strip()


def test_bodies_are_ascii_on_the_wire(raw: bytes) -> None:
    assert raw.isascii()
    assert "ñandú".encode() not in raw
    assert b"=C3=B1and=C3=BA" in raw  # quoted-printable


def test_every_line_is_short_and_ends_in_crlf(raw: bytes) -> None:
    lines = raw.split(b"\r\n")
    assert max(len(line) for line in lines) <= 78
    assert all(b"\r" not in line and b"\n" not in line for line in lines)


def test_subject_is_rfc2047_encoded_and_decodes_back(raw: bytes) -> None:
    values = raw_headers(raw)["subject"]
    assert len(values) == 1
    assert values[0].isascii()
    assert "=?utf-8?" in values[0].lower()
    assert str(make_header(decode_header(values[0]))) == SUBJECT
    assert parse(raw)["Subject"] == SUBJECT


@pytest.mark.parametrize("subject", [
    "[TEST es-CR] Noticias del 1 de septiembre de 2019 al 31 de octubre de 2019",
    "[TEST en-regional] Regional Migration News: news from 1 September 2019 to 31 October",
    "(Update) Community leaders learn to spot signs of human trafficking, and 9 more",
    "Shelters in Panama, and 3 more",
])
def test_a_long_ascii_subject_reads_back_exactly(subject: str) -> None:
    """The email package folded a long ASCII subject that starts with "[" right
    after the colon, and it read back with a leading space ("[TEST …]" test sends)."""
    raw = build(subject)
    assert parse(raw)["Subject"] == subject
    assert raw_headers(raw)["subject"] == [subject]
    assert max(len(line) for line in raw.split(b"\r\n")) <= 78


def test_display_names_with_accents_are_encoded_and_decode_back(raw: bytes) -> None:
    headers = raw_headers(raw)
    for name in ("from", "to"):
        assert headers[name][0].isascii()
        assert "=?utf-8?" in headers[name][0].lower()
    msg = parse(raw)
    sender = msg["From"].addresses
    recipient = msg["To"].addresses
    assert [(a.display_name, a.addr_spec) for a in sender] == [
        ("Boletín Regional", "news@example.org")
    ]
    assert [(a.display_name, a.addr_spec) for a in recipient] == [
        ("José Pérez", "jose@example.com")
    ]


def test_top_level_headers_present_once(raw: bytes) -> None:
    msg = parse(raw)
    assert set(msg.keys()) == EXPECTED_HEADERS
    assert len(msg.keys()) == len(EXPECTED_HEADERS)
    for name in SINGLE:
        assert len(msg.get_all(name) or []) == 1, name
    assert msg["Message-ID"] == "<2024-10.42.k3y@example.org>"
    assert msg["Date"].datetime == WHEN
    assert msg["List-Id"] == "<2024-10.example.org>"
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_list_unsubscribe_is_a_bracketed_https_url(raw: bytes) -> None:
    values = raw_headers(raw)["list-unsubscribe"]
    assert values == [f"<{UNSUBSCRIBE}>"]
    assert re.fullmatch(r"<https://[^\s<>]+>", values[0])
    assert raw_headers(raw)["list-unsubscribe-post"] == ["List-Unsubscribe=One-Click"]


def test_reply_to_only_when_configured() -> None:
    assert "Reply-To" not in parse(build())
    msg = parse(build(reply_to="Mesa <desk@example.org>"))
    assert msg.get_all("Reply-To") == ["Mesa <desk@example.org>"]
    assert set(msg.keys()) == EXPECTED_HEADERS | {"Reply-To"}


def test_date_defaults_to_now() -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    raw = build_message(Rendered("s", "<p>x</p>", "x"), make_headers())
    after = datetime.now(UTC)
    assert before <= parse(raw)["Date"].datetime <= after


def test_message_id_is_stable_per_delivery_and_unique_across_databases() -> None:
    created = datetime(2026, 12, 6, 9, 0, 0, 123456, tzinfo=UTC)
    key = issue_key("secret", 1, created)
    assert re.fullmatch(r"[a-z2-7]{10}", key) and key == issue_key("secret", 1, created)
    assert message_id("2024-10", 7, "example.org", key) == f"<2024-10.7.{key}@example.org>"
    assert message_id("2024-10", 7, "example.org", key) != message_id(
        "2024-10", 8, "example.org", key)
    # the same slug, issue id and delivery id in a database made again: another id
    again = issue_key("secret", 1, created.replace(microsecond=123457))
    assert message_id("2024-10", 7, "example.org", again) != message_id(
        "2024-10", 7, "example.org", key)
    assert issue_key("other secret", 1, created) != key


def test_feedback_id_names_campaign_list_and_sender_without_stray_colons() -> None:
    assert feedback_id("2019-10", "newsletter.example.org", "example.org") == (
        "2019-10:newsletter:example.org")
    assert feedback_id("a:b", "x:y.example.org", "ex ample.org") == "a-b:x-y:ex-ample.org"


def test_idn_recipient_domain_is_sent_in_idna_form() -> None:
    # IDNA (punycode) works with every server; SMTPUTF8 would need the server's support
    to_email = normalise_email("jose@Bücher.DE")
    raw = build(to_email=to_email)
    assert raw.isascii()
    assert b"<jose@xn--bcher-kva.de>" in raw
    assert max(len(line) for line in raw.split(b"\r\n")) <= 78
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert [a.addr_spec for a in msg["To"].addresses] == ["jose@xn--bcher-kva.de"]
    assert b"xn--bcher-kva.de".decode("idna") == "bücher.de"
    assert msg["Subject"] == SUBJECT


def test_non_ascii_local_part_is_refused_at_import_not_at_send() -> None:
    # the email package cannot write such an address, so import refuses it with a reason
    with pytest.raises(InvalidValue, match="non-ASCII letters before the @"):
        normalise_email("José@example.com")


def test_long_list_unsubscribe_url_is_not_encoded() -> None:
    url, _ = subscriber_links("https://www.boletin-regional.example.org/newsletter", "s", 123456,
                              "")
    assert len(url) == 85
    headers = raw_headers(build(unsubscribe_url=url))
    assert headers["list-unsubscribe"] == [f"<{url}>"]


def test_long_list_id_is_not_encoded() -> None:
    list_id = "2024-10-noticias-de-octubre-edicion-especial.mail.boletin-regional.example.org"
    headers = raw_headers(build(list_id=list_id))
    assert headers["list-id"] == [f"<{list_id}>"]


# --- header injection ---------------------------------------------------------------------

ENCODED_CRLF_B = "=?utf-8?b?" + base64.b64encode(b"\r\nBcc: x").decode() + "?="
ENCODED_CRLF_Q = "=?utf-8?q?=0D=0ABcc:_x?="


@pytest.mark.parametrize(
    ("subject", "to_name", "from_name"),
    [
        ("Hello\r\nBcc: evil@example.com", "Eve\nBcc: evil@example.com", "News"),
        ("Hello\rBcc: evil@example.com", "Eve\r\nBcc: evil@example.com",
         "News\nBcc: evil@example.com"),
        (ENCODED_CRLF_B, ENCODED_CRLF_B, ENCODED_CRLF_B),
        (f"Hi {ENCODED_CRLF_Q} there", f"Eve {ENCODED_CRLF_B}", f"Boletín {ENCODED_CRLF_Q}"),
        (f"Año {ENCODED_CRLF_B}", f"José {ENCODED_CRLF_Q}", "Boletín\u2028Bcc: x"),
        ("x\u2028Bcc: y", "Eve\x85Bcc: y", "N\u2029Bcc: z"),
        ("Hello\r\n\r\nbody", "Eve\x00Bcc: y", "News\tBcc: z"),
    ],
)
def test_no_header_injection(subject: str, to_name: str, from_name: str) -> None:
    raw = build(subject, to_name=to_name, from_name=from_name)
    msg = parse(raw)
    assert "Bcc" not in msg
    assert set(msg.keys()) == EXPECTED_HEADERS
    assert set(raw_headers(raw)) == {h.lower() for h in EXPECTED_HEADERS}
    for name in ("Subject", "From", "To"):
        value = str(msg[name])
        assert "\r" not in value and "\n" not in value, (name, value)
        assert len(msg.get_all(name) or []) == 1
    assert [a.addr_spec for a in msg["To"].addresses] == ["jose@example.com"]
    assert [a.addr_spec for a in msg["From"].addresses] == ["news@example.org"]
    assert normalised(next(msg.iter_parts()).get_content()) == TEXT.strip()


def test_encoded_words_reach_the_reader_as_literal_text() -> None:
    msg = parse(build(ENCODED_CRLF_B, to_name=f"Eve {ENCODED_CRLF_B}"))
    assert msg["Subject"] == header_text(ENCODED_CRLF_B)
    assert msg["To"].addresses[0].display_name == header_text(f"Eve {ENCODED_CRLF_B}")
    assert "Bcc: x" not in str(msg["Subject"])


# --- header_text --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Noticias de octubre", "Noticias de octubre"),
        ("  padded  ", "padded"),
        ("Hello\r\nBcc: evil@example.com", "Hello Bcc: evil@example.com"),
        ("a\r\n\r\n\tb", "a b"),  # a run of control characters is one space
        ("a\nb\rc", "a b c"),
        ("a\x00b\x7fc\x9fd", "a b c d"),
        ("a\u2028b\u2029c", "a b c"),
        ("=?utf-8?q?x?=", "= ?utf-8?q?x?="),
        ("a=?b=?c", "a= ?b= ?c"),
        ("==??", "== ??"),
        ("=\n?", "= ?"),
        ("¿Qué pasó? — sí", "¿Qué pasó? — sí"),
        ("a = ? b", "a = ? b"),
        ("", ""),
    ],
)
def test_header_text(value: str, expected: str) -> None:
    assert header_text(value) == expected


@pytest.mark.parametrize(
    "value",
    ["x\r\n=?utf-8?b?DQo=?=", "=\x00?=", "=?=?=?", "a\u2028=?b", "====????"],
)
def test_header_text_leaves_no_line_break_or_encoded_word(value: str) -> None:
    cleaned = header_text(value)
    assert "=?" not in cleaned
    assert not re.search(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]", cleaned)
    assert cleaned == cleaned.strip()


# --- long names: folded by octets -----------------------------------------------------------

FOUR_BYTE_NAME = "𝔸" * 200  # 200 characters (the most a name may have), 800 octets in UTF-8
LONG_NAMES = [
    FOUR_BYTE_NAME,
    "José " + "𝔸ñ " * 66,
    "María  de los Ángeles " * 9,  # a double space, on a fold
    "A" * 200,
    'Ana "la jefa" O\'Neil, Jr. (ONU) \\ ' * 6,
]


def decoded_address(raw: bytes, header: str) -> tuple[str, str]:
    """(display name, address) as a reader gets them. Encoded-words are decoded with
    `decode_header`, which ignores the white space between adjacent encoded-words (RFC 2047
    section 6.2); the modern parser of this Python keeps a space at every fold between
    encoded-words in an address (CPython gh-128110, fixed later), and the legacy
    `getaddresses` mangles some escaped quotes, so each reads what it reads right."""
    (address,) = parse(raw)[header].addresses
    (value,) = raw_headers(raw)[header.lower()]
    if "=?utf-8?" not in value:
        return address.display_name, address.addr_spec
    phrase = value.rpartition(" <")[0]
    return str(make_header(decode_header(phrase))), address.addr_spec


def header_lines(raw: bytes) -> list[bytes]:
    return raw.split(b"\r\n\r\n", 1)[0].split(b"\r\n")


@pytest.mark.parametrize("name", LONG_NAMES)
def test_a_long_name_is_folded_within_the_line_limits_and_decodes_back(name: str) -> None:
    raw = build(to_name=name, from_name=name)
    lines = header_lines(raw)
    assert max(len(line) for line in lines) <= 998
    if " " in name or not name.isascii():  # a word of 200 letters cannot be broken
        assert max(len(line) for line in lines if not line.startswith(b"Subject")) <= 78
    assert decoded_address(raw, "To") == (header_text(name), "jose@example.com")
    assert decoded_address(raw, "From") == (header_text(name), "news@example.org")
    msg = parse(raw)
    assert not msg.defects and set(msg.keys()) == EXPECTED_HEADERS
    for header in ("To", "From"):
        (address,) = msg[header].addresses
        assert address.display_name.replace(" ", "") == header_text(name).replace(" ", "")


def test_the_issue_8_name_made_a_to_line_over_998_octets() -> None:
    """The exact case: 200 four-byte characters were one 1,090-octet encoded-word."""
    raw = build(to_name=FOUR_BYTE_NAME)
    to = [line for line in header_lines(raw) if line.startswith(b"To:")]
    assert len(to) == 1 and len(to[0]) <= 78
    assert decoded_address(raw, "To")[0] == FOUR_BYTE_NAME
    assert parse(raw)["To"].addresses[0].display_name.replace(" ", "") == FOUR_BYTE_NAME


@pytest.mark.fuzz
@given(name=st.text(st.characters(codec="utf-8"), max_size=200))
def test_any_name_gives_header_lines_within_998_octets_that_decode_back(name: str) -> None:
    raw = build(to_name=name, from_name=name)
    assert raw.isascii()
    assert max(len(line) for line in header_lines(raw)) <= 998
    assert decoded_address(raw, "To") == (header_text(name), "jose@example.com")
    assert decoded_address(raw, "From") == (header_text(name), "news@example.org")


def test_a_long_name_goes_through_a_real_smtp_server(smtp_server: SmtpServer) -> None:
    """SMTP allows 1,000 octets per line, CRLF included; the server refuses longer ones."""
    raw = build(to_name=FOUR_BYTE_NAME, from_name=FOUR_BYTE_NAME)
    transport = SMTPTransport(smtp_server.url)
    try:
        reply = transport.send(Envelope("news@example.org", "jose@example.com", raw, "<m@x>"))
    finally:
        transport.close()
    assert reply.startswith("250")
    (received,) = smtp_server.wait_for_messages(1)
    assert decoded_address(received.content, "To")[0] == FOUR_BYTE_NAME
