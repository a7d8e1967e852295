"""Signed unsubscribe/preferences tokens: only tokens we made read back to an id, and
only for the subscriber (id and salt) they were made for."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from subscribers.tokens import (
    MAX_ID,
    make_token,
    new_salt,
    read_token,
    subscriber_links,
    token_id,
)

SECRET = "test-secret"
SALT = "f3Jk2-a_ZQx0lM9pTq1w4A"


@pytest.mark.parametrize("subscriber_id", [0, 1, 42, 987_654_321])
@pytest.mark.parametrize("purpose", ["unsubscribe", "preferences"])
def test_round_trip(subscriber_id: int, purpose: str) -> None:
    token = make_token(SECRET, subscriber_id, purpose, SALT)
    assert token.startswith(f"{subscriber_id}.")
    assert read_token(SECRET, token, purpose, SALT) == subscriber_id


def test_token_is_url_safe_and_deterministic() -> None:
    token = make_token(SECRET, 42, "unsubscribe", SALT)
    assert token == make_token(SECRET, 42, "unsubscribe", SALT)
    signature = token.split(".", 1)[1]
    assert signature
    assert set(signature) <= set(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    )


def test_tokens_differ_by_id_purpose_and_secret() -> None:
    tokens = {
        make_token(SECRET, 42, "unsubscribe", SALT),
        make_token(SECRET, 43, "unsubscribe", SALT),
        make_token(SECRET, 42, "preferences", SALT),
        make_token("other-secret", 42, "unsubscribe", SALT),
    }
    assert len(tokens) == 4


def test_token_for_another_purpose_is_refused() -> None:
    token = make_token(SECRET, 42, "preferences", SALT)
    assert read_token(SECRET, token, "unsubscribe", SALT) is None
    other = make_token(SECRET, 42, "unsubscribe", SALT)
    assert read_token(SECRET, other, "preferences", SALT) is None


def test_token_from_another_secret_is_refused() -> None:
    token = make_token("another-secret", 42, "unsubscribe", SALT)
    assert read_token(SECRET, token, "unsubscribe", SALT) is None


def test_signature_moved_to_another_id_is_refused() -> None:
    signature = make_token(SECRET, 42, "unsubscribe", SALT).split(".", 1)[1]
    assert read_token(SECRET, f"43.{signature}", "unsubscribe", SALT) is None


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
    token = make_token(SECRET, 42, "unsubscribe", SALT)
    for bad in _tampered(token):
        assert read_token(SECRET, bad, "unsubscribe", SALT) is None, bad


def test_non_ascii_signature_is_refused() -> None:
    assert read_token(SECRET, "42.é", "unsubscribe", SALT) is None


def test_superscript_digit_id_is_refused() -> None:
    assert read_token(SECRET, "².abc", "unsubscribe", SALT) is None


def test_subscriber_links_are_under_the_base_url() -> None:
    base = "https://news.example.org"
    unsubscribe, preferences = subscriber_links(base, SECRET, 42, SALT)
    assert unsubscribe == f"{base}/u/{make_token(SECRET, 42, 'unsubscribe', SALT)}"
    assert preferences == f"{base}/p/{make_token(SECRET, 42, 'preferences', SALT)}"
    assert read_token(SECRET, unsubscribe.rsplit("/", 1)[1], "unsubscribe", SALT) == 42
    assert read_token(SECRET, preferences.rsplit("/", 1)[1], "preferences", SALT) == 42
    # the link for one purpose cannot be used for the other
    assert read_token(SECRET, unsubscribe.rsplit("/", 1)[1], "preferences", SALT) is None


def test_subscriber_links_keep_a_base_path() -> None:
    unsubscribe, preferences = subscriber_links("https://example.org/boletin", SECRET, 7, SALT)
    assert unsubscribe.startswith("https://example.org/boletin/u/7.")
    assert preferences.startswith("https://example.org/boletin/p/7.")


# --- whose link it is: the salt ------------------------------------------------------


def test_the_empty_salt_signs_what_links_mailed_before_salts_existed() -> None:
    """Rows that existed at the upgrade keep the empty salt, so their links still work."""
    mailed = "42.nJfBLm3PLf8j1q9H9hzwKvJ_"  # made by the code before salts, same secret
    assert make_token(SECRET, 42, "unsubscribe", "") == mailed
    assert read_token(SECRET, mailed, "unsubscribe", "") == 42


def test_a_token_does_not_verify_for_another_holder_of_the_same_id() -> None:
    old = make_token(SECRET, 2, "unsubscribe", "")  # mallory, before the upgrade
    earlier = make_token(SECRET, 2, "unsubscribe", new_salt())  # mallory, after it
    carol = new_salt()  # carol now has id 2
    assert read_token(SECRET, old, "unsubscribe", carol) is None
    assert read_token(SECRET, earlier, "unsubscribe", carol) is None
    assert read_token(SECRET, make_token(SECRET, 2, "unsubscribe", carol), "unsubscribe",
                      carol) == 2


def test_salts_are_random_and_url_safe() -> None:
    salts = {new_salt() for _ in range(100)}
    assert len(salts) == 100
    assert all(len(s) == 22 and ":" not in s and s.isascii() for s in salts)


@pytest.mark.parametrize(
    "spelling",
    ["042", "00", "+42", "4_2", "٤٢", f"{MAX_ID + 1}", f"{2**63}", f"{2**64}", "9" * 5000],
)
def test_odd_or_impossible_ids_are_no_token(spelling: str) -> None:
    """One spelling per link, and no id the id column could not hold (2^63 and more
    answered 500 on SQLite, 2^31 and more on PostgreSQL; 4,301 digits and more do not
    even convert to int)."""
    assert token_id(f"{spelling}.abc") is None
    assert read_token(SECRET, f"{spelling}.abc", "unsubscribe", SALT) is None


def test_a_validly_signed_huge_id_is_refused() -> None:
    token = make_token(SECRET, 2**63, "unsubscribe", SALT)
    assert read_token(SECRET, token, "unsubscribe", SALT) is None
    biggest = make_token(SECRET, MAX_ID, "unsubscribe", SALT)
    assert read_token(SECRET, biggest, "unsubscribe", SALT) == MAX_ID


_TOKEN_CHARS = st.characters(codec="utf-8") | st.sampled_from(".0123456789-_=")


@pytest.mark.fuzz
@given(token=st.text(_TOKEN_CHARS, max_size=80), salt=st.sampled_from(["", SALT]),
       purpose=st.sampled_from(["unsubscribe", "preferences", "confirm"]))
def test_any_string_reads_as_no_token_or_as_the_id_it_was_made_for(
    token: str, salt: str, purpose: str
) -> None:
    found = read_token(SECRET, token, purpose, salt)
    assert found is None or token == make_token(SECRET, found, purpose, salt)
    named = token_id(token)
    assert named is None or 0 <= named <= MAX_ID


@pytest.mark.fuzz
@given(subscriber_id=st.integers(min_value=0, max_value=MAX_ID),
       salt=st.sampled_from(["", SALT]), other=st.integers(min_value=0, max_value=MAX_ID))
def test_every_id_round_trips_and_no_signature_moves_to_another(
    subscriber_id: int, salt: str, other: int
) -> None:
    token = make_token(SECRET, subscriber_id, "unsubscribe", salt)
    assert read_token(SECRET, token, "unsubscribe", salt) == subscriber_id
    moved = f"{other}.{token.partition('.')[2]}"
    assert read_token(SECRET, moved, "unsubscribe", salt) == (
        subscriber_id if other == subscriber_id else None)
