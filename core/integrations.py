"""Which outside services are configured, what each one does today, and the last error seen; never a secret."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from core import webhooks
from core.config import Settings
from db.models import AiUsage, WebhookEndpoint, WorkflowLog


@dataclass(frozen=True)
class IntegrationState:
    """One integration as the admin page shows it."""

    name: str
    configured: bool
    detail: str
    last_error: str | None = None
    last_error_at: datetime | None = None


def integration_states(*, session: Session, settings: Settings) -> list[IntegrationState]:
    """Gemini, SMTP, Twilio and webhooks: configured or not, what that means, and the last error of each."""
    return [_gemini(session, settings), _smtp(session, settings), _twilio(session, settings),
            _webhooks(session, settings)]


def _missing(**values: object) -> list[str]:
    return [name for name, value in values.items() if not value]


# Attempts that went wrong; a cancelled follow-up or a call task is no error of the channel.
FAILURE_OUTCOMES = ("retry", "bounced", "failed", "unreachable", "error", "gone")


def _last_failure(session: Session, *, kind: str,
                  channels: tuple[str, ...] | None = None) -> tuple[str | None, datetime | None]:
    """The latest workflow-log attempt of `kind` (on `channels`) that failed, as text and time."""
    stmt = (select(WorkflowLog.channel, WorkflowLog.outcome, WorkflowLog.detail, WorkflowLog.created_at)
            .where(WorkflowLog.kind == kind, WorkflowLog.outcome.in_(FAILURE_OUTCOMES))
            .order_by(WorkflowLog.created_at.desc(), WorkflowLog.id.desc()).limit(1))
    if channels:
        stmt = stmt.where(WorkflowLog.channel.in_(channels))
    row = session.execute(stmt).first()
    if row is None:
        return None, None
    text = f"{row.channel}: {row.outcome}" if row.channel else row.outcome
    return (f"{text}: {row.detail}" if row.detail else text), row.created_at


def _gemini(session: Session, settings: Settings) -> IntegrationState:
    failure = session.execute(select(AiUsage.outcome, AiUsage.error, AiUsage.created_at)
                              .where(AiUsage.outcome != "ok")
                              .order_by(AiUsage.created_at.desc(), AiUsage.id.desc()).limit(1)).first()
    if settings.ai_enabled:
        endpoint = f" through {webhooks.origin(settings.gemini_base_url)}" if settings.gemini_base_url else ""
        detail = (f"Leads are analysed by {settings.gemini_model}{endpoint}; when it fails the rules engine's "
                  "analysis is saved and the lead is queued for re-analysis.")
    else:
        detail = "GEMINI_API_KEY is not set: analyses come from the built-in rules engine."
    return IntegrationState(
        name="Gemini", configured=settings.ai_enabled, detail=detail,
        last_error=(f"{failure.outcome}: {failure.error}" if failure.error else failure.outcome) if failure else None,
        last_error_at=failure.created_at if failure else None)


def _smtp(session: Session, settings: Settings) -> IntegrationState:
    missing = _missing(SMTP_HOST=settings.smtp_host, MAIL_FROM=settings.mail_from)
    if missing:
        detail = (f"Not configured ({', '.join(missing)} not set): email follow-ups stay queued, with the reason "
                  "shown, until it is.")
    else:
        detail = f"Email follow-ups go out through {settings.smtp_host}:{settings.smtp_port} as {settings.mail_from}."
    error, error_at = _last_failure(session, kind="followup", channels=("EMAIL",))
    return IntegrationState(name="Email (SMTP)", configured=not missing, detail=detail, last_error=error,
                            last_error_at=error_at)


def _twilio(session: Session, settings: Settings) -> IntegrationState:
    missing = _missing(TWILIO_ACCOUNT_SID=settings.twilio_account_sid, TWILIO_AUTH_TOKEN=settings.twilio_auth_token,
                       TWILIO_FROM=settings.twilio_from or settings.twilio_whatsapp_from)
    if missing:
        detail = f"Not configured ({', '.join(missing)} not set): SMS and WhatsApp follow-ups cannot be sent."
    else:
        channels = [name for name, sender in (("SMS", settings.twilio_from),
                                              ("WhatsApp", settings.twilio_whatsapp_from)) if sender]
        detail = f"{' and '.join(channels)} follow-ups go out through Twilio."
    error, error_at = _last_failure(session, kind="followup", channels=("SMS", "WHATSAPP"))
    return IntegrationState(name="Twilio (SMS, WhatsApp)", configured=not missing, detail=detail, last_error=error,
                            last_error_at=error_at)


def _webhooks(session: Session, settings: Settings) -> IntegrationState:
    endpoints = session.execute(select(WebhookEndpoint.from_env, WebhookEndpoint.enabled,
                                       WebhookEndpoint.disabled_reason)).all()
    in_app = sum(1 for e in endpoints if e.enabled and not e.from_env)
    env_row = next((e for e in endpoints if e.from_env), None)
    parts: list[str] = []
    env_ok = False
    if settings.webhook_url:
        where = webhooks.origin(settings.webhook_url)
        secret_problem = webhooks.env_secret_problem(settings)
        if env_row is not None and not env_row.enabled and env_row.disabled_reason != webhooks.ENV_UNSET:
            parts.append(f"The WEBHOOK_URL endpoint ({where}) is disabled: {env_row.disabled_reason}.")
        elif secret_problem:
            parts.append(f"Events for {where} wait: {secret_problem}.")
        else:
            env_ok = True
            parts.append(f"Events go to {where} (WEBHOOK_URL).")
    if in_app:
        parts.append(f"{in_app} endpoint{'s' if in_app > 1 else ''} added in the Webhooks tab "
                     f"{'receive' if in_app > 1 else 'receives'} events.")
    if not parts:
        missing = _missing(WEBHOOK_URL=settings.webhook_url, WEBHOOK_SECRET=settings.webhook_secret)
        parts.append(f"No endpoint: {', '.join(missing)} not set and none added in the Webhooks tab.")
    if env_ok or in_app:
        parts.append("Each event is signed (Standard Webhooks) and retried for about 18 hours until it gets a 2xx.")
    error, error_at = _last_failure(session, kind="webhook")
    return IntegrationState(name="Webhooks", configured=env_ok or in_app > 0, detail=" ".join(parts),
                            last_error=error, last_error_at=error_at)
