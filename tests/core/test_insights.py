"""Insight reports: closed periods across daylight-saving changes, facts from the database, one report per period
even with two passes at once, the narrative by the local Gemini server or by rules, and the number check."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, func, select

from core import dashboard, insights, webhooks
from core.config import Settings
from db.models import (
    AiUsage,
    InsightPeriod,
    InsightReport,
    LeadStatus,
    WebhookEvent,
    WorkflowLog,
)
from db.session import session_scope
from tests.support.concurrency import at_once
from tests.support.factories import make_lead
from tests.support.gemini_server import GeminiServer, Reply

ZONE = "America/New_York"
# A Wednesday after the week that holds the end of daylight saving time (Sunday 1 November 2026, 02:00 EDT).
NOW = datetime(2026, 11, 4, 15, 0, tzinfo=UTC)
WEEK_START = datetime(2026, 10, 26, 4, 0, tzinfo=UTC)  # Monday 26 Oct 00:00 EDT
WEEK_END = datetime(2026, 11, 2, 5, 0, tzinfo=UTC)  # Monday 2 Nov 00:00 EST
MONTH_START = datetime(2026, 10, 1, 4, 0, tzinfo=UTC)  # 1 Oct 00:00 EDT
MONTH_END = datetime(2026, 11, 1, 4, 0, tzinfo=UTC)  # 1 Nov 00:00 EDT (the clocks go back two hours later)


@pytest.fixture
def ny_settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(leadops_timezone=ZONE)


@pytest.fixture
def ny_ai_settings(make_settings: Callable[..., Settings], gemini: GeminiServer) -> Settings:
    return make_settings(leadops_timezone=ZONE, gemini_api_key="test-key", gemini_base_url=gemini.url,
                         gemini_timeout_s=3)


def seed_week(engine: Engine) -> None:
    """Three leads inside the week of 26 Oct (one in the repeated hour of 1 Nov), one in the week before, two
    just outside on either side."""
    with session_scope(engine) as session:
        make_lead(session, created_at=WEEK_START - timedelta(days=6), email="previous@week.example")
        make_lead(session, created_at=WEEK_START - timedelta(seconds=1), email="sunday.night@before.example")
        make_lead(session, created_at=WEEK_START, email="first@inside.example", company="Studio 54",
                  budget="$40k", score=91)
        # 01:30 EST, the second time the clock shows 01:30 that night.
        make_lead(session, created_at=datetime(2026, 11, 1, 6, 30, tzinfo=UTC), email="dst@inside.example",
                  source="referral", status=LeadStatus.WON, score=64)
        make_lead(session, created_at=WEEK_END - timedelta(seconds=1), email="last@inside.example", score=35)
        make_lead(session, created_at=WEEK_END, email="monday@after.example")


def reports(engine: Engine) -> list[InsightReport]:
    with session_scope(engine) as session:
        return list(session.scalars(select(InsightReport).order_by(InsightReport.period)))


def the_report(engine: Engine, kind: InsightPeriod = InsightPeriod.WEEKLY) -> dict[str, Any]:
    with session_scope(engine) as session:
        found = insights.get_all(session=session, kind=kind)
        assert len(found) == 1, found
        return insights.to_public(found[0])


def statements(report: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for section in report["narrative"]["sections"].values() for s in section]


# --- periods -----------------------------------------------------------------------------------------------------


def test_the_last_closed_week_holding_the_autumn_change_is_169_hours_long():
    start, end = insights.closed_period("weekly", now=NOW, timezone=ZONE)

    assert (start, end) == (WEEK_START, WEEK_END)
    assert end - start == timedelta(hours=169)
    assert insights.period_label("weekly", start=start, timezone=ZONE) == "Week of 26 Oct 2026"


def test_the_spring_change_makes_a_167_hour_week_and_a_743_hour_month():
    start, end = insights.closed_period(InsightPeriod.WEEKLY, now=datetime(2026, 3, 11, 12, tzinfo=UTC),
                                        timezone=ZONE)
    assert (start, end) == (datetime(2026, 3, 2, 5, tzinfo=UTC), datetime(2026, 3, 9, 4, tzinfo=UTC))
    assert end - start == timedelta(hours=167)

    start, end = insights.closed_period("MONTHLY", now=datetime(2026, 4, 2, 12, tzinfo=UTC), timezone=ZONE)
    assert (start, end) == (datetime(2026, 3, 1, 5, tzinfo=UTC), datetime(2026, 4, 1, 4, tzinfo=UTC))
    assert end - start == timedelta(hours=743)
    assert insights.period_label("monthly", start=start, timezone=ZONE) == "March 2026"


def test_a_week_closes_at_local_midnight_not_at_utc_midnight():
    monday_midnight = WEEK_END  # Monday 2 Nov 00:00 EST
    assert insights.closed_period("weekly", now=monday_midnight, timezone=ZONE) == (WEEK_START, WEEK_END)
    # One second earlier it is still Sunday in New York (already Monday in UTC): that week is not closed yet.
    earlier = insights.closed_period("weekly", now=monday_midnight - timedelta(seconds=1), timezone=ZONE)
    assert earlier == (datetime(2026, 10, 19, 4, tzinfo=UTC), WEEK_START)


def test_the_last_closed_month_and_the_one_before_it():
    assert insights.closed_period("monthly", now=NOW, timezone=ZONE) == (MONTH_START, MONTH_END)
    previous = insights.previous_period("monthly", start=MONTH_START, timezone=ZONE)
    assert previous == (datetime(2026, 9, 1, 4, tzinfo=UTC), MONTH_START)
    january = insights.closed_period("monthly", now=datetime(2027, 1, 15, tzinfo=UTC), timezone="UTC")
    assert january == (datetime(2026, 12, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC))


# --- a pass over seeded data ------------------------------------------------------------------------------------


def test_a_weekly_report_covers_exactly_the_local_week_across_the_dst_change(engine, ny_settings):
    seed_week(engine)

    summary = insights.run_pass(engine=engine, settings=ny_settings, now=NOW)

    assert summary.line() == "insights: weekly 2026-10-26 generated (rules), monthly 2026-10 generated (rules)"
    report = the_report(engine)
    stored = reports(engine)[1]
    assert stored.period == InsightPeriod.WEEKLY
    assert (stored.period_start, stored.period_end) == (WEEK_START, WEEK_END)
    assert stored.timezone == ZONE and stored.status == "READY" and stored.claimed_until is None
    facts = report["facts"]
    assert facts["period"] == {"kind": "WEEKLY", "start": "2026-10-26T00:00:00-04:00",
                               "end": "2026-11-02T00:00:00-05:00", "label": "Week of 26 Oct 2026",
                               "timezone": ZONE}
    assert facts["previous_period"]["label"] == "Week of 19 Oct 2026"
    # The three leads inside, not the ones a second before or at the end; the week before had two.
    assert facts["kpis"]["new_leads"] == {"current": 3, "previous": 2, "change": 1}
    assert facts["kpis"]["won"]["current"] == 1
    assert facts["kpis"]["conversion_to_won_pct"]["current"] == 33.3
    assert sum(facts["priority_distribution"].values()) == 3
    days = {row["day"]: row["HIGH"] + row["MEDIUM"] + row["LOW"] for row in facts["leads_by_day"]}
    assert list(days) == [f"2026-10-{d}" for d in range(26, 32)] + ["2026-11-01"]
    assert days["2026-10-26"] == 1 and days["2026-11-01"] == 2
    assert {row["source"]: row["leads"] for row in facts["by_source"]} == {"referral": 1, "website": 2}
    assert [o["budget"] for o in facts["top_opportunities"]][0] == "$40k"
    assert set(facts["kpis"]) == {f.name for f in fields(dashboard.Kpis)}


@pytest.mark.parametrize(("kind", "start"), [("weekly", WEEK_START), ("monthly", MONTH_START)])
def test_the_facts_compare_with_the_calendar_period_before(engine, kind, start):
    seed_week(engine)
    end = insights.closed_period(kind, now=NOW, timezone=ZONE)[1]
    with session_scope(engine) as session:
        facts = insights.compute_facts(session=session, kind=kind, start=start, end=end, timezone=ZONE)

    prev_start, prev_end = insights.previous_period(kind, start=start, timezone=ZONE)
    assert facts["previous_period"]["start"] == prev_start.astimezone(ZoneInfo(ZONE)).isoformat()
    assert facts["previous_period"]["end"] == prev_end.astimezone(ZoneInfo(ZONE)).isoformat()
    assert prev_end == start
    assert list(facts["status_distribution"]) == [status.value for status in LeadStatus]


def test_the_monthly_report_compares_with_the_calendar_month_before(engine, ny_settings):
    seed_week(engine)
    with session_scope(engine) as session:
        make_lead(session, created_at=datetime(2026, 9, 30, 12, tzinfo=UTC), email="september@x.example")

    insights.run_pass(engine=engine, settings=ny_settings, now=NOW)

    report = the_report(engine, InsightPeriod.MONTHLY)
    assert report["label"] == "October 2026"
    assert (report["start"], report["end"]) == ("2026-10-01T00:00:00-04:00", "2026-11-01T00:00:00-04:00")
    assert report["facts"]["previous_period"]["label"] == "September 2026"
    # October (local): the week before, the Sunday-night lead and the 26 Oct one; 1 Nov belongs to November.
    assert report["facts"]["kpis"]["new_leads"] == {"current": 3, "previous": 1, "change": 2}


def test_an_empty_database_gets_no_report_and_a_period_before_the_first_lead_neither(engine, ny_settings):
    summary = insights.run_pass(engine=engine, settings=ny_settings, now=NOW)
    assert summary.line() == ("insights: weekly 2026-10-26 skipped (no leads yet), "
                              "monthly 2026-10 skipped (no leads yet)")
    with session_scope(engine) as session:
        make_lead(session, created_at=WEEK_END + timedelta(hours=3))

    insights.run_pass(engine=engine, settings=ny_settings, now=NOW)

    assert reports(engine) == []


def test_a_quiet_week_after_the_first_lead_still_gets_its_report(engine, ny_settings):
    with session_scope(engine) as session:
        make_lead(session, created_at=datetime(2026, 9, 2, tzinfo=UTC))

    insights.run_pass(engine=engine, settings=ny_settings, now=NOW)

    report = the_report(engine)
    assert report["facts"]["kpis"]["new_leads"]["current"] == 0
    assert not [s for s in statements(report) if s["flagged"]]


def test_a_second_pass_finds_the_reports_there(engine, ny_settings):
    seed_week(engine)
    insights.run_pass(engine=engine, settings=ny_settings, now=NOW)

    again = insights.run_pass(engine=engine, settings=ny_settings, now=NOW + timedelta(hours=1))

    assert again.line() == "insights: weekly 2026-10-26 already there, monthly 2026-10 already there"
    assert len(reports(engine)) == 2


def test_two_passes_at_once_make_one_report_per_period(engine, db_url, ny_settings):
    seed_week(engine)
    with session_scope(engine) as session:
        webhooks.create_endpoint(session=session, name="reports", url="http://127.0.0.1:9/hook",
                                 event_types=["insight.generated"], actor="test")
    lines = at_once(db_url, lambda own_engine: insights.run_pass(engine=own_engine, settings=ny_settings,
                                                                 now=NOW).line())

    stored = reports(engine)
    assert sorted(r.period for r in stored) == [InsightPeriod.MONTHLY, InsightPeriod.WEEKLY]
    assert all(r.status == "READY" for r in stored)
    for name in ("weekly 2026-10-26", "monthly 2026-10"):
        assert sum(f"{name} generated" in line for line in lines) == 1, lines
    with session_scope(engine) as session:
        events = list(session.scalars(select(WebhookEvent).where(WebhookEvent.type == "insight.generated")))
    assert sorted(e.payload["data"]["id"] for e in events) == sorted(r.id for r in stored)


# --- the narrative ---------------------------------------------------------------------------------------------


def test_the_rules_narrative_needs_no_key_and_states_only_facts(engine, ny_settings):
    seed_week(engine)
    with session_scope(engine) as session:
        lost = make_lead(session, created_at=WEEK_START + timedelta(days=2), email="lost@x.example",
                         status=LeadStatus.LOST, company="Acme 2000 Ltd", budget="10-20k EUR")
        lost.first_contacted_at = lost.created_at + timedelta(hours=2)
        contacted = make_lead(session, created_at=WEEK_START + timedelta(days=3), email="c@x.example",
                              status=LeadStatus.CONTACTED, budget="$80k-$120k")
        contacted.first_contacted_at = contacted.created_at + timedelta(minutes=20)
        at = WEEK_START + timedelta(days=1)
        for kind, channel, outcome in [("followup", "EMAIL", "sent"), ("followup", "EMAIL", "sent"),
                                       ("followup", "EMAIL", "bounced"), ("followup", "SMS", "failed"),
                                       ("followup", "SMS", "retry"), ("followup", "CALL", "task"),
                                       ("webhook", "webhook", "delivered"), ("webhook", "webhook", "retry"),
                                       ("webhook", "webhook", "gone")]:
            session.add(WorkflowLog(kind=kind, channel=channel, outcome=outcome, created_at=at))
        session.add(WorkflowLog(kind="followup", channel="EMAIL", outcome="sent", created_at=WEEK_END))  # outside

    outcome = insights.generate(engine=engine, settings=ny_settings, kind="weekly", now=NOW)

    assert (outcome.status, outcome.engine, outcome.note) == ("generated", "rules", insights.NO_KEY_NOTE)
    report = the_report(engine)
    facts = report["facts"]
    assert facts["workflow"] == {"followup_attempts": 5, "followup_failures": 3, "webhook_deliveries": 1,
                                 "webhook_failures": 2}
    assert {r["channel"]: (r["sent"], r["failed"], r["bounced"]) for r in facts["followups"]["by_channel"]} == \
        {"EMAIL": (2, 0, 1), "SMS": (0, 1, 0)}
    narrative = report["narrative"]
    assert narrative["engine"] == "rules" and report["engine"] == "rules" and report["model"] is None
    assert all(narrative["sections"][name] for name in insights.SECTIONS)
    assert [s["text"] for s in statements(report) if s["flagged"]] == []
    for statement in statements(report):
        for key in statement["facts"]:
            assert insights.fact_value(facts, key) is not None, (statement["text"], key)
    texts = " ".join(s["text"] for s in statements(report))
    assert "Week of 26 Oct 2026: 5 new leads" in texts
    assert "Acme 2000 Ltd" in texts or "Studio 54" in texts


def narrative_reply(**sections: list[str]) -> Reply:
    body = {name: [] for name in insights.SECTIONS}
    body.update(sections)
    return GeminiServer.json_reply(body)


def test_a_gemini_sentence_that_invents_a_number_is_flagged(engine, ny_ai_settings, gemini):
    seed_week(engine)
    with session_scope(engine) as session:
        webhooks.create_endpoint(session=session, name="reports", url="http://127.0.0.1:9/hook",
                                 event_types=["insight.generated"], actor="test")
    true_sentence = "New leads rose to 3 from 2 in the week of 26 Oct 2026, and 1 of them was won (33.3%)."
    invented = "Revenue grew 48% to $1.2M, the best week since 2019."
    gemini.queue(narrative_reply(
        executive_summary=[true_sentence, invented],
        key_findings=["Studio 54 stated a $40k budget and scored 91.", "Referral leads converted well."],
        recommendations=["<script>alert(1)</script> Call the **HIGH** leads first."],
        risk_alerts=["Response times could slip: 12 leads are waiting."],
        opportunities=["Studio 54 is worth a call this week."]))

    outcome = insights.generate(engine=engine, settings=ny_ai_settings, kind="weekly", now=NOW)

    assert (outcome.status, outcome.engine) == ("generated", "gemini")
    report = the_report(engine)
    assert (report["engine"], report["model"]) == ("gemini", "gemini-test-001")
    assert report["note"] == "2 sentence(s) state numbers that are not in the facts: flagged"
    by_text = {s["text"]: s for s in statements(report)}
    assert by_text[invented]["flagged"] is True
    assert by_text[invented]["unverified_numbers"] == ["48%", "$1.2M", "2019"]
    assert by_text["Response times could slip: 12 leads are waiting."]["unverified_numbers"] == ["12"]
    true = by_text[true_sentence]
    assert true["flagged"] is False and true["unverified_numbers"] == []
    assert {"kpis.new_leads.current", "kpis.new_leads.previous", "kpis.conversion_to_won_pct.current"} <= \
        set(true["facts"])
    budget = by_text["Studio 54 stated a $40k budget and scored 91."]
    assert budget["flagged"] is False
    assert {"top_opportunities.0.budget", "top_opportunities.0.score"} <= set(budget["facts"])
    assert sum(not s["flagged"] for s in statements(report)) == 5

    request = gemini.requests[0]["json"]
    assert '"new_leads"' in request["contents"][0]["parts"][0]["text"]
    assert set(request["generationConfig"]["responseSchema"]["properties"]) == set(insights.SECTIONS)
    assert "must be one of the numbers in the facts" in request["systemInstruction"]["parts"][0]["text"]
    with session_scope(engine) as session:
        usage = list(session.scalars(select(AiUsage)))
        event = session.scalar(select(WebhookEvent).where(WebhookEvent.type == "insight.generated"))
    assert [(u.purpose, u.outcome) for u in usage] == [("report", "ok")]
    assert event.payload["data"]["kpis"]["new_leads"] == 3
    assert event.payload["data"]["label"] == "Week of 26 Oct 2026"

    markdown = insights.export_markdown(report)
    main, _, unverified = markdown.partition("## Unverified statements")
    assert "Revenue grew" not in main and "Revenue grew 48% to $1.2M" in unverified
    assert "<script>" not in markdown and "\\*\\*HIGH\\*\\*" in markdown
    html = insights.export_html(report)
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    main_html, _, unverified_html = html.partition("Unverified statements</h2>")
    assert "Revenue grew" not in main_html and "Revenue grew 48% to $1.2M" in unverified_html
    assert "@media print" in html and "<td>New leads</td>" in html


def test_the_ai_failing_falls_back_to_the_rules_with_the_reason(engine, ny_ai_settings, gemini):
    seed_week(engine)
    gemini.queue(Reply(status=400))

    outcome = insights.generate(engine=engine, settings=ny_ai_settings, kind="weekly", now=NOW)

    assert (outcome.status, outcome.engine) == ("generated", "rules")
    report = the_report(engine)
    assert report["narrative"]["engine"] == "rules"
    assert report["note"] == "AI unavailable (http_400): the rules engine wrote the narrative"
    assert not [s for s in statements(report) if s["flagged"]]
    with session_scope(engine) as session:
        assert [(u.purpose, u.outcome) for u in session.scalars(select(AiUsage))] == [("report", "http_400")]


# --- claims and regeneration ---------------------------------------------------------------------------------


def test_generate_now_regenerates_the_report_in_place(engine, ny_settings):
    seed_week(engine)
    first = insights.generate(engine=engine, settings=ny_settings, kind="weekly", now=NOW)
    with session_scope(engine) as session:
        make_lead(session, created_at=WEEK_START + timedelta(days=4), email="late@entry.example")

    unforced = insights.generate(engine=engine, settings=ny_settings, kind="weekly", now=NOW)
    forced = insights.generate(engine=engine, settings=ny_settings, kind="weekly", now=NOW, force=True)

    assert (unforced.status, unforced.note) == ("already", None)
    assert forced.status == "regenerated" and forced.report_id == first.report_id
    assert len(reports(engine)) == 1
    assert the_report(engine)["facts"]["kpis"]["new_leads"]["current"] == 4


def test_a_crashed_claim_is_taken_over_once_it_runs_out_and_a_live_one_is_left_alone(engine, ny_settings):
    seed_week(engine)
    with session_scope(engine) as session:
        live = InsightReport(period=InsightPeriod.WEEKLY, period_start=WEEK_START, period_end=WEEK_END,
                             timezone=ZONE, status="GENERATING",
                             claimed_until=datetime.now(UTC) + timedelta(minutes=5))
        failed = InsightReport(period=InsightPeriod.MONTHLY, period_start=MONTH_START, period_end=MONTH_END,
                               timezone=ZONE, status="FAILED", note="OperationalError: the database went away")
        session.add_all([live, failed])

    summary = insights.run_pass(engine=engine, settings=ny_settings, now=NOW)

    assert summary.line() == ("insights: weekly 2026-10-26 being written by another process, "
                              "monthly 2026-10 generated (rules)")
    with session_scope(engine) as session:
        session.get(InsightReport, live.id).claimed_until = datetime.now(UTC) - timedelta(seconds=1)

    again = insights.generate(engine=engine, settings=ny_settings, kind="weekly", now=NOW)

    assert (again.status, again.report_id) == ("generated", live.id)
    by_period = {r.period: r for r in reports(engine)}
    assert by_period[InsightPeriod.MONTHLY].id == failed.id and by_period[InsightPeriod.MONTHLY].note is not None
    assert {r.status for r in by_period.values()} == {"READY"}
    with session_scope(engine) as session:
        assert session.scalar(select(func.count()).select_from(InsightReport)) == 2


# --- the number check on its own -------------------------------------------------------------------------------

FACTS: dict[str, Any] = {
    "period": {"kind": "WEEKLY", "start": "2026-11-16T00:00:00-05:00", "end": "2026-11-23T00:00:00-05:00",
               "label": "Week of 16 Nov 2026", "timezone": ZONE},
    "previous_period": {"start": "2026-11-09T00:00:00-05:00", "end": "2026-11-16T00:00:00-05:00",
                        "label": "Week of 9 Nov 2026"},
    "kpis": {"new_leads": {"current": 1234, "previous": 1180, "change": 54},
             "conversion_to_won_pct": {"current": 42.9, "previous": 45.0, "change": -2.1},
             "contacted_within_24h_pct": {"current": 80.0, "previous": None, "change": None}},
    "top_opportunities": [{"name": "Dana Whitfield", "company": "Studio 54", "score": 91, "budget": "$40k"}],
}


@pytest.mark.parametrize(("text", "unverified"), [
    ("New leads reached 1,234, up 54 from 1180.", []),
    ("Conversion was 43%, down 2.1 percentage points.", []),  # 42.9 said as a whole number
    ("Conversion was 42.94%.", ["42.94%"]),  # more precise than the facts: not from them
    ("Studio 54 has a $40k budget; a $40,000 deal would double it to $80k.", ["$80k"]),
    ("For the 1st time, leads came in on 16 Nov 2026 and on 2026-11-20, both in 2026.", []),
    ("80.0% were contacted within 24 hours.", []),
    ("Leads grew 5% on 3 January 2025.", ["3 January 2025", "5%"]),
    ("Revenue reached $1.2M and 2.5 million visits.", ["$1.2M", "2.5 million"]),
])
def test_numbers_outside_the_facts_are_unverified(text, unverified):
    statement = insights.check_statement(text, insights.index_facts(FACTS))

    assert statement["unverified_numbers"] == unverified
    assert statement["flagged"] is bool(unverified)


def test_a_verified_sentence_cites_the_facts_it_states():
    statement = insights.check_statement("Conversion to WON fell to 42.9%, down 2.1 points from 45.0%.",
                                         insights.index_facts(FACTS))

    assert statement["facts"] == ["kpis.conversion_to_won_pct.current", "kpis.conversion_to_won_pct.change",
                                  "kpis.conversion_to_won_pct.previous"]
