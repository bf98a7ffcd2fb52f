"""One configuration for the web process, the jobs process and the CLI, read from the environment and `.env`."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATABASE_URL = "sqlite:///data/leadops.db"


class Settings(BaseSettings):
    """Every variable of the outside contract; nothing secret has a default."""

    # env_ignore_empty: `SMTP_PORT=` (as .env.example writes it) means "use the default", in .env and environment alike.
    model_config = SettingsConfigDict(
        env_file=PROJECT_ROOT / ".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False,
        env_ignore_empty=True,
    )

    database_url: str = Field(default=DEFAULT_DATABASE_URL, validate_default=True)

    gemini_api_key: SecretStr | None = None
    gemini_model: str = "gemini-2.5-flash"
    gemini_base_url: str | None = None
    gemini_timeout_s: float = Field(default=20.0, gt=0, le=300)

    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = True
    mail_from: str | None = None

    twilio_account_sid: str | None = None
    twilio_auth_token: SecretStr | None = None
    twilio_from: str | None = None
    twilio_whatsapp_from: str | None = None
    twilio_base_url: str | None = None

    webhook_url: str | None = None
    webhook_secret: SecretStr | None = None

    leadops_api_key: SecretStr | None = None
    leadops_admin_username: str = "admin"
    leadops_admin_password: SecretStr | None = None
    leadops_cookie_key: SecretStr | None = None
    leadops_timezone: str = "UTC"
    leadops_base_url: str = "http://localhost:8501"

    @field_validator("database_url")
    @classmethod
    def _relative_sqlite_from_project_root(cls, value: str) -> str:
        # A blank URL (passed in code, or spaces in .env) is "not set", as for every other variable.
        value = value.strip() or DEFAULT_DATABASE_URL
        # `sqlite:///data/x.db` must mean the project's data folder whatever the working directory is.
        prefix = "sqlite:///"
        if value.startswith(prefix) and not value.startswith(prefix + "/") and ":memory:" not in value:
            return prefix + str(PROJECT_ROOT / value[len(prefix):])
        return value

    @field_validator("leadops_timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"LEADOPS_TIMEZONE: unknown time zone {value!r}") from exc
        return value

    @field_validator(
        "gemini_api_key", "gemini_base_url", "smtp_host", "smtp_username", "smtp_password", "mail_from",
        "twilio_account_sid", "twilio_auth_token", "twilio_from", "twilio_whatsapp_from", "twilio_base_url",
        "webhook_url", "webhook_secret", "leadops_api_key", "leadops_admin_password", "leadops_cookie_key",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # `GEMINI_API_KEY=` in a .env file means "not set", not "an empty key".
        return None if isinstance(value, str) and not value.strip() else value

    @property
    def ai_enabled(self) -> bool:
        """True when a Gemini key is configured."""
        return self.gemini_api_key is not None

    @property
    def is_sqlite(self) -> bool:
        """True when the database is the embedded SQLite file."""
        return self.database_url.startswith("sqlite")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read once."""
    return Settings()
