"""The HTTP API (Starlette routes served beside the Streamlit UI): thin views over the core services."""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from api.form import form_routes
from api.ratelimit import RateLimiter
from api.unsubscribe import unsubscribe_routes
from core import api_keys, app_settings, insights, intake, webhooks
from core import leads as lead_service
from core.api_keys import Caller
from core.config import Settings, get_settings
from core.errors import FieldError, IdempotencyConflict, NotFound, ValidationFailed
from core.schemas import parse_lead, parse_update
from db.models import LeadStatus, Priority
from db.session import get_engine, run_with_retry, session_scope
from jobs import registry

log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024
MAX_IDEMPOTENCY_KEY = 200
MAX_INSIGHTS = 100
Handler = Callable[[Request], Awaitable[Response]]
# The public form learns only that its lead arrived: never our score or analysis of it, and a bot filling the
# honeypot gets the very same answer.
PUBLIC_RECEIPT = {"status": "received", "message": "Thank you: we will be in touch shortly."}


class HttpError(Exception):
    """An answer other than success, with the contract's error body."""

    def __init__(self, status: int, errors: list[FieldError], headers: dict[str, str] | None = None):
        self.status, self.errors, self.headers = status, errors, headers or {}


def _errors(status: int, errors: list[FieldError], headers: dict[str, str] | None = None) -> JSONResponse:
    body = {"errors": [{"field": e.field, "message": e.message} for e in errors]}
    return JSONResponse(body, status_code=status, headers=headers)


async def _json_body(request: Request) -> Any:
    """The request's JSON, refusing bodies over 64 KiB before reading them whole."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > MAX_BODY:
        raise HttpError(413, [FieldError("body", f"must be at most {MAX_BODY // 1024} KiB")])
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise HttpError(413, [FieldError("body", f"must be at most {MAX_BODY // 1024} KiB")])
        chunks.append(chunk)
    raw = b"".join(chunks)
    try:
        decoded = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise HttpError(422, [FieldError("body", "is not valid UTF-8")]) from None
    if not decoded.strip():
        raise HttpError(422, [FieldError("body", "is empty: send a JSON object")])
    try:
        return json.loads(decoded)
    except json.JSONDecodeError as exc:
        raise HttpError(422, [FieldError("body", f"is not valid JSON ({exc.msg} at position {exc.pos})")]) from None
    except RecursionError:
        # Valid JSON can still be too deep for the parser (`[[[[...`): the sender's fault, not a 500.
        raise HttpError(422, [FieldError("body", "is nested too deeply")]) from None
    except ValueError:
        # Python refuses to read integers of thousands of digits (a guard against slow conversions).
        raise HttpError(422, [FieldError("body", "holds a number too long to read")]) from None


def _idempotency_key(request: Request) -> str | None:
    key = request.headers.get("idempotency-key")
    if key is None:
        return None
    key = key.strip()
    if not key or len(key) > MAX_IDEMPOTENCY_KEY:
        raise HttpError(422, [FieldError("Idempotency-Key", f"must be 1-{MAX_IDEMPOTENCY_KEY} characters")])
    return key


def _parse_time(name: str, value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        # In UTC here, where a time that UTC cannot hold (year 1 east of Greenwich) is still the caller's error.
        return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    except (ValueError, OverflowError):
        raise ValidationFailed([FieldError(name, "must be an ISO 8601 date or date-time")]) from None


def _parse_int(name: str, value: str, low: int, high: int) -> int:
    # ASCII digits only: str.isdigit() also passes "²" and other digits that int() refuses.
    if not re.fullmatch(r"-?[0-9]{1,9}", value) or not low <= int(value) <= high:
        raise ValidationFailed([FieldError(name, f"must be a whole number from {low} to {high}")])
    return int(value)


def _parse_choice(name: str, value: str, choices: type[LeadStatus] | type[Priority]) -> Any:
    try:
        return choices(value.upper())
    except ValueError:
        raise ValidationFailed([FieldError(name, f"must be one of {', '.join(c.value for c in choices)}")]) from None


class Api:
    """The routes with what they share: the engine, the settings and the rate limiters."""

    def __init__(self, engine: Engine | None = None, settings: Settings | None = None):
        self.settings = settings or get_settings()
        self.engine = engine or get_engine(self.settings.database_url)
        self.public_limit = RateLimiter(per_minute=10, burst=5)
        self.key_limit = RateLimiter(per_minute=600, burst=60)
        self._sync_webhook_endpoint()

    def _sync_webhook_endpoint(self) -> None:
        """Makes WEBHOOK_URL an endpoint row before the first lead arrives (the web process may run alone)."""
        try:
            with session_scope(self.engine) as session:
                webhooks.sync_env_endpoint(session=session, settings=self.settings)
        except SQLAlchemyError as exc:
            # Not migrated yet, or the database is down: /api/health says so; the webhooks job syncs later.
            log.warning("could not sync the WEBHOOK_URL endpoint: %s", type(exc).__name__)

    def routes(self) -> list[Route]:
        """Every route of the API, as the contract names them."""
        return [
            Route("/api/health", self._wrap(self.health), methods=["GET"]),
            Route("/api/leads", self._wrap(self.create_lead, auth=True), methods=["POST"]),
            Route("/api/leads", self._wrap(self.list_leads, auth=True), methods=["GET"]),
            Route("/api/leads/public", self._wrap(self.create_public_lead), methods=["POST", "OPTIONS"]),
            Route("/api/leads/{lead_id}", self._wrap(self.get_lead, auth=True), methods=["GET"]),
            Route("/api/leads/{lead_id}", self._wrap(self.patch_lead, auth=True), methods=["PATCH"]),
            Route("/api/jobs/{name}", self._wrap(self.run_job, auth=True), methods=["POST"]),
            Route("/api/insights", self._wrap(self.list_insights, auth=True), methods=["GET"]),
            *form_routes(self.engine),
            *unsubscribe_routes(self.engine),
        ]

    def _wrap(self, handler: Callable[..., Awaitable[Response]], *, auth: bool = False) -> Handler:
        """Authentication, rate limits, and domain errors turned into the contract's error bodies."""
        async def endpoint(request: Request) -> Response:
            try:
                if auth:
                    caller = await run_in_threadpool(self._authenticate, request)
                    self._limit(self.key_limit, f"key:{caller.key_id}", "this API key")
                    return await handler(request, caller)
                return await handler(request)
            except HttpError as exc:
                return _errors(exc.status, exc.errors, exc.headers)
            except ValidationFailed as exc:
                return _errors(422, exc.errors)
            except IdempotencyConflict as exc:
                return _errors(422, [FieldError("Idempotency-Key", str(exc))])
            except NotFound as exc:
                return _errors(404, [FieldError("id", str(exc))])
        return endpoint

    def _authenticate(self, request: Request) -> Caller:
        header = request.headers.get("authorization", "")
        scheme, _, secret = header.partition(" ")
        challenge = {"WWW-Authenticate": "Bearer"}
        if scheme.lower() != "bearer" or not secret.strip():
            raise HttpError(401, [FieldError("Authorization", "send 'Authorization: Bearer <API key>'")], challenge)
        with session_scope(self.engine) as session:
            caller = api_keys.authenticate(session=session, settings=self.settings, secret=secret.strip())
        if caller is None:
            raise HttpError(401, [FieldError("Authorization", "this API key is unknown or revoked")], challenge)
        return caller

    @staticmethod
    def _limit(limiter: RateLimiter, key: str, who: str) -> None:
        wait = limiter.check(key)
        if wait:
            seconds = math.ceil(wait)
            limit = f"at most {limiter.burst} requests at once, then {round(limiter.rate * 60)} a minute"
            raise HttpError(429, [FieldError("request", f"too many requests from {who} ({limit}); "
                                                        f"try again in {seconds} s")],
                            {"Retry-After": str(seconds)})

    async def health(self, request: Request) -> Response:
        def probe() -> str | None:
            try:
                with self.engine.connect() as connection:
                    connection.execute(text("SELECT 1"))
            except Exception as exc:  # noqa: BLE001 - any failure means "unreachable" here
                return type(exc).__name__
            return None
        failure = await run_in_threadpool(probe)
        if failure:
            return JSONResponse({"status": "error", "database": f"unreachable ({failure})"}, status_code=503)
        return JSONResponse({"status": "ok", "database": "ok"})

    async def create_lead(self, request: Request, caller: Caller) -> Response:
        payload = await _json_body(request)
        lead_in = parse_lead(payload)
        outcome = await run_in_threadpool(
            lambda: intake.submit(engine=self.engine, settings=self.settings, lead_in=lead_in,
                                  actor=f"api:{caller.name}", default_source="api",
                                  idempotency_key=_idempotency_key(request), idempotency_scope=f"key:{caller.key_id}"))
        return JSONResponse(outcome.lead, status_code=201,
                            headers={"Idempotent-Replayed": "true"} if not outcome.created else None)

    async def create_public_lead(self, request: Request) -> Response:
        cors = await run_in_threadpool(self._cors_headers, request)
        if request.method == "OPTIONS":
            return Response(status_code=204, headers=cors)
        client = request.client.host if request.client else "unknown"
        try:
            self._limit(self.public_limit, f"ip:{client}", "this address")
            payload = await _json_body(request)
            if isinstance(payload, dict) and str(payload.get("website") or "").strip():
                # A bot filled the hidden field: answer like a success so it learns nothing, and keep nothing.
                log.info("public form: honeypot filled from %s; dropped", client)
                return JSONResponse(PUBLIC_RECEIPT, status_code=201, headers=cors)
            lead_in = parse_lead(payload)
            await run_in_threadpool(
                lambda: intake.submit(engine=self.engine, settings=self.settings, lead_in=lead_in,
                                      actor="public form", default_source="website",
                                      idempotency_key=_idempotency_key(request), idempotency_scope=f"ip:{client}"))
        except HttpError as exc:
            return _errors(exc.status, exc.errors, {**cors, **exc.headers})
        except ValidationFailed as exc:
            return _errors(422, exc.errors, cors)
        return JSONResponse(PUBLIC_RECEIPT, status_code=201, headers=cors)

    def _cors_headers(self, request: Request) -> dict[str, str]:
        """CORS headers for an allowed origin; a cross-site request from any other origin is refused."""
        origin = request.headers.get("origin")
        if not origin or origin.rstrip("/") in (self.settings.leadops_base_url.rstrip("/"),
                                                f"{request.url.scheme}://{request.url.netloc}"):
            return {}
        with session_scope(self.engine) as session:
            allowed = app_settings.get_allowed_origins(session=session)
        try:
            sent = app_settings.normalise_origin(origin)  # compared in the same form the settings keep
        except ValueError:
            sent = None
        if sent not in allowed:
            raise HttpError(403, [FieldError("Origin", f"{origin} may not post to this form")])
        return {"Access-Control-Allow-Origin": origin, "Vary": "Origin",
                "Access-Control-Allow-Methods": "POST, OPTIONS",
                "Access-Control-Allow-Headers": "Content-Type, Idempotency-Key", "Access-Control-Max-Age": "600"}

    async def list_leads(self, request: Request, caller: Caller) -> Response:
        q = request.query_params
        filters = lead_service.LeadFilters(
            status=_parse_choice("status", q["status"], LeadStatus) if q.get("status") else None,
            priority=_parse_choice("priority", q["priority"], Priority) if q.get("priority") else None,
            min_score=_parse_int("min_score", q["min_score"], 0, 100) if q.get("min_score") else None,
            created_after=_parse_time("created_after", q["created_after"]) if q.get("created_after") else None,
        )
        limit = _parse_int("limit", q["limit"], 1, lead_service.MAX_PAGE) if q.get("limit") else 50

        def read() -> dict[str, Any]:
            with session_scope(self.engine) as session:
                page = lead_service.get_all(session=session, filters=filters, limit=limit, cursor=q.get("cursor"))
                return {"items": [lead_service.to_public(lead).model_dump(mode="json") for lead in page.items],
                        "next_cursor": page.next_cursor}
        return JSONResponse(await run_in_threadpool(run_with_retry, read))

    async def get_lead(self, request: Request, caller: Caller) -> Response:
        lead_id = request.path_params["lead_id"]

        def read() -> dict[str, Any]:
            with session_scope(self.engine) as session:
                lead = lead_service.get_or_raise(session=session, lead_id=lead_id)
                return lead_service.to_public(lead).model_dump(mode="json")
        return JSONResponse(await run_in_threadpool(run_with_retry, read))

    async def patch_lead(self, request: Request, caller: Caller) -> Response:
        lead_id = request.path_params["lead_id"]
        changes = parse_update(await _json_body(request))

        def write() -> dict[str, Any]:
            with session_scope(self.engine) as session:
                lead = lead_service.get_or_raise(session=session, lead_id=lead_id)
                lead_service.update(session=session, lead=lead, changes=changes, actor=f"api:{caller.name}")
                return lead_service.to_public(lead).model_dump(mode="json")
        return JSONResponse(await run_in_threadpool(run_with_retry, write))

    async def list_insights(self, request: Request, caller: Caller) -> Response:
        q = request.query_params
        period = q.get("period") or None
        if period is not None and period.strip().lower() not in ("weekly", "monthly"):
            raise ValidationFailed([FieldError("period", "must be weekly or monthly")])
        limit = _parse_int("limit", q["limit"], 1, MAX_INSIGHTS) if q.get("limit") else 20

        def read() -> dict[str, Any]:
            with session_scope(self.engine) as session:
                reports = insights.get_all(session=session, kind=period.strip() if period else None, limit=limit)
                return {"items": [insights.to_public(report) for report in reports]}
        return JSONResponse(await run_in_threadpool(run_with_retry, read))

    async def run_job(self, request: Request, caller: Caller) -> Response:
        name = request.path_params["name"]
        if name not in registry.JOBS:
            raise NotFound(f"no job named {name!r}; jobs: {', '.join(sorted(registry.JOBS))}")
        summary = await run_in_threadpool(registry.run, name, engine=self.engine, settings=self.settings)
        return JSONResponse({"job": name, "summary": summary})
