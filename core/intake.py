"""Taking a lead in: analyse it, then save lead and analysis in one transaction, replaying repeated requests.

Intake opens its own transactions instead of taking the caller's session: the AI call can take seconds and must
not hold a database transaction (or SQLite's write lock) open while it runs.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError

from core import ai_usage, app_settings
from core import leads as lead_service
from core.analysis import LeadFacts, analyze
from core.config import Settings
from core.errors import IdempotencyConflict
from core.schemas import LeadCreate
from db.models import IdempotencyRecord
from db.session import run_with_retry, session_scope


@dataclass(frozen=True)
class IntakeOutcome:
    """The lead as returned to the submitter, and whether this request created it."""

    lead: dict[str, Any]
    created: bool


def facts_of(lead_in: LeadCreate) -> LeadFacts:
    """The analysis engines' view of a submitted lead."""
    return LeadFacts.of(full_name=lead_in.full_name, email=lead_in.email, message=lead_in.message,
                        phone=lead_in.phone, company=lead_in.company, budget=lead_in.budget,
                        project_type=lead_in.project_type, source=lead_in.source)


def request_hash(lead_in: LeadCreate) -> str:
    """A fingerprint of the validated request, to tell a true repeat from a reused key."""
    return hashlib.sha256(json.dumps(lead_in.model_dump(), sort_keys=True).encode()).hexdigest()


def submit(*, engine: Engine, settings: Settings, lead_in: LeadCreate, actor: str, default_source: str,
           idempotency_key: str | None = None, idempotency_scope: str = "api") -> IntakeOutcome:
    """Analyses and saves one lead; a repeated idempotency key returns the first answer and creates nothing."""
    fingerprint = request_hash(lead_in)
    if idempotency_key:
        earlier = _replay(engine, idempotency_scope, idempotency_key, fingerprint)
        if earlier is not None:
            return earlier
    profile, scoring = app_settings.scoring_inputs(engine=engine)
    result = analyze(facts_of(lead_in), settings=settings, profile=profile, scoring=scoring)

    def save() -> dict[str, Any]:
        with session_scope(engine) as session:
            lead = lead_service.create(session=session, lead_in=lead_in, result=result, actor=actor,
                                       default_source=default_source)
            ai_usage.record(session=session, calls=result.ai_calls, lead_id=lead.id)
            body = lead_service.to_public(lead).model_dump(mode="json")
            if idempotency_key:
                session.add(IdempotencyRecord(scope=idempotency_scope, key=idempotency_key,
                                              request_hash=fingerprint, lead_id=lead.id, status_code=201,
                                              response=body))
                session.flush()
            return body

    try:
        return IntakeOutcome(lead=run_with_retry(save, what="saving a lead"), created=True)
    except IntegrityError:
        # A concurrent request with the same key won the race: its lead stands, ours was rolled back whole.
        if idempotency_key:
            earlier = _replay(engine, idempotency_scope, idempotency_key, fingerprint)
            if earlier is not None:
                return earlier
        raise


def _replay(engine: Engine, scope: str, key: str, fingerprint: str) -> IntakeOutcome | None:
    with session_scope(engine) as session:
        record = session.scalar(select(IdempotencyRecord).where(IdempotencyRecord.scope == scope,
                                                                IdempotencyRecord.key == key))
        if record is None:
            return None
        if record.request_hash != fingerprint:
            raise IdempotencyConflict("this Idempotency-Key was already used with a different lead")
        return IntakeOutcome(lead=record.response, created=False)
