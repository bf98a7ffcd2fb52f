"""Outbound webhooks: the outbox written with each change, the endpoints, and the pass that delivers signed events.

An event is written in the same transaction as the change that caused it (`emit`), with one delivery row per
interested endpoint. The `webhooks` job (`run_pass`) claims due deliveries, POSTs them signed as the Standard Webhooks
specification says, and retries failures with growing delays; every attempt lands in the workflow log.
"""

from __future__ import annotations

import base64
import binascii
import enum
import json
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import httpx
from sqlalchemy import Engine, and_, delete, func, or_, select, update
from sqlalchemy.orm import Session
from standardwebhooks import Webhook

from core import audit
from core.claims import claim_batch, release
from core.config import Settings
from core.errors import FieldError, NotFound, ValidationFailed
from db.models import (
    DeliveryStatus,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
    WorkflowLog,
    new_id,
    utcnow,
)
from db.session import run_with_retry, session_scope

EVENT_TYPES = ("lead.created", "lead.analyzed", "lead.status_changed", "followup.sent", "followup.failed",
               "insight.generated")
# After failed attempt n (1-6) the next one waits RETRY_DELAYS[n-1]; the 7th failure is final (about 18 h in all).
RETRY_DELAYS = (timedelta(seconds=5), timedelta(minutes=5), timedelta(minutes=30), timedelta(hours=2),
                timedelta(hours=5), timedelta(hours=10))
MAX_ATTEMPTS = len(RETRY_DELAYS) + 1
DEFAULT_TIMEOUT_S = 10.0
STATS_WINDOW = timedelta(days=7)
# Rows are claimed a few at a time, so the lease can cover every one of them timing out and still run out soon
# after a pass dies.
CLAIM_CHUNK = 10
EXCERPT_CHARS = 200
EXCERPT_BYTES = 2048
USER_AGENT = "LeadOps-Webhooks/1"
ENV_NAME = "WEBHOOK_URL"
ENV_UNSET = "WEBHOOK_URL is not set"
SECRET_UNSET = "WEBHOOK_SECRET is not set: nothing is sent to this endpoint until it is"
SECRET_INVALID = "WEBHOOK_SECRET is not a signing secret: it must be whsec_ followed by base64"
GONE = "the receiver answered 410 Gone: it wants no more events"
BAD_URL = "must be an http:// or https:// address with a host"
# Workflow-log outcomes: delivered (2xx); retry (another status, tried again later); error (no answer at all: a
# timeout, a refused connection; tried again later); failed (the last attempt failed); gone (410).
DELIVERED, RETRY, ERROR, FAILED, GONE_OUTCOME = "delivered", "retry", "error", "failed", "gone"
CANCELLED = "cancelled"


@dataclass(frozen=True)
class EndpointState:
    """One endpoint as the admin page shows it: never its secret, nor more of its URL than the origin."""

    id: str
    name: str
    origin: str
    event_types: tuple[str, ...]
    enabled: bool
    from_env: bool
    disabled_reason: str | None
    last_success_at: datetime | None
    last_failure_at: datetime | None
    last_error: str | None
    pending: int
    delivered_7d: int
    failed_7d: int


@dataclass(frozen=True)
class FailedDelivery:
    """A delivery that gave up, for a person to look at and retry."""

    id: str
    endpoint_name: str
    endpoint_enabled: bool
    event_id: str
    event_type: str
    attempts: int
    last_status_code: int | None
    last_error: str | None
    failed_at: datetime


@dataclass
class WebhookSummary:
    """What one pass did."""

    delivered: int = 0
    retrying: int = 0
    failed: int = 0
    cancelled: int = 0

    def line(self) -> str:
        """The pass as one line, e.g. "webhooks: 3 delivered, 1 retrying, 0 failed"."""
        text = f"webhooks: {self.delivered} delivered, {self.retrying} retrying, {self.failed} failed"
        return text + (f", {self.cancelled} cancelled" if self.cancelled else "")


@dataclass(frozen=True)
class _Job:
    delivery_id: str
    attempts: int
    event_id: str
    body: str
    url: str
    secret: str
    endpoint_id: str
    channel: str


@dataclass(frozen=True)
class _Attempt:
    status_code: int | None
    detail: str
    duration_ms: int

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


# -- the outbox ------------------------------------------------------------------------------------------------------

def emit(*, session: Session, type: str, data: dict, now: datetime | None = None) -> WebhookEvent | None:
    """Writes an event and a delivery per interested endpoint in the caller's transaction; None when none wants it."""
    if type not in EVENT_TYPES:
        raise ValueError(f"unknown webhook event type {type!r}")
    rows = session.execute(select(WebhookEndpoint.id, WebhookEndpoint.event_types)
                           .where(WebhookEndpoint.enabled.is_(True))).all()
    wanted = [row.id for row in rows if not row.event_types or type in row.event_types]
    if not wanted:
        return None
    at = now or utcnow()
    event = WebhookEvent(id=f"msg_{new_id()}", type=type, created_at=at, lead_id=lead_id_of(type, data),
                         payload={"type": type, "timestamp": _iso(at), "data": _jsonable(data)})
    session.add(event)
    session.add_all([WebhookDelivery(event_id=event.id, endpoint_id=endpoint_id, next_attempt_at=at, created_at=at)
                     for endpoint_id in wanted])
    session.flush()
    return event


def lead_id_of(type: str, data: dict) -> str | None:
    """The id of the lead an event's data describes (lead.* and followup.* events), or None."""
    if type in ("lead.created", "lead.analyzed"):
        found = data.get("id")
    elif type == "lead.status_changed":
        found = (data.get("lead") or {}).get("id")
    elif type.startswith("followup."):
        found = (data.get("follow_up") or {}).get("lead_id")
    else:
        return None
    # Migration 0008 reads the same places to fill in the events written before the column existed.
    return found if isinstance(found, str) and len(found) <= 26 else None


def delete_for_leads(*, session: Session, lead_ids: Iterable[str]) -> int:
    """Removes the events about these leads with their deliveries (pending ones are never sent); returns how many."""
    stmt = (delete(WebhookEvent).where(WebhookEvent.lead_id.in_(set(lead_ids)))
            .execution_options(synchronize_session=False))
    # The deliveries go by their foreign key's ON DELETE CASCADE.
    return int(session.execute(stmt).rowcount or 0)


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _encode(value: Any) -> Any:
    if isinstance(value, datetime):
        return _iso(value) if value.tzinfo else value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, enum.Enum):
        return value.value
    return str(value)


def _jsonable(data: dict) -> dict:
    # Stored as it will be sent: callers may hand over datetimes, Decimals or enums.
    return json.loads(json.dumps(data, default=_encode))


def _body(payload: dict[str, Any]) -> str:
    # Compact and ASCII-only, so the bytes sent are exactly the UTF-8 of the string that is signed.
    return json.dumps(payload, separators=(",", ":"))


# -- endpoints -------------------------------------------------------------------------------------------------------

def url_problem(url: str) -> str | None:
    """Why `url` cannot receive webhooks, or None when it can."""
    url = url.strip()
    if not url:
        return "is required"
    if len(url) > 2000:
        return "at most 2000 characters"
    try:
        parts = urlsplit(url)
        host, _port = parts.hostname, parts.port
    except ValueError:
        return BAD_URL
    if parts.scheme not in ("http", "https") or not host or any(c.isspace() for c in url):
        return BAD_URL
    return None


def origin(url: str) -> str:
    """Scheme, host and port of `url` only: the path, query or user part may carry a token."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError:
        return "the configured address"
    if not host:
        return "the configured address"
    return f"{parts.scheme}://{host}" + (f":{port}" if port else "")


def env_secret_problem(settings: Settings) -> str | None:
    """Why WEBHOOK_SECRET cannot sign, or None when it can."""
    if settings.webhook_secret is None or not settings.webhook_secret.get_secret_value().strip():
        return SECRET_UNSET
    secret = settings.webhook_secret.get_secret_value().strip()
    if not secret.startswith("whsec_"):
        return SECRET_INVALID
    try:
        key = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    except (binascii.Error, ValueError):
        return SECRET_INVALID
    return None if key else SECRET_INVALID


def new_secret() -> str:
    """A signing secret: whsec_ and base64 of 24 random bytes, as the Standard Webhooks specification suggests."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def _checked(session: Session, *, name: str | None, url: str | None, event_types: Iterable[str] | None,
             endpoint_id: str | None = None) -> list[FieldError]:
    problems = []
    if name is not None:
        if not name.strip():
            problems.append(FieldError("name", "is required"))
        elif len(name.strip()) > 100:
            problems.append(FieldError("name", "at most 100 characters"))
        elif session.scalar(select(WebhookEndpoint.id).where(WebhookEndpoint.name == name.strip(),
                                                             WebhookEndpoint.id != (endpoint_id or ""))):
            problems.append(FieldError("name", "another endpoint has this name"))
    if url is not None and (problem := url_problem(url)):
        problems.append(FieldError("url", problem))
    unknown = sorted(set(event_types or ()) - set(EVENT_TYPES))
    if unknown:
        problems.append(FieldError("event_types", f"unknown: {', '.join(unknown)}"))
    return problems


def _ordered_types(event_types: Iterable[str]) -> list[str]:
    chosen = set(event_types)
    return [t for t in EVENT_TYPES if t in chosen]


def _summary(endpoint: WebhookEndpoint) -> dict[str, Any]:
    return {"name": endpoint.name, "origin": origin(endpoint.url), "event_types": list(endpoint.event_types),
            "enabled": endpoint.enabled}


def create_endpoint(*, session: Session, name: str, url: str, event_types: Iterable[str],
                    actor: str) -> tuple[WebhookEndpoint, str]:
    """A new endpoint; its signing secret is returned here to be shown once."""
    event_types = list(event_types)
    problems = _checked(session, name=name, url=url, event_types=event_types)
    if problems:
        raise ValidationFailed(problems)
    secret = new_secret()
    endpoint = WebhookEndpoint(name=name.strip(), url=url.strip(), secret=secret,
                               event_types=_ordered_types(event_types), enabled=True, from_env=False)
    session.add(endpoint)
    session.flush()
    audit.record(session=session, actor=actor, action="webhook_endpoint.created", target_type="webhook_endpoint",
                 target_id=endpoint.id, detail=_summary(endpoint))
    return endpoint, secret


def get_endpoint(*, session: Session, endpoint_id: str) -> WebhookEndpoint:
    """One endpoint; NotFound when it does not exist."""
    endpoint = session.get(WebhookEndpoint, endpoint_id)
    if endpoint is None:
        raise NotFound(f"webhook endpoint {endpoint_id}")
    return endpoint


def get_all_endpoints(*, session: Session) -> list[WebhookEndpoint]:
    """Every endpoint: the WEBHOOK_URL one first, then the others oldest first."""
    return list(session.scalars(select(WebhookEndpoint).order_by(
        WebhookEndpoint.from_env.desc(), WebhookEndpoint.created_at, WebhookEndpoint.id)))


def update_endpoint(*, session: Session, endpoint_id: str, actor: str, name: str | None = None,
                    url: str | None = None, event_types: Iterable[str] | None = None,
                    enabled: bool | None = None) -> WebhookEndpoint:
    """Changes what is given; disabling cancels what is still pending, enabling clears the reason it was off."""
    endpoint = get_endpoint(session=session, endpoint_id=endpoint_id)
    event_types = None if event_types is None else list(event_types)
    problems = _checked(session, name=name, url=url, event_types=event_types, endpoint_id=endpoint.id)
    if endpoint.from_env and url is not None and url.strip() != endpoint.url:
        problems.append(FieldError("url", "comes from WEBHOOK_URL: change the variable instead"))
    if endpoint.from_env and enabled and endpoint.disabled_reason == ENV_UNSET:
        problems.append(FieldError("enabled", "WEBHOOK_URL is not set: set it to use this endpoint"))
    if problems:
        raise ValidationFailed(problems)
    if name is not None:
        endpoint.name = name.strip()
    if url is not None:
        endpoint.url = url.strip()
    if event_types is not None:
        endpoint.event_types = _ordered_types(event_types)
    if enabled is not None and enabled != endpoint.enabled:
        endpoint.enabled = enabled
        endpoint.disabled_reason = None if enabled else f"disabled by {actor}"
        if not enabled:
            _cancel_pending(session, endpoint.id, f"endpoint disabled by {actor}")
    session.flush()
    audit.record(session=session, actor=actor, action="webhook_endpoint.updated", target_type="webhook_endpoint",
                 target_id=endpoint.id, detail=_summary(endpoint))
    return endpoint


def rotate_secret(*, session: Session, endpoint_id: str, actor: str) -> str:
    """Gives the endpoint a new signing secret and returns it to be shown once; the old one stops at once."""
    endpoint = get_endpoint(session=session, endpoint_id=endpoint_id)
    if endpoint.from_env:
        raise ValidationFailed([FieldError("secret", "comes from WEBHOOK_SECRET: change the variable instead")])
    secret = new_secret()
    endpoint.secret = secret
    session.flush()
    audit.record(session=session, actor=actor, action="webhook_endpoint.secret_rotated",
                 target_type="webhook_endpoint", target_id=endpoint.id, detail={"name": endpoint.name})
    return secret


def delete_endpoint(*, session: Session, endpoint_id: str, actor: str) -> None:
    """Removes an endpoint added in the app, and with it (by cascade) its deliveries."""
    endpoint = get_endpoint(session=session, endpoint_id=endpoint_id)
    if endpoint.from_env:
        # It would come back on the next sync: the variable is where it lives.
        raise ValidationFailed([FieldError("endpoint", "comes from WEBHOOK_URL: unset the variable to remove it, "
                                                       "or disable it here")])
    detail = _summary(endpoint)
    session.delete(endpoint)
    session.flush()
    audit.record(session=session, actor=actor, action="webhook_endpoint.deleted", target_type="webhook_endpoint",
                 target_id=endpoint_id, detail=detail)


def sync_env_endpoint(*, session: Session, settings: Settings) -> bool:
    """Makes the WEBHOOK_URL endpoint's row match the environment; True when the row changed."""
    rows = list(session.scalars(select(WebhookEndpoint).where(WebhookEndpoint.from_env.is_(True))
                                .order_by(WebhookEndpoint.created_at, WebhookEndpoint.id)))
    for extra in rows[1:]:
        session.delete(extra)  # two processes that started at once may each have made one
    endpoint, changed = _sync_env_url(session, rows[0] if rows else None, (settings.webhook_url or "").strip())
    if endpoint is not None and endpoint.enabled:
        changed = _sync_env_secret_note(endpoint, settings) or changed
    if changed or len(rows) > 1:
        session.flush()
        if endpoint is not None:
            audit.record(session=session, actor="system", action="webhook_endpoint.synced",
                         target_type="webhook_endpoint", target_id=endpoint.id, detail=_summary(endpoint))
    return changed or len(rows) > 1


def _sync_env_url(session: Session, endpoint: WebhookEndpoint | None,
                  url: str) -> tuple[WebhookEndpoint | None, bool]:
    """Creates, moves, turns off or back on the WEBHOOK_URL endpoint; returns it and whether it changed."""
    if not url:
        if endpoint is None or endpoint.disabled_reason == ENV_UNSET:
            return endpoint, False
        # Its pending deliveries are cancelled by the next pass, as for any disabled endpoint.
        endpoint.enabled, endpoint.disabled_reason = False, ENV_UNSET
        return endpoint, True
    problem = url_problem(url)
    reason = f"WEBHOOK_URL {problem}" if problem else None
    if endpoint is None:
        endpoint = WebhookEndpoint(name=ENV_NAME, url=url, secret=None, event_types=[], from_env=True,
                                   enabled=reason is None, disabled_reason=reason)
        session.add(endpoint)
        return endpoint, True
    if endpoint.url != url or endpoint.disabled_reason == ENV_UNSET:
        # A new or restored variable is the operator's decision: it turns the endpoint on again.
        endpoint.url, endpoint.enabled, endpoint.disabled_reason = url, reason is None, reason
        return endpoint, True
    return endpoint, False


def _sync_env_secret_note(endpoint: WebhookEndpoint, settings: Settings) -> bool:
    """Writes why WEBHOOK_SECRET cannot sign onto the endpoint (or clears that note); True when it changed."""
    problem = env_secret_problem(settings)
    if problem and endpoint.last_error != problem:
        endpoint.last_error = problem
        return True
    if not problem and endpoint.last_error in (SECRET_UNSET, SECRET_INVALID):
        endpoint.last_error = None
        return True
    return False


def _disabled_note(disabled_reason: str | None) -> str:
    return f"endpoint disabled: {disabled_reason or 'by a person'}"


def _cancel_pending(session: Session, endpoint_id: str, reason: str, *, keep: str | None = None) -> int:
    """Cancels the endpoint's pending deliveries (but `keep`); returns how many."""
    stmt = (update(WebhookDelivery)
            .where(WebhookDelivery.endpoint_id == endpoint_id, WebhookDelivery.status == DeliveryStatus.PENDING,
                   WebhookDelivery.id != (keep or ""))
            .values(status=DeliveryStatus.CANCELLED, last_error=reason[:500])
            .execution_options(synchronize_session=False))
    return int(session.execute(stmt).rowcount or 0)


# -- what the admin sees ---------------------------------------------------------------------------------------------

def endpoint_states(*, session: Session, now: datetime | None = None) -> list[EndpointState]:
    """Every endpoint with its pending count and its deliveries and failures of the last 7 days, in one query."""
    since = (now or utcnow()) - STATS_WINDOW
    d = WebhookDelivery
    stmt = (select(WebhookEndpoint,
                   func.count(d.id).filter(d.status == DeliveryStatus.PENDING).label("pending"),
                   func.count(d.id).filter(d.status == DeliveryStatus.DELIVERED).label("delivered"),
                   func.count(d.id).filter(d.status == DeliveryStatus.FAILED).label("failed"))
            # Only the rows that can count are joined: pending ones of any age, the rest of the last 7 days.
            .outerjoin(d, and_(d.endpoint_id == WebhookEndpoint.id,
                               or_(d.status == DeliveryStatus.PENDING, d.updated_at >= since)))
            .group_by(WebhookEndpoint.id)
            .order_by(WebhookEndpoint.from_env.desc(), WebhookEndpoint.created_at, WebhookEndpoint.id))
    return [EndpointState(id=e.id, name=e.name, origin=origin(e.url), event_types=tuple(e.event_types),
                          enabled=e.enabled, from_env=e.from_env, disabled_reason=e.disabled_reason,
                          last_success_at=e.last_success_at, last_failure_at=e.last_failure_at,
                          last_error=e.last_error, pending=pending, delivered_7d=delivered, failed_7d=failed)
            for e, pending, delivered, failed in session.execute(stmt).all()]


def failed_deliveries(*, session: Session, limit: int = 20) -> list[FailedDelivery]:
    """The latest deliveries that gave up, newest first."""
    d = WebhookDelivery
    stmt = (select(d.id, WebhookEndpoint.name, WebhookEndpoint.enabled, d.event_id, WebhookEvent.type, d.attempts,
                   d.last_status_code, d.last_error, d.updated_at)
            .join(WebhookEndpoint, WebhookEndpoint.id == d.endpoint_id)
            .join(WebhookEvent, WebhookEvent.id == d.event_id)
            .where(d.status == DeliveryStatus.FAILED)
            .order_by(d.updated_at.desc(), d.id.desc()).limit(limit))
    return [FailedDelivery(id=r[0], endpoint_name=r[1], endpoint_enabled=r[2], event_id=r[3], event_type=r[4],
                           attempts=r[5], last_status_code=r[6], last_error=r[7], failed_at=r[8])
            for r in session.execute(stmt).all()]


def redeliver(*, session: Session, delivery_id: str, actor: str, now: datetime | None = None) -> WebhookDelivery:
    """Puts a failed delivery back in line with a fresh set of attempts (a person retrying it)."""
    delivery = session.get(WebhookDelivery, delivery_id)
    if delivery is None:
        raise NotFound(f"webhook delivery {delivery_id}")
    if delivery.status != DeliveryStatus.FAILED:
        raise ValidationFailed([FieldError("delivery", "only a failed delivery can be retried")])
    if not delivery.endpoint.enabled:
        raise ValidationFailed([FieldError("endpoint", "is disabled: enable it first")])
    delivery.status, delivery.attempts, delivery.next_attempt_at = DeliveryStatus.PENDING, 0, now or utcnow()
    delivery.claim_token = delivery.claimed_until = None
    session.flush()
    audit.record(session=session, actor=actor, action="webhook_delivery.retried", target_type="webhook_delivery",
                 target_id=delivery.id, detail={"event_id": delivery.event_id, "endpoint": delivery.endpoint.name})
    return delivery


# -- the delivery pass -----------------------------------------------------------------------------------------------

def run_pass(*, engine: Engine, settings: Settings, now: datetime | None = None, limit: int = 200,
             timeout_s: float = DEFAULT_TIMEOUT_S) -> WebhookSummary:
    """Delivers the due deliveries (at most `limit`), one at a time, and schedules retries of the failed ones."""
    clock: Callable[[], datetime] = (lambda: now) if now else utcnow
    started = clock()
    summary = WebhookSummary()
    sendable, summary.cancelled = run_with_retry(lambda: _prepare(engine, settings), what="preparing webhooks")
    if not sendable:
        return summary
    ready = and_(WebhookDelivery.status == DeliveryStatus.PENDING, WebhookDelivery.next_attempt_at <= started,
                 WebhookDelivery.endpoint_id.in_(sendable))
    lease = timedelta(seconds=CLAIM_CHUNK * (timeout_s + 5) + 60)
    handled = 0
    with httpx.Client(timeout=httpx.Timeout(timeout_s), follow_redirects=False,
                      headers={"user-agent": USER_AGENT}) as client:
        while handled < limit:
            token, ids = claim_batch(engine=engine, model=WebhookDelivery, ready=ready,
                                     order_by=[WebhookDelivery.next_attempt_at, WebhookDelivery.id],
                                     limit=min(CLAIM_CHUNK, limit - handled), now=clock(), lease=lease)
            if not ids:
                break
            for delivery_id in ids:
                _deliver(engine, client, settings, delivery_id, token, timeout_s, clock, summary)
            handled += len(ids)
    return summary


def _prepare(engine: Engine, settings: Settings) -> tuple[list[str], int]:
    """Syncs the WEBHOOK_URL endpoint and cancels what waits for disabled endpoints.

    Returns the endpoints that can be sent to and how many deliveries were cancelled.
    """
    cancelled = 0
    with session_scope(engine) as session:
        sync_env_endpoint(session=session, settings=settings)
        endpoints = session.execute(select(WebhookEndpoint.id, WebhookEndpoint.enabled, WebhookEndpoint.from_env,
                                           WebhookEndpoint.disabled_reason)).all()
        for endpoint in endpoints:
            if not endpoint.enabled:
                cancelled += _cancel_pending(session, endpoint.id, _disabled_note(endpoint.disabled_reason))
        # The WEBHOOK_URL endpoint's deliveries wait (unclaimed, so they hold nobody up) while its secret is unusable.
        env_ok = env_secret_problem(settings) is None
        return [e.id for e in endpoints if e.enabled and (env_ok or not e.from_env)], cancelled


def _deliver(engine: Engine, client: httpx.Client, settings: Settings, delivery_id: str, token: str,
             timeout_s: float, clock: Callable[[], datetime], summary: WebhookSummary) -> None:
    """One claimed delivery: load it, send it outside any transaction, record the attempt."""
    job = run_with_retry(lambda: _load(engine, settings, delivery_id, token), what="loading a delivery")
    if job == CANCELLED:
        summary.cancelled += 1
    if not isinstance(job, _Job):
        return
    attempt = _send(client, job, timeout_s)
    bucket, cancelled = run_with_retry(lambda: _record(engine, job, token, attempt, clock()),
                                       what="recording a delivery")
    summary.cancelled += cancelled
    if bucket == DELIVERED:
        summary.delivered += 1
    elif bucket == RETRY:
        summary.retrying += 1
    elif bucket == FAILED:
        summary.failed += 1


def _load(engine: Engine, settings: Settings, delivery_id: str, token: str) -> _Job | str | None:
    """What to send for a delivery this pass holds; CANCELLED or None (the claim released) when nothing is sent."""
    with session_scope(engine) as session:
        delivery = session.get(WebhookDelivery, delivery_id)
        if delivery is None or delivery.claim_token != token:
            return None  # deleted with its endpoint, or the claim ran out and another pass has it now
        endpoint = delivery.endpoint
        secret = endpoint.secret
        if endpoint.from_env:
            secret = None if env_secret_problem(settings) else settings.webhook_secret.get_secret_value().strip()
        if delivery.status == DeliveryStatus.PENDING and not endpoint.enabled:
            delivery.status = DeliveryStatus.CANCELLED
            delivery.last_error = _disabled_note(endpoint.disabled_reason)[:500]
            release(session=session, model=WebhookDelivery, row_id=delivery.id, token=token)
            return CANCELLED
        if delivery.status != DeliveryStatus.PENDING or not secret:
            release(session=session, model=WebhookDelivery, row_id=delivery.id, token=token)
            return None
        return _Job(delivery_id=delivery.id, attempts=delivery.attempts, event_id=delivery.event_id,
                    body=_body(delivery.event.payload), url=endpoint.url, secret=secret, endpoint_id=endpoint.id,
                    channel=endpoint.name[:20])


def _send(client: httpx.Client, job: _Job, timeout_s: float) -> _Attempt:
    """POSTs the event, signed now; never raises."""
    started = time.monotonic()
    # The wall clock, whatever `now` the pass runs at: receivers reject timestamps more than minutes off theirs.
    signed_at = datetime.fromtimestamp(int(time.time()), UTC)
    try:
        headers = {"content-type": "application/json", "webhook-id": job.event_id,
                   "webhook-timestamp": str(int(signed_at.timestamp())),
                   "webhook-signature": Webhook(job.secret).sign(job.event_id, signed_at, job.body)}
        with client.stream("POST", job.url, content=job.body.encode(), headers=headers) as response:
            excerpt = _excerpt(response, started + timeout_s)
            status = response.status_code
    except httpx.TimeoutException as exc:
        return _Attempt(None, f"no answer within {timeout_s:g} s ({type(exc).__name__})", _ms(started))
    except httpx.HTTPError as exc:
        return _Attempt(None, f"{type(exc).__name__}: {exc}"[:500], _ms(started))
    except Exception as exc:  # noqa: BLE001 - a bad secret or URL must cost one attempt, not the whole pass
        return _Attempt(None, f"not sent: {type(exc).__name__}: {exc}"[:500], _ms(started))
    return _Attempt(status, f"HTTP {status}" + (f": {excerpt}" if excerpt else ""), _ms(started))


def _excerpt(response: httpx.Response, deadline: float) -> str:
    """The start of the answer's body as one short line; a slow or endless body is cut off at the deadline."""
    chunks: list[bytes] = []
    size = 0
    try:
        for chunk in response.iter_bytes():
            chunks.append(chunk)
            size += len(chunk)
            if size >= EXCERPT_BYTES or time.monotonic() > deadline:
                break
    except httpx.HTTPError:
        pass  # the status already arrived; the body is only a hint for people
    text = b"".join(chunks)[:EXCERPT_BYTES].decode("utf-8", "replace")
    text = " ".join("".join(c if c.isprintable() else " " for c in text).split())
    return text[:EXCERPT_CHARS] + ("…" if len(text) > EXCERPT_CHARS else "")


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


def _record(engine: Engine, job: _Job, token: str, attempt: _Attempt, at: datetime) -> tuple[str, int]:
    """Writes the attempt onto the delivery (if this pass still holds it), the log and the endpoint.

    Returns what became of the delivery (delivered, retry, failed, or none when it was no longer ours) and how many
    other deliveries a 410 cancelled.
    """
    attempts = job.attempts + 1
    if attempt.ok:
        outcome, values = DELIVERED, {"status": DeliveryStatus.DELIVERED, "delivered_at": at}
    elif attempt.status_code == 410:
        outcome, values = GONE_OUTCOME, {"status": DeliveryStatus.FAILED}
    elif attempts >= MAX_ATTEMPTS:
        outcome, values = FAILED, {"status": DeliveryStatus.FAILED}
    else:
        outcome = RETRY if attempt.status_code is not None else ERROR
        values = {"next_attempt_at": at + RETRY_DELAYS[attempts - 1]}
    with session_scope(engine) as session:
        stmt = (update(WebhookDelivery)
                .where(WebhookDelivery.id == job.delivery_id, WebhookDelivery.claim_token == token,
                       WebhookDelivery.status == DeliveryStatus.PENDING)
                .values(attempts=attempts, last_status_code=attempt.status_code,
                        last_error=None if attempt.ok else attempt.detail[:500], claim_token=None, claimed_until=None,
                        **values)
                .execution_options(synchronize_session=False))
        if not session.execute(stmt).rowcount:
            # Cancelled meanwhile (its endpoint was disabled) or the claim ran out: the attempt is still logged.
            release(session=session, model=WebhookDelivery, row_id=job.delivery_id, token=token)
            bucket = "none"
        else:
            bucket = {GONE_OUTCOME: FAILED, ERROR: RETRY}.get(outcome, outcome)
        session.add(WorkflowLog(kind="webhook", subject_id=job.delivery_id, channel=job.channel, outcome=outcome,
                                detail=attempt.detail, duration_ms=attempt.duration_ms, created_at=at))
        cancelled = 0
        endpoint = session.get(WebhookEndpoint, job.endpoint_id)
        if endpoint is not None:
            if attempt.ok:
                endpoint.last_success_at = at
            else:
                endpoint.last_failure_at, endpoint.last_error = at, attempt.detail[:500]
            if outcome == GONE_OUTCOME and endpoint.enabled:
                endpoint.enabled, endpoint.disabled_reason = False, GONE
                cancelled = _cancel_pending(session, endpoint.id, GONE, keep=job.delivery_id)
    return bucket, cancelled
