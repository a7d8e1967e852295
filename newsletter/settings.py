"""One settings object, read from `NEWSLETTER_*` environment variables.

Everything has an embedded default so a fresh clone runs with no configuration:
an SQLite file and an outbox directory under `./var/`, tasks run in-process.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_SECRET = "dev-only-secret-change-me"


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

    languages: list[str] = Field(default_factory=lambda: ["en", "es"])
    default_language: str = "en"
    batch_size: int = 200
    lease_seconds: int = 600

    @field_validator("public_base_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")

    def insecure_for_mailing(self) -> str | None:
        """Why these settings must not mail real people, or None when they may."""
        if self.secret_key == DEV_SECRET:
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
    def sender_domain(self) -> str:
        return self.sender_email.rpartition("@")[2] or "localhost"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings; entry points read it once and pass pieces down."""
    return Settings()
