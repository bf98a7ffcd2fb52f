"""Leads: create with their analysis, read, list with filters and cursors, update, delete, the home summary."""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import ColumnElement, Select, and_, func, or_, select, tuple_
from sqlalchemy import delete as sql_delete
from sqlalchemy import update as sql_update
from sqlalchemy.orm import Session

from core import activities, audit, day_stats, duplicates, followups, learned_score, webhooks
from core.analysis.base import AnalysisResult
from core.budget import parse_budget
from core.errors import FieldError, NotFound, ValidationFailed
from core.profile import BusinessProfile
from core.schemas import AnalysisPublic, FactorPublic, LeadCreate, LeadPublic, LeadUpdate
from db.models import (
    ActivityKind,
    ImportRow,
    Lead,
    LeadAnalysis,
    LeadStatus,
    Priority,
    User,
    new_id,
    utcnow,
)

MAX_PAGE = 200
_WHOLE_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
Sort = Literal["newest", "score", "oldest"]
SORTS: tuple[Sort, ...] = ("score", "newest", "oldest")


@dataclass(frozen=True)
class LeadFilters:
    """What the lead list can be narrowed by."""

    status: LeadStatus | None = None
    priority: Priority | None = None
    min_score: int | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    assignee_id: str | None = None
    unassigned: bool = False
    source: str | None = None
    text: str | None = None
    needs_review: bool | None = None
    # A user id: only that user's leads and unassigned ones (what staff may see).
    own_or_unassigned_for: str | None = None


@dataclass(frozen=True)
class LeadPage:
    """One page of leads and the cursor of the next one (None on the last page)."""

    items: list[Lead]
    next_cursor: str | None


def budget_columns(budget: str | None) -> dict[str, Any]:
    """The lead columns read from a budget's text: bounds, currency, period and the amount in USD (all None when
    the text holds no amount)."""
    parsed = parse_budget(budget)
    usd = parsed.usd() if parsed else None
    return dict(budget_min=parsed.amount_min if parsed else None, budget_max=parsed.amount_max if parsed else None,
                budget_currency=parsed.currency if parsed else None, budget_period=parsed.period if parsed else None,
                budget_usd=usd.quantize(Decimal("0.01")) if usd is not None else None)


def analysis_values(result: AnalysisResult) -> dict[str, Any]:
    """The LeadAnalysis columns of an engine's result."""
    return dict(score=result.score, priority=result.priority, budget_category=result.budget_category,
                summary=result.summary, recommendation=result.recommendation, engine=result.engine,
                model=result.model, factors=[f.model_dump() for f in result.factors],
                injection_suspected=result.injection_suspected, review_reason=result.review_reason,
                fallback_reason=result.fallback_reason)


def create(*, session: Session, lead_in: LeadCreate, result: AnalysisResult, actor: str, default_source: str,
           profile: BusinessProfile | None = None) -> Lead:
    """Adds a lead together with its analysis and a 'created' timeline entry."""
    lead = Lead(
        id=new_id(), full_name=lead_in.full_name, email=lead_in.email, phone=lead_in.phone, company=lead_in.company,
        budget=lead_in.budget, project_type=lead_in.project_type, message=lead_in.message,
        source=lead_in.source or default_source, status=LeadStatus.NEW, **budget_columns(lead_in.budget),
        score=result.score, priority=result.priority, needs_review=result.needs_review,
    )
    # The id is made here, so the lead, its analysis and its timeline go to the database in one flush.
    session.add(lead)
    activities.record(session=session, lead_id=lead.id, kind=ActivityKind.CREATED, actor=actor,
                      body=f"Lead received from {lead.source}")
    apply_analysis(session=session, lead=lead, result=result, actor=actor, new_lead=True)
    # Qualified: the sequence for its priority is planned in the same transaction as the lead itself.
    followups.plan(session=session, lead=lead)
    # Possible duplicates are stored with the lead, for the person who opens it to merge or dismiss.
    duplicates.detect(session=session, lead=lead)
    data = to_public(lead).model_dump(mode="json")
    webhooks.emit(session=session, type="lead.created", data=data)
    webhooks.emit(session=session, type="lead.analyzed", data=data)
    return lead


def apply_analysis(*, session: Session, lead: Lead, result: AnalysisResult, actor: str,
                   new_lead: bool = False) -> LeadAnalysis:
    """Stores `result` as the lead's analysis (replacing any earlier one) and queues a re-analysis if it fell back.

    For an existing lead it also re-plans the follow-ups when the priority changed and emits `lead.analyzed`.
    """
    old_priority = None if new_lead else lead.priority
    values = analysis_values(result)
    analysis = lead.analysis
    if analysis is None:
        analysis = LeadAnalysis(lead_id=lead.id, **values)
        session.add(analysis)
        lead.analysis = analysis
    else:
        for name, value in values.items():
            setattr(analysis, name, value)
        analysis.updated_at = utcnow()
    lead.score, lead.priority, lead.needs_review = result.score, result.priority, result.needs_review
    # The learned model's score goes beside the engine's, and into the lead's score once the model has earned that.
    blended = learned_score.attach(session=session, lead=lead, analysis=analysis)
    if result.fallback_reason:
        lead.reanalyze_requested_at = lead.reanalyze_requested_at or utcnow()
    else:
        lead.reanalyze_requested_at = None
        lead.reanalyze_attempts = 0
    activities.record(
        session=session, lead_id=lead.id, kind=ActivityKind.ANALYZED, actor=actor,
        body=f"Scored {result.score} ({result.priority.value}) by the {result.engine} engine"
             + (f"; {result.fallback_reason}" if result.fallback_reason else "")
             + (f"; flagged for review: {result.review_reason}" if result.review_reason else "")
             + (f"; {blended}" if blended else ""),
        data={"score": result.score, "priority": result.priority.value, "engine": result.engine})
    session.flush()
    if not new_lead:
        if old_priority != lead.priority:
            followups.replan(session=session, lead=lead)
        webhooks.emit(session=session, type="lead.analyzed", data=to_public(lead).model_dump(mode="json"))
    return analysis


def get(*, session: Session, lead_id: str) -> Lead | None:
    """The lead with this id, or None."""
    return session.get(Lead, lead_id)


def get_or_raise(*, session: Session, lead_id: str) -> Lead:
    """The lead with this id; raises NotFound."""
    lead = get(session=session, lead_id=lead_id)
    if lead is None:
        raise NotFound(f"no lead with id {lead_id}")
    return lead


def _filtered(filters: LeadFilters) -> Select[tuple[Lead]]:
    stmt = select(Lead)
    if filters.status:
        stmt = stmt.where(Lead.status == filters.status)
    if filters.priority:
        stmt = stmt.where(Lead.priority == filters.priority)
    if filters.min_score is not None:
        stmt = stmt.where(Lead.score >= filters.min_score)
    if filters.created_after:
        stmt = stmt.where(Lead.created_at >= filters.created_after)
    if filters.created_before:
        stmt = stmt.where(Lead.created_at < filters.created_before)
    if filters.assignee_id:
        stmt = stmt.where(Lead.assignee_id == filters.assignee_id)
    elif filters.unassigned:
        stmt = stmt.where(Lead.assignee_id.is_(None))
    if filters.source:
        stmt = stmt.where(Lead.source == filters.source)
    if filters.needs_review is not None:
        stmt = stmt.where(Lead.needs_review.is_(filters.needs_review))
    if filters.own_or_unassigned_for:
        stmt = stmt.where(_own_or_unassigned(filters.own_or_unassigned_for))
    if filters.text and _WHOLE_EMAIL.match(filters.text.strip()):
        # A whole address: the email index answers at once, where a substring match would read every lead.
        stmt = stmt.where(Lead.email == filters.text.strip().lower())
    elif filters.text:
        pattern = "%" + filters.text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        stmt = stmt.where(or_(*(func.lower(col).like(pattern, escape="\\")
                                for col in (Lead.full_name, Lead.email, Lead.company))))
    return stmt


def _own_or_unassigned(user_id: str) -> ColumnElement[bool]:
    return or_(Lead.assignee_id == user_id, Lead.assignee_id.is_(None))


def get_all(*, session: Session, filters: LeadFilters, limit: int = 50, cursor: str | None = None,
            sort: Sort = "newest") -> LeadPage:
    """A page of leads matching `filters`, newest (highest score, oldest) first, continuing after `cursor`."""
    if sort not in SORTS:
        raise ValidationFailed([FieldError("sort", f"must be one of {', '.join(SORTS)}")])
    limit = max(1, min(limit, MAX_PAGE))
    stmt = _filtered(filters)
    after = decode_cursor(cursor, sort) if cursor else None
    # Row-value comparisons follow the order exactly, so the (filter, score, created_at, id) indexes serve them.
    if sort == "score":
        if after:
            stmt = stmt.where(tuple_(Lead.score, Lead.created_at, Lead.id) < tuple_(*after))
        stmt = stmt.order_by(Lead.score.desc(), Lead.created_at.desc(), Lead.id.desc())
    elif sort == "oldest":
        if after:
            stmt = stmt.where(tuple_(Lead.created_at, Lead.id) > tuple_(*after))
        stmt = stmt.order_by(Lead.created_at, Lead.id)
    else:
        if after:
            stmt = stmt.where(tuple_(Lead.created_at, Lead.id) < tuple_(*after))
        stmt = stmt.order_by(Lead.created_at.desc(), Lead.id.desc())
    rows = list(session.scalars(stmt.limit(limit + 1)))
    items = rows[:limit]
    next_cursor = encode_cursor(items[-1], sort) if len(rows) > limit else None
    return LeadPage(items=items, next_cursor=next_cursor)


def count(*, session: Session, filters: LeadFilters) -> int:
    """How many leads match `filters`."""
    # maintain_column_froms keeps "FROM leads" when no filter names the table (else it counts one row of nothing).
    return session.scalar(_filtered(filters).with_only_columns(func.count(), maintain_column_froms=True)
                          .order_by(None)) or 0


def encode_cursor(lead: Lead, sort: Sort) -> str:
    """An opaque cursor pointing just after `lead` in the given order."""
    keys: list[Any] = [lead.created_at.isoformat(), lead.id]
    if sort == "score":
        keys.insert(0, lead.score)
    return base64.urlsafe_b64encode(json.dumps(keys).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, sort: Sort) -> tuple[Any, ...]:
    """The sort keys inside a cursor; raises ValidationFailed for one that was not made here."""
    try:
        keys = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if sort == "score":
            return int(keys[0]), _aware(keys[1]), str(keys[2])
        return _aware(keys[0]), str(keys[1])
    except (ValueError, TypeError, IndexError, KeyError, OverflowError, json.JSONDecodeError):
        raise ValidationFailed([FieldError("cursor", "is not a cursor from a previous page")]) from None


def _aware(value: str) -> datetime:
    # encode_cursor always writes a UTC time; anything else would fail later, in the query, as a server error.
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise ValueError("cursor time has no zone")
    return parsed.astimezone(UTC)


def update(*, session: Session, lead: Lead, changes: LeadUpdate, actor: str) -> Lead:
    """Applies a status change, an (un)assignment and/or a note, each recorded on the timeline."""
    status_change = None
    if changes.status is not None and changes.status != lead.status:
        status_change = (lead.status, changes.status)
        activities.record(session=session, lead_id=lead.id, kind=ActivityKind.STATUS_CHANGED, actor=actor,
                          body=f"Status {lead.status.value} → {changes.status.value}",
                          data={"from": lead.status.value, "to": changes.status.value})
        lead.status = changes.status
        now = utcnow()
        if lead.first_contacted_at is None and changes.status != LeadStatus.NEW:
            lead.first_contacted_at = now
        lead.closed_at = now if changes.status in (LeadStatus.WON, LeadStatus.LOST) else None
        stopped = followups.on_status_change(session=session, lead=lead, new_status=changes.status)
        if stopped:
            activities.record(session=session, lead_id=lead.id, kind=ActivityKind.FOLLOW_UP, actor=actor,
                              body=f"{stopped} pending follow-up(s) stopped: the lead moved to {changes.status.value}")
    if "assignee" in changes.model_fields_set:
        _assign(session=session, lead=lead, username=changes.assignee, actor=actor)
    if changes.note:
        activities.record(session=session, lead_id=lead.id, kind=ActivityKind.NOTE, actor=actor, body=changes.note)
    lead.updated_at = utcnow()
    session.flush()
    if status_change:
        webhooks.emit(session=session, type="lead.status_changed",
                      data={"lead": to_public(lead).model_dump(mode="json"), "from": status_change[0].value,
                            "to": status_change[1].value, "by": actor})
    return lead


def _assign(*, session: Session, lead: Lead, username: str | None, actor: str) -> None:
    user = None
    if username:
        user = session.scalar(select(User).where(User.username == username.strip().lower()))
        if user is None or user.disabled:
            raise ValidationFailed([FieldError("assignee", f"no active user named {username!r}")])
    if (user.id if user else None) == lead.assignee_id:
        return
    lead.assignee_id = user.id if user else None
    lead.assignee = user
    activities.record(session=session, lead_id=lead.id, kind=ActivityKind.ASSIGNED, actor=actor,
                      body=f"Assigned to {user.username}" if user else "Unassigned",
                      data={"assignee": user.username if user else None})


def to_public(lead: Lead) -> LeadPublic:
    """The lead in the API's shape."""
    a = lead.analysis
    analysis = None if a is None else AnalysisPublic(
        score=a.score, priority=a.priority.value, budget_category=a.budget_category, summary=a.summary,
        recommendation=a.recommendation, engine=a.engine, model=a.model,
        factors=[FactorPublic.model_validate(f) for f in a.factors], needs_review=lead.needs_review,
        review_reason=a.review_reason, fallback_reason=a.fallback_reason, analyzed_at=a.updated_at)
    amount = None
    if lead.budget_min is not None or lead.budget_max is not None:
        amount = {"min": _num(lead.budget_min), "max": _num(lead.budget_max), "currency": lead.budget_currency,
                  "period": lead.budget_period, "usd": _num(lead.budget_usd)}
    return LeadPublic(
        id=lead.id, full_name=lead.full_name, email=lead.email, phone=lead.phone, company=lead.company,
        budget=lead.budget, budget_amount=amount, project_type=lead.project_type, message=lead.message,
        source=lead.source, status=lead.status.value, assignee=lead.assignee.username if lead.assignee else None,
        created_at=lead.created_at, updated_at=lead.updated_at, analysis=analysis)


def _num(value: Decimal | None) -> float | None:
    return float(value) if value is not None else None


def queued_for_reanalysis(*, session: Session, limit: int = 50, max_attempts: int = 5) -> list[Lead]:
    """Leads whose AI analysis failed and that are due another try, oldest first."""
    stmt = (select(Lead).where(Lead.reanalyze_requested_at.is_not(None), Lead.reanalyze_attempts < max_attempts)
            .order_by(Lead.reanalyze_requested_at).limit(limit))
    return list(session.scalars(stmt))


def find_by_email(*, session: Session, email: str, exclude_id: str | None = None, limit: int = 5) -> list[Lead]:
    """Other leads with the same (normalised) email address, newest first: possible duplicates."""
    stmt = select(Lead).where(Lead.email == email.strip().lower())
    if exclude_id:
        stmt = stmt.where(Lead.id != exclude_id)
    return list(session.scalars(stmt.order_by(Lead.created_at.desc(), Lead.id.desc()).limit(limit)))


def bulk_update(*, session: Session, lead_ids: list[str], changes: LeadUpdate, actor: str) -> int:
    """Applies one status and/or assignee change to many leads, each on its own timeline; returns how many changed."""
    wants_assignee = "assignee" in changes.model_fields_set
    target_id = None
    if wants_assignee and changes.assignee:
        # Checked once up front: an unknown assignee fails the whole batch before any lead is touched.
        user = session.scalar(select(User).where(User.username == changes.assignee.strip().lower()))
        if user is None or user.disabled:
            raise ValidationFailed([FieldError("assignee", f"no active user named {changes.assignee!r}")])
        target_id = user.id
    changed = 0
    for lead in session.scalars(select(Lead).where(Lead.id.in_(set(lead_ids))).order_by(Lead.created_at, Lead.id)):
        moves = ((changes.status is not None and changes.status != lead.status)
                 or (wants_assignee and target_id != lead.assignee_id) or bool(changes.note))
        if moves:
            update(session=session, lead=lead, changes=changes, actor=actor)
            changed += 1
    return changed


def mark_reviewed(*, session: Session, lead_id: str, actor: str) -> Lead:
    """Clears the lead's review flag and notes on its timeline who reviewed it and what had been flagged."""
    lead = get_or_raise(session=session, lead_id=lead_id)
    # A conditional update: two people pressing the button at once leave one entry, not two.
    cleared = session.execute(sql_update(Lead).where(Lead.id == lead.id, Lead.needs_review.is_(True))
                              .values(needs_review=False, updated_at=utcnow())).rowcount
    if cleared:
        a = lead.analysis
        reasons = "; ".join(r for r in (a.review_reason, a.fallback_reason) if r) if a else ""
        activities.record(session=session, lead_id=lead.id, kind=ActivityKind.REVIEWED, actor=actor,
                          body=f"Marked as reviewed by {actor.removeprefix('user:')}"
                               + (f"; it was flagged: {reasons}" if reasons else ""),
                          data={"flagged": reasons or None})
        session.flush()
    return lead


def delete(*, session: Session, lead_id: str, actor: str) -> None:
    """Deletes a lead with everything holding its data (analysis, timeline, stored answers, webhook events, import
    rows); the audit keeps only non-personal facts."""
    lead = get_or_raise(session=session, lead_id=lead_id)
    audit.record(session=session, actor=actor, action="lead.deleted", target_type="lead", target_id=lead.id,
                 detail={"status": lead.status.value, "priority": lead.priority.value, "score": lead.score,
                         "source": lead.source, "created_at": lead.created_at.isoformat()})
    day_stats.mark(session, [lead.id])  # the dashboard counts it no more
    # Copies of the lead kept beside it: the webhook events about it (a merge moves those of the lead it drops
    # here), whose pending deliveries go too, so nothing about it is sent after this; and what imports kept of its
    # earlier values.
    webhooks.delete_for_leads(session=session, lead_ids=[lead.id])
    session.execute(sql_delete(ImportRow).where(ImportRow.lead_id == lead.id)
                    .execution_options(synchronize_session=False))
    # The foreign keys do the rest: analysis, activities and idempotency records cascade, AI usage keeps no lead id.
    session.delete(lead)
    session.flush()


@dataclass(frozen=True)
class LeadBrief:
    """A lead as a home-page list shows it: who, how good, since when, and why it is listed."""

    id: str
    full_name: str
    company: str | None
    score: int
    priority: Priority
    status: LeadStatus
    created_at: datetime
    reason: str | None = None


@dataclass(frozen=True)
class HomeSummary:
    """What needs attention now, and how this week's intake compares with last week's."""

    high_uncontacted: list[LeadBrief]
    high_uncontacted_total: int
    needs_review: list[LeadBrief]
    needs_review_total: int
    today: int
    this_week: int
    last_week: int
    last_week_to_date: int
    week_start: datetime

    @property
    def week_change(self) -> int:
        """New leads this week so far minus last week's up to the same weekday and time."""
        return self.this_week - self.last_week_to_date


HOME_LIST_LIMIT = 20


def home_summary(*, session: Session, now: datetime, timezone: str,
                 own_or_unassigned_for: str | None = None) -> HomeSummary:
    """HIGH leads nobody contacted yet, leads waiting for review, and new-lead counts for today and the week."""
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationFailed([FieldError("timezone", f"unknown time zone {timezone!r}")]) from None
    local_now = now.astimezone(zone)
    today = datetime.combine(local_now.date(), time(), tzinfo=zone)
    week_start = datetime.combine(local_now.date() - timedelta(days=local_now.weekday()), time(), tzinfo=zone)
    last_week_start = datetime.combine(week_start.date() - timedelta(days=7), time(), tzinfo=zone)
    # Wall-clock arithmetic in the zone: "last Tuesday at 10:00" even across a daylight-saving change.
    same_point_last_week = local_now - timedelta(days=7)
    visible = _own_or_unassigned(own_or_unassigned_for) if own_or_unassigned_for else None

    high, high_total = _briefs(session, and_(Lead.priority == Priority.HIGH, Lead.status == LeadStatus.NEW), visible)
    # A won or lost lead waits for nobody's review: the flag only matters while the lead is being worked.
    review, review_total = _briefs(session, and_(Lead.needs_review.is_(True),
                                                 Lead.status.not_in((LeadStatus.WON, LeadStatus.LOST))), visible)

    def since(start: datetime, end: datetime | None = None) -> Any:
        cond = Lead.created_at >= start.astimezone(UTC)
        return func.count().filter(and_(cond, Lead.created_at < end.astimezone(UTC)) if end else cond)

    counts = select(since(today), since(week_start), since(last_week_start, week_start),
                    since(last_week_start, same_point_last_week)).where(Lead.created_at >= last_week_start)
    if visible is not None:
        counts = counts.where(visible)
    today_n, week_n, last_week_n, last_week_to_date_n = session.execute(counts).one()
    return HomeSummary(high_uncontacted=high, high_uncontacted_total=high_total, needs_review=review,
                       needs_review_total=review_total, today=today_n, this_week=week_n, last_week=last_week_n,
                       last_week_to_date=last_week_to_date_n, week_start=week_start)


def _briefs(session: Session, condition: ColumnElement[bool],
            visible: ColumnElement[bool] | None) -> tuple[list[LeadBrief], int]:
    """The oldest HOME_LIST_LIMIT leads matching `condition` and how many match in all, in one query."""
    stmt = (select(Lead.id, Lead.full_name, Lead.company, Lead.score, Lead.priority, Lead.status, Lead.created_at,
                   LeadAnalysis.review_reason, LeadAnalysis.fallback_reason, func.count().over())
            .outerjoin(LeadAnalysis, LeadAnalysis.lead_id == Lead.id).where(condition)
            .order_by(Lead.created_at, Lead.id).limit(HOME_LIST_LIMIT))
    if visible is not None:
        stmt = stmt.where(visible)
    rows = session.execute(stmt).all()
    briefs = [LeadBrief(id=r.id, full_name=r.full_name, company=r.company, score=r.score, priority=r.priority,
                        status=r.status, created_at=r.created_at,
                        reason="; ".join(x for x in (r.review_reason, r.fallback_reason) if x) or None)
              for r in rows]
    return briefs, rows[0][-1] if rows else 0
