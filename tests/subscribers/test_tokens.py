"""Signed unsubscribe/preferences tokens: only tokens we made read back to an id."""

from __future__ import annotations

import pytest

from subscribers.tokens import make_token, read_token, subscriber_links

SECRET = "test-secret"


@pytest.mark.parametrize("subscriber_id", [0, 1, 42, 987_654_321])
@pytest.mark.parametrize("purpose", ["unsubscribe", "preferences"])
def test_round_trip(subscriber_id: int, purpose: str) -> None:
    token = make_token(SECRET, subscriber_id, purpose)
    assert token.startswith(f"{subscriber_id}.")
    assert read_token(SECRET, token, purpose) == subscriber_id


def test_token_is_url_safe_and_deterministic() -> None:
    token = make_token(SECRET, 42, "unsubscribe")
    assert token == make_token(SECRET, 42, "unsubscribe")
    signature = token.split(".", 1)[1]
    assert signature
    assert set(signature) <= set(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    )


def test_tokens_differ_by_id_purpose_and_secret() -> None:
    tokens = {
        make_token(SECRET, 42, "unsubscribe"),
        make_token(SECRET, 43, "unsubscribe"),
        make_token(SECRET, 42, "preferences"),
        make_token("other-secret", 42, "unsubscribe"),
    }
    assert len(tokens) == 4


def test_token_for_another_purpose_is_refused() -> None:
    token = make_token(SECRET, 42, "preferences")
    assert read_token(SECRET, token, "unsubscribe") is None
    assert read_token(SECRET, make_token(SECRET, 42, "unsubscribe"), "preferences") is None


def test_token_from_another_secret_is_refused() -> None:
    token = make_token("another-secret", 42, "unsubscribe")
    assert read_token(SECRET, token, "unsubscribe") is None


def test_signature_moved_to_another_id_is_refused() -> None:
    signature = make_token(SECRET, 42, "unsubscribe").split(".", 1)[1]
    assert read_token(SECRET, f"43.{signature}", "unsubscribe") is None


def _tampered(token: str) -> list[str]:
    sid, signature = token.split(".", 1)
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    return [
        f"{sid}.{flipped}",
        f"{sid}.{signature[:-1]}",
        f"{sid}.{signature}x",
        f"{sid}.",
        sid,
        f".{signature}",
        f"-{sid}.{signature}",
        f" {sid}.{signature}",
        "",
        ".",
        "abc.def",
    ]


def test_tampered_tokens_are_refused() -> None:
    token = make_token(SECRET, 42, "unsubscribe")
    for bad in _tampered(token):
        assert read_token(SECRET, bad, "unsubscribe") is None, bad


def test_non_ascii_signature_is_refused() -> None:
    assert read_token(SECRET, "42.é", "unsubscribe") is None


def test_superscript_digit_id_is_refused() -> None:
    assert read_token(SECRET, "².abc", "unsubscribe") is None


def test_subscriber_links_are_under_the_base_url() -> None:
    base = "https://news.example.org"
    unsubscribe, preferences = subscriber_links(base, SECRET, 42)
    assert unsubscribe == f"{base}/u/{make_token(SECRET, 42, 'unsubscribe')}"
    assert preferences == f"{base}/p/{make_token(SECRET, 42, 'preferences')}"
    assert read_token(SECRET, unsubscribe.rsplit("/", 1)[1], "unsubscribe") == 42
    assert read_token(SECRET, preferences.rsplit("/", 1)[1], "preferences") == 42
    # the link for one purpose cannot be used for the other
    assert read_token(SECRET, unsubscribe.rsplit("/", 1)[1], "preferences") is None


def test_subscriber_links_keep_a_base_path() -> None:
    unsubscribe, preferences = subscriber_links("https://example.org/boletin", SECRET, 7)
    assert unsubscribe.startswith("https://example.org/boletin/u/7.")
    assert preferences.startswith("https://example.org/boletin/p/7.")
