"""A lead's timeline: notes, status changes, assignments, analyses."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.models import Activity, ActivityKind


def record(*, session: Session, lead_id: str, kind: ActivityKind, actor: str, body: str | None = None,
           data: dict[str, Any] | None = None) -> Activity:
    """Adds one entry to a lead's timeline."""
    entry = Activity(lead_id=lead_id, kind=kind, actor=actor, body=body, data=data or {})
    session.add(entry)
    return entry


def get_all(*, session: Session, lead_id: str, limit: int = 200) -> list[Activity]:
    """A lead's timeline, oldest first."""
    stmt = select(Activity).where(Activity.lead_id == lead_id).order_by(Activity.created_at, Activity.id).limit(limit)
    return list(session.scalars(stmt))
