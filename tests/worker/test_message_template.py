"""A variant encoded once, recipients filled in: what they receive decodes exactly."""

from __future__ import annotations

import dataclasses
import email
import email.policy
import random
import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from newsletter.render import Rendered
from worker.dkim import Signer, SigningTransport, generate_key
from worker.mime import MessageTemplate, Recipient
from worker.transports import Envelope, MemoryTransport, _dot_stuffed

SLOTS = ("%%UNSUBSCRIBE_URL%%", "%%PREFERENCES_URL%%")


def template(text: str, html: str) -> MessageTemplate:
    return MessageTemplate.build(
        Rendered("Boletín — octubre", html, text), from_name="Boletín Regional",
        from_email="news@example.org", list_id="2019-10.example.org", slots=SLOTS,
    )


def recipient(unsub: str, prefs: str, name: str = "Ana Núñez") -> Recipient:
    return Recipient(name, "ana@example.org", "<2019-10.1@example.org>", unsub,
                     {SLOTS[0]: unsub, SLOTS[1]: prefs})


def parts(raw: bytes) -> tuple[str, str]:
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(msg, email.message.EmailMessage)
    text = msg.get_body(("plain",))
    html = msg.get_body(("html",))
    assert text is not None and html is not None
    return text.get_content(), html.get_content()


@pytest.mark.parametrize("seed", range(120))
def test_filled_slots_decode_to_the_personalised_text(seed: int) -> None:
    rng = random.Random(seed)
    alphabet = string.ascii_letters + " ñé=.\n<>&\"'" + "\t"
    words = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 90)))
             for _ in range(12)]
    text = f"{words[0]}%%UNSUBSCRIBE_URL%%{words[1]}\n{words[2]} %%PREFERENCES_URL%%{words[3]}"
    html = f"<p>{words[4]}</p><a href=\"%%UNSUBSCRIBE_URL%%\">x</a>{words[5]}" * 3
    url_chars = string.ascii_letters + string.digits + "-._~:/?#[]@!$&'()*+,;=%"
    unsub = "https://news.example.org/u/" + "".join(
        rng.choice(url_chars) for _ in range(rng.randint(1, 200)))
    prefs = "https://news.example.org/p/" + "=" * rng.randint(0, 5) + "1.abc"
    raw = template(text, html).render(recipient(unsub, prefs))
    head, _, body = raw.partition(b"\r\n\r\n")
    assert all(len(line) <= 76 for line in body.split(b"\r\n"))  # RFC 2045 for QP
    assert not any(line.startswith(b".") for line in body.split(b"\r\n"))  # RFC 2049
    assert all(len(line) <= 998 for line in head.split(b"\r\n"))  # a long URL stays whole
    assert b"\n" not in raw.replace(b"\r\n", b"") and b"\r" not in raw.replace(b"\r\n", b"")
    got_text, got_html = parts(raw)
    expected_text = text.replace(SLOTS[0], unsub).replace(SLOTS[1], prefs)
    # line breaks travel as CRLF (canonical form); the characters are otherwise exact
    assert got_text.replace("\r\n", "\n").rstrip("\n") == expected_text.rstrip("\n")
    assert got_html.replace("\r\n", "\n").rstrip("\n") == html.replace(
        SLOTS[0], unsub).rstrip("\n")


def test_recipients_share_the_encoding_but_not_their_details() -> None:
    t = template("Hi %%UNSUBSCRIBE_URL%%", "<a href=\"%%UNSUBSCRIBE_URL%%\">u</a>")
    a = t.render(recipient("https://x.org/u/1.a", "https://x.org/p/1.a", "Ana"))
    b = t.render(Recipient("Bo", "bo@example.org", "<m.2@example.org>", "https://x.org/u/2.b",
                           {SLOTS[0]: "https://x.org/u/2.b", SLOTS[1]: "https://x.org/p/2.b"}))
    ma = email.message_from_bytes(a, policy=email.policy.default)
    mb = email.message_from_bytes(b, policy=email.policy.default)
    assert (ma["To"], mb["To"]) == ("Ana <ana@example.org>", "Bo <bo@example.org>")
    assert mb["List-Unsubscribe"] == "<https://x.org/u/2.b>"
    assert "https://x.org/u/2.b" in parts(b)[0] and "https://x.org/u/1.a" not in parts(b)[0]
    assert ma["Subject"] == mb["Subject"] == "Boletín — octubre"


def test_a_link_with_a_line_break_is_refused() -> None:
    t = template("%%UNSUBSCRIBE_URL%%", "x")
    with pytest.raises(ValueError, match="ASCII without control"):
        t.render(recipient("https://x.org/u/1\r\nBcc: e@x.org", "https://x.org/p"))


SIGNER = Signer(generate_key("example.org", "news", "ed25519"))
# the pieces of a message that could put "." at a line's start: text, links and names
_DOTTY = st.text(st.sampled_from(list("ab.\n .=é")), max_size=120)
_LINK = st.text(st.sampled_from(list("abc./=-?")), min_size=1, max_size=160)


@settings(max_examples=200, deadline=None)
@given(text=_DOTTY, html=_DOTTY, unsub=_LINK, prefs=_LINK,
       name=st.text(st.sampled_from(list("Aé. \n")), max_size=40))
def test_a_message_said_to_be_dot_safe_needs_no_dot_stuffing(
    text: str, html: str, unsub: str, prefs: str, name: str
) -> None:
    """The flag lets the SMTP transport skip its pass over 56 KB: it must never be True
    for a message that dot-stuffing would change (a line starting with "." would lose it,
    and a lone "." would end the message early)."""
    t = template(f"{text}%%UNSUBSCRIBE_URL%%{text}", f"<p>{html}</p>%%PREFERENCES_URL%%")
    to = recipient("https://x.example/u/" + unsub, "." + prefs, name)
    raw, dot_safe = t.render_checked(to)
    assert raw == t.render(to)
    if dot_safe:
        assert _dot_stuffed(raw) == raw
    signed = SigningTransport(MemoryTransport(), SIGNER)
    signed.send(Envelope("b@example.org", "ana@example.org", raw, "<m@x>", dot_safe))
    (sent,) = signed.inner.sent  # type: ignore[attr-defined]
    if sent.dot_safe:
        assert _dot_stuffed(sent.message) == sent.message


def test_lines_that_start_with_a_dot_are_encoded_so_the_message_is_dot_safe() -> None:
    to = recipient("https://x.example/u/1.abc", "." * 200)
    css = ".mj-outlook-group-fix { width:100% !important; }"  # what MJML's HTML holds
    t = template("Hello\n.hidden\n" + "x" * 75 + ".end %%UNSUBSCRIBE_URL%%",
                 f"<style>\n{css}\n</style>%%PREFERENCES_URL%%")
    raw, dot_safe = t.render_checked(to)
    assert dot_safe and _dot_stuffed(raw) == raw
    text, html = parts(raw)
    assert text.replace("\r\n", "\n").startswith("Hello\n.hidden\n" + "x" * 75 + ".end ")
    assert f"\n{css}\n" in html.replace("\r\n", "\n") and html.rstrip().endswith("." * 200)


def test_a_shared_part_with_a_dotted_line_is_not_dot_safe() -> None:
    """The flag reads what every recipient shares, whoever made it."""
    made = template("Hello", "<p>x</p>")
    dotted = dataclasses.replace(made, text=[b"Hello\r\n.hidden\r\n"])
    to = recipient("https://x.example/u/1", "https://x.example/p/1")
    assert made.render_checked(to)[1] and not dotted.render_checked(to)[1]
