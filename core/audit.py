"""The audit trail: sign-ins, deletions, admin changes. It never holds a lead's personal data."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.models import AuditEvent


def record(*, session: Session, actor: str, action: str, target_type: str | None = None,
           target_id: str | None = None, detail: dict[str, Any] | None = None) -> AuditEvent:
    """Adds one audit event."""
    event = AuditEvent(actor=actor, action=action, target_type=target_type, target_id=target_id, detail=detail or {})
    session.add(event)
    return event


def get_all(*, session: Session, action: str | None = None, limit: int = 200) -> list[AuditEvent]:
    """The latest audit events, newest first, optionally of one action."""
    stmt = select(AuditEvent).order_by(AuditEvent.created_at.desc(), AuditEvent.id.desc()).limit(limit)
    if action:
        stmt = stmt.where(AuditEvent.action == action)
    return list(session.scalars(stmt))
