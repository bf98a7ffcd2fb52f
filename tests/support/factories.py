"""Factories for test data: users and leads saved through the real services."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from core import leads as lead_service
from core import users
from core.analysis.rules import RulesEngine
from core.intake import facts_of
from core.profile import BusinessProfile, ScoringConfig
from core.schemas import parse_lead
from db.models import Lead, LeadStatus, Priority, Role, User
from tests.conftest import lead_payload

PASSWORD = "correct horse battery"


def make_user(session: Session, username: str = "dana", role: Role = Role.STAFF, password: str = PASSWORD,
              **fields: Any) -> User:
    """A user created through core.users."""
    return users.create(session=session, username=username, password=password, role=role, **fields)


def make_lead(session: Session, *, score: int | None = None, priority: Priority | None = None,
              status: LeadStatus | None = None, assignee: User | None = None, created_at: datetime | None = None,
              review_reason: str | None = None, fallback_reason: str | None = None, **fields: Any) -> Lead:
    """A lead with its rules analysis, created through core.leads; score, status, age and flags as asked."""
    lead_in = parse_lead(lead_payload(**fields))
    result = RulesEngine().analyze(facts_of(lead_in), profile=BusinessProfile(), scoring=ScoringConfig())
    update: dict[str, Any] = {}
    if score is not None:
        update.update(score=score, priority=priority or ScoringConfig().priority_for(score))
    if review_reason:
        update.update(review_reason=review_reason, injection_suspected=True)
    if fallback_reason:
        update.update(fallback_reason=fallback_reason)
    result = result.model_copy(update=update)
    lead = lead_service.create(session=session, lead_in=lead_in, result=result, actor="test", default_source="api")
    if status is not None:
        lead.status = status
    if assignee is not None:
        lead.assignee_id, lead.assignee = assignee.id, assignee
    if created_at is not None:
        lead.created_at = created_at
    session.flush()
    return lead
