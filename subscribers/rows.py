"""One raw record in, one clean subscriber row or one reason out.

`subscribers.validate` is the authority; this module only adds fast paths that
are provably narrower than it, because an import runs them a million times:

* an address whose part before the @ is a plain ASCII dot-atom (what
  email-validator accepts unchanged, RFC 2142 role names aside) and whose domain
  email-validator accepted before: the domain is validated once per distinct
  domain (cached), not once per row; anything else takes the full path;
* a name that cleaning would not change (printable, NFC, single spaces, no `=?`,
  short enough) is kept as it is; anything else is cleaned by `clean_name`;
* country and language cells repeat, so their answers are cached.
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import lru_cache

from email_validator import EmailNotValidError, validate_email
from email_validator.rfc_constants import CASE_INSENSITIVE_MAILBOX_NAMES

from subscribers.models import STATUSES, email_hash
from subscribers.readers import JSON, Record, has_surrogate, json_problem
from subscribers.validate import (
    CONTROL,
    MAX_EMAIL,
    MAX_NAME,
    InvalidValue,
    clean_name,
    email_key,
    language_or_none,
    normalise_country,
    normalise_email,
    one_line,
)

# columns with a meaning; an export's bookkeeping columns are ignored on the way back in;
# any other column becomes a text attribute
KNOWN = frozenset({"email", "name", "country", "language", "status", "attributes",
                   "consent_at", "consent_method", "consent_text"})
IGNORED = frozenset({"id", "lists", "created_at", "updated_at"})
_BASIC = frozenset({"email", "name", "country", "language"})
MAX_ATTRIBUTE = 1000
MAX_ATTRIBUTES_JSON = 10_000
MAX_CONSENT_METHOD = 200
MAX_CONSENT_TEXT = 50

_ATEXT = r"a-zA-Z0-9_!#$%&'*+\-/=?^`{|}~"
_FAST_ADDRESS = re.compile(
    rf"([{_ATEXT}]+(?:\.[{_ATEXT}]+)*)@([a-zA-Z0-9.\-\u0080-\U0010FFFF]+)\Z"
)
_ROLE_NAMES = frozenset(CASE_INSENSITIVE_MAILBOX_NAMES)


@dataclass(frozen=True, slots=True)
class RowError:
    row: int  # the line of the file (the header is row 1); for JSON, the item's position
    field: str
    value: str
    reason: str
    level: str = "error"  # error: the row is rejected; warning: stored, with this value left out

    def __post_init__(self) -> None:
        # a column's name or a value from the file may hold lone surrogates (a JSON escape,
        # an odd --encoding), which no terminal, CSV or JSON output can write
        for name in ("field", "value"):
            text = getattr(self, name)
            if has_surrogate(text):
                object.__setattr__(self, name, text.encode("utf-8", "replace").decode())

    def __str__(self) -> str:
        text = f"row {self.row}: {self.field} {self.value[:60]!r} {self.reason}"
        return text if self.level == "error" else f"{text} ({self.level})"


@dataclass(slots=True)
class SubscriberRow:
    """A valid row; empty values mean "keep what is stored" for an existing subscriber."""

    row: int
    email: str
    name: str
    country: str | None
    language: str | None  # None: keep the stored one (or the default for a new subscriber)
    attributes: dict[str, object] = field(default_factory=dict)
    status: str | None = None
    consent_at: datetime | None = None
    consent_method: str | None = None
    consent_text: str | None = None
    key: str = ""
    hash: str = ""
    warnings: tuple[RowError, ...] = ()  # values left out of this row (see RowChecker)

    def __post_init__(self) -> None:
        if not self.key:
            self.key = email_key(self.email)
        if not self.hash:
            self.hash = email_hash(self.key)

    def then(self, later: SubscriberRow) -> SubscriberRow:
        """This row followed by a later row for the same address: the later values win,
        the first spelling of the address stays (as it does for a stored subscriber, so
        the outcome does not depend on where the batches happen to split the file)."""
        return replace(
            later,
            email=self.email,
            name=later.name or self.name,
            country=later.country or self.country,
            language=later.language or self.language,
            attributes={**self.attributes, **later.attributes},
            status=later.status or self.status,
            consent_at=later.consent_at or self.consent_at,
            consent_method=later.consent_method or self.consent_method,
            consent_text=later.consent_text or self.consent_text,
        )


@lru_cache(maxsize=8192)
def _domain(domain: str) -> tuple[str, int] | None:
    """email-validator's normalised domain and the longest of its forms in bytes; None when
    email-validator refuses it (the full path then gives the precise reason)."""
    try:
        result = validate_email(f"a@{domain}", check_deliverability=False)
    except EmailNotValidError:
        return None
    longest = max(len(domain.encode()), len(result.domain.encode()), len(result.ascii_domain))
    return result.domain.lower(), longest


def fast_email(raw: str) -> str:
    """`normalise_email(raw)`, without re-validating a domain seen before."""
    value = raw.strip()
    match = _FAST_ADDRESS.match(value) if len(value) <= MAX_EMAIL else None
    if match is not None:
        local, domain = match.groups()
        known = _domain(domain)
        if (
            known is not None
            and local.lower() not in _ROLE_NAMES  # email-validator lower-cases these
            and len(local) + 1 + known[1] <= MAX_EMAIL  # its length rule, on every form
        ):
            return f"{local}@{known[0]}"
    return normalise_email(raw)


def fast_name(raw: str) -> str:
    """`clean_name(raw)`, skipped when it would return `raw` unchanged."""
    if (
        len(raw) <= MAX_NAME
        and raw.isprintable()  # no control, line or paragraph separators, no odd spaces
        and "  " not in raw
        and raw[:1] != " "
        and raw[-1:] != " "
        and "=?" not in raw
        and (raw.isascii() or unicodedata.is_normalized("NFC", raw))
    ):
        return raw
    return clean_name(raw)


def _cell(name: str, raw: object) -> str:
    """A cell as text: plain ASCII, the usual cell, needs none of `_text`'s checks."""
    return raw if isinstance(raw, str) and raw.isascii() else _text(name, raw)


def _plain_cell(name: str, raw: object) -> str:
    """A cell of a `Record.plain` record: valid text already, or None when the row is short."""
    return raw or ""  # type: ignore[return-value]


def _text(name: str, value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value if value.isascii() else _surrogate_free(name, value)
    if isinstance(value, bool | int | float):
        return json.dumps(value)
    raise InvalidValue(name, _shown(value), "must be text")


def _shown(value: object) -> str:
    """A short, safe picture of a JSON value for an error message."""
    try:
        return json.dumps(value, ensure_ascii=True)[:200]
    except (TypeError, ValueError, RecursionError):
        return type(value).__name__


def _surrogate_free(name: str, value: str) -> str:
    """Text from an odd codec (or a JSON escape) may hold lone surrogates, which no
    database stores: refuse the field instead of failing the batch."""
    if has_surrogate(value):
        raise InvalidValue(name, value.encode("utf-8", "replace").decode(),
                           "holds text that is not valid Unicode (a lone surrogate)")
    return value


def clean_attribute(raw: str) -> str:
    """An attribute value as stored and as `--attr` compares it: NFC, one line, single
    spaces, trimmed (control characters would break PostgreSQL's JSON operators)."""
    return one_line(raw)


def clean_attribute_key(raw: str) -> str:
    """An attribute name as stored and as `--attr` looks it up: NFC, control characters
    as spaces, trimmed; any other character (quotes, dots, $, brackets) is kept."""
    return CONTROL.sub(" ", unicodedata.normalize("NFC", raw)).strip()


@lru_cache(maxsize=1024)
def _attribute_name(key: str) -> str:
    """A column name as an attribute key (the same names repeat on every row)."""
    return clean_attribute_key(_surrogate_free("attributes", key))


def _plain(name: str, raw: str, max_length: int) -> str:
    value = clean_attribute(raw)
    if len(value) > max_length:
        raise InvalidValue(name, raw, f"is longer than {max_length} characters")
    return value


class RowChecker:
    """Validates records; holds the caches that make a million rows cheap.

    An unknown country leaves the person without a country and adds a warning to the
    row (a list must not lose people over a typo in an optional column); `strict`
    rejects the row instead.
    """

    def __init__(self, *, strict: bool = False) -> None:
        self.strict = strict
        self._country = lru_cache(maxsize=4096)(self._country_uncached)
        self._language = lru_cache(maxsize=1024)(self._language_uncached)

    @staticmethod
    def _country_uncached(raw: str) -> str | None | InvalidValue:
        try:
            return normalise_country(raw)
        except InvalidValue as exc:
            return exc

    def _language_uncached(self, raw: str) -> str | None | InvalidValue:
        try:
            return language_or_none(raw)
        except InvalidValue as exc:
            return exc

    def check(self, record: Record) -> SubscriberRow | RowError:
        if record.problem is not None:
            return RowError(record.row, record.problem_field, "", record.problem)
        try:
            return self._check(record)
        except InvalidValue as exc:
            return RowError(record.row, exc.field, exc.value, exc.reason)

    def _check(self, record: Record) -> SubscriberRow:
        cells = record.fields
        get = cells.get
        # the fields in this order: the first bad one is the one reported
        cell = _plain_cell if record.plain else _cell
        email = fast_email(cell("email", get("email")))
        name = fast_name(cell("name", get("name")))
        country = self._country(cell("country", get("country")))
        warnings: tuple[RowError, ...] = ()
        if isinstance(country, InvalidValue):
            if self.strict:
                raise country
            warnings = (RowError(record.row, "country", country.value,
                                 f"{country.reason}; kept without a country", "warning"),)
            country = None
        language = self._language(cell("language", get("language")))
        if isinstance(language, InvalidValue):
            raise language
        key = email_key(email)
        row = SubscriberRow(record.row, email, name, country, language, warnings=warnings,
                            key=key, hash=email_hash(key))
        if not _BASIC.issuperset(cells):
            self._extra(row, cells)
        return row

    def _extra(self, row: SubscriberRow, cells: dict[str, object]) -> None:
        """The optional columns: status, consent, attributes (JSON) and free attributes."""
        status = _text("status", cells.get("status")).strip().lower()
        if status and status not in STATUSES:
            raise InvalidValue("status", status,
                               f"is not a status: use one of {', '.join(STATUSES)}")
        row.status = status or None
        row.consent_at = _when(_text("consent_at", cells.get("consent_at")))
        method = _plain("consent_method", _text("consent_method", cells.get("consent_method")),
                        MAX_CONSENT_METHOD)
        wording = _plain("consent_text", _text("consent_text", cells.get("consent_text")),
                         MAX_CONSENT_TEXT)
        row.consent_method, row.consent_text = method or None, wording or None
        row.attributes = _attributes(cells.get("attributes"))
        for key, value in cells.items():
            if key in KNOWN or key in IGNORED:
                continue
            text = _plain(key, _text(key, value), MAX_ATTRIBUTE)
            name = _attribute_name(key)
            if text and name:
                row.attributes[name] = text


def _when(raw: str) -> datetime | None:
    value = raw.strip()
    if not value:
        return None
    try:
        when = datetime.fromisoformat(value)
        return when.astimezone(UTC).replace(tzinfo=None) if when.tzinfo else when
    except ValueError:
        raise InvalidValue(
            "consent_at", raw, "is not a date and time: use ISO 8601, e.g. 2024-05-01T12:00:00Z"
        ) from None
    except OverflowError:  # 9999-12-31T23:59:59-14:00 is past the year 9999 in UTC
        raise InvalidValue(
            "consent_at", raw, "is out of range: use a date between the years 1 and 9999"
        ) from None


def _attributes(value: object) -> dict[str, object]:
    """The `attributes` column an export writes: a JSON object (text in CSV)."""
    if value is None or value == "":
        return {}
    if isinstance(value, str):
        if len(value) > MAX_ATTRIBUTES_JSON:
            raise InvalidValue("attributes", value,
                               f"is longer than {MAX_ATTRIBUTES_JSON} characters")
        text = value
        try:
            value = JSON.decode(text)
        except (json.JSONDecodeError, RecursionError):
            raise InvalidValue("attributes", text, 'is not a JSON object such as {"city": "León"}'
                               ) from None
        problem = json_problem(value)
        if problem is not None:
            raise InvalidValue("attributes", text, problem)
    if not isinstance(value, dict):
        raise InvalidValue("attributes", _shown(value),
                           'is not a JSON object such as {"city": "León"}')
    # values are kept as text: filters compare text, the same on SQLite and PostgreSQL
    kept: dict[str, object] = {}
    for key, item in value.items():
        name = clean_attribute_key(str(key))
        text = clean_attribute(item if isinstance(item, str)
                               else "" if item is None else json.dumps(item, ensure_ascii=False))
        if name and text:
            kept[name] = text
    return kept
