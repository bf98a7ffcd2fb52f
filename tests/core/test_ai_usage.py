"""The AI usage figures equal a hand count on a small known set of calls, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from sqlalchemy import Engine

from core import ai_usage
from core.ai_usage import DailyUsage, FailureCount, PurposeUsage, UsageTotals
from db.models import AiUsage
from db.session import session_scope

LISBON = "Europe/Lisbon"  # summer time ended on Sunday 25 October 2026 at 02:00 local (01:00 UTC)
NOW = datetime(2026, 10, 27, 12, 0, tzinfo=UTC)


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 10, day, hour, minute, tzinfo=UTC)


# purpose, outcome, created_at (UTC), input tokens, output tokens, cost, latency ms; the local day in the comment.
CALLS = [
    ("analysis", "ok", at(20, 22), 9_000, 9_000, "0.5", 1),  # 20 Oct 23:00 local: before the period
    ("followup", "ok", at(20, 23), 400, 100, "0.0003", 500),  # 21 Oct 00:00 local: the period's first instant
    ("analysis", "timeout", at(23, 12), 0, 0, "0", 20_004),  # 23 Oct
    ("analysis", "ok", at(24, 23, 30), 1_000, 200, "0.001", 800),  # 25 Oct 00:30 local (UTC date: the 24th)
    ("analysis", "ok", at(25, 23, 30), 1_200, 300, "0.002", 1_200),  # 25 Oct 23:30 local, winter time
    ("followup", "ok", at(26, 9), 500, 150, "0.0005", 600),  # 26 Oct
    ("analysis", "timeout", at(26, 10), 0, 0, "0", 20_000),  # 26 Oct
    ("report", "http_429", at(27, 8), 0, 0, "0", 300),  # 27 Oct
    ("analysis", "malformed_json", at(27, 9), 900, 50, "0.00025", 1_500),  # 27 Oct
    ("report", "ok", datetime(2026, 10, 28, 0, 30, tzinfo=UTC), 9_000, 9_000, "0.5", 1),  # 28 Oct: after it
]


@pytest.fixture
def calls(engine: Engine) -> None:
    with session_scope(engine) as session:
        session.add_all(AiUsage(purpose=purpose, model="gemini-2.5-flash", outcome=outcome, created_at=created_at,
                                input_tokens=tokens_in, output_tokens=tokens_out, cost_usd=Decimal(cost),
                                latency_ms=latency, error=None if outcome == "ok" else f"{outcome} from the API")
                        for purpose, outcome, created_at, tokens_in, tokens_out, cost, latency in CALLS)


def last_7_days() -> ai_usage.UsagePeriod:
    return ai_usage.period_for("last_7_days", timezone=LISBON, now=NOW)


def test_the_period_is_whole_local_days_across_the_clock_change() -> None:
    period = last_7_days()

    assert period.days == tuple(date(2026, 10, d) for d in range(21, 28))
    assert period.start == at(20, 23)  # local midnight in summer time (UTC+1)
    assert period.end == datetime(2026, 10, 28, 0, 0, tzinfo=UTC)  # local midnight in winter time (UTC+0)
    last_month = ai_usage.period_for("last_month", timezone=LISBON, now=NOW)
    assert (last_month.days[0], last_month.days[-1]) == (date(2026, 9, 1), date(2026, 9, 30))
    this_month = ai_usage.period_for("this_month", timezone=LISBON, now=NOW)
    assert (this_month.days[0], this_month.days[-1]) == (date(2026, 10, 1), date(2026, 10, 27))
    with pytest.raises(ValueError, match="unknown period"):
        ai_usage.period_for("forever", timezone=LISBON, now=NOW)


def test_totals_equal_a_hand_count(engine: Engine, calls: None) -> None:
    with session_scope(engine) as session:
        totals = ai_usage.totals(session=session, period=last_7_days())

    # 8 calls inside; 4 failed; latency (500 + 20004 + 800 + 1200 + 600 + 20000 + 300 + 1500) / 8 = 5613
    assert totals == UsageTotals(calls=8, failures=4, input_tokens=4_000, output_tokens=800,
                                 cost_usd=Decimal("0.004050"), average_latency_ms=5_613)


def test_daily_usage_is_per_local_day_and_purpose(engine: Engine, calls: None) -> None:
    with session_scope(engine) as session:
        days = ai_usage.daily(session=session, period=last_7_days())

    assert days == [
        DailyUsage(date(2026, 10, 21), "followup", 1, 400, 100, Decimal("0.000300")),
        DailyUsage(date(2026, 10, 23), "analysis", 1, 0, 0, Decimal("0.000000")),
        DailyUsage(date(2026, 10, 25), "analysis", 2, 2_200, 500, Decimal("0.003000")),
        DailyUsage(date(2026, 10, 26), "analysis", 1, 0, 0, Decimal("0.000000")),
        DailyUsage(date(2026, 10, 26), "followup", 1, 500, 150, Decimal("0.000500")),
        DailyUsage(date(2026, 10, 27), "analysis", 1, 900, 50, Decimal("0.000250")),
        DailyUsage(date(2026, 10, 27), "report", 1, 0, 0, Decimal("0.000000")),
    ]


def test_usage_per_purpose_most_expensive_first(engine: Engine, calls: None) -> None:
    with session_scope(engine) as session:
        purposes = ai_usage.by_purpose(session=session, period=last_7_days())

    assert purposes == [
        # latency (20004 + 800 + 1200 + 20000 + 1500) / 5 = 8700.8
        PurposeUsage("analysis", 5, 3, 3_100, 550, Decimal("0.003250"), 8_701),
        PurposeUsage("followup", 2, 0, 900, 250, Decimal("0.000800"), 550),
        PurposeUsage("report", 1, 1, 0, 0, Decimal("0.000000"), 300),
    ]
    assert [ai_usage.purpose_label(p.purpose) for p in purposes] == ["Lead analysis", "Follow-up copy", "Reports"]


def test_failures_by_kind_and_purpose(engine: Engine, calls: None) -> None:
    with session_scope(engine) as session:
        failures = ai_usage.failures(session=session, period=last_7_days())

    assert failures == [
        FailureCount("timeout", "analysis", 2, at(26, 10)),
        FailureCount("http_429", "report", 1, at(27, 8)),
        FailureCount("malformed_json", "analysis", 1, at(27, 9)),
    ]


def test_a_period_without_calls_is_all_zeros(engine: Engine, calls: None) -> None:
    period = ai_usage.period_for("last_month", timezone=LISBON, now=NOW)
    with session_scope(engine) as session:
        report = ai_usage.usage_report(session=session, period=period)

    assert report.totals == UsageTotals(0, 0, 0, 0, Decimal("0.000000"), None)
    assert report.daily == report.by_purpose == report.failures == []
