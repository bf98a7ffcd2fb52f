"""The managers' dashboard: KPIs for a period against the one before, and the series behind each chart.

Every figure is computed by the database in a few grouped queries (never by loading leads into pandas).
"""

from __future__ import annotations

import calendar
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from decimal import Decimal
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import (
    BigInteger,
    Boolean,
    ColumnElement,
    Integer,
    and_,
    case,
    false,
    func,
    literal,
    or_,
    select,
    union_all,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.functions import FunctionElement

from core.errors import FieldError, ValidationFailed
from db.models import (
    Channel,
    DayStatsState,
    FollowUp,
    FollowUpDayStats,
    FollowUpStatus,
    Lead,
    LeadDayStats,
    LeadStatus,
    Priority,
    User,
)

PeriodKind = Literal["last_7_days", "last_30_days", "last_90_days", "this_week", "last_week", "this_month",
                     "last_month"]

# What the period picker offers, in its order.
PERIOD_KINDS: dict[str, str] = {
    "last_7_days": "Last 7 days", "last_30_days": "Last 30 days", "last_90_days": "Last 90 days",
    "this_week": "This week", "last_week": "Last week", "this_month": "This month", "last_month": "Last month",
}
_DAYS = {"last_7_days": 7, "last_30_days": 30, "last_90_days": 90}
# The stages a lead moves through, in order; LOST leaves the line at any point.
STAGES = [LeadStatus.NEW, LeadStatus.CONTACTED, LeadStatus.QUALIFIED, LeadStatus.PROPOSAL_SENT, LeadStatus.WON]
OPEN_STATUSES = [LeadStatus.NEW, LeadStatus.CONTACTED, LeadStatus.QUALIFIED, LeadStatus.PROPOSAL_SENT]
CLOSED_STATUSES = [LeadStatus.WON, LeadStatus.LOST]
SCORE_BANDS = [f"{low}-{low + 9}" for low in range(0, 90, 10)] + ["90-100"]
# Time from arrival to a person first moving the lead on from NEW; "4-24 h" ends at 24 h inclusive, so the first
# three buckets add up to the "contacted within 24 h" KPI.
RESPONSE_BUCKETS = ["< 1 h", "1-4 h", "4-24 h", "1-3 days", "> 3 days", "not yet"]
FOLLOW_UP_OUTCOMES = [FollowUpStatus.SENT, FollowUpStatus.FAILED, FollowUpStatus.CANCELLED, FollowUpStatus.DONE]
TOP_OPPORTUNITIES = 10
_HOUR, _DAY = 3600, 86400


@dataclass(frozen=True)
class DashboardFilters:
    """What the dashboard can be narrowed by."""

    source: str | None = None
    assignee_id: str | None = None


@dataclass(frozen=True)
class Period:
    """A span of time, start inclusive and end exclusive, as instants (aware, UTC or the business zone)."""

    start: datetime
    end: datetime
    label: str
    # The picker's kind when it came from period_for (None for a span built by hand); previous() reads it for
    # the spans that end "now" (this week, this month so far).
    kind: str | None = None

    def previous(self) -> Period:
        """The period of the same length just before this one."""
        # Wall-clock arithmetic in the zone the bounds carry: a week back is local midnight to local midnight even
        # across a daylight-saving change, and a month back is the calendar month before.
        zone = self.start.tzinfo or UTC
        start, end = self.start.astimezone(zone), self.end.astimezone(zone)
        if _is_month_start(start) and _is_month_start(end):
            months = (end.year - start.year) * 12 + end.month - start.month
            shifted = _shift_months(start, -months), _shift_months(end, -months)
        elif self.kind == "this_month":
            shifted = _shift_months(start, -1), _shift_months(end, -1)
        elif self.kind == "this_week":
            shifted = _shift_days(start, -7), _shift_days(end, -7)
        elif _is_midnight(start) and _is_midnight(end):
            days = (end.date() - start.date()).days
            shifted = _shift_days(start, -days), _shift_days(end, -days)
        else:
            shifted = start - (end - start), start
        return Period(start=shifted[0], end=shifted[1], label=_describe(*shifted), kind=None)


def period_for(kind: PeriodKind, *, now: datetime, timezone: str) -> Period:
    """The period a manager picked, with day, week (Monday) and month boundaries in the business's time zone."""
    zone = zone_of(timezone)
    local_now = now.astimezone(zone)
    today = local_now.date()
    if kind in _DAYS:
        start = local_midnight(today - timedelta(days=_DAYS[kind] - 1), zone)
        end = local_midnight(today + timedelta(1), zone)
    elif kind == "this_week":
        start, end = local_midnight(today - timedelta(days=today.weekday()), zone), local_now
    elif kind == "last_week":
        monday = today - timedelta(days=today.weekday())
        start, end = local_midnight(monday - timedelta(days=7), zone), local_midnight(monday, zone)
    elif kind == "this_month":
        start, end = local_midnight(today.replace(day=1), zone), local_now
    elif kind == "last_month":
        first = today.replace(day=1)
        start, end = local_midnight((first - timedelta(days=1)).replace(day=1), zone), local_midnight(first, zone)
    else:
        raise ValidationFailed([FieldError("period", f"unknown period {kind!r}")])
    label = f"{PERIOD_KINDS[kind]} ({_describe(start, end, to_now=True)})"
    return Period(start=start, end=end, label=label, kind=kind)


@dataclass(frozen=True)
class Kpis:
    """The headline figures of one period (leads created in it, and what happened to them)."""

    new_leads: int
    high_leads: int
    high_share_pct: float | None  # HIGH among new leads, %
    average_score: float | None
    contacted_within_24h_pct: float | None  # new leads first moved on from NEW within 24 h of arriving, %
    won: int
    lost: int
    conversion_to_won_pct: float | None  # won among new leads, %
    followups_sent: int  # follow-ups sent (emails, texts) in the period
    followups_failed: int
    calls_done: int
    contacted_within_24h: int = 0  # the count behind contacted_within_24h_pct


@dataclass(frozen=True)
class DashboardData:
    """Everything one dashboard view shows."""

    period: Period
    previous_period: Period
    current: Kpis
    previous: Kpis
    pipeline: dict[str, int]  # open and closed leads by status now (all leads matching the filters)
    leads_by_day: list[dict]  # {"day": date, "priority": "HIGH", "leads": n} per local day of the period
    score_histogram: list[dict]  # {"band": "80-89", "leads": n}, ten-point bands
    funnel: list[dict]  # {"stage": "NEW"|"CONTACTED"|..., "leads": n} leads of the period that reached each stage
    by_source: list[dict]  # {"source", "leads", "high", "won", "conversion_pct"}
    response_times: list[dict]  # {"bucket": "< 1 h"|"1-4 h"|"4-24 h"|"1-3 days"|"> 3 days"|"not yet", "leads": n}
    followup_outcomes: list[dict]  # {"channel", "step": n, "status", "count"}
    top_opportunities: list[dict]  # {"id", "name", "company", "score", "priority", "budget", "budget_usd", "status",
    #                                 "age_days", "assignee"} open leads, best first
    computed_at: datetime = field(default_factory=lambda: datetime.now().astimezone())
    sources: list[str] = field(default_factory=list)  # the sources of the period's leads (assignee filter only)
    # Days before this instant were read from the daily summaries (None: every figure was counted from the leads).
    summaries_until: datetime | None = None
    summarised_at: datetime | None = None  # when the `dashboard` job last brought those summaries up to date

    @property
    def is_empty(self) -> bool:
        """True when no lead matches the filters at all (not only in this period)."""
        return not any(self.pipeline.values())


def dashboard(*, session: Session, period: Period, filters: DashboardFilters, timezone: str,
              now: datetime | None = None, summaries: bool = True) -> DashboardData:
    """The dashboard for `period` compared with the period before it (`summaries=False` counts every figure from
    the leads and follow-ups, ignoring the daily summaries)."""
    zone = zone_of(timezone)
    now = now or datetime.now(UTC)
    previous = period.previous()
    days = _local_days(period, zone)
    state = session.get(DayStatsState, DayStatsState.ONE) if summaries else None
    usable = state is not None and state.timezone == timezone and state.refreshed_at is not None
    cutoff = _cutoff(state.refreshed_at, now, zone) if usable else None
    split = _split([period, previous], cutoff, zone)
    # Five statements: the leads of both periods grouped by local day (every KPI and the daily chart), the period's
    # leads grouped by source, status and score band (the other charts), the pipeline, the follow-up outcomes, and
    # the top opportunities. Whole days before today come from the daily summaries where the `dashboard` job has
    # made them, the rest from the leads and follow-ups themselves.
    daily = _daily_figures(session, _lead_rows(period, previous, filters, days, zone, split), filters)
    mix = _period_mix(session, _lead_rows(period, previous, filters, days, zone, _split([period], cutoff, zone)),
                      filters)
    follow_ups = _follow_up_figures(session, period, previous, filters, split, days[0].toordinal())
    return DashboardData(
        period=period, previous_period=previous,
        current=_kpis(daily["cur"], follow_ups["totals"]["cur"]),
        previous=_kpis(daily["prev"], follow_ups["totals"]["prev"]),
        pipeline=_pipeline(session, filters, split.cutoff, zone),
        leads_by_day=[{"day": day, "priority": priority.value, "leads": daily["by_day"][(i, priority)]}
                      for i, day in enumerate(days) for priority in Priority],
        score_histogram=[{"band": label, "leads": mix["bands"][i]} for i, label in enumerate(SCORE_BANDS)],
        funnel=_funnel(mix["statuses"], lost_after_contact=daily["cur"]["lost_contacted"]),
        by_source=mix["sources"],
        response_times=[{"bucket": bucket, "leads": daily["cur"][f"response_{i}"]}
                        for i, bucket in enumerate(RESPONSE_BUCKETS)],
        followup_outcomes=follow_ups["outcomes"],
        top_opportunities=_top_opportunities(session, period, filters, now),
        computed_at=now, sources=mix["every_source"],
        summaries_until=split.cutoff if split.days else None,
        summarised_at=state.refreshed_at if split.days and state is not None else None,
    )


def _cutoff(refreshed_at: datetime, now: datetime, zone: ZoneInfo) -> datetime:
    """Where the daily summaries stop: the local midnight that begins the day they were last refreshed (or today,
    if that is earlier); later leads may still arrive on that day."""
    day = min(refreshed_at.astimezone(zone).date(), now.astimezone(zone).date())
    return local_midnight(day, zone).astimezone(UTC)


# --- SQL that differs between SQLite and PostgreSQL ---------------------------------------------------------------


class _DaysSince(FunctionElement[int]):
    """Whole days from an instant (seconds since 1970) to a timestamp column; both dialects floor."""

    type = Integer()
    name = "days_since"
    inherit_cache = True


@compiles(_DaysSince)
def _days_since(element: _DaysSince, compiler: Any, **kw: Any) -> str:
    column, origin = (compiler.process(clause, **kw) for clause in element.clauses)
    # date_part gives a double: much cheaper per row than EXTRACT's numeric.
    return f"FLOOR((date_part('epoch', {column}) - {origin}) / 86400)"


@compiles(_DaysSince, "sqlite")
def _days_since_sqlite(element: _DaysSince, compiler: Any, **kw: Any) -> str:
    column, origin = (compiler.process(clause, **kw) for clause in element.clauses)
    # SQLite keeps UTC timestamps as text; the rows are never before the origin, so integer division floors.
    return f"((CAST(strftime('%s', {column}) AS INTEGER) - {origin}) / 86400)"


class _Elapsed(FunctionElement[bool]):
    """`end - start` compared with a whole number of seconds: `_Elapsed(start, end, seconds)`; below unless `<=`."""

    type = Boolean()
    name = "elapsed"
    inherit_cache = True
    operator = "<"


class _ElapsedAtMost(_Elapsed):
    inherit_cache = True
    operator = "<="


@compiles(_Elapsed)
def _elapsed(element: _Elapsed, compiler: Any, **kw: Any) -> str:
    start, end, seconds = (compiler.process(clause, **kw) for clause in element.clauses)
    # An interval comparison: no per-row conversion to numbers on PostgreSQL.
    return f"(({end}) - ({start})) {element.operator} ({seconds} * INTERVAL '1 second')"


@compiles(_Elapsed, "sqlite")
def _elapsed_sqlite(element: _Elapsed, compiler: Any, **kw: Any) -> str:
    start, end, seconds = (compiler.process(clause, **kw) for clause in element.clauses)
    return (f"(CAST(strftime('%s', {end}) AS INTEGER) - CAST(strftime('%s', {start}) AS INTEGER)) "
            f"{element.operator} {seconds}")


def _response_below(created: Any, contacted: Any, seconds: int, *, inclusive: bool = False) -> ColumnElement[bool]:
    """The lead was first contacted less than (or at most) `seconds` after it arrived."""
    kind = _ElapsedAtMost if inclusive else _Elapsed
    return kind(created, contacted, literal(seconds, Integer()))


# --- the queries -----------------------------------------------------------------------------------------------


def _lead_conditions(filters: DashboardFilters, table: Any = Lead) -> list[ColumnElement[bool]]:
    """The filters on the leads, or on a daily summary (which keeps each lead's source and assignee)."""
    conditions = []
    if filters.source:
        conditions.append(table.source == filters.source)
    if filters.assignee_id:
        conditions.append(table.assignee_id == filters.assignee_id)
    return conditions


def _within(column: Any, period: Period) -> ColumnElement[bool]:
    return and_(column >= period.start, column < period.end)


_PREVIOUS, _BETWEEN = -1, -2  # day keys of the previous period's leads, and of any gap between the two periods
_LEAD_FIGURES = ["leads", "score_sum", "within_24h", "won", "lost", "lost_contacted",
                 *(f"response_{i}" for i in range(len(RESPONSE_BUCKETS)))]
NOT_YET = len(RESPONSE_BUCKETS) - 1  # the response bucket of leads no person has moved on yet
_WITHIN_24H = 3  # buckets below this one add up to "contacted within 24 h"


def response_bucket(created: Any, contacted: Any) -> ColumnElement[int]:
    """The RESPONSE_BUCKETS index of a lead: how long after arriving a person first moved it on from NEW."""

    def below(seconds: int, inclusive: bool = False) -> ColumnElement[bool]:
        return _response_below(created, contacted, seconds, inclusive=inclusive)

    # Bucket i runs from bound i-1 to bound i; "4-24 h" ends at 24 h inclusive, like the 24 h KPI.
    return case((contacted.is_(None), literal(NOT_YET, Integer())), (below(_HOUR), literal(0, Integer())),
                (below(4 * _HOUR), literal(1, Integer())), (below(_DAY, True), literal(2, Integer())),
                (below(3 * _DAY, True), literal(3, Integer())), else_=literal(4, Integer()))


def score_band(score: Any) -> ColumnElement[int]:
    """The SCORE_BANDS index of a score: ten-point bands, 90-100 as the last."""
    return case((score >= 90, literal(9, Integer())), else_=score // 10)


@dataclass(frozen=True)
class _Split:
    """Which part of the periods the daily summaries answer and which part the leads and follow-ups themselves do.

    `days`: whole local days (inclusive ranges of date ordinals) summarised before `cutoff`; `live`: the rest, as
    spans of instants. Without usable summaries everything is live.
    """

    days: list[tuple[int, int]]
    live: list[tuple[datetime, datetime]]
    cutoff: datetime | None


def _split(periods: list[Period], cutoff: datetime | None, zone: ZoneInfo) -> _Split:
    days, live = [], []
    for p in periods:
        start, end = p.start.astimezone(UTC), p.end.astimezone(UTC)
        limit = min(end, cutoff) if cutoff is not None else None
        whole = [d for d in _local_days(p, zone) if limit is not None and local_midnight(d, zone) >= start
                 and local_midnight(d + timedelta(days=1), zone) <= limit]
        if not whole:
            live.append((start, end))
            continue
        first = local_midnight(whole[0], zone).astimezone(UTC)
        after = local_midnight(whole[-1] + timedelta(days=1), zone)
        days.append((whole[0].toordinal(), whole[-1].toordinal()))
        if start < first:
            live.append((start, first))
        if after < end:
            live.append((after.astimezone(UTC), end))
    return _Split(days=days, live=live, cutoff=cutoff)


def _in_spans(column: Any, spans: list[tuple[datetime, datetime]]) -> ColumnElement[bool]:
    return or_(*(and_(column >= a, column < b) for a, b in spans)) if spans else false()


def _in_days(column: Any, ranges: list[tuple[int, int]]) -> ColumnElement[bool]:
    return or_(*(column.between(a, b) for a, b in ranges)) if ranges else false()


def _lead_rows(period: Period, previous: Period, filters: DashboardFilters, days: list[date], zone: ZoneInfo,
               split: _Split) -> Any:
    """The leads of both periods as (day, source, priority, status, band, response, n, score) rows: whole past
    days from the daily summaries (n leads, their score sum), everything else from the leads (one row each).

    `day` is the position in `days` of the local day, _PREVIOUS for the previous period and _BETWEEN for a gap.
    The assignee filter is applied; the source filter is left to the queries (the source chart lists them all).
    """
    parts = []
    if split.live:
        day = case((Lead.created_at < previous.end, literal(_PREVIOUS, Integer())),
                   (Lead.created_at < period.start, literal(_BETWEEN, Integer())),
                   else_=day_index(Lead.created_at, days, zone))
        parts.append(select(day.label("day"), Lead.source.label("source"), Lead.priority.label("priority"),
                            Lead.status.label("status"), score_band(Lead.score).label("band"),
                            response_bucket(Lead.created_at, Lead.first_contacted_at).label("response"),
                            literal(1, Integer()).label("n"), Lead.score.label("score"))
                     .where(_in_spans(Lead.created_at, split.live),
                            *_lead_conditions(DashboardFilters(assignee_id=filters.assignee_id))))
    if split.days:
        s, origin = LeadDayStats, days[0].toordinal()
        day = case((s.day < origin, literal(_PREVIOUS, Integer())), else_=s.day - origin)
        parts.append(select(day.label("day"), s.source, s.priority, s.status, s.band, s.response,
                            s.leads.label("n"), s.score_sum.label("score"))
                     .where(_in_days(s.day, split.days),
                            *_lead_conditions(DashboardFilters(assignee_id=filters.assignee_id), s)))
    return (union_all(*parts) if len(parts) > 1 else parts[0]).subquery()


def _daily_figures(session: Session, rows: Any, filters: DashboardFilters) -> dict[str, Any]:
    """The rows of both periods grouped by local day (the previous period as one day) and priority.

    Gives every lead KPI of both periods, the period's response times and its leads per day and priority.
    """
    contacted = rows.c.response != NOT_YET

    def count(*conditions: ColumnElement[bool]) -> Any:
        return func.sum(rows.c.n).filter(and_(*conditions)) if conditions else func.sum(rows.c.n)

    # Grouped outside: the day expression carries bound values, which PostgreSQL would not match inside GROUP BY.
    stmt = (select(rows.c.day, rows.c.priority, count(), func.sum(rows.c.score),
                   count(rows.c.response < _WITHIN_24H),
                   count(rows.c.status == LeadStatus.WON),
                   count(rows.c.status == LeadStatus.LOST),
                   count(rows.c.status == LeadStatus.LOST, contacted),
                   *(count(rows.c.response == i) for i in range(len(RESPONSE_BUCKETS))))
            .where(*([rows.c.source == filters.source] if filters.source else []))
            .group_by(rows.c.day, rows.c.priority))
    spans: dict[str, dict[str, Any]] = {span: dict.fromkeys(_LEAD_FIGURES, 0) | {"high": 0} for span in ("cur", "prev")}
    by_day: dict[tuple[int, Priority], int] = defaultdict(int)
    for key, priority, *figures in session.execute(stmt):
        if key == _BETWEEN:
            continue
        totals = spans["prev" if key == _PREVIOUS else "cur"]
        for name, value in zip(_LEAD_FIGURES, figures, strict=True):
            totals[name] += int(value or 0)
        if priority == Priority.HIGH:
            totals["high"] += int(figures[0])
        if key != _PREVIOUS:
            by_day[(int(key), Priority(priority))] += int(figures[0])
    return {**spans, "by_day": by_day}


def _period_mix(session: Session, rows: Any, filters: DashboardFilters) -> dict[str, Any]:
    """The period's leads by source, priority, status and score band: the funnel, histogram and source charts.

    The source filter is applied here rather than in SQL, so the same pass lists every source of the period's
    leads for the source filter to offer (a DISTINCT of its own would read the leads again).
    """
    keys = [rows.c.source, rows.c.priority, rows.c.status, rows.c.band]
    bands: dict[int, int] = defaultdict(int)
    statuses: dict[LeadStatus, int] = defaultdict(int)
    sources: dict[str, dict[str, Any]] = {}
    every_source = set()
    stmt = select(*keys, func.sum(rows.c.n)).where(rows.c.day >= 0).group_by(*keys)
    for source, priority, status, score_band_, n in session.execute(stmt):
        n = int(n)
        every_source.add(source)
        if filters.source is not None and source != filters.source:
            continue
        bands[int(score_band_)] += n
        statuses[LeadStatus(status)] += n
        figures = sources.setdefault(source, {"source": source, "leads": 0, "high": 0, "won": 0})
        figures["leads"] += n
        figures["high"] += n if priority == Priority.HIGH else 0
        figures["won"] += n if status == LeadStatus.WON else 0
    ordered = sorted(sources.values(), key=lambda f: (-f["leads"], f["source"]))
    return {"bands": bands, "statuses": statuses, "every_source": sorted(every_source),
            "sources": [{**f, "conversion_pct": _pct(f["won"], f["leads"])} for f in ordered]}


def _follow_up_figures(session: Session, period: Period, previous: Period, filters: DashboardFilters,
                       split: _Split, origin: int) -> dict[str, Any]:
    """Follow-ups that reached an outcome in either period, by channel, step and outcome.

    Sent messages and made calls count when they happened, failed and cancelled ones at their last change (as on
    the Follow-ups page). Whole past days come from the daily summaries, the rest from the follow-ups.
    """
    parts = []

    def live(statuses: list[FollowUpStatus], moment: Any) -> Any:
        stmt = (select(FollowUp.channel, FollowUp.number, FollowUp.status,
                       func.count().filter(_within(moment, period)).label("cur"),
                       func.count().filter(_within(moment, previous)).label("prev"))
                .where(FollowUp.status.in_(statuses), _in_spans(moment, split.live))
                .group_by(FollowUp.channel, FollowUp.number, FollowUp.status))
        conditions = _lead_conditions(filters)
        return stmt.join(Lead, Lead.id == FollowUp.lead_id).where(*conditions) if conditions else stmt

    if split.live:
        # Two parts, each on its own timestamp, so each can use an index on (status, that timestamp).
        parts += [live([FollowUpStatus.SENT, FollowUpStatus.DONE], FollowUp.sent_at),
                  live([FollowUpStatus.FAILED, FollowUpStatus.CANCELLED], FollowUp.updated_at)]
    if split.days:
        s = FollowUpDayStats
        parts.append(select(s.channel, s.number, s.status, func.sum(s.count).filter(s.day >= origin).label("cur"),
                            func.sum(s.count).filter(s.day < origin).label("prev"))
                     .where(_in_days(s.day, split.days), *_lead_conditions(filters, s))
                     .group_by(s.channel, s.number, s.status))
    counts: dict[tuple[Channel, int, FollowUpStatus], dict[str, int]] = {}
    for r in session.execute(union_all(*parts) if len(parts) > 1 else parts[0]):
        figures = counts.setdefault((Channel(r.channel), r.number, FollowUpStatus(r.status)), {"cur": 0, "prev": 0})
        figures["cur"] += int(r.cur or 0)
        figures["prev"] += int(r.prev or 0)
    totals = {span: {status: sum(f[span] for (_c, _n, s), f in counts.items() if s == status)
                     for status in FollowUpStatus} for span in ("cur", "prev")}
    outcomes = sorted(({"channel": c.value, "step": n, "status": s.value, "count": f["cur"]}
                       for (c, n, s), f in counts.items() if f["cur"]),
                      key=lambda o: (o["channel"], o["step"], FOLLOW_UP_OUTCOMES.index(FollowUpStatus(o["status"]))))
    return {"totals": totals, "outcomes": outcomes}


def _kpis(leads: dict[str, Any], follow_ups: dict[FollowUpStatus, int]) -> Kpis:
    new = leads["leads"]
    return Kpis(
        new_leads=new, high_leads=leads["high"], high_share_pct=_pct(leads["high"], new),
        average_score=_round(leads["score_sum"] / new) if new else None,
        contacted_within_24h_pct=_pct(leads["within_24h"], new), contacted_within_24h=leads["within_24h"],
        won=leads["won"], lost=leads["lost"], conversion_to_won_pct=_pct(leads["won"], new),
        followups_sent=follow_ups[FollowUpStatus.SENT], followups_failed=follow_ups[FollowUpStatus.FAILED],
        calls_done=follow_ups[FollowUpStatus.DONE],
    )


def _pipeline(session: Session, filters: DashboardFilters, cutoff: datetime | None,
              zone: ZoneInfo) -> dict[str, int]:
    """Every lead matching the filters by status now: the summarised days from the summaries, the rest counted."""
    live = (select(Lead.status.label("status"), func.count().label("n")).where(*_lead_conditions(filters))
            .group_by(Lead.status))
    parts = [live.where(Lead.created_at >= cutoff) if cutoff is not None else live]
    if cutoff is not None:
        s = LeadDayStats
        parts.append(select(s.status, func.sum(s.leads)).where(s.day < cutoff.astimezone(zone).date().toordinal(),
                                                               *_lead_conditions(filters, s)).group_by(s.status))
    counts: dict[LeadStatus, int] = defaultdict(int)
    for status, n in session.execute(union_all(*parts) if len(parts) > 1 else parts[0]):
        counts[LeadStatus(status)] += int(n or 0)
    return {status.value: counts[status] for status in LeadStatus}


def _funnel(by_status: dict[LeadStatus, int], *, lost_after_contact: int) -> list[dict]:
    """Leads of the period that reached each stage: their status is that stage or a later one (WON reached them all).

    A LOST lead counts as contacted when a person had moved it on from NEW before; where it stood when it was lost
    is not kept on the lead, so it counts no further.
    """
    funnel = []
    for i, stage in enumerate(STAGES):
        reached = sum(by_status[s] for s in STAGES[i:])
        if stage == LeadStatus.NEW:
            reached += by_status[LeadStatus.LOST]
        elif stage == LeadStatus.CONTACTED:
            reached += lost_after_contact
        funnel.append({"stage": stage.value, "leads": reached})
    return funnel


def _top_opportunities(session: Session, period: Period, filters: DashboardFilters, now: datetime) -> list[dict]:
    """The best open leads that arrived in the period: highest score, then largest budget."""
    stmt = (select(Lead.id, Lead.full_name, Lead.company, Lead.score, Lead.priority, Lead.budget, Lead.budget_usd,
                   Lead.status, Lead.created_at, User.username)
            .outerjoin(User, User.id == Lead.assignee_id)
            .where(_within(Lead.created_at, period), Lead.status.in_(OPEN_STATUSES), *_lead_conditions(filters))
            .order_by(Lead.score.desc(), Lead.budget_usd.desc().nulls_last(), Lead.created_at.desc(), Lead.id)
            .limit(TOP_OPPORTUNITIES))
    return [{"id": r.id, "name": r.full_name, "company": r.company, "score": r.score, "priority": r.priority.value,
             "budget": r.budget, "budget_usd": float(r.budget_usd) if r.budget_usd is not None else None,
             "status": r.status.value, "age_days": max((now - r.created_at).days, 0), "assignee": r.username}
            for r in session.execute(stmt)]


# --- local days ----------------------------------------------------------------------------------------------


def _local_days(period: Period, zone: tzinfo) -> list[date]:
    """The local dates the period touches, first to last."""
    first = period.start.astimezone(zone).date()
    last = (period.end - timedelta(microseconds=1)).astimezone(zone).date()
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def day_index(column: Any, days: list[date], zone: ZoneInfo) -> ColumnElement[int]:
    """The position in `days` of the local day a timestamp falls on, computed by the database.

    Local midnights come from zoneinfo. Runs of 24-hour days are counted off in whole days from the run's first
    midnight; a 23- or 25-hour day (a daylight-saving change) is a run of its own. So a handful of CASE branches
    covers 90 days exactly, on SQLite and PostgreSQL alike, for any zone (half-hour offsets included).
    """
    bounds = [local_midnight(day, zone).astimezone(UTC) for day in [*days, days[-1] + timedelta(days=1)]]
    branches: list[tuple[Any, Any]] = []
    i = 0
    while i < len(days):
        j = i + 1
        if bounds[j] - bounds[i] == timedelta(days=1):
            while j < len(days) and bounds[j + 1] - bounds[j] == timedelta(days=1):
                j += 1
            origin = literal(int(bounds[i].timestamp()), BigInteger())
            index: Any = literal(i, Integer()) + _DaysSince(column, origin)
        else:
            index = literal(i, Integer())
        branches.append((column < bounds[j], index))
        i = j
    if len(branches) == 1:
        return branches[0][1]
    return case(*branches[:-1], else_=branches[-1][1])


# --- small helpers -----------------------------------------------------------------------------------------------


def zone_of(timezone: str) -> ZoneInfo:
    try:
        return ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationFailed([FieldError("timezone", f"unknown time zone {timezone!r}")]) from None


def local_midnight(day: date, zone: tzinfo) -> datetime:
    return datetime.combine(day, time(), tzinfo=zone)


def _is_midnight(moment: datetime) -> bool:
    return moment.time() == time()


def _is_month_start(moment: datetime) -> bool:
    return moment.day == 1 and _is_midnight(moment)


def _shift_days(moment: datetime, days: int) -> datetime:
    return datetime.combine(moment.date() + timedelta(days=days), moment.time(), tzinfo=moment.tzinfo)


def _shift_months(moment: datetime, months: int) -> datetime:
    year, month = divmod(moment.year * 12 + moment.month - 1 + months, 12)
    day = min(moment.day, calendar.monthrange(year, month + 1)[1])
    return datetime.combine(date(year, month + 1, day), moment.time(), tzinfo=moment.tzinfo)


def _describe(start: datetime, end: datetime, *, to_now: bool = False) -> str:
    """'Mon 26 Oct – Sun 1 Nov 2026' for whole days; a span ending at a time of day names it ('now' for today's)."""
    first = f"{start:%a} {start.day} {start:%b}"
    if _is_midnight(end):
        last = (end - timedelta(days=1)).date()
        return f"{first} – {last:%a} {last.day} {last:%b %Y}"
    return f"{first} – now" if to_now else f"{first} – {end:%a} {end.day} {end:%b %Y} {end:%H:%M}"


def _pct(part: int, whole: int) -> float | None:
    return round(100 * part / whole, 1) if whole else None


def _round(value: Decimal | float | None) -> float | None:
    return round(float(value), 1) if value is not None else None
