"""The dashboard's daily summaries: leads and follow-up outcomes grouped by local day, kept up to date by a pass.

At a million leads, counting a quarter's leads again on every dashboard view costs most of a second; the summaries
hold a few hundred rows per day instead. The `dashboard` job refreshes them: a pass re-counts only the local days
something changed on since the pass before (leads by their arrival day, follow-ups by the day of their outcome), and
rebuilds them all once a day and whenever LEADOPS_TIMEZONE changes. The dashboard reads whole days before the last
pass's day from here and everything later from the leads, so new leads show at once and a change to an older lead
shows after the next pass (a minute in the jobs process).

How a changed day is found:
- a lead's arrival never moves, so any change to a lead (its `updated_at`) marks its arrival day, and the days its
  follow-ups reached an outcome (their source and assignee come from the lead);
- a follow-up's change marks the day of its new outcome; the day of an outcome it leaves (a failed message retried)
  is marked where that happens, as are the days of a deleted lead and its follow-ups (`mark`);
- changes are looked for from a margin before the last pass began, so transactions still open then are not missed.
Two passes never interleave: each begins by writing the one state row, which locks it until the pass commits.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, Engine, Integer, and_, delete, func, insert, literal, or_, select, union, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core import dashboard
from core.config import Settings
from db.models import DayStatsDirty, DayStatsState, FollowUp, FollowUpDayStats, FollowUpStatus, Lead, LeadDayStats
from db.session import session_scope

log = logging.getLogger(__name__)

MARGIN = timedelta(minutes=5)  # changes are looked for from this long before the last pass began
REBUILD_EVERY = timedelta(hours=24)
# Follow-ups count on the day they were sent (or the call made), failed and cancelled ones on their last change.
_SENT = (FollowUpStatus.SENT, FollowUpStatus.DONE)
_CHANGED = (FollowUpStatus.FAILED, FollowUpStatus.CANCELLED)


@dataclass(frozen=True)
class RefreshSummary:
    """What one pass did."""

    rebuilt: bool
    days: int
    seconds: float

    def line(self) -> str:
        what = "rebuilt every day" if self.rebuilt else "counted again"
        return f"dashboard: {what}, {self.days} day{'s' if self.days != 1 else ''}, in {self.seconds:.2f} s"


def run_pass(*, engine: Engine, settings: Settings, now: datetime | None = None,
             rebuild: bool = False) -> RefreshSummary:
    """Brings the summaries up to date for LEADOPS_TIMEZONE (rebuilding them all when due or asked)."""
    with session_scope(engine) as session:
        return refresh(session=session, timezone=settings.leadops_timezone, now=now, rebuild=rebuild)


def refresh(*, session: Session, timezone: str, now: datetime | None = None,
            rebuild: bool = False) -> RefreshSummary:
    """One pass in the caller's transaction; see the module's description."""
    started = time.perf_counter()
    zone = dashboard.zone_of(timezone)
    now = now or datetime.now(UTC)
    state = _locked_state(session)
    rebuild = (rebuild or state.timezone != timezone or state.changes_since is None or state.rebuilt_at is None
               or now - state.rebuilt_at >= REBUILD_EVERY)
    span = _span(session, now)
    if span is None:  # no leads at all
        session.execute(delete(DayStatsDirty))
        session.execute(delete(LeadDayStats))
        session.execute(delete(FollowUpDayStats))
        days: list[date] = []
    elif rebuild:
        session.execute(delete(DayStatsDirty))
        days = _every_day(*span)
    else:
        days = _changed_days(session, state.changes_since - MARGIN, span, zone)
    if days:
        counted = _Days(_runs(days), zone)
        _summarise_leads(session, counted)
        _summarise_follow_ups(session, counted)
    if rebuild and span is not None:  # days outside the span hold nothing any more
        for table in (LeadDayStats, FollowUpDayStats):
            session.execute(delete(table).where(~table.day.between(span[0].toordinal(), span[1].toordinal())))
    seconds = round(time.perf_counter() - started, 3)
    session.execute(update(DayStatsState).where(DayStatsState.id == DayStatsState.ONE).values(
        timezone=timezone, refreshed_at=now, changes_since=now, days_refreshed=len(days), seconds=seconds,
        **({"rebuilt_at": now} if rebuild else {})))
    return RefreshSummary(rebuilt=rebuild, days=len(days), seconds=seconds)


def mark(session: Session, lead_ids: Iterable[str]) -> None:
    """Marks the days of these leads and of their follow-ups' outcomes for the next pass: call before deleting
    them (a deleted row leaves no change behind to find)."""
    ids = list(lead_ids)
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        moments = union(select(Lead.created_at.label("at")).where(Lead.id.in_(chunk)),
                        select(FollowUp.sent_at).where(FollowUp.lead_id.in_(chunk), FollowUp.sent_at.is_not(None)),
                        select(FollowUp.updated_at).where(FollowUp.lead_id.in_(chunk),
                                                          FollowUp.status.in_(_CHANGED)))
        session.execute(insert(DayStatsDirty).from_select(["at"], select(moments.subquery().c.at)))


def mark_follow_up(session: Session, follow_up: FollowUp) -> None:
    """Marks the day of the outcome a follow-up is about to leave (a failed or cancelled one sent again)."""
    moment = follow_up.sent_at if follow_up.status in _SENT else follow_up.updated_at
    if follow_up.status in (*_SENT, *_CHANGED) and moment is not None:
        session.add(DayStatsDirty(at=moment))


# --- the pass ------------------------------------------------------------------------------------------------------

def _locked_state(session: Session) -> DayStatsState:
    """The state row, locked for this transaction (created on the first pass)."""
    touch = update(DayStatsState).where(DayStatsState.id == DayStatsState.ONE).values(id=DayStatsState.id)
    if session.execute(touch).rowcount == 0:  # type: ignore[attr-defined]
        try:
            with session.begin_nested():
                session.add(DayStatsState(id=DayStatsState.ONE))
        except IntegrityError:
            pass  # another pass created it meanwhile: the update below waits for that pass to finish
        session.execute(touch)
    state = session.scalars(select(DayStatsState).where(DayStatsState.id == DayStatsState.ONE)
                            .execution_options(populate_existing=True)).one()
    return state


def _span(session: Session, now: datetime) -> tuple[date, date] | None:
    """The first and last day anything can be counted on: from the first lead's arrival to now (follow-ups reach
    outcomes after their lead arrives and never later than now). UTC dates widened by a day each way cover every
    zone's local days."""
    first, last = session.execute(select(func.min(Lead.created_at), func.max(Lead.created_at))).one()
    if first is None:
        return None
    return first.date() - timedelta(days=1), max(last, now).date() + timedelta(days=1)


def _changed_days(session: Session, since: datetime, span: tuple[date, date], zone: ZoneInfo) -> list[date]:
    """The local days something changed on since `since`, and the days `mark` marked (those marks are used up)."""
    changed = Lead.updated_at >= since
    moments = union(
        select(Lead.created_at.label("at")).where(changed),
        select(FollowUp.sent_at).join(Lead, Lead.id == FollowUp.lead_id)
        .where(changed, FollowUp.status.in_(_SENT)),
        select(FollowUp.updated_at).join(Lead, Lead.id == FollowUp.lead_id)
        .where(changed, FollowUp.status.in_(_CHANGED)),
        select(FollowUp.sent_at).where(FollowUp.updated_at >= since, FollowUp.status.in_(_SENT)),
        select(FollowUp.updated_at).where(FollowUp.updated_at >= since, FollowUp.status.in_(_CHANGED)),
    ).subquery()
    days = _every_day(*span)
    index = dashboard.day_index(moments.c.at, days, zone).label("day")
    start, end = _bounds(days[0], days[-1], zone)
    positions = session.scalars(select(index).where(moments.c.at >= start, moments.c.at < end).distinct()).all()
    found = {days[int(i)] for i in positions}
    # The marks read here are the ones deleted (one statement): a mark committed meanwhile waits for the next pass.
    marks = session.scalars(delete(DayStatsDirty).returning(DayStatsDirty.at)).all()
    found |= {at.astimezone(zone).date() for at in marks}
    return sorted(found)


def _every_day(first: date, last: date) -> list[date]:
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def _runs(days: list[date]) -> list[tuple[date, date]]:
    """Consecutive days as (first, last) runs."""
    runs: list[tuple[date, date]] = []
    for day in days:
        if runs and runs[-1][1] + timedelta(days=1) == day:
            runs[-1] = (runs[-1][0], day)
        else:
            runs.append((day, day))
    return runs


def _bounds(first: date, last: date, zone: ZoneInfo) -> tuple[datetime, datetime]:
    return (dashboard.local_midnight(first, zone).astimezone(UTC),
            dashboard.local_midnight(last + timedelta(days=1), zone).astimezone(UTC))


@dataclass(frozen=True)
class _Days:
    """The days a pass counts again: how to find their rows in a summary, and their span of time in the sources."""

    runs: list[tuple[date, date]]
    zone: ZoneInfo

    def summarised(self, table: type[LeadDayStats] | type[FollowUpDayStats]) -> ColumnElement[bool]:
        return or_(*(table.day.between(a.toordinal(), b.toordinal()) for a, b in self.runs))

    def within(self, column: Any) -> ColumnElement[bool]:
        return or_(*(and_(column >= start, column < end)
                     for start, end in (_bounds(a, b, self.zone) for a, b in self.runs)))

    def day_of(self, column: Any) -> ColumnElement[int]:
        """The local day (date ordinal) of an instant within the runs."""
        days = _every_day(self.runs[0][0], self.runs[-1][1])
        return literal(days[0].toordinal(), Integer()) + dashboard.day_index(column, days, self.zone)


def _summarise_leads(session: Session, days: _Days) -> None:
    """Counts the leads that arrived on these days again, in one statement."""
    session.execute(delete(LeadDayStats).where(days.summarised(LeadDayStats)))
    rows = (select(days.day_of(Lead.created_at).label("day"), Lead.source, Lead.assignee_id,
                   Lead.priority, Lead.status, dashboard.score_band(Lead.score).label("band"),
                   dashboard.response_bucket(Lead.created_at, Lead.first_contacted_at).label("response"),
                   Lead.score)
            .where(days.within(Lead.created_at)).subquery())
    keys = [rows.c.day, rows.c.source, rows.c.assignee_id, rows.c.priority, rows.c.status, rows.c.band,
            rows.c.response]
    grouped = select(*keys, func.count(), func.sum(rows.c.score)).group_by(*keys)
    columns = ["day", "source", "assignee_id", "priority", "status", "band", "response", "leads", "score_sum"]
    session.execute(insert(LeadDayStats).from_select(columns, grouped))


def _summarise_follow_ups(session: Session, days: _Days) -> None:
    """Counts the follow-up outcomes of these days again, one statement per kind of moment."""
    session.execute(delete(FollowUpDayStats).where(days.summarised(FollowUpDayStats)))
    columns = ["day", "channel", "number", "status", "source", "assignee_id", "count"]
    for statuses, moment in ((_SENT, FollowUp.sent_at), (_CHANGED, FollowUp.updated_at)):
        rows = (select(days.day_of(moment).label("day"), FollowUp.channel, FollowUp.number, FollowUp.status,
                       Lead.source, Lead.assignee_id)
                .join(Lead, Lead.id == FollowUp.lead_id)
                .where(FollowUp.status.in_(statuses), days.within(moment)).subquery())
        keys = [rows.c.day, rows.c.channel, rows.c.number, rows.c.status, rows.c.source, rows.c.assignee_id]
        grouped = select(*keys, func.count()).group_by(*keys)
        session.execute(insert(FollowUpDayStats).from_select(columns, grouped))
