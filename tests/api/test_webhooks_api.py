"""What n8n sees: leads posted to the API turn into signed webhooks, and a receiver's trouble never costs a lead."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy import func, select
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from core import webhooks
from core.config import Settings
from db.models import DeliveryStatus, Lead, WebhookDelivery, utcnow
from db.session import session_scope
from tests.conftest import ApiClient, lead_payload
from tests.support.webhook_receiver import HANG, WebhookReceiver

SECRET = "whsec_" + base64.b64encode(b"n8n-test-secret-0123456789abcd").decode()


def n8n_api(make_api: Callable[[Settings], ApiClient], make_settings: Callable[..., Settings],
            receiver: WebhookReceiver) -> tuple[ApiClient, Settings]:
    settings = make_settings(webhook_url=receiver.url, webhook_secret=SECRET)
    return make_api(settings), settings


def test_a_posted_lead_reaches_the_receiver_signed_after_three_500s(
        make_api: Callable[[Settings], ApiClient], make_settings: Callable[..., Settings]) -> None:
    with WebhookReceiver(500, 500, 500, 200) as receiver:
        settings = make_settings()
        api = make_api(settings)
        with session_scope(api.engine) as session:
            _endpoint, secret = webhooks.create_endpoint(session=session, name="n8n", url=receiver.url,
                                                         event_types=["lead.created"], actor="user:ada")
        lead = api.post("/api/leads", json=lead_payload()).json()
        now = utcnow()
        for wait in (timedelta(0), timedelta(seconds=6), timedelta(minutes=6), timedelta(minutes=40)):
            webhooks.run_pass(engine=api.engine, settings=settings, now=now + wait)
        created = receiver.requests

    assert [json.loads(r.body)["type"] for r in created] == ["lead.created"] * 4
    assert len({r.headers["webhook-id"] for r in created}) == 1
    body = json.loads(created[-1].body)
    assert body["data"]["id"] == lead["id"] and body["data"]["analysis"]["priority"] == lead["analysis"]["priority"]
    for request in created:
        Webhook(secret).verify(request.body, request.headers)
    tampered = created[-1].body.replace(b'"lead.created"', b'"lead.deleted"')
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(tampered, created[-1].headers)


def test_a_leads_save_succeeds_while_the_receiver_hangs(make_api: Callable[[Settings], ApiClient],
                                                        make_settings: Callable[..., Settings]) -> None:
    with WebhookReceiver(HANG, HANG, hang_s=3) as receiver:
        api, settings = n8n_api(make_api, make_settings, receiver)
        answer = api.post("/api/leads", json=lead_payload(email="hang@harborline.example"))
        assert answer.status_code == 201
        with session_scope(api.engine) as session:
            assert session.scalar(select(func.count()).select_from(Lead)) == 1
            pending = session.scalar(select(func.count()).where(WebhookDelivery.status == DeliveryStatus.PENDING))
        assert pending == 2  # lead.created and lead.analyzed, waiting for the jobs process
        summary = webhooks.run_pass(engine=api.engine, settings=settings, timeout_s=0.5, limit=1)
    assert "1 retrying" in summary.line()
