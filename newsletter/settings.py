"""One settings object, read from `NEWSLETTER_*` environment variables.

Everything has an embedded default so a fresh clone runs with no configuration:
an SQLite file and an outbox directory under `./var/`, tasks run in-process.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import langcodes
from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_SECRET = "dev-only-secret-change-me"
MAX_EDITION_TAG = 8  # what the deliveries' and variants' language columns hold


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
    postal_address: str = "Regional Office, Apartado 123-1000, San José, Costa Rica"
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

    # delivery: retries of temporary failures, sweeping, global rate limits
    retry_base_seconds: int = 60  # first retry after this, doubling each time
    retry_max_delay_seconds: int = 6 * 3600
    retry_for_seconds: int = 3 * 86400  # give up (failed) this long after the first try
    sweep_seconds: int = 30  # how often the sweeper requeues expired leases and due retries
    requeue_after_seconds: int = 900  # re-enqueue queued rows whose task was lost this long ago
    rate_per_second: float = 0  # messages per second per relay, all workers together; 0: none
    rate_per_hour: int = 0
    redis_url: str = ""  # for rate limits and live settings; default: the broker if Redis

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

    @field_validator("public_base_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        if not value.isascii() or any(c.isspace() for c in value):
            raise ValueError(
                "NEWSLETTER_PUBLIC_BASE_URL must be an ASCII URL without spaces "
                "(write an internationalised domain in its xn-- form)"
            )
        return value.rstrip("/")

    def insecure_for_mailing(self) -> str | None:
        """Why these settings must not mail real people, or None when they may (the
        outbox mails nobody, so only an SMTP relay makes the development secret unsafe)."""
        if self.smtp_urls and self.secret_key == DEV_SECRET:
            return (
                "NEWSLETTER_SECRET_KEY is the development default, so anyone could forge "
                "unsubscribe links: set it to a long random value before sending by SMTP"
            )
        return None

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.var_dir / 'newsletter.db').as_posix()}"

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
    def sender_domain(self) -> str:
        return self.sender_email.rpartition("@")[2] or "localhost"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings; entry points read it once and pass pieces down."""
    return Settings()
