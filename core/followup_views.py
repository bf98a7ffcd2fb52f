"""Read models for the Follow-ups screen: lists, figures, sequences and one follow-up, as plain data.

Every list and figure is computed by the database (filters, paging, `count(*) FILTER (WHERE ...)`); the screen gets
dicts, never ORM objects. The few actions here check the user's role and which leads they may see before calling
core.followups, so the page makes one call per button.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, time, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from jinja2 import TemplateError
from pydantic import ValidationError
from sqlalchemy import ColumnElement, Select, and_, func, or_, select
from sqlalchemy.orm import Session

from core import followups, permissions, sequences
from core.config import Settings
from core.errors import FieldError, NotFound, ValidationFailed
from db.models import Channel, FollowUp, FollowUpStatus, Lead, Priority, SequenceStep, User, WorkflowLog

View = Literal["due_today", "scheduled", "sent", "failed", "calls", "cancelled"]
VIEWS: tuple[View, ...] = ("due_today", "scheduled", "sent", "failed", "calls", "cancelled")
CHANNELS = [c.value for c in Channel]
PRIORITIES = [p.value for p in Priority]
MAX_PAGE = 200
DELAY_UNITS = {"minutes": 1, "hours": 60, "days": 60 * 24}


@dataclass(frozen=True)
class FollowUpFilters:
    """What the follow-up lists and figures can be narrowed by."""

    channel: Channel | None = None
    priority: Priority | None = None
    assignee_id: str | None = None
    unassigned: bool = False
    # A user id: only follow-ups of that user's leads and of unassigned ones (what staff may see).
    own_or_unassigned_for: str | None = None
    text: str | None = None  # part of the lead's name or company
    created_after: datetime | None = None
    created_before: datetime | None = None
    due_after: datetime | None = None
    due_before: datetime | None = None


def visible_filters(filters: FollowUpFilters, *, user_id: str, role: str) -> FollowUpFilters:
    """The filters narrowed to what the user may see: staff see follow-ups of their own and unassigned leads."""
    if permissions.may(role, "lead.view_all"):
        return filters
    return replace(filters, own_or_unassigned_for=user_id)


def _conditions(filters: FollowUpFilters) -> list[ColumnElement[bool]]:
    """The filters as conditions on follow_ups joined with leads."""
    conditions: list[ColumnElement[bool]] = []
    if filters.channel:
        conditions.append(FollowUp.channel == filters.channel)
    if filters.priority:
        conditions.append(Lead.priority == filters.priority)
    if filters.assignee_id:
        conditions.append(Lead.assignee_id == filters.assignee_id)
    elif filters.unassigned:
        conditions.append(Lead.assignee_id.is_(None))
    if filters.own_or_unassigned_for:
        conditions.append(or_(Lead.assignee_id == filters.own_or_unassigned_for, Lead.assignee_id.is_(None)))
    if filters.text and filters.text.strip():
        escaped = filters.text.strip().lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        pattern = f"%{escaped}%"
        conditions.append(or_(func.lower(Lead.full_name).like(pattern, escape="\\"),
                              func.lower(Lead.company).like(pattern, escape="\\")))
    for column, after, before in ((FollowUp.created_at, filters.created_after, filters.created_before),
                                  (FollowUp.due_at, filters.due_after, filters.due_before)):
        if after:
            conditions.append(column >= after)
        if before:
            conditions.append(column < before)
    return conditions


def end_of_today(now: datetime, timezone: str) -> datetime:
    """Midnight after `now` in the business's time zone, in UTC."""
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationFailed([FieldError("timezone", f"unknown time zone {timezone!r}")]) from None
    tomorrow = now.astimezone(zone).date() + timedelta(days=1)
    return datetime.combine(tomorrow, time(), tzinfo=zone).astimezone(UTC)


def _view(view: View, now: datetime, timezone: str) -> tuple[ColumnElement[bool], list[Any]]:
    """The condition and the order of one list."""
    if view == "due_today":  # overdue ones included: they are still to go
        return (and_(FollowUp.status == FollowUpStatus.SCHEDULED, FollowUp.due_at < end_of_today(now, timezone)),
                [FollowUp.due_at, FollowUp.id])
    if view == "scheduled":
        return FollowUp.status == FollowUpStatus.SCHEDULED, [FollowUp.due_at, FollowUp.id]
    if view == "sent":
        return FollowUp.status == FollowUpStatus.SENT, [FollowUp.sent_at.desc(), FollowUp.id.desc()]
    if view == "failed":
        return FollowUp.status == FollowUpStatus.FAILED, [FollowUp.updated_at.desc(), FollowUp.id.desc()]
    if view == "calls":
        return FollowUp.status == FollowUpStatus.TASK, [FollowUp.due_at, FollowUp.id]
    if view == "cancelled":
        return FollowUp.status == FollowUpStatus.CANCELLED, [FollowUp.updated_at.desc(), FollowUp.id.desc()]
    raise ValidationFailed([FieldError("view", f"unknown list {view!r}; one of {', '.join(VIEWS)}")])


def _listed(filters: FollowUpFilters, condition: ColumnElement[bool]) -> Select[Any]:
    return (select(FollowUp.id, FollowUp.lead_id, Lead.full_name, Lead.company, Lead.priority, Lead.phone,
                   FollowUp.channel, FollowUp.number, FollowUp.status, FollowUp.due_at, FollowUp.sent_at,
                   FollowUp.subject, FollowUp.attempts, FollowUp.last_error, FollowUp.cancel_reason,
                   FollowUp.copy_source, User.username)
            .join(Lead, Lead.id == FollowUp.lead_id).outerjoin(User, User.id == Lead.assignee_id)
            .where(condition, *_conditions(filters)))


def follow_up_list(*, session: Session, view: View, filters: FollowUpFilters, now: datetime, timezone: str,
                   limit: int = 100, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
    """One page of a list (due today, scheduled, sent, failed, calls to make, cancelled) and how many match."""
    condition, order = _view(view, now, timezone)
    limit, offset = max(1, min(limit, MAX_PAGE)), max(0, offset)
    rows = session.execute(_listed(filters, condition).order_by(*order).limit(limit).offset(offset)).all()
    total = session.scalar(select(func.count()).select_from(FollowUp).join(Lead, Lead.id == FollowUp.lead_id)
                           .where(condition, *_conditions(filters))) or 0
    return [{"id": r.id, "lead_id": r.lead_id, "lead": r.full_name, "company": r.company or "",
             "priority": r.priority.value, "channel": r.channel.value, "number": r.number, "status": r.status.value,
             "due_at": r.due_at, "sent_at": r.sent_at, "subject": r.subject or "", "attempts": r.attempts,
             "last_error": r.last_error or "", "cancel_reason": r.cancel_reason or "",
             "assignee": r.username or "", "phone": r.phone or "", "copy_source": r.copy_source or ""}
            for r in rows], total


def delivery_figures(*, session: Session, since: datetime, filters: FollowUpFilters) -> list[dict[str, Any]]:
    """Per channel: sent, failed, bounced, pending, call tasks open and done, delivery rate, attempts by outcome.

    Outcomes count from `since` (sent and done by when they happened, failed and cancelled by their last change);
    pending and open call tasks are what waits now.
    """
    def count(condition: ColumnElement[bool]) -> Any:
        return func.count().filter(condition)

    status, changed = FollowUp.status, FollowUp.updated_at
    states = session.execute(
        select(FollowUp.channel,
               count(and_(status == FollowUpStatus.SENT, FollowUp.sent_at >= since)).label("sent"),
               count(and_(status == FollowUpStatus.FAILED, changed >= since)).label("failed"),
               count(status == FollowUpStatus.SCHEDULED).label("pending"),
               count(status == FollowUpStatus.TASK).label("calls_open"),
               count(and_(status == FollowUpStatus.DONE, FollowUp.sent_at >= since)).label("calls_done"),
               count(and_(status == FollowUpStatus.CANCELLED, changed >= since)).label("cancelled"))
        .join(Lead, Lead.id == FollowUp.lead_id).where(*_conditions(filters)).group_by(FollowUp.channel)).all()
    outcomes = session.execute(
        select(FollowUp.channel, WorkflowLog.outcome, func.count())
        .join(FollowUp, FollowUp.id == WorkflowLog.subject_id).join(Lead, Lead.id == FollowUp.lead_id)
        .where(WorkflowLog.kind == "followup", WorkflowLog.created_at >= since, *_conditions(filters))
        .group_by(FollowUp.channel, WorkflowLog.outcome)).all()
    by_channel = {row.channel: row for row in states}
    attempts: dict[Channel, dict[str, int]] = {channel: {} for channel in Channel}
    for channel, outcome, n in outcomes:
        attempts[channel][outcome] = n
    figures = []
    for channel in Channel:
        if filters.channel and channel != filters.channel:
            continue
        row = by_channel.get(channel)
        sent, failed = (row.sent, row.failed) if row else (0, 0)
        figures.append({
            "channel": channel.value, "sent": sent, "failed": failed, "bounced": attempts[channel].get("bounced", 0),
            "pending": row.pending if row else 0, "calls_open": row.calls_open if row else 0,
            "calls_done": row.calls_done if row else 0, "cancelled": row.cancelled if row else 0,
            "delivery_rate": sent / (sent + failed) if sent + failed else None,
            "attempts": attempts[channel],
        })
    return figures


def describe_delay(minutes: int) -> str:
    """A step's delay as people say it: 'at once', '45 min', '2 h', '3 days'."""
    if minutes == 0:
        return "at once"
    if minutes % DELAY_UNITS["days"] == 0:
        days = minutes // DELAY_UNITS["days"]
        return f"{days} day" if days == 1 else f"{days} days"
    if minutes % 60 == 0:
        return f"{minutes // 60} h"
    return f"{minutes} min"


def _delay_parts(minutes: int) -> tuple[int, str]:
    for unit in ("days", "hours"):
        if minutes and minutes % DELAY_UNITS[unit] == 0:
            return minutes // DELAY_UNITS[unit], unit
    return minutes, "minutes"


def sequence_overview(*, session: Session) -> dict[str, list[dict[str, Any]]]:
    """Each priority's live steps in order (HIGH, MEDIUM, LOW), as plain rows."""
    overview: dict[str, list[dict[str, Any]]] = {p.value: [] for p in Priority}
    steps = session.scalars(select(SequenceStep).where(SequenceStep.archived_at.is_(None))
                            .order_by(SequenceStep.priority, SequenceStep.position, SequenceStep.created_at))
    for step in steps:
        listed = overview[step.priority.value]
        amount, unit = _delay_parts(step.delay_minutes)
        listed.append({"id": step.id, "position": len(listed) + 1, "after": describe_delay(step.delay_minutes),
                       "delay_minutes": step.delay_minutes, "delay_amount": amount, "delay_unit": unit,
                       "channel": step.channel.value, "copy_mode": step.copy_mode.value,
                       "subject_template": step.subject_template or "", "body_template": step.body_template,
                       "enabled": step.enabled})
    return overview


def parse_step(*, delay_amount: int, delay_unit: str, channel: str, copy_mode: str, subject_template: str | None,
               body_template: str, enabled: bool = True) -> sequences.StepIn:
    """A step as entered on the form; raises ValidationFailed naming the field."""
    if delay_unit not in DELAY_UNITS:
        raise ValidationFailed([FieldError("delay_minutes", f"unit must be one of {', '.join(DELAY_UNITS)}")])
    try:
        return sequences.StepIn(delay_minutes=int(delay_amount) * DELAY_UNITS[delay_unit], channel=channel,
                                copy_mode=copy_mode, subject_template=(subject_template or "").strip() or None,
                                body_template=body_template or "", enabled=enabled)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            field = str(error["loc"][0]) if error["loc"] else "step"
            message = error["msg"]
            if field == "delay_minutes":
                message = f"must be between 0 and {sequences.MAX_DELAY_MINUTES // DELAY_UNITS['days']} days"
            problems.append(FieldError(field, message))
        raise ValidationFailed(problems) from None


def for_lead(*, session: Session, lead_id: str) -> list[dict[str, Any]]:
    """A lead's follow-ups in sequence order, as rows for its page."""
    return [{"id": f.id, "number": f.number, "channel": f.channel.value, "status": f.status.value,
             "due_at": f.due_at, "sent_at": f.sent_at, "attempts": f.attempts,
             "problem": f.last_error or f.cancel_reason or ""}
            for f in followups.for_lead(session=session, lead_id=lead_id)]


def _visible(session: Session, follow_up_id: str, user_id: str, role: str) -> FollowUp:
    """The follow-up if this user may see its lead (staff: their own and unassigned leads); raises NotFound."""
    follow_up = followups.get_or_raise(session=session, follow_up_id=follow_up_id)
    if not permissions.may(role, "lead.view_all") and follow_up.lead.assignee_id not in (None, user_id):
        raise NotFound("this follow-up belongs to a lead assigned to someone else")
    return follow_up


def detail(*, session: Session, settings: Settings, follow_up_id: str, user_id: str, role: str,
           use_ai: bool = False) -> dict[str, Any]:
    """One follow-up for its detail panel: the message as it will go (or went), and every attempt."""
    follow_up = _visible(session, follow_up_id, user_id, role)
    lead, step = follow_up.lead, follow_up.step
    try:
        copy = followups.preview(session=session, settings=settings, follow_up_id=follow_up_id, use_ai=use_ai)
        subject, body, source, note = copy.subject, copy.body, copy.source, copy.note
    except TemplateError as exc:  # a template saved before today's checks; the pass would fail the same way
        subject, body, source, note = None, "", "template", f"the step's template cannot be filled in: {exc}"
    attempts = [{"when": a.created_at, "outcome": a.outcome, "detail": a.detail or "", "took_ms": a.duration_ms}
                for a in followups.attempts_of(session=session, follow_up_id=follow_up_id)]
    return {
        "id": follow_up.id, "lead_id": lead.id, "lead": lead.full_name, "company": lead.company or "",
        "email": lead.email, "phone": lead.phone or "", "assignee": lead.assignee.username if lead.assignee else "",
        "priority": lead.priority.value, "number": follow_up.number, "channel": follow_up.channel.value,
        "status": follow_up.status.value, "due_at": follow_up.due_at, "sent_at": follow_up.sent_at,
        "recipient": follow_up.recipient or "", "attempts": follow_up.attempts,
        "last_error": follow_up.last_error or "", "cancel_reason": follow_up.cancel_reason or "",
        "completed_by": follow_up.completed_by or "", "copy_mode": step.copy_mode.value,
        "edited": follow_up.copy_source == "edited", "subject": subject, "body": body, "source": source,
        "note": note, "attempts_log": attempts, "actions": _allowed_actions(follow_up.status, role),
    }


Action = Literal["retry", "cancel", "complete_call", "edit"]
# The permission (core.permissions.ACTIONS) each action needs.
ACTION_NEEDS: dict[str, str] = {"retry": "followups.work", "cancel": "followups.work",
                                "complete_call": "followups.work", "edit": "followups.manage"}


def _allowed_actions(status: FollowUpStatus, role: str) -> list[str]:
    """What this role can do with a follow-up in this state."""
    fits = {"retry": status == FollowUpStatus.FAILED, "cancel": status in followups.PENDING,
            "complete_call": status == FollowUpStatus.TASK, "edit": status == FollowUpStatus.SCHEDULED}
    return [action for action, ok in fits.items() if ok and permissions.may(role, ACTION_NEEDS[action])]


def act(*, session: Session, follow_up_id: str, user_id: str, role: str, actor: str, action: Action,
        subject: str | None = None, body: str | None = None, note: str | None = None) -> str:
    """One person's action on a follow-up they may see and do; returns its new status.

    Raises ValidationFailed (field "role" when the role may not, otherwise the service's fields) or NotFound.
    """
    if action not in ACTION_NEEDS:
        raise ValidationFailed([FieldError("action", f"unknown action {action!r}")])
    if not permissions.may(role, ACTION_NEEDS[action]):
        raise ValidationFailed([FieldError("role", f"your role may not {action.replace('_', ' ')} follow-ups")])
    _visible(session, follow_up_id, user_id, role)
    if action == "retry":
        follow_up = followups.retry(session=session, follow_up_id=follow_up_id, actor=actor)
    elif action == "cancel":
        follow_up = followups.cancel(session=session, follow_up_id=follow_up_id, actor=actor)
    elif action == "complete_call":
        follow_up = followups.complete_call(session=session, follow_up_id=follow_up_id, actor=actor, note=note)
    else:
        follow_up = followups.edit(session=session, follow_up_id=follow_up_id, subject=subject, body=body or "",
                                   actor=actor)
    return follow_up.status.value


def channel_notes(settings: Settings) -> dict[str, str]:
    """Each channel that cannot send with these settings, and why."""
    return {c.value: problem for c in Channel if (problem := followups.channel_problem(settings, c)) is not None}
