"""Turning what people type into clean values, or into a reason a user can act on."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

from email_validator import EmailNotValidError, validate_email

from newsletter.errors import NewsletterError
from subscribers.countries import country_code

MAX_NAME = 200
MAX_EMAIL = 254
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


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
    if _CONTROL.search(value):
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


def clean_header_text(raw: str, field: str, max_length: int) -> str:
    """Text that will sit in a mail header: one line, no control characters, no encoded-words.

    Line breaks and tabs become spaces (a name pasted across two lines is still a name);
    an encoded-word (`=?`) is refused because it can smuggle headers past old parsers
    (CVE-2024-6923).
    """
    value = unicodedata.normalize("NFC", raw)
    value = _CONTROL.sub(" ", value)
    value = re.sub(r"\s+", " ", value).strip()
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


def normalise_language(raw: str, supported: Sequence[str], default: str) -> str:
    """A supported language from a BCP 47 tag: `es-GT` and `ES` become `es`."""
    return language_or_none(raw, supported) or default


def language_or_none(raw: str, supported: Sequence[str]) -> str | None:
    """Like `normalise_language`, but an empty value stays None (keep what is stored)."""
    value = raw.strip().replace("_", "-")
    if not value:
        return None
    primary = value.split("-", 1)[0].lower()
    if primary not in supported:
        raise InvalidValue(
            "language", raw, f"is not supported: use one of {', '.join(supported)}"
        )
    return primary
