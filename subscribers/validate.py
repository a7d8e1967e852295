"""Turning what people type into clean values, or into a reason a user can act on."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

import langcodes
from email_validator import EmailNotValidError, validate_email

from newsletter.errors import NewsletterError
from subscribers.countries import country_code

MAX_NAME = 200
MAX_EMAIL = 254
MAX_LANGUAGE_TAG = 35  # what RFC 5646 (4.4.1) asks implementations to hold
_NO_LANGUAGE = frozenset({"und", "zxx", "mul", "mis", "x"})  # tags that name no language
# C0 and C1 controls and the Unicode line and paragraph separators: none belongs in one
# line of text (a header, a name, an attribute), and a line break would start a new header
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_SPACES = re.compile(r"\s+")


class InvalidValue(NewsletterError):
    """One field that cannot be accepted; `field` names it, the message says why."""

    def __init__(self, field: str, value: str, reason: str) -> None:
        self.field = field
        self.value = value
        self.reason = reason
        super().__init__(f"{field} {value[:80]!r}: {reason}")


def normalise_email(raw: str) -> str:
    """A syntactically valid address, trimmed, with its domain lower-cased (no DNS lookups)."""
    value = raw.strip()
    if not value:
        raise InvalidValue("email", raw, "is empty")
    if len(value) > MAX_EMAIL:
        raise InvalidValue("email", raw, f"is longer than {MAX_EMAIL} characters")
    if CONTROL.search(value):
        raise InvalidValue("email", raw, "contains a line break or control character")
    if not value.partition("@")[0].isascii():
        raise InvalidValue(
            "email", raw, "has non-ASCII letters before the @, which most mail servers "
            "cannot deliver to: ask the person for another address"
        )
    try:
        result = validate_email(value, check_deliverability=False)
    except EmailNotValidError as exc:
        raise InvalidValue("email", raw, str(exc)) from exc
    return f"{result.local_part}@{result.domain.lower()}"


def email_key(email: str) -> str:
    """The case-insensitive identity of an address. lower(), not casefold(): casefold
    turns ß into ss and would make straße.de and strasse.de one person."""
    return email.lower()


def one_line(raw: str) -> str:
    """`raw` as NFC text on one line: control characters and runs of white space become
    one space, trimmed."""
    return _SPACES.sub(" ", CONTROL.sub(" ", unicodedata.normalize("NFC", raw))).strip()


def clean_header_text(raw: str, field: str, max_length: int) -> str:
    """Text that will sit in a mail header: one line, no control characters, no encoded-words.

    Line breaks and tabs become spaces (a name pasted across two lines is still a name);
    an encoded-word (`=?`) is refused because it can smuggle headers past old parsers
    (CVE-2024-6923).
    """
    value = one_line(raw)
    if "=?" in value:
        raise InvalidValue(field, raw, "contains '=?', which mail software reads as encoded text")
    if len(value) > max_length:
        raise InvalidValue(field, raw, f"is longer than {max_length} characters")
    return value


def clean_name(raw: str) -> str:
    return clean_header_text(raw, "name", MAX_NAME)


def normalise_country(raw: str) -> str | None:
    """An ISO 3166-1 alpha-2 code from a code or a country name; empty means no country."""
    value = raw.strip()
    if not value:
        return None
    code = country_code(value)
    if code is None:
        raise InvalidValue(
            "country", raw, "is not a known country: use an ISO 3166-1 code such as CR or MX"
        )
    return code


def normalise_language(raw: str, default: str) -> str:
    """A subscriber's language preference as a normalised BCP 47 tag (`es_cr` -> `es-CR`);
    empty means `default`. Any valid tag is kept, whether or not an edition exists in it:
    `best_edition` picks what the person gets at send time."""
    return language_or_none(raw) or default


def language_or_none(raw: str) -> str | None:
    """Like `normalise_language`, but an empty value stays None (keep what is stored)."""
    value = raw.strip().replace("_", "-")
    if not value:
        return None
    if len(value) > MAX_LANGUAGE_TAG or not langcodes.tag_is_valid(value):
        raise InvalidValue(
            "language", raw, "is not a language tag (BCP 47): use a code such as es, fr, "
            "pt-BR or zh-Hant-TW"
        )
    tag = langcodes.standardize_tag(value)
    if tag.split("-", 1)[0].lower() in _NO_LANGUAGE:
        raise InvalidValue("language", raw, "names no language: use a code such as es or fr")
    if len(tag) > MAX_LANGUAGE_TAG:
        raise InvalidValue("language", raw, f"is longer than {MAX_LANGUAGE_TAG} characters")
    return tag


def best_edition(tag: str, editions: Sequence[str], default: str) -> str:
    """The edition a reader of `tag` gets: the exact tag, else its nearest broader tag
    (`zh-Hant-TW` -> `zh-Hant` -> `zh`: RFC 4647 lookup, ending at the primary language),
    else `default`. Matching ignores case."""
    by_key = {edition.lower(): edition for edition in editions}
    parts = tag.lower().split("-")
    while parts:
        found = by_key.get("-".join(parts))
        if found is not None:
            return found
        parts.pop()
        if parts and len(parts[-1]) == 1:  # never end on a singleton (x-, u-, t-...)
            parts.pop()
    return default
