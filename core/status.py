"""What the app can tell anyone about its own state, without revealing data."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import text

from core.config import get_settings
from db.session import get_engine


@dataclass(frozen=True)
class SystemStatus:
    ai_enabled: bool
    ai_model: str
    database_kind: str
    database_ok: bool
    database_error: str | None


def system_status() -> SystemStatus:
    """Whether the AI is configured and the database answers."""
    settings = get_settings()
    kind = "SQLite" if settings.is_sqlite else "PostgreSQL"
    error = None
    try:
        with get_engine(settings.database_url).connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001 - shown to the user as "does not answer"
        error = type(exc).__name__
    return SystemStatus(ai_enabled=settings.ai_enabled, ai_model=settings.gemini_model, database_kind=kind,
                        database_ok=error is None, database_error=error)
