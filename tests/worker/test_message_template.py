"""A variant encoded once, recipients filled in: what they receive decodes exactly."""

from __future__ import annotations

import email
import email.policy
import random
import string

import pytest

from newsletter.render import Rendered
from worker.mime import MessageTemplate, Recipient

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
