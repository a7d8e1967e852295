"""Turning what people type into clean values, or into an InvalidValue naming the field."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from subscribers.validate import (
    MAX_EMAIL,
    MAX_LANGUAGE_TAG,
    MAX_NAME,
    InvalidValue,
    best_edition,
    clean_name,
    email_key,
    language_or_none,
    normalise_country,
    normalise_email,
    normalise_language,
)

SUPPORTED = ("en", "es", "fr")

# --- normalise_email -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("ana@example.com", "ana@example.com"),
        ("  ana@example.com\t", "ana@example.com"),
        ("ana@example.com\r\n", "ana@example.com"),  # a trailing line break is only trimming
        ("Ana.Perez@EXAMPLE.COM", "Ana.Perez@example.com"),  # the local part keeps its case
        ("MiXeD+Tag@Sub.Example.Org", "MiXeD+Tag@sub.example.org"),
    ],
)
def test_normalise_email_trims_and_lowercases_only_the_domain(raw: str, expected: str) -> None:
    assert normalise_email(raw) == expected


def test_normalise_email_accepts_an_internationalised_domain() -> None:
    assert normalise_email("Jose@Bücher.DE") == "Jose@bücher.de"
    # the punycode spelling of the same domain ends up as the same address
    assert normalise_email("Jose@XN--BCHER-KVA.de") == normalise_email("Jose@bücher.de")


@pytest.mark.parametrize(
    "raw",
    [
        "not-an-email",
        "a@b",  # no dot in the domain
        "two@@example.com",
        "a b@example.com",
        "@example.com",
        "ana@",
        "ana@exa_mple.com",
    ],
)
def test_normalise_email_refuses_bad_syntax(raw: str) -> None:
    with pytest.raises(InvalidValue) as info:
        normalise_email(raw)
    assert info.value.field == "email"
    assert info.value.value == raw
    assert info.value.reason


@pytest.mark.parametrize("raw", ["", "   ", "\t\r\n"])
def test_normalise_email_refuses_empty(raw: str) -> None:
    with pytest.raises(InvalidValue, match="is empty") as info:
        normalise_email(raw)
    assert info.value.field == "email"


@pytest.mark.parametrize(
    "raw",
    [
        "ana@example.com\r\nBcc: evil@example.com",
        "ana\x00@example.com",
        "ana@exam\x7fple.com",
        "ana\u2028@example.com",
        "ana\x85@example.com",
    ],
)
def test_normalise_email_refuses_control_characters(raw: str) -> None:
    with pytest.raises(InvalidValue, match="control character") as info:
        normalise_email(raw)
    assert info.value.field == "email"


def test_normalise_email_refuses_too_long() -> None:
    domain = "example.com"
    local = "a" * 60
    labels = ".".join(["b" * 60] * 4)  # a syntactically fine, but over-long, domain
    raw = f"{local}@{labels}.{domain}"
    assert len(raw) > MAX_EMAIL
    with pytest.raises(InvalidValue, match=f"longer than {MAX_EMAIL}") as info:
        normalise_email(raw)
    assert info.value.field == "email"


def test_normalise_email_length_counts_after_trimming() -> None:
    raw = "  " + "a@example.com" + " " * MAX_EMAIL
    assert normalise_email(raw) == "a@example.com"


def test_email_key_ignores_case() -> None:
    assert email_key("Maria@Example.com") == email_key("maria@example.com")
    assert email_key("ana@example.com") != email_key("ana2@example.com")


# --- clean_name ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Ana Pérez", "Ana Pérez"),
        ("  Ana  ", "Ana"),
        ("Ana\r\nPérez", "Ana Pérez"),
        ("Ana\nPérez", "Ana Pérez"),
        ("Ana\rPérez", "Ana Pérez"),
        ("Ana\tPérez", "Ana Pérez"),
        ("Ana \r\n\t Pérez", "Ana Pérez"),  # a run of whitespace becomes one space
        ("Eve\r\nBcc: evil@example.com", "Eve Bcc: evil@example.com"),
        ("Ana\u2028Pérez\u2029", "Ana Pérez"),
        ("", ""),
    ],
)
def test_clean_name_makes_one_line(raw: str, expected: str) -> None:
    assert clean_name(raw) == expected


@pytest.mark.parametrize("raw", ["A\x00na", "A\x07na", "A\x1bna", "A\x7fna", "A\x9bna"])
def test_clean_name_removes_control_characters(raw: str) -> None:
    cleaned = clean_name(raw)
    assert cleaned.replace(" ", "") == "Ana"
    assert all(ch.isprintable() for ch in cleaned)


def test_clean_name_normalises_to_nfc() -> None:
    assert clean_name("Jose\u0301") == "Jos\u00e9"


@pytest.mark.parametrize(
    "raw",
    ["=?utf-8?q?x?=", "Ana =?utf-8?b?DQpCY2M6IHg=?=", "a=?b", "Ana\r\n=?iso-8859-1?q?x?="],
)
def test_clean_name_refuses_encoded_words(raw: str) -> None:
    with pytest.raises(InvalidValue, match="=\\?") as info:
        clean_name(raw)
    assert info.value.field == "name"
    assert info.value.value == raw


def test_clean_name_length_limit() -> None:
    assert clean_name("x" * MAX_NAME) == "x" * MAX_NAME
    with pytest.raises(InvalidValue, match=f"longer than {MAX_NAME}") as info:
        clean_name("x" * (MAX_NAME + 1))
    assert info.value.field == "name"
    with pytest.raises(InvalidValue):
        clean_name("y" * 5000)


def test_invalid_value_message_names_field_and_truncates_value() -> None:
    with pytest.raises(InvalidValue) as info:
        clean_name("z" * 5000)
    message = str(info.value)
    assert message.startswith("name 'zzz")
    assert len(message) < 200
    assert info.value.value == "z" * 5000  # the full value is kept on the exception


# --- normalise_country -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("MX", "MX"),
        ("mx", "MX"),
        ("cR", "CR"),
        (" gt ", "GT"),
        ("México", "MX"),
        ("mexico", "MX"),
        ("Belice", "BZ"),
        ("Belize", "BZ"),
        ("costa rica", "CR"),
        ("COSTA RICA", "CR"),
        ("República Dominicana", "DO"),
        ("Estados Unidos", "US"),
        ("Panamá", "PA"),
    ],
)
def test_normalise_country_from_codes_and_names(raw: str, expected: str) -> None:
    assert normalise_country(raw) == expected


@pytest.mark.parametrize("raw", ["", "   ", "\t"])
def test_normalise_country_empty_means_none(raw: str) -> None:
    assert normalise_country(raw) is None


@pytest.mark.parametrize("raw", ["Atlantis", "XX", "Managua", "costarricense", "C R"])
def test_normalise_country_refuses_unknown(raw: str) -> None:
    with pytest.raises(InvalidValue, match="ISO 3166-1") as info:
        normalise_country(raw)
    assert info.value.field == "country"
    assert info.value.value == raw


# --- normalise_language ----------------------------------------------------------------


# A preference is kept as the person gave it (any valid BCP 47 tag, normalised); which
# edition they get is `best_edition`'s choice at send time. These expectations changed
# with issue 8 (item 18): `es-GT` used to become `es`, and `de` or `pt_BR` were refused.
@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("es", "es"),
        ("es-GT", "es-GT"),
        ("ES", "es"),
        ("es_CR", "es-CR"),
        (" fr-CA ", "fr-CA"),
        ("EN-us", "en-US"),
        ("es-419", "es-419"),
        ("pt_br", "pt-BR"),
        ("ht", "ht"),
        ("zh-hant-tw", "zh-Hant-TW"),
        ("de-AT", "de-AT"),
    ],
)
def test_normalise_language_keeps_the_tag_normalised(raw: str, expected: str) -> None:
    assert normalise_language(raw, "en") == expected


@pytest.mark.parametrize("raw", ["", "  "])
def test_normalise_language_empty_is_the_default(raw: str) -> None:
    assert normalise_language(raw, "es") == "es"
    assert normalise_language(raw, "fr") == "fr"


@pytest.mark.parametrize("raw", ["esp", "english", "xx", "a-b", "es--CR", "en US", "und",
                                 "x-private", "e" * 40, "es-CR\nBcc"])
def test_normalise_language_refuses_what_is_not_a_language_tag(raw: str) -> None:
    with pytest.raises(InvalidValue) as info:
        normalise_language(raw, "en")
    assert info.value.field == "language"
    assert info.value.value == raw


@pytest.mark.parametrize(
    ("tag", "expected"),
    [
        ("es", "es"),
        ("es-CR", "es"),
        ("ES-cr", "es"),
        ("fr-HT", "fr"),
        ("pt-BR", "en"),
        ("ht", "en"),
        ("zh-Hant-TW", "zh-Hant"),
        ("zh-Hans-CN", "zh"),
        ("en-a-bbb-x-foo", "en"),
    ],
)
def test_best_edition_is_the_tag_then_broader_tags_then_the_default(
    tag: str, expected: str
) -> None:
    assert best_edition(tag, ["en", "es", "fr", "zh", "zh-Hant"], "en") == expected


@pytest.mark.fuzz
@given(st.one_of(
    st.text(),
    st.from_regex(r"[A-Za-z]{1,9}([-_][A-Za-z0-9]{1,9}){0,6}", fullmatch=True),
))
def test_a_language_cell_is_a_stored_tag_or_a_row_error(raw: str) -> None:
    """Whatever a file holds, the answer is a tag the column can hold, or an InvalidValue."""
    try:
        tag = language_or_none(raw)
    except InvalidValue as exc:
        assert exc.field == "language"
        return
    if tag is not None:
        assert 0 < len(tag) <= MAX_LANGUAGE_TAG and tag.isascii() and tag == tag.strip()
        assert language_or_none(tag) == tag  # normalised once and for all
        assert best_edition(tag, ["en", "es", "fr"], "en") in ("en", "es", "fr")
