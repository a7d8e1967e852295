"""One settings object, read from `NEWSLETTER_*` environment variables.

Everything has an embedded default so a fresh clone runs with no configuration:
an SQLite file and an outbox directory under `./var/`, tasks run in-process.
"""

from __future__ import annotations

import re
from email import policy
from email.errors import ObsoleteHeaderDefect
from functools import lru_cache
from pathlib import Path
from typing import Any

import langcodes
from email_validator import EmailNotValidError, validate_email
from pydantic import Field, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from pydantic_settings import SettingsError as SourceError

from newsletter.errors import NewsletterError
from subscribers.validate import CONTROL

DEV_SECRET = "dev-only-secret-change-me"
MAX_HEADER_NAME = 200  # characters in the sender's (or Reply-To's) display name
MAX_EDITION_TAG = 8  # what the deliveries' and variants' language columns hold
MAX_LOGO_SIZE = 600  # CSS pixels: the email's width
_NAMED_ADDRESS = re.compile(r"(?:(?P<name>.*?)\s*<(?P<address>[^<>]*)>|(?P<bare>[^<>]*))")


# a dotted name of at least two labels (list ids, bounce domains)
_DOMAIN = re.compile(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)+")


class SettingsError(NewsletterError):
    """NEWSLETTER_* variables the program cannot run with; the message names each one."""


def _header_problem(value: str) -> str | None:
    """Why `value` cannot go into a mail header as it is (None: it can)."""
    if CONTROL.search(value):
        return "contains a line break or control character, which would start a new header"
    if "=?" in value:
        return "contains '=?', which mail programs would decode as an encoded-word (RFC 2047)"
    return None


def _address_problem(address: str) -> str | None:
    if not address.isascii():
        return "is not ASCII (write an internationalised domain in its xn-- form)"
    try:
        validate_email(address, check_deliverability=False)
    except EmailNotValidError as exc:
        return f"is not an email address ({exc})"
    return None


def _name_problem(name: str) -> str | None:
    if len(name) > MAX_HEADER_NAME:
        return f"is longer than {MAX_HEADER_NAME} characters"
    return _header_problem(name)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="NEWSLETTER_", env_file=None, extra="ignore")

    var_dir: Path = Path("var")
    database_url: str = ""
    broker_url: str = ""
    smtp_url: str = ""
    smtp_timeout: float = 30.0
    outbox_dir: Path | None = None

    sender_name: str = "Regional Migration News"
    sender_email: str = "news@example.org"
    reply_to: str = ""
    # the List-Id every issue carries (RFC 2919): one per newsletter, so receivers and
    # filters see the same list every issue; default newsletter.<sender's domain>
    list_id: str = ""
    # where bounces come back: each delivery's envelope sender is
    # bounces+<delivery>.<mac>@<this domain> (VERP); default the sender's domain
    bounce_domain: str = ""
    # bounces that come back by mail: this many soft bounces within this many days make
    # an address bounced (a hard bounce or a complaint does at once); the raw reports
    # are kept this long as evidence, then cleared
    soft_bounce_limit: int = Field(default=3, ge=1, le=100)
    soft_bounce_days: int = Field(default=30, ge=1, le=3650)
    bounce_keep_days: int = Field(default=30, ge=1, le=3650)
    postal_address: str = "Regional Office, Apartado 123-1000, San José, Costa Rica"
    # the masthead's logo (https, or none), its text alternative (default: the sender's
    # name) and its size in CSS pixels, which the email states so the layout holds
    logo_url: str = ""
    logo_alt: str = ""
    logo_width: int | None = None
    logo_height: int | None = None
    public_base_url: str = "http://localhost:8000"
    secret_key: str = DEV_SECRET

    # the editions made (each needs a catalog in templates/locale/, English aside); a
    # subscriber who prefers another language gets the nearest one, else default_language
    languages: list[str] = Field(default_factory=lambda: ["en", "es", "fr"])
    # templates (and their locale/) that override the shipped ones file by file
    template_dir: Path | None = None
    default_language: str = "en"
    batch_size: int = 200
    lease_seconds: int = 600
    # replies are written to the ledger in groups of record_every, or after record_seconds,
    # whichever comes first; each is appended at once to its batch's journal file in
    # journal_dir (default var_dir/journal; workers on several machines share it as a
    # volume: worker/journal.py)
    record_every: int = Field(default=100, ge=1, le=10_000)
    record_seconds: float = Field(default=0.5, gt=0, le=3600)
    journal_dir: Path | None = None

    # delivery: retries of temporary failures, sweeping, global rate limits
    retry_base_seconds: int = 60  # first retry after this, doubling each time
    retry_max_delay_seconds: int = 6 * 3600
    retry_for_seconds: int = 3 * 86400  # give up (failed) this long after the first try
    sweep_seconds: int = 30  # how often the sweeper requeues expired leases and due retries
    requeue_after_seconds: int = 900  # re-enqueue queued rows whose task was lost this long ago
    rate_per_second: float = 0  # messages per second per relay, all workers together; 0: none
    rate_per_hour: int = 0
    redis_url: str = ""  # for rate limits and live settings; default: the broker if Redis

    # the calendar: how often `newsletter scheduler` does its round; how late a scheduled
    # send that fell due while no scheduler ran may still go out (older: reported, not
    # sent); feeds: how long a fetch may take and how big a feed may be
    scheduler_seconds: float = 30.0
    catch_up_hours: float = 24.0
    feed_timeout_seconds: float = 20.0
    feed_max_bytes: int = 5_000_000
    # fetch feeds whose host is loopback, private or link-local (off: no SSRF from the web)
    feed_allow_private: bool = False
    # how many reverse proxies in front of `newsletter serve` add X-Forwarded-For: the
    # per-client limits (logins, sign-ups) then count the client, not the proxy (0: none,
    # and a client's X-Forwarded-For is ignored)
    trusted_proxies: int = Field(default=0, ge=0, le=5)

    # DKIM: sign every message with this key (all three, or none: a relay may sign);
    # `newsletter dkim keygen` makes a key and prints its DNS record
    # a staging relay: mail by SMTP although `newsletter doctor` reports blockers in the
    # settings (the development secret key is refused all the same)
    allow_blocked_sending: bool = False
    # the DNS server `newsletter doctor` and the send check ask (HOST[:PORT]); empty: the
    # system's resolver
    dns_server: str = ""
    dkim_domain: str = ""
    dkim_selector: str = ""
    dkim_key_file: Path | None = None

    @field_validator("scheduler_seconds", "catch_up_hours", "feed_timeout_seconds",
                     "feed_max_bytes")
    @classmethod
    def _positive(cls, value: float, info: ValidationInfo) -> float:
        if not value > 0:  # also refuses NaN
            name = f"NEWSLETTER_{(info.field_name or '').upper()}"
            raise ValueError(f"{name}: {value!r} must be a number above 0")
        return value

    @field_validator("languages")
    @classmethod
    def _editions(cls, value: list[str]) -> list[str]:
        editions = []
        for raw in value:
            tag = raw.strip().replace("_", "-")
            if not langcodes.tag_is_valid(tag) or len(tag) > MAX_EDITION_TAG:
                raise ValueError(
                    f"NEWSLETTER_LANGUAGES: {raw!r} is not a language tag of at most "
                    f"{MAX_EDITION_TAG} characters (e.g. [\"en\", \"es\", \"fr\"])"
                )
            editions.append(langcodes.standardize_tag(tag))
        if not editions:
            raise ValueError("NEWSLETTER_LANGUAGES: name at least one language, e.g. [\"en\"]")
        return editions

    @field_validator("default_language")
    @classmethod
    def _one_of_the_editions(cls, value: str, info: ValidationInfo) -> str:
        """What everyone without an edition of their own gets: one of the editions made (a
        delivery's language column holds no more, and no other has templates)."""
        editions = info.data.get("languages") or []  # absent when NEWSLETTER_LANGUAGES failed
        by_key = {edition.lower(): edition for edition in editions}
        found = by_key.get(value.strip().replace("_", "-").lower())
        if found is None and editions:
            raise ValueError(
                f"NEWSLETTER_DEFAULT_LANGUAGE: {value[:40]!r} is not one of the editions in "
                f"NEWSLETTER_LANGUAGES ({', '.join(editions)}): name one of them"
            )
        return found or value

    @field_validator("bounce_domain")
    @classmethod
    def _bounce_domain(cls, value: str) -> str:
        value = value.strip().rstrip(".").lower()
        if value and (not _DOMAIN.fullmatch(value) or len(value) > 200):
            raise ValueError(f"NEWSLETTER_BOUNCE_DOMAIN: {value[:80]!r} is not a domain name, "
                             "e.g. bounces.example.org (its MX must reach `newsletter "
                             "bounces receive`)")
        return value

    @field_validator("list_id")
    @classmethod
    def _list_id(cls, value: str) -> str:
        value = value.strip().strip("<>").lower()
        if value and not _DOMAIN.fullmatch(value) or len(value) > 200:
            raise ValueError(f"NEWSLETTER_LIST_ID: {value[:80]!r} is not a list id: a dotted "
                             "name under a domain you own, e.g. news.example.org")
        return value

    @field_validator("logo_url")
    @classmethod
    def _logo_url(cls, value: str) -> str:
        value = value.strip()
        if value and (not re.fullmatch(r"https://[^\s/?#]+[^\s]*", value) or not value.isascii()
                      or len(value) > 2000 or any(c in value for c in "\"'<>\\")):
            raise ValueError(f"NEWSLETTER_LOGO_URL: {value[:80]!r} is not an https URL: set the "
                             "logo's address, e.g. https://news.example.org/logo.png (ASCII, "
                             "no spaces or quotes), or leave it empty for no logo")
        return value

    @field_validator("logo_width", "logo_height", mode="before")
    @classmethod
    def _unset_size(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("logo_width", "logo_height")
    @classmethod
    def _logo_size(cls, value: int | None, info: ValidationInfo) -> int | None:
        if value is not None and not 1 <= value <= MAX_LOGO_SIZE:
            name = f"NEWSLETTER_{(info.field_name or '').upper()}"
            raise ValueError(f"{name}: {value} is not a size from 1 to {MAX_LOGO_SIZE} CSS "
                             "pixels (the email is 600 wide): set the logo's displayed size")
        return value

    @field_validator("logo_alt")
    @classmethod
    def _logo_alt(cls, value: str) -> str:
        value = value.strip()
        if CONTROL.search(value) or len(value) > MAX_HEADER_NAME:
            raise ValueError(f"NEWSLETTER_LOGO_ALT: {value[:80]!r} must be one line of at most "
                             f"{MAX_HEADER_NAME} characters: what the logo says, e.g. the "
                             "newsletter's name")
        return value

    @field_validator("public_base_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        if not value.isascii() or any(c.isspace() for c in value):
            raise ValueError(
                "NEWSLETTER_PUBLIC_BASE_URL must be an ASCII URL without spaces "
                "(write an internationalised domain in its xn-- form)"
            )
        return value.rstrip("/")

    @field_validator("sender_name")
    @classmethod
    def _one_line_name(cls, value: str) -> str:
        value = value.strip()
        problem = _name_problem(value)
        if problem:
            raise ValueError(
                f"NEWSLETTER_SENDER_NAME: {value[:80]!r} {problem}: set the name readers "
                f"see the newsletter come from, on one line, at most {MAX_HEADER_NAME} "
                "characters"
            )
        return value

    @field_validator("sender_email")
    @classmethod
    def _one_address(cls, value: str) -> str:
        value = value.strip()
        problem = _header_problem(value) or _address_problem(value)
        if problem:
            raise ValueError(
                f"NEWSLETTER_SENDER_EMAIL: {value[:80]!r} {problem}: set the one address "
                "the newsletter is sent from, e.g. news@example.org"
            )
        return value

    @field_validator("reply_to")
    @classmethod
    def _one_reply_address(cls, value: str) -> str:
        value = value.strip()
        if not value:
            return value
        problem = _header_problem(value) or _reply_to_problem(value)
        if problem:
            raise ValueError(
                f"NEWSLETTER_REPLY_TO: {value[:80]!r} {problem}: set one address, e.g. "
                'desk@example.org or "News desk <desk@example.org>", or leave it empty'
            )
        return value

    @model_validator(mode="after")
    def _dkim_complete(self) -> Settings:
        given = {"NEWSLETTER_DKIM_DOMAIN": self.dkim_domain,
                 "NEWSLETTER_DKIM_SELECTOR": self.dkim_selector,
                 "NEWSLETTER_DKIM_KEY_FILE": str(self.dkim_key_file or "")}
        missing = [name for name, value in given.items() if not value.strip()]
        if missing and len(missing) < len(given):
            raise ValueError(f"{missing[0]}: DKIM needs all three settings: set "
                             f"{', '.join(missing)} too, or unset the others to send unsigned")
        return self

    @model_validator(mode="after")
    def _logo_complete(self) -> Settings:
        missing = [name for name, value in (("NEWSLETTER_LOGO_WIDTH", self.logo_width),
                                            ("NEWSLETTER_LOGO_HEIGHT", self.logo_height))
                   if value is None]
        if self.logo_url and missing:
            raise ValueError(f"{missing[0]}: a logo needs its size: set NEWSLETTER_LOGO_WIDTH "
                             f"and NEWSLETTER_LOGO_HEIGHT in CSS pixels (1 to {MAX_LOGO_SIZE}), "
                             "e.g. 160 and 40 for an image of 320 x 80 pixels, sharp on "
                             "high-density screens")
        return self

    def insecure_for_mailing(self, *, force: bool = False) -> str | None:
        """Why these settings must not mail real people by SMTP, or None when they may
        (the outbox mails nobody). The development secret is refused always; the other
        blockers `newsletter doctor` finds in the settings alone (a local or http public
        URL, the placeholder postal address, a sender at a reserved domain) unless this
        is a staging relay: NEWSLETTER_ALLOW_BLOCKED_SENDING, or `force` (`--force`)."""
        if not self.smtp_urls:
            return None
        if self.secret_key == DEV_SECRET:
            return (
                "NEWSLETTER_SECRET_KEY is the development default, so anyone could forge "
                "unsubscribe links: set it to a long random value before sending by SMTP"
            )
        if force or self.allow_blocked_sending:
            return None
        from newsletter.doctor import settings_findings

        blockers = [f.message for f in settings_findings(self, None, has_key=True)
                    if f.level == "blocker"]
        if not blockers:
            return None
        return ("not mailing by SMTP: `newsletter doctor` finds what would hurt delivery: "
                + "; ".join(blockers) + ". Fix it; or, for a staging relay, send with "
                "--force or set NEWSLETTER_ALLOW_BLOCKED_SENDING=true")

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.var_dir / 'newsletter.db').as_posix()}"

    @property
    def resolved_journal_dir(self) -> Path:
        return self.journal_dir if self.journal_dir is not None else self.var_dir / "journal"

    @property
    def resolved_outbox_dir(self) -> Path:
        return self.outbox_dir if self.outbox_dir is not None else self.var_dir / "outbox"

    @property
    def resolved_redis_url(self) -> str:
        if self.redis_url:
            return self.redis_url
        return self.broker_url if self.broker_url.startswith(("redis://", "rediss://")) else ""

    @property
    def smtp_urls(self) -> list[str]:
        """Relays in order of preference: NEWSLETTER_SMTP_URL may list several, comma-separated."""
        return [u.strip() for u in self.smtp_url.split(",") if u.strip()]

    @property
    def resolved_bounce_domain(self) -> str:
        return self.bounce_domain or self.sender_domain.lower()

    @property
    def resolved_list_id(self) -> str:
        return self.list_id or f"newsletter.{self.sender_domain}"

    @property
    def sender_domain(self) -> str:
        return self.sender_email.rpartition("@")[2] or "localhost"


def _reply_to_problem(value: str) -> str | None:
    """Why one line of text is not `address` or `Name <address>`, or None."""
    found = _NAMED_ADDRESS.fullmatch(value)
    if found is None:  # a < or > out of place
        return "is not one address"
    address = (found["address"] if found["bare"] is None else found["bare"]).strip()
    problem = _address_problem(address) or _name_problem(found["name"] or "")
    if problem is None and not _one_mailbox(value, address):
        return "is not one address (put a name that has a comma in quotes)"
    return problem


def _one_mailbox(value: str, address: str) -> bool:
    """Whether the email package reads `value` as exactly the one mailbox `address`."""
    try:
        header: Any = policy.SMTP.header_factory("Reply-To", value)
        mailboxes = header.addresses
    except Exception:  # the stdlib parser raises AttributeError, IndexError... on odd text
        return False
    harmful = [d for d in header.defects if not isinstance(d, ObsoleteHeaderDefect)]
    return len(mailboxes) == 1 and mailboxes[0].addr_spec == address and not harmful


def load_settings(**values: Any) -> Settings:
    """Settings from the environment (and `values`), or a SettingsError that names each
    NEWSLETTER_* variable that is wrong and why, instead of pydantic's report."""
    try:
        return Settings(**values)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            cause = (error.get("ctx") or {}).get("error")
            message = str(cause) if isinstance(cause, ValueError) else error["msg"]
            if not message.startswith("NEWSLETTER_"):
                field = "_".join(str(part) for part in error["loc"][:1]).upper()
                message = f"NEWSLETTER_{field}: {message}"
            problems.append(message)
        raise SettingsError("; ".join(problems)) from None
    except SourceError as exc:  # a list or number that does not parse
        raise SettingsError(f"{exc} (NEWSLETTER_* variables)") from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings; entry points read it once and pass pieces down."""
    return load_settings()
