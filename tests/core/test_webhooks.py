"""Outbound webhooks on SQLite and PostgreSQL, delivered to a real local receiver and verified as a receiver would."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import Engine, delete, select, update
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from core import audit, webhooks
from core.config import Settings
from core.errors import NotFound, ValidationFailed
from db.models import DeliveryStatus, WebhookDelivery, WebhookEndpoint, WebhookEvent, WorkflowLog, utcnow
from db.session import session_scope
from tests.support.concurrency import at_once
from tests.support.webhook_receiver import HANG, WebhookReceiver

ENV_SECRET = "whsec_" + base64.b64encode(b"an env secret of 32 bytes here!!").decode()
LEAD = {"id": "01JLEAD0000000000000000000", "full_name": "Dana Whitfield", "status": "NEW", "score": 86}


def add_endpoint(engine: Engine, url: str, *, name: str = "n8n", event_types: tuple[str, ...] = (),
                 enabled: bool = True) -> tuple[str, str]:
    """An endpoint added as an admin would; returns its id and signing secret."""
    with session_scope(engine) as session:
        endpoint, secret = webhooks.create_endpoint(session=session, name=name, url=url, event_types=event_types,
                                                    actor="user:ada")
        if not enabled:
            webhooks.update_endpoint(session=session, endpoint_id=endpoint.id, enabled=False, actor="user:ada")
        return endpoint.id, secret


def emit(engine: Engine, type: str = "lead.created", data: dict | None = None, **kwargs) -> str | None:  # noqa: A002
    """Emits one event in its own transaction, as core.leads does inside its own; returns the event id."""
    with session_scope(engine) as session:
        event = webhooks.emit(session=session, type=type, data=data or LEAD, **kwargs)
        return event.id if event else None


def deliveries(engine: Engine) -> list[WebhookDelivery]:
    with session_scope(engine) as session:
        return list(session.scalars(select(WebhookDelivery).order_by(WebhookDelivery.created_at,
                                                                     WebhookDelivery.id)))


def endpoint(engine: Engine, endpoint_id: str) -> WebhookEndpoint:
    with session_scope(engine) as session:
        return webhooks.get_endpoint(session=session, endpoint_id=endpoint_id)


def log(engine: Engine) -> list[WorkflowLog]:
    with session_scope(engine) as session:
        return list(session.scalars(select(WorkflowLog).where(WorkflowLog.kind == "webhook")
                                    .order_by(WorkflowLog.created_at, WorkflowLog.id)))


def run(engine: Engine, settings: Settings, at, **kwargs) -> webhooks.WebhookSummary:  # noqa: ANN001
    return webhooks.run_pass(engine=engine, settings=settings, now=at, **kwargs)


def verified(secret: str, request) -> dict:  # noqa: ANN001 - a Received
    return Webhook(secret).verify(request.body, request.headers)


def test_emit_writes_deliveries_only_for_enabled_endpoints_that_want_the_type(engine: Engine):
    assert emit(engine) is None  # no endpoint: nothing written at all
    with session_scope(engine) as session:
        assert session.scalar(select(WebhookEvent.id)) is None

    everything, _ = add_endpoint(engine, "https://a.example.com/hook", name="all")
    created_only, _ = add_endpoint(engine, "https://b.example.com/hook", name="created",
                                   event_types=("lead.created",))
    add_endpoint(engine, "https://c.example.com/hook", name="followups", event_types=("followup.sent",))
    add_endpoint(engine, "https://d.example.com/hook", name="off", enabled=False)
    now = utcnow()

    event_id = emit(engine, now=now)

    with session_scope(engine) as session:
        event = session.get(WebhookEvent, event_id)
        assert event.id.startswith("msg_") and event.type == "lead.created"
        assert event.payload == {"type": "lead.created", "timestamp": webhooks._iso(now), "data": LEAD}
    assert {(d.event_id, d.endpoint_id, d.status, d.attempts) for d in deliveries(engine)} == {
        (event_id, everything, DeliveryStatus.PENDING, 0), (event_id, created_only, DeliveryStatus.PENDING, 0)}
    emit(engine, type="insight.generated")
    assert len(deliveries(engine)) == 3  # only the endpoint that wants every type


def test_emit_is_part_of_the_callers_transaction(engine: Engine):
    add_endpoint(engine, "https://a.example.com/hook")
    with pytest.raises(RuntimeError), session_scope(engine) as session:
        webhooks.emit(session=session, type="lead.created", data=LEAD)
        raise RuntimeError("the lead's save failed")
    assert deliveries(engine) == []
    with pytest.raises(ValueError, match="unknown webhook event type"), session_scope(engine) as session:
        webhooks.emit(session=session, type="lead.deleted", data=LEAD)


def test_each_event_knows_the_lead_its_data_describes(engine: Engine):
    add_endpoint(engine, "https://a.example.com/hook")
    other = "01JOTHER000000000000000000"
    events = {
        "lead.created": LEAD,
        "lead.analyzed": LEAD,
        "lead.status_changed": {"lead": LEAD, "from": "NEW", "to": "CONTACTED", "by": "user:ada"},
        "followup.sent": {"follow_up": {"id": "01JFOLLOWUP", "lead_id": other, "number": 1}},
        "insight.generated": {"id": "01JREPORT0000000000000000", "period": "WEEKLY"},
    }
    ids = {type_: emit(engine, type=type_, data=data) for type_, data in events.items()}
    too_long = emit(engine, type="lead.analyzed", data={**LEAD, "id": "x" * 27})

    with session_scope(engine) as session:
        lead_of = {event.id: event.lead_id for event in session.scalars(select(WebhookEvent))}
    assert {type_: lead_of[event_id] for type_, event_id in ids.items()} == {
        "lead.created": LEAD["id"], "lead.analyzed": LEAD["id"], "lead.status_changed": LEAD["id"],
        "followup.sent": other, "insight.generated": None}
    assert lead_of[too_long] is None, "an id longer than any lead's names no lead"


def test_deleting_a_leads_events_takes_their_deliveries_so_nothing_is_sent(engine: Engine, settings: Settings):
    with WebhookReceiver() as receiver:
        add_endpoint(engine, receiver.url)
        emit(engine)
        run(engine, settings, utcnow())  # delivered: its stored copy goes too
        emit(engine, type="lead.status_changed", data={"lead": LEAD, "from": "NEW", "to": "WON", "by": "user:ada"})
        kept = emit(engine, data={**LEAD, "id": "01JOTHER000000000000000000"})
        with session_scope(engine) as session:
            assert webhooks.delete_for_leads(session=session, lead_ids=[LEAD["id"]]) == 2
        summary = run(engine, settings, utcnow())
        requests = receiver.requests

    assert summary.line() == "webhooks: 1 delivered, 0 retrying, 0 failed"
    assert [r.headers["webhook-id"] for r in requests][1:] == [kept], "the deleted pending event was never sent"
    assert [d.event_id for d in deliveries(engine)] == [kept]


def test_three_failures_then_success_arrive_under_one_id_and_every_request_verifies(
        engine: Engine, settings: Settings):
    with WebhookReceiver(500, 500, 500, 200) as receiver:
        endpoint_id, secret = add_endpoint(engine, receiver.url)
        now = utcnow()
        event_id = emit(engine, now=now)

        lines = [run(engine, settings, now).line()]
        assert run(engine, settings, now + timedelta(seconds=4)).line().startswith("webhooks: 0 delivered, 0 ret")
        for at in (now + timedelta(seconds=5), now + timedelta(seconds=5, minutes=5),
                   now + timedelta(seconds=5, minutes=35)):
            lines.append(run(engine, settings, at).line())
        requests = receiver.requests

    assert lines == (["webhooks: 0 delivered, 1 retrying, 0 failed"] * 3
                     + ["webhooks: 1 delivered, 0 retrying, 0 failed"])
    assert len(requests) == 4
    assert {r.headers["webhook-id"] for r in requests} == {event_id}
    for request in requests:
        assert request.headers["content-type"] == "application/json"
        assert request.headers["webhook-signature"].startswith("v1,")
        assert abs(int(request.headers["webhook-timestamp"]) - time.time()) < 60
        assert verified(secret, request) == {"type": "lead.created", "timestamp": webhooks._iso(now), "data": LEAD}
        assert b'", "' not in request.body and b'": ' not in request.body  # compact JSON, the bytes that were signed
    [delivery] = deliveries(engine)
    assert (delivery.status, delivery.attempts, delivery.last_error) == (DeliveryStatus.DELIVERED, 4, None)
    assert [(row.outcome, row.subject_id, row.channel) for row in log(engine)] == (
        [("retry", delivery.id, "n8n")] * 3 + [("delivered", delivery.id, "n8n")])
    assert all(row.detail.startswith("HTTP 500: <html><body>Scripted 500") for row in log(engine)[:3])
    state = endpoint(engine, endpoint_id)
    assert state.last_success_at == now + timedelta(seconds=5, minutes=35) and "HTTP 500" in state.last_error


def test_a_tampered_body_or_another_secret_fails_verification(engine: Engine, settings: Settings):
    with WebhookReceiver() as receiver:
        _id, secret = add_endpoint(engine, receiver.url)
        emit(engine)
        run(engine, settings, utcnow())
        [request] = receiver.requests

    assert verified(secret, request)["data"] == LEAD
    tampered = request.body.replace(b'"score":86', b'"score":99')
    assert tampered != request.body
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(tampered, request.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(webhooks.new_secret()).verify(request.body, request.headers)


def test_seven_failures_give_up_with_every_attempt_logged_and_a_person_can_retry(engine: Engine, settings: Settings):
    with WebhookReceiver(default=503) as receiver:
        endpoint_id, secret = add_endpoint(engine, receiver.url)
        at = utcnow()
        emit(engine, now=at)
        lines = [run(engine, settings, at).line()]
        for delay in webhooks.RETRY_DELAYS:
            at += delay
            lines.append(run(engine, settings, at).line())
        after_a_day = run(engine, settings, at + timedelta(days=1))

        assert len(receiver.requests) == 7 and after_a_day.line() == "webhooks: 0 delivered, 0 retrying, 0 failed"
        assert lines[-1] == "webhooks: 0 delivered, 0 retrying, 1 failed"
        [delivery] = deliveries(engine)
        assert (delivery.status, delivery.attempts, delivery.last_status_code) == (DeliveryStatus.FAILED, 7, 503)
        assert [row.outcome for row in log(engine)] == ["retry"] * 6 + ["failed"]
        assert all(row.duration_ms is not None and "HTTP 503" in row.detail for row in log(engine))
        with session_scope(engine) as session:
            [failed] = webhooks.failed_deliveries(session=session)
            [state] = webhooks.endpoint_states(session=session, now=at)
        assert (failed.id, failed.event_type, failed.attempts, failed.endpoint_name) == (
            delivery.id, "lead.created", 7, "n8n")
        assert (state.pending, state.delivered_7d, state.failed_7d) == (0, 0, 1)

        receiver.default = 200
        with session_scope(engine) as session:
            webhooks.redeliver(session=session, delivery_id=delivery.id, actor="user:ada", now=at)
            with pytest.raises(ValidationFailed, match="only a failed delivery"):
                webhooks.redeliver(session=session, delivery_id=delivery.id, actor="user:ada")
        assert run(engine, settings, at).line() == "webhooks: 1 delivered, 0 retrying, 0 failed"
        assert len({r.headers["webhook-id"] for r in receiver.requests}) == 1
        assert verified(secret, receiver.requests[-1])["type"] == "lead.created"
    with session_scope(engine) as session:
        assert [e.action for e in audit.get_all(session=session, action="webhook_delivery.retried")] == [
            "webhook_delivery.retried"]
        assert endpoint_id


def test_410_disables_the_endpoint_and_cancels_its_other_deliveries(engine: Engine, settings: Settings):
    with WebhookReceiver(default=410) as gone, WebhookReceiver() as healthy:
        gone_id, _ = add_endpoint(engine, gone.url, name="old zap")
        healthy_id, _ = add_endpoint(engine, healthy.url, name="n8n")
        now = utcnow()
        for _ in range(3):
            emit(engine, now=now)

        summary = run(engine, settings, now)

        assert len(gone.requests) == 1 and len(healthy.requests) == 3
        assert (summary.delivered, summary.failed, summary.cancelled) == (3, 1, 2)
        statuses = sorted(d.status for d in deliveries(engine) if d.endpoint_id == gone_id)
        assert statuses == [DeliveryStatus.CANCELLED, DeliveryStatus.CANCELLED, DeliveryStatus.FAILED]
        off = endpoint(engine, gone_id)
        assert not off.enabled and "410" in off.disabled_reason
        assert [row.outcome for row in log(engine) if row.channel == "old zap"] == ["gone"]

        emit(engine, now=now)
        assert [d.endpoint_id for d in deliveries(engine)][-1:] == [healthy_id]  # a new event skips it
        with session_scope(engine) as session:
            webhooks.update_endpoint(session=session, endpoint_id=gone_id, enabled=True, actor="user:ada")
        assert endpoint(engine, gone_id).enabled and endpoint(engine, gone_id).disabled_reason is None


def test_a_hanging_receiver_costs_one_timeout_and_is_retried_later(engine: Engine, settings: Settings):
    with WebhookReceiver(HANG, hang_s=5) as receiver:
        _id, secret = add_endpoint(engine, receiver.url)
        now = utcnow()
        event_ids = {emit(engine, now=now), emit(engine, now=now)}

        started = time.monotonic()
        summary = run(engine, settings, now, timeout_s=0.5)
        elapsed = time.monotonic() - started

        assert (summary.delivered, summary.retrying) == (1, 1)
        assert elapsed < 2.5, f"one hang cost {elapsed:.2f} s"
        first = receiver.requests[0].headers["webhook-id"]  # the request that hung
        [second] = event_ids - {first}
        hung = next(d for d in deliveries(engine) if d.status == DeliveryStatus.PENDING)
        assert hung.event_id == first and hung.attempts == 1 and "no answer within 0.5 s" in hung.last_error
        assert [row.outcome for row in log(engine)] == ["error", "delivered"]

        assert run(engine, settings, now + timedelta(seconds=5), timeout_s=0.5).delivered == 1
        assert receiver.count_by_id() == {first: 2, second: 1}
        assert verified(secret, receiver.requests[-1])["type"] == "lead.created"


def test_an_unreachable_receiver_is_an_error_that_is_retried(engine: Engine, settings: Settings):
    with WebhookReceiver() as receiver:
        url = receiver.url  # the port is free again once the receiver has stopped
    add_endpoint(engine, url)
    emit(engine)

    assert run(engine, settings, utcnow()).retrying == 1
    [row] = log(engine)
    assert row.outcome == "error" and "ConnectError" in row.detail


def test_two_passes_at_once_deliver_each_event_exactly_once(engine: Engine, settings: Settings, db_url: str):
    with WebhookReceiver(delay_s=0.01) as receiver:
        add_endpoint(engine, receiver.url)
        now = utcnow()
        event_ids = [emit(engine, now=now) for _ in range(50)]
        summaries = at_once(db_url, lambda own_engine: webhooks.run_pass(engine=own_engine, settings=settings,
                                                                         now=now))

        assert receiver.count_by_id() == {event_id: 1 for event_id in event_ids}
    assert sum(s.delivered for s in summaries) == 50
    rows = deliveries(engine)
    assert {d.status for d in rows} == {DeliveryStatus.DELIVERED}
    assert all(d.claim_token is None and d.claimed_until is None for d in rows)


def test_a_claim_left_by_a_dead_pass_runs_out_and_is_picked_up(engine: Engine, settings: Settings):
    with WebhookReceiver() as receiver:
        add_endpoint(engine, receiver.url)
        now = utcnow()
        abandoned, live = emit(engine, now=now), emit(engine, now=now)
        with session_scope(engine) as session:
            session.execute(update(WebhookDelivery).where(WebhookDelivery.event_id == abandoned)
                            .values(claim_token="dead-pass", claimed_until=now - timedelta(seconds=1)))
            session.execute(update(WebhookDelivery).where(WebhookDelivery.event_id == live)
                            .values(claim_token="busy-pass", claimed_until=now + timedelta(minutes=1)))

        assert run(engine, settings, now).delivered == 1
        assert receiver.count_by_id() == {abandoned: 1}
        assert run(engine, settings, now + timedelta(minutes=2)).delivered == 1
        assert receiver.count_by_id() == {abandoned: 1, live: 1}


def test_the_webhook_url_endpoint_follows_the_environment(engine: Engine, make_settings: Callable[..., Settings]):
    with WebhookReceiver() as receiver, WebhookReceiver(path="/moved") as moved:
        configured = make_settings(webhook_url=receiver.url, webhook_secret=ENV_SECRET)
        with session_scope(engine) as session:
            assert webhooks.sync_env_endpoint(session=session, settings=configured)
            assert not webhooks.sync_env_endpoint(session=session, settings=configured)  # nothing changes twice
            [env] = webhooks.get_all_endpoints(session=session)
        assert (env.from_env, env.secret, env.url, env.enabled, env.event_types) == (
            True, None, receiver.url, True, [])

        emit(engine)
        assert run(engine, configured, utcnow()).delivered == 1
        assert verified(ENV_SECRET, receiver.requests[0])["data"] == LEAD

        run(engine, make_settings(webhook_url=moved.url, webhook_secret=ENV_SECRET), utcnow())
        assert endpoint(engine, env.id).url == moved.url

        pending = emit(engine)
        unset = make_settings(webhook_secret=ENV_SECRET)
        assert run(engine, unset, utcnow()).cancelled == 1
        off = endpoint(engine, env.id)
        assert (off.enabled, off.disabled_reason) == (False, "WEBHOOK_URL is not set")
        assert next(d for d in deliveries(engine) if d.event_id == pending).status == DeliveryStatus.CANCELLED
        assert emit(engine) is None

        run(engine, configured, utcnow())
        back = endpoint(engine, env.id)
        assert (back.enabled, back.disabled_reason, back.url) == (True, None, receiver.url)
        assert len(receiver.requests) == 1 and moved.requests == []


def test_without_a_usable_webhook_secret_nothing_is_sent_and_the_endpoint_says_why(
        engine: Engine, make_settings: Callable[..., Settings]):
    with WebhookReceiver() as receiver:
        for secret, problem in ((None, webhooks.SECRET_UNSET), ("plain-text", webhooks.SECRET_INVALID)):
            no_secret = make_settings(webhook_url=receiver.url, webhook_secret=secret)
            with session_scope(engine) as session:
                webhooks.sync_env_endpoint(session=session, settings=no_secret)
            event_id = emit(engine)

            assert run(engine, no_secret, utcnow()).line() == "webhooks: 0 delivered, 0 retrying, 0 failed"
            with session_scope(engine) as session:
                [state] = webhooks.endpoint_states(session=session)
            assert (state.last_error, state.pending, state.enabled) == (problem, 1, True)
            assert receiver.requests == [] and log(engine) == []

            assert run(engine, make_settings(webhook_url=receiver.url, webhook_secret=ENV_SECRET),
                       utcnow()).delivered == 1
            assert receiver.count_by_id() == {event_id: 1}
            assert endpoint(engine, state.id).last_error is None
            receiver.clear()
            with session_scope(engine) as session:
                session.execute(delete(WorkflowLog))  # the next round starts from a clean log


@pytest.mark.parametrize("url", ["", "ftp://files.example.com/in", "not a url", "https://", "https://exa mple.com/x",
                                 "javascript:alert(1)", "https://example.com:99999/"])
def test_create_endpoint_rejects_a_bad_url_with_a_field_error(engine: Engine, url: str):
    with pytest.raises(ValidationFailed) as caught, session_scope(engine) as session:
        webhooks.create_endpoint(session=session, name="n8n", url=url, event_types=[], actor="user:ada")
    assert [e.field for e in caught.value.errors] == ["url"]


def test_create_endpoint_checks_name_and_types_and_returns_a_secret_once(engine: Engine):
    with pytest.raises(ValidationFailed) as caught, session_scope(engine) as session:
        webhooks.create_endpoint(session=session, name=" ", url="https://n8n.example.com/hook",
                                 event_types=["lead.created", "lead.deleted"], actor="user:ada")
    assert {(e.field, e.message) for e in caught.value.errors} == {
        ("name", "is required"), ("event_types", "unknown: lead.deleted")}

    endpoint_id, secret = add_endpoint(engine, "https://hooks:pw@n8n.example.com/webhook/abc?token=t",
                                       event_types=("lead.status_changed", "lead.created"))
    assert secret.startswith("whsec_") and len(base64.b64decode(secret.removeprefix("whsec_"))) == 24
    Webhook(secret)  # the library accepts it
    with session_scope(engine) as session:
        [state] = webhooks.endpoint_states(session=session)
        [created] = audit.get_all(session=session, action="webhook_endpoint.created")
        with pytest.raises(ValidationFailed, match="another endpoint has this name"):
            webhooks.create_endpoint(session=session, name="n8n", url="https://other.example.com", event_types=[],
                                     actor="user:ada")
    assert state.origin == "https://n8n.example.com" and state.event_types == ("lead.created", "lead.status_changed")
    assert secret not in json.dumps(created.detail) and "token" not in json.dumps(created.detail)
    assert endpoint(engine, endpoint_id).secret == secret


def test_rotating_a_secret_signs_with_the_new_one_and_deleting_drops_deliveries(engine: Engine, settings: Settings):
    with WebhookReceiver() as receiver:
        endpoint_id, old = add_endpoint(engine, receiver.url)
        with session_scope(engine) as session:
            new = webhooks.rotate_secret(session=session, endpoint_id=endpoint_id, actor="user:ada")
        emit(engine)
        run(engine, settings, utcnow())
        [request] = receiver.requests

    assert new != old and verified(new, request)["type"] == "lead.created"
    with pytest.raises(WebhookVerificationError):
        verified(old, request)
    emit(engine)
    with session_scope(engine) as session:
        webhooks.delete_endpoint(session=session, endpoint_id=endpoint_id, actor="user:ada")
    assert deliveries(engine) == []
    with pytest.raises(NotFound), session_scope(engine) as session:
        webhooks.delete_endpoint(session=session, endpoint_id=endpoint_id, actor="user:ada")


def test_endpoint_states_count_pending_delivered_and_failed_per_endpoint(engine: Engine, settings: Settings):
    with WebhookReceiver(200, 500) as receiver:
        first, _ = add_endpoint(engine, receiver.url, name="first")
        quiet, _ = add_endpoint(engine, "https://quiet.example.com/hook", name="quiet", enabled=False)
        now = utcnow()
        emit(engine, now=now), emit(engine, now=now)
        run(engine, settings, now)
        emit(engine, now=now)
    with session_scope(engine) as session:
        states = {s.name: s for s in webhooks.endpoint_states(session=session)}

    assert (states["first"].pending, states["first"].delivered_7d, states["first"].failed_7d) == (2, 1, 0)
    assert "HTTP 500" in states["first"].last_error and states["first"].last_success_at == now
    assert (states["quiet"].pending, states["quiet"].enabled, states["quiet"].disabled_reason) == (
        0, False, "disabled by user:ada")
    assert {first, quiet} == {s.id for s in states.values()}


def test_disabling_an_endpoint_cancels_what_waits_for_it(engine: Engine, settings: Settings):
    endpoint_id, _ = add_endpoint(engine, "https://n8n.example.com/hook")
    emit(engine, data={"lead": LEAD, "at": utcnow(), "budget_usd": Decimal("40000.00"),
                       "status": DeliveryStatus.PENDING})
    emit(engine)
    with session_scope(engine) as session:
        event = session.scalars(select(WebhookEvent).order_by(WebhookEvent.id)).first()
        assert event.payload["data"]["budget_usd"] == 40000 and event.payload["data"]["status"] == "PENDING"
        assert event.payload["data"]["at"].endswith("Z")
        webhooks.update_endpoint(session=session, endpoint_id=endpoint_id, enabled=False, actor="user:ada")

    assert {d.status for d in deliveries(engine)} == {DeliveryStatus.CANCELLED}
    assert run(engine, settings, utcnow()).line() == "webhooks: 0 delivered, 0 retrying, 0 failed"
    with session_scope(engine) as session:
        session.execute(update(WebhookDelivery).values(status=DeliveryStatus.FAILED))
        with pytest.raises(ValidationFailed, match="is disabled"):
            webhooks.redeliver(session=session, delivery_id=deliveries(engine)[0].id, actor="user:ada")
