"""The integrations overview on SQLite and PostgreSQL: what is configured, what works today, the last AI error."""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine

from core import integrations, webhooks
from core.config import Settings
from db.models import AiUsage, WorkflowLog
from db.session import session_scope

T0 = datetime(2026, 3, 4, 9, 0, tzinfo=UTC)
SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()
FULL = dict(
    gemini_api_key="AIza-test-key-123", gemini_base_url="https://gateway.example.com/v1?token=gw-secret",
    smtp_host="smtp.example.com", smtp_port=2525, smtp_password="smtp-secret-pw", mail_from="sales@agency.example",
    twilio_account_sid="AC123", twilio_auth_token="twilio-secret-token", twilio_from="+15550001111",
    webhook_url="https://hooks:hook-pass@n8n.example.com/webhook/abc-secret-path?key=q-secret",
    webhook_secret=SECRET,
)


def states(engine: Engine, settings: Settings) -> dict[str, integrations.IntegrationState]:
    with session_scope(engine) as session:
        return {s.name: s for s in integrations.integration_states(session=session, settings=settings)}


def test_with_nothing_configured_each_integration_says_what_is_missing(engine: Engine, settings: Settings):
    found = states(engine, settings)

    assert list(found) == ["Gemini", "Email (SMTP)", "Twilio (SMS, WhatsApp)", "Webhooks"]
    assert not any(s.configured for s in found.values())
    assert "rules engine" in found["Gemini"].detail
    assert "SMTP_HOST, MAIL_FROM not set" in found["Email (SMTP)"].detail
    assert "TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN, TWILIO_FROM not set" in found["Twilio (SMS, WhatsApp)"].detail
    assert "WEBHOOK_URL, WEBHOOK_SECRET not set" in found["Webhooks"].detail
    assert all(s.last_error is None and s.last_error_at is None for s in found.values())


def test_fully_configured_integrations_say_what_is_delivered_and_how(
        engine: Engine, make_settings: Callable[..., Settings]):
    found = states(engine, make_settings(**FULL))

    assert all(s.configured for s in found.values())
    assert "gemini-2.5-flash" in found["Gemini"].detail and "https://gateway.example.com" in found["Gemini"].detail
    assert "smtp.example.com:2525 as sales@agency.example" in found["Email (SMTP)"].detail
    assert "SMS follow-ups go out through Twilio" in found["Twilio (SMS, WhatsApp)"].detail
    assert "Events go to https://n8n.example.com (WEBHOOK_URL)" in found["Webhooks"].detail
    assert "signed" in found["Webhooks"].detail
    assert not any("not built" in s.detail for s in found.values())
    assert all(s.last_error is None for s in found.values())


def test_no_secret_appears_in_any_detail(engine: Engine, make_settings: Callable[..., Settings]):
    shown = " ".join(s.detail for s in states(engine, make_settings(**FULL)).values())

    for secret in ("AIza-test-key-123", "gw-secret", "smtp-secret-pw", "twilio-secret-token", "hook-pass",
                   "abc-secret-path", "q-secret", SECRET, "AC123"):
        assert secret not in shown


def test_partly_configured_services_name_the_missing_part(engine: Engine, make_settings: Callable[..., Settings]):
    found = states(engine, make_settings(smtp_host="smtp.example.com", twilio_account_sid="AC1",
                                         twilio_auth_token="t", twilio_whatsapp_from="whatsapp:+15550001111",
                                         webhook_url="https://n8n.example.com/hook", webhook_secret="not-a-secret"))

    assert not found["Email (SMTP)"].configured and "MAIL_FROM not set" in found["Email (SMTP)"].detail
    assert found["Twilio (SMS, WhatsApp)"].configured
    assert "WhatsApp follow-ups go out through Twilio" in found["Twilio (SMS, WhatsApp)"].detail
    assert not found["Webhooks"].configured and "whsec_" in found["Webhooks"].detail


def test_gemini_shows_its_latest_failed_call(engine: Engine, make_settings: Callable[..., Settings]):
    with session_scope(engine) as session:
        session.add_all([
            AiUsage(purpose="analysis", model="gemini-2.5-flash", outcome="timeout", error="read timed out",
                    created_at=T0),
            AiUsage(purpose="analysis", model="gemini-2.5-flash", outcome="rate_limited", error="429 quota",
                    created_at=T0 + timedelta(hours=2)),
            AiUsage(purpose="analysis", model="gemini-2.5-flash", outcome="ok", created_at=T0 + timedelta(hours=3)),
            AiUsage(purpose="analysis", model="gemini-2.5-flash", outcome="blocked",
                    created_at=T0 + timedelta(hours=1)),
        ])

    gemini = states(engine, make_settings(gemini_api_key="k"))["Gemini"]

    assert (gemini.last_error, gemini.last_error_at) == ("rate_limited: 429 quota", T0 + timedelta(hours=2))


def test_email_and_text_messages_show_the_latest_failed_send_of_their_channels(
        engine: Engine, make_settings: Callable[..., Settings]):
    with session_scope(engine) as session:
        session.add_all([
            WorkflowLog(kind="followup", channel="EMAIL", outcome="failed", detail="535 authentication failed",
                        created_at=T0),
            WorkflowLog(kind="followup", channel="EMAIL", outcome="sent", created_at=T0 + timedelta(hours=1)),
            WorkflowLog(kind="followup", channel="SMS", outcome="retry", detail="Twilio 503",
                        created_at=T0 + timedelta(hours=2)),
            WorkflowLog(kind="followup", channel="WHATSAPP", outcome="failed", detail="Twilio 63016 outside window",
                        created_at=T0 + timedelta(hours=3)),
            WorkflowLog(kind="followup", channel="CALL", outcome="done", created_at=T0 + timedelta(hours=4)),
            WorkflowLog(kind="webhook", channel="n8n", outcome="delivered", detail="HTTP 200",
                        created_at=T0 + timedelta(hours=5)),
        ])

    found = states(engine, make_settings(**FULL))

    # A later successful send does not hide the failure: the admin sees the last thing that went wrong.
    assert (found["Email (SMTP)"].last_error, found["Email (SMTP)"].last_error_at) == (
        "EMAIL: failed: 535 authentication failed", T0)
    assert (found["Twilio (SMS, WhatsApp)"].last_error, found["Twilio (SMS, WhatsApp)"].last_error_at) == (
        "WHATSAPP: failed: Twilio 63016 outside window", T0 + timedelta(hours=3))
    assert found["Webhooks"].last_error is None


def test_webhooks_count_endpoints_added_in_the_app_and_show_the_last_delivery_error(
        engine: Engine, settings: Settings):
    with session_scope(engine) as session:
        for name in ("n8n", "crm"):
            webhooks.create_endpoint(session=session, name=name, url=f"https://{name}.example.com/hook",
                                     event_types=[], actor="user:ada")
        session.add_all([
            WorkflowLog(kind="webhook", channel="crm", outcome="retry", detail="HTTP 502: Bad gateway",
                        created_at=T0),
            WorkflowLog(kind="webhook", channel="n8n", outcome="delivered", detail="HTTP 200",
                        created_at=T0 + timedelta(minutes=1)),
        ])

    hooks = states(engine, settings)["Webhooks"]

    assert hooks.configured
    assert "2 endpoints added in the Webhooks tab receive events" in hooks.detail
    assert (hooks.last_error, hooks.last_error_at) == ("crm: retry: HTTP 502: Bad gateway", T0)


def test_a_webhook_url_without_a_secret_or_disabled_by_its_receiver_is_not_configured(
        engine: Engine, make_settings: Callable[..., Settings]):
    no_secret = make_settings(webhook_url="https://n8n.example.com/hook/abc-secret-path")
    hooks = states(engine, no_secret)["Webhooks"]
    assert not hooks.configured and "WEBHOOK_SECRET is not set" in hooks.detail
    assert "abc-secret-path" not in hooks.detail

    configured = make_settings(webhook_url="https://n8n.example.com/hook", webhook_secret=SECRET)
    with session_scope(engine) as session:
        webhooks.sync_env_endpoint(session=session, settings=configured)
        [env] = webhooks.get_all_endpoints(session=session)
        env.enabled, env.disabled_reason = False, webhooks.GONE
    hooks = states(engine, configured)["Webhooks"]
    assert not hooks.configured and "410 Gone" in hooks.detail
