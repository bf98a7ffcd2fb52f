"""Read models for the screens: a lead as plain data, a page of the queue, a lead's timeline."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core import activities, duplicates, permissions
from core import leads as lead_service
from core.errors import FieldError, NotFound, ValidationFailed
from core.leads import LeadFilters, Sort
from db.models import Lead, Role, utcnow

# The queue's orders, as core.leads pages them.
QUEUE_SORTS = lead_service.SORTS


@dataclass(frozen=True)
class QueuePage:
    """One page of the queue as table rows, the cursor of the next page and how many leads match in all."""

    rows: list[dict[str, Any]]
    next_cursor: str | None
    total: int


def queue_page(*, session: Session, filters: LeadFilters, sort: Sort = "score", cursor: str | None = None,
               limit: int = 50, now: datetime | None = None) -> QueuePage:
    """The queue's rows (score, priority, name, company, budget, status, assignee, age) for one page."""
    now = now or utcnow()
    page = lead_service.get_all(session=session, filters=filters, limit=limit, cursor=cursor, sort=sort)
    rows = [{"id": lead.id, "score": lead.score, "priority": lead.priority.value, "name": lead.full_name,
             "company": lead.company or "", "budget": lead.budget or "", "status": lead.status.value,
             "assignee": lead.assignee.username if lead.assignee else "", "source": lead.source,
             "age_days": (now - lead.created_at).days, "review": lead.needs_review}
            for lead in page.items]
    return QueuePage(rows=rows, next_cursor=page.next_cursor,
                     total=lead_service.count(session=session, filters=filters))


def sources(*, session: Session) -> list[str]:
    """Every source a lead has come from (website, walk-in, an import's or API client's own), A-Z."""
    return list(session.scalars(select(Lead.source).distinct().order_by(Lead.source)))


def visible_filters(filters: LeadFilters, *, user_id: str, role: str) -> LeadFilters:
    """The filters narrowed to what the user may see: staff see their own and unassigned leads."""
    if Role(role) == Role.STAFF:
        return LeadFilters(**{**filters.__dict__, "own_or_unassigned_for": user_id})
    return filters


def get_public(*, session: Session, lead_id: str) -> dict[str, Any]:
    """The lead as plain data (its API shape); raises NotFound."""
    return lead_service.to_public(lead_service.get_or_raise(session=session, lead_id=lead_id)).model_dump(mode="json")


def get_for_user(*, session: Session, lead_id: str, user_id: str, role: str) -> dict[str, Any]:
    """The lead if this user may see it (staff: their own or unassigned); raises NotFound otherwise."""
    lead = lead_service.get_or_raise(session=session, lead_id=lead_id)
    if Role(role) == Role.STAFF and lead.assignee_id not in (None, user_id):
        raise NotFound("this lead is assigned to someone else")
    # Beyond the API's shape: the imported columns kept with the lead.
    return {**lead_service.to_public(lead).model_dump(mode="json"), "custom_attributes": lead.custom_attributes or {}}


def timeline(*, session: Session, lead_id: str) -> list[dict[str, Any]]:
    """A lead's timeline, newest first, as plain rows."""
    return [{"when": entry.created_at, "what": entry.kind.value, "who": entry.actor, "detail": entry.body or ""}
            for entry in reversed(activities.get_all(session=session, lead_id=lead_id))]


def duplicates_for_user(*, session: Session, lead_id: str, user_id: str, role: str) -> list[dict[str, Any]]:
    """The lead's open possible duplicates as rows for the screens, most likely first.

    Staff see only the ones they may open (their own and unassigned leads).
    """
    rows = []
    for pair in duplicates.candidates_for(session=session, lead_id=lead_id):
        other = pair["other"]
        if pair["status"] != duplicates.OPEN:
            continue
        if Role(role) == Role.STAFF and other["assignee_id"] not in (None, user_id):
            continue
        rows.append({"id": pair["id"], "other_id": other["id"], "confidence": pair["confidence"],
                     "reasons": "; ".join(pair["reasons"]), "same_email": "same email" in pair["reasons"],
                     "name": other["full_name"], "company": other["company"] or "", "email": other["email"],
                     "status": other["status"], "created_at": other["created_at"]})
    return rows


def _pair_of(session: Session, lead_id: str, candidate_id: str, role: str) -> tuple[str, str]:
    """(candidate id, the other lead's id) of a pair this lead belongs to, if the role may resolve it."""
    if not permissions.may(role, "lead.merge"):
        raise ValidationFailed([FieldError("role", "your role may not merge leads or dismiss duplicates")])
    pair = duplicates.get_or_raise(session=session, candidate_id=candidate_id)
    if lead_id not in (pair.lead_id, pair.other_id):
        raise NotFound("this possible duplicate belongs to another lead")
    return pair.id, pair.other_id if pair.lead_id == lead_id else pair.lead_id


def merge_duplicate(*, session: Session, lead_id: str, candidate_id: str, role: str, actor: str) -> None:
    """Merges the other lead of a candidate pair into this one (managers and admins)."""
    _, other_id = _pair_of(session, lead_id, candidate_id, role)
    duplicates.merge(session=session, keep_id=lead_id, drop_id=other_id, actor=actor)


def dismiss_duplicate(*, session: Session, lead_id: str, candidate_id: str, role: str, actor: str) -> None:
    """Marks a candidate pair of this lead as not a duplicate (managers and admins)."""
    pair_id, _ = _pair_of(session, lead_id, candidate_id, role)
    duplicates.dismiss(session=session, candidate_id=pair_id, actor=actor)
