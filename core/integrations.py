"""Which outside services are configured, what each one does today, and the last error seen; never a secret."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.config import Settings
from db.models import AiUsage

NOT_BUILT = "nothing is delivered through it until the follow-ups release"


@dataclass(frozen=True)
class IntegrationState:
    """One integration as the admin page shows it."""

    name: str
    configured: bool
    detail: str
    last_error: str | None = None
    last_error_at: datetime | None = None


def integration_states(*, session: Session, settings: Settings) -> list[IntegrationState]:
    """Gemini, SMTP, Twilio and webhooks: configured or not, what that means today, and Gemini's last error."""
    return [_gemini(session, settings), _smtp(settings), _twilio(settings), _webhooks(settings)]


def _missing(**values: object) -> list[str]:
    return [name for name, value in values.items() if not value]


def _gemini(session: Session, settings: Settings) -> IntegrationState:
    failure = session.execute(select(AiUsage.outcome, AiUsage.error, AiUsage.created_at)
                              .where(AiUsage.outcome != "ok")
                              .order_by(AiUsage.created_at.desc(), AiUsage.id.desc()).limit(1)).first()
    if settings.ai_enabled:
        endpoint = f" through {_origin(settings.gemini_base_url)}" if settings.gemini_base_url else ""
        detail = (f"Leads are analysed by {settings.gemini_model}{endpoint}; when it fails the rules engine's "
                  "analysis is saved and the lead is queued for re-analysis.")
    else:
        detail = "GEMINI_API_KEY is not set: analyses come from the built-in rules engine."
    return IntegrationState(
        name="Gemini", configured=settings.ai_enabled, detail=detail,
        last_error=(f"{failure.outcome}: {failure.error}" if failure.error else failure.outcome) if failure else None,
        last_error_at=failure.created_at if failure else None)


def _smtp(settings: Settings) -> IntegrationState:
    missing = _missing(SMTP_HOST=settings.smtp_host, MAIL_FROM=settings.mail_from)
    if missing:
        detail = f"Not configured ({', '.join(missing)} not set): email follow-ups cannot be sent."
    else:
        detail = f"{settings.smtp_host}:{settings.smtp_port} as {settings.mail_from}."
    return IntegrationState(name="Email (SMTP)", configured=not missing,
                            detail=f"{detail} Email sending is not built yet: {NOT_BUILT}.")


def _twilio(settings: Settings) -> IntegrationState:
    missing = _missing(TWILIO_ACCOUNT_SID=settings.twilio_account_sid, TWILIO_AUTH_TOKEN=settings.twilio_auth_token,
                       TWILIO_FROM=settings.twilio_from or settings.twilio_whatsapp_from)
    if missing:
        detail = f"Not configured ({', '.join(missing)} not set): SMS and WhatsApp follow-ups cannot be sent."
    else:
        channels = [name for name, sender in (("SMS", settings.twilio_from),
                                              ("WhatsApp", settings.twilio_whatsapp_from)) if sender]
        detail = f"{' and '.join(channels)} through Twilio."
    return IntegrationState(name="Twilio (SMS, WhatsApp)", configured=not missing,
                            detail=f"{detail} Text messaging is not built yet: {NOT_BUILT}.")


def _webhooks(settings: Settings) -> IntegrationState:
    missing = _missing(WEBHOOK_URL=settings.webhook_url, WEBHOOK_SECRET=settings.webhook_secret)
    secret = settings.webhook_secret.get_secret_value() if settings.webhook_secret else None
    if missing:
        detail = f"Not configured ({', '.join(missing)} not set)."
    elif not _valid_secret(secret or ""):
        missing = ["WEBHOOK_SECRET"]
        detail = "WEBHOOK_SECRET is not a signing secret: it must be whsec_ followed by base64."
    else:
        detail = f"Events go to {_origin(settings.webhook_url or '')}."
    return IntegrationState(name="Webhooks", configured=not missing,
                            detail=f"{detail} Webhook delivery is not built yet: {NOT_BUILT}.")


def _valid_secret(secret: str) -> bool:
    if not secret.startswith("whsec_"):
        return False
    try:
        return bool(base64.b64decode(secret.removeprefix("whsec_"), validate=True))
    except (binascii.Error, ValueError):
        return False


def _origin(url: str) -> str:
    # Only scheme and host: a URL may carry a token in its path, query or user part.
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError:
        return "the configured address"
    if not host:
        return "the configured address"
    return f"{parts.scheme}://{host}" + (f":{port}" if port else "")
