"""The record of every model call (tokens, latency, estimated cost, outcome), and what admins read from it."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Literal
from zoneinfo import ZoneInfo

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from core.analysis.base import AiCall
from core.dashboard import day_index, local_midnight
from db.models import AiUsage, utcnow

PeriodKind = Literal["last_7_days", "last_30_days", "last_90_days", "this_month", "last_month"]
PERIODS: dict[str, str] = {"last_7_days": "Last 7 days", "last_30_days": "Last 30 days",
                           "last_90_days": "Last 90 days", "this_month": "This month", "last_month": "Last month"}
PURPOSES: dict[str, str] = {"analysis": "Lead analysis", "followup": "Follow-up copy", "report": "Reports"}
OK = "ok"


def record(*, session: Session, calls: Iterable[AiCall], lead_id: str | None = None) -> None:
    """Writes one usage row per call."""
    session.add_all(AiUsage(purpose=c.purpose, model=c.model, lead_id=lead_id, input_tokens=c.input_tokens,
                            output_tokens=c.output_tokens, latency_ms=c.latency_ms, cost_usd=c.cost_usd,
                            outcome=c.outcome, error=c.error) for c in calls)


def purpose_label(purpose: str) -> str:
    """What a purpose is called on screen ("followup" -> "Follow-up copy")."""
    return PURPOSES.get(purpose, purpose)


@dataclass(frozen=True)
class UsagePeriod:
    """Whole local days, start inclusive and end exclusive (instants at local midnights in `timezone`)."""

    days: tuple[date, ...]
    timezone: str
    label: str

    @property
    def start(self) -> datetime:
        """The first day's local midnight."""
        return _midnight(self.days[0], self.timezone)

    @property
    def end(self) -> datetime:
        """The local midnight after the last day."""
        return _midnight(self.days[-1] + timedelta(days=1), self.timezone)


def period_for(kind: PeriodKind | str, *, timezone: str, now: datetime | None = None) -> UsagePeriod:
    """The days of a period an admin picked, today included, in the business's time zone."""
    today = (now or utcnow()).astimezone(ZoneInfo(timezone)).date()
    if kind == "this_month":
        first, last = today.replace(day=1), today
    elif kind == "last_month":
        last = today.replace(day=1) - timedelta(days=1)
        first = last.replace(day=1)
    elif kind in ("last_7_days", "last_30_days", "last_90_days"):
        first, last = today - timedelta(days=int(kind.split("_")[1]) - 1), today
    else:
        raise ValueError(f"unknown period {kind!r}: one of {', '.join(PERIODS)}")
    days = tuple(first + timedelta(days=n) for n in range((last - first).days + 1))
    return UsagePeriod(days=days, timezone=timezone, label=f"{PERIODS[kind]} ({first:%d %b} – {last:%d %b %Y})")


@dataclass(frozen=True)
class UsageTotals:
    """All calls of a period."""

    calls: int
    failures: int
    input_tokens: int
    output_tokens: int
    cost_usd: Decimal
    average_latency_ms: int | None


@dataclass(frozen=True)
class DailyUsage:
    """The calls of one purpose on one local day."""

    day: date
    purpose: str
    calls: int
    input_tokens: int
    output_tokens: int
    cost_usd: Decimal


@dataclass(frozen=True)
class PurposeUsage:
    """The calls of one purpose over the period."""

    purpose: str
    calls: int
    failures: int
    input_tokens: int
    output_tokens: int
    cost_usd: Decimal
    average_latency_ms: int | None


@dataclass(frozen=True)
class FailureCount:
    """Failed calls of one kind ("timeout", "http_429", "malformed_json"...) for one purpose."""

    kind: str
    purpose: str
    calls: int
    last_at: datetime


@dataclass(frozen=True)
class UsageReport:
    """Everything the AI usage page shows for one period."""

    period: UsagePeriod
    totals: UsageTotals
    daily: list[DailyUsage]
    by_purpose: list[PurposeUsage]
    failures: list[FailureCount]


def totals(*, session: Session, period: UsagePeriod) -> UsageTotals:
    """Calls, failures, tokens, estimated cost and average latency of the period, in one query."""
    row = session.execute(_in(period, select(*_figures()))).one()
    return UsageTotals(calls=row[0], failures=row[1], input_tokens=int(row[2]), output_tokens=int(row[3]),
                       cost_usd=_money(row[4]), average_latency_ms=_rounded(row[5]))


def daily(*, session: Session, period: UsagePeriod) -> list[DailyUsage]:
    """Calls, tokens and estimated cost per local day and purpose (days without calls left out), in one query."""
    # The local day by the dashboard's day_index: local midnights move across DST, so no fixed-offset date().
    day = day_index(AiUsage.created_at, list(period.days), ZoneInfo(period.timezone))
    calls = _in(period, select(day.label("day"), AiUsage.purpose, AiUsage.input_tokens,
                               AiUsage.output_tokens, AiUsage.cost_usd)).subquery()
    # Grouped in an outer query: PostgreSQL would not match a GROUP BY CASE to the SELECT's (other parameters).
    rows = session.execute(select(calls.c.day, calls.c.purpose, func.count(), _sum(calls.c.input_tokens),
                                  _sum(calls.c.output_tokens), _sum(calls.c.cost_usd))
                           .group_by(calls.c.day, calls.c.purpose).order_by(calls.c.day, calls.c.purpose)).all()
    return [DailyUsage(day=period.days[int(index)], purpose=purpose, calls=n, input_tokens=int(tokens_in),
                       output_tokens=int(tokens_out), cost_usd=_money(cost))
            for index, purpose, n, tokens_in, tokens_out, cost in rows]


def by_purpose(*, session: Session, period: UsagePeriod) -> list[PurposeUsage]:
    """Calls, failures, tokens, estimated cost and latency per purpose, most expensive first, in one query."""
    rows = session.execute(_in(period, select(AiUsage.purpose, *_figures())).group_by(AiUsage.purpose)).all()
    usage = [PurposeUsage(purpose=purpose, calls=n, failures=failed, input_tokens=int(tokens_in),
                          output_tokens=int(tokens_out), cost_usd=_money(cost), average_latency_ms=_rounded(latency))
             for purpose, n, failed, tokens_in, tokens_out, cost, latency in rows]
    return sorted(usage, key=lambda u: (-u.cost_usd, -u.calls, u.purpose))


def failures(*, session: Session, period: UsagePeriod) -> list[FailureCount]:
    """Failed calls per kind of failure and purpose, most frequent first, in one query."""
    rows = session.execute(_in(period, select(AiUsage.outcome, AiUsage.purpose, func.count(),
                                              func.max(AiUsage.created_at)))
                           .where(AiUsage.outcome != OK).group_by(AiUsage.outcome, AiUsage.purpose)
                           .order_by(func.count().desc(), AiUsage.outcome, AiUsage.purpose)).all()
    return [FailureCount(kind=kind, purpose=purpose, calls=n, last_at=last_at)
            for kind, purpose, n, last_at in rows]


def usage_report(*, session: Session, period: UsagePeriod) -> UsageReport:
    """The totals, daily series, purposes and failures of one period (four grouped queries)."""
    return UsageReport(period=period, totals=totals(session=session, period=period),
                       daily=daily(session=session, period=period),
                       by_purpose=by_purpose(session=session, period=period),
                       failures=failures(session=session, period=period))


def _in(period: UsagePeriod, stmt: Select) -> Select:
    return stmt.select_from(AiUsage).where(AiUsage.created_at >= period.start, AiUsage.created_at < period.end)


def _figures() -> tuple:
    """Calls, failed calls, input and output tokens, estimated cost and average latency, as SQL aggregates."""
    return (func.count(), func.count().filter(AiUsage.outcome != OK), _sum(AiUsage.input_tokens),
            _sum(AiUsage.output_tokens), _sum(AiUsage.cost_usd), func.avg(AiUsage.latency_ms))


def _sum(column):  # noqa: ANN001, ANN202 - a SQL expression in, a SQL expression out
    return func.coalesce(func.sum(column), 0)


def _midnight(day: date, timezone: str) -> datetime:
    return local_midnight(day, ZoneInfo(timezone))


def _money(value: object) -> Decimal:
    # SQLite sums NUMERIC as floating point: six decimals is the column's own precision.
    return Decimal(str(value or 0)).quantize(Decimal("0.000001"))


def _rounded(value: float | Decimal | None) -> int | None:
    return None if value is None else round(float(value))
