"""The dashboard's figures on SQLite and PostgreSQL equal a hand count of a small known data set.

The business is in New York; "now" is Wed 4 Nov 2026, noon local, so the last 7 days (Thu 29 Oct – Wed 4 Nov) hold
the end of daylight saving time (Sun 1 Nov, 02:00 EDT -> 01:00 EST) and the 7 days before (22–28 Oct) do not.
Every test runs twice: counted from the leads (before the `dashboard` job's first pass), and with the days before
"now" read from the daily summaries that pass makes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine

from core import dashboard as dashboard_service
from core import day_stats, users
from core.dashboard import DashboardFilters, Period, period_for
from core.errors import ValidationFailed
from db.models import Channel, FollowUp, FollowUpStatus, Lead, LeadStatus, Priority, Role, SequenceStep
from db.session import session_scope
from pages import _charts as charts
from tests.support.factories import make_user

pytestmark = pytest.mark.usefixtures("fast_bcrypt")

NEW_YORK = "America/New_York"
NOW = datetime(2026, 11, 4, 17, 0, tzinfo=UTC)  # Wed 4 Nov 2026, 12:00 EST
EVERYTHING = DashboardFilters()
H = timedelta(hours=1)
N, C, Q, P, W, L = (LeadStatus.NEW, LeadStatus.CONTACTED, LeadStatus.QUALIFIED,
                       LeadStatus.PROPOSAL_SENT, LeadStatus.WON, LeadStatus.LOST)


@dataclass(frozen=True)
class Row:
    """One hand-made lead: when it arrived, where it stands, and after how long a person first moved it on."""

    name: str
    created: datetime
    status: LeadStatus
    priority: Priority
    score: int
    source: str
    assignee: str | None = None
    contacted_after: timedelta | None = None
    budget_usd: int | None = None


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


HIGH, MEDIUM, LOW = Priority.HIGH, Priority.MEDIUM, Priority.LOW
LEADS = [
    # The last 7 days. Local days in New York are in the comments.
    Row("A", utc(2026, 10, 29, 4, 0), W, HIGH, 100, "website", "maria", 0.5 * H, 50_000),  # Thu 29 Oct 00:00 EDT
    Row("B", utc(2026, 10, 30, 15, 0), P, HIGH, 85, "website", "sam", 2 * H, 80_000),  # Fri 30 Oct
    Row("H", utc(2026, 10, 30, 12, 0), L, MEDIUM, 55, "event", "sam", 48 * H),  # Fri 30 Oct
    Row("C", utc(2026, 11, 1, 3, 30), N, MEDIUM, 70, "referral", None, None, 90_000),  # Sat 31 Oct 23:30 EDT
    Row("D", utc(2026, 11, 1, 5, 30), L, LOW, 25, "website", "sam", 96 * H),  # Sun 1 Nov 01:30 EDT
    Row("E", utc(2026, 11, 1, 6, 30), C, HIGH, 95, "referral", "maria", 5 * H),  # Sun 1 Nov 01:30 EST
    Row("F", utc(2026, 11, 2, 4, 30), Q, MEDIUM, 70, "linkedin", None, 24 * H, 20_000),  # Sun 1 Nov 23:30 EST
    Row("G", utc(2026, 11, 4, 16, 0), N, LOW, 15, "website"),  # Wed 4 Nov
    # The 7 days before.
    Row("P1", utc(2026, 10, 29, 3, 59), W, HIGH, 88, "website", None, H / 6),  # Wed 28 Oct 23:59 EDT
    Row("P2", utc(2026, 10, 23, 14, 0), N, MEDIUM, 50, "website"),
    Row("P3", utc(2026, 10, 25, 14, 0), C, LOW, 30, "referral", None, 30 * H),
    Row("P4", utc(2026, 10, 26, 14, 0), L, HIGH, 82, "linkedin", "sam", 3 * H),
    # Long before: only in the pipeline.
    Row("O1", utc(2026, 9, 1, 14, 0), W, HIGH, 99, "website", None, H),
]
# (lead, channel, step, status, when it was sent or last changed)
FOLLOW_UPS = [
    ("A", Channel.EMAIL, 1, FollowUpStatus.SENT, utc(2026, 10, 29, 4, 1)),
    ("A", Channel.CALL, 2, FollowUpStatus.DONE, utc(2026, 10, 29, 6, 0)),
    ("B", Channel.EMAIL, 1, FollowUpStatus.SENT, utc(2026, 10, 30, 15, 1)),
    ("B", Channel.SMS, 3, FollowUpStatus.FAILED, utc(2026, 10, 31, 10, 0)),
    ("E", Channel.EMAIL, 1, FollowUpStatus.FAILED, utc(2026, 11, 1, 7, 0)),
    ("E", Channel.CALL, 2, FollowUpStatus.TASK, utc(2026, 11, 1, 8, 0)),  # a call still to make: no outcome
    ("E", Channel.EMAIL, 4, FollowUpStatus.CANCELLED, utc(2026, 11, 2, 10, 0)),
    ("G", Channel.EMAIL, 1, FollowUpStatus.SCHEDULED, utc(2026, 11, 4, 16, 0)),  # waiting: no outcome
    ("P1", Channel.EMAIL, 1, FollowUpStatus.SENT, utc(2026, 10, 28, 12, 0)),
    ("P4", Channel.EMAIL, 1, FollowUpStatus.SENT, utc(2026, 10, 26, 15, 0)),
    ("P4", Channel.SMS, 3, FollowUpStatus.FAILED, utc(2026, 10, 27, 10, 0)),
    ("P4", Channel.EMAIL, 4, FollowUpStatus.SENT, utc(2026, 10, 30, 10, 0)),  # an old lead, sent this week
    ("O1", Channel.EMAIL, 1, FollowUpStatus.SENT, utc(2026, 9, 1, 14, 5)),
]


def add_leads(engine: Engine, rows: list[Row], follow_ups: list[tuple] | tuple = ()) -> dict[str, str]:
    """Saves the rows (and follow-ups) as they would stand after their history; returns lead ids by name."""
    with session_scope(engine) as session:
        people = {name: make_user(session, name, role).id for name, role in (("maria", Role.MANAGER),
                                                                             ("sam", Role.STAFF))}
        ids = {}
        for row in rows:
            closed = row.status in (LeadStatus.WON, LeadStatus.LOST)
            contacted = row.created + row.contacted_after if row.contacted_after is not None else None
            lead = Lead(full_name=f"Lead {row.name}", email=f"{row.name.lower()}@example.com", message="hello",
                        company=f"{row.name} Ltd", score=row.score, priority=row.priority, source=row.source,
                        status=row.status, assignee_id=people.get(row.assignee), first_contacted_at=contacted,
                        closed_at=(contacted or row.created) + H if closed else None,
                        budget_usd=Decimal(row.budget_usd) if row.budget_usd else None,
                        budget=f"${row.budget_usd:,}" if row.budget_usd else None,
                        created_at=row.created, updated_at=row.created)
            session.add(lead)
            session.flush()
            ids[row.name] = lead.id
        steps = {}
        for number in range(1, 5):
            step = SequenceStep(priority=Priority.HIGH, position=90 + number, delay_minutes=number,
                                channel=Channel.EMAIL, body_template="Hi")
            session.add(step)
            session.flush()
            steps[number] = step.id
        for name, channel, number, status, at in follow_ups:
            done = status in (FollowUpStatus.SENT, FollowUpStatus.DONE)
            session.add(FollowUp(lead_id=ids[name], step_id=steps[number], number=number, channel=channel,
                                 status=status, due_at=at, sent_at=at if done else None, created_at=at,
                                 updated_at=at))
    return ids


@pytest.fixture
def known(engine: Engine) -> dict[str, str]:
    return add_leads(engine, LEADS, FOLLOW_UPS)


def user_id(engine: Engine, username: str) -> str:
    with session_scope(engine) as session:
        return users.get_by_username(session=session, username=username).id


SUMMARISED: dict[Engine, bool] = {}


@pytest.fixture(params=["counted", "summarised"])
def engine(engine: Engine, request: pytest.FixtureRequest) -> Engine:
    """The test's database, its dashboard read without or with the daily summaries."""
    SUMMARISED[engine] = request.param == "summarised"
    return engine


def view(engine: Engine, kind: str = "last_7_days", filters: DashboardFilters = EVERYTHING,
         timezone: str = NEW_YORK, period: Period | None = None) -> dashboard_service.DashboardData:
    if SUMMARISED[engine]:
        with session_scope(engine) as session:  # the pass runs "now", long after NOW: every day is summarised
            day_stats.refresh(session=session, timezone=timezone)
    with session_scope(engine) as session:
        data = dashboard_service.dashboard(session=session, period=period or period_for(kind, now=NOW,
                                                                                          timezone=timezone),
                                           filters=filters, timezone=timezone, now=NOW)
    assert (data.summaries_until is not None) == SUMMARISED[engine]
    return data


def ny(*args: int) -> datetime:
    return datetime(*args, tzinfo=ZoneInfo(NEW_YORK))


# --- the figures -------------------------------------------------------------------------------------------------


def test_every_kpi_of_the_period_and_the_one_before_equals_a_hand_count(engine, known):
    data = view(engine)

    assert (data.period.start, data.period.end) == (ny(2026, 10, 29), ny(2026, 11, 5))
    assert (data.previous_period.start, data.previous_period.end) == (ny(2026, 10, 22), ny(2026, 10, 29))
    now = data.current
    assert (now.new_leads, now.high_leads, now.high_share_pct) == (8, 3, 37.5)  # A, B, E of A-H
    assert now.average_score == 64.4  # (100+85+55+70+25+95+70+15) / 8 = 64.375
    assert (now.contacted_within_24h, now.contacted_within_24h_pct) == (4, 50.0)  # A, B, E and F at exactly 24 h
    assert (now.won, now.lost, now.conversion_to_won_pct) == (1, 2, 12.5)
    # P4's step 4 went out this week though P4 arrived the week before: follow-ups count when they happen.
    assert (now.followups_sent, now.followups_failed, now.calls_done) == (3, 2, 1)
    before = data.previous
    assert (before.new_leads, before.high_leads, before.high_share_pct, before.average_score) == (4, 2, 50.0, 62.5)
    assert (before.contacted_within_24h, before.contacted_within_24h_pct) == (2, 50.0)  # P1 and P4; P3 took 30 h
    assert (before.won, before.lost, before.conversion_to_won_pct) == (1, 1, 25.0)
    assert (before.followups_sent, before.followups_failed, before.calls_done) == (2, 1, 0)


def test_every_series_equals_a_hand_count(engine, known):
    data = view(engine)

    assert data.pipeline == {"NEW": 3, "CONTACTED": 2, "QUALIFIED": 1, "PROPOSAL_SENT": 1, "WON": 3, "LOST": 3}
    assert data.sources == ["event", "linkedin", "referral", "website"]
    assert data.funnel == [{"stage": "NEW", "leads": 8},
                           {"stage": "CONTACTED", "leads": 6},  # B E F + WON A + the lost D and H, worked first
                           {"stage": "QUALIFIED", "leads": 3}, {"stage": "PROPOSAL_SENT", "leads": 2},
                           {"stage": "WON", "leads": 1}]
    assert data.response_times == [{"bucket": "< 1 h", "leads": 1}, {"bucket": "1-4 h", "leads": 1},
                                   {"bucket": "4-24 h", "leads": 2}, {"bucket": "1-3 days", "leads": 1},
                                   {"bucket": "> 3 days", "leads": 1}, {"bucket": "not yet", "leads": 2}]
    assert {r["band"]: r["leads"] for r in data.score_histogram if r["leads"]} == {
        "10-19": 1, "20-29": 1, "50-59": 1, "70-79": 2, "80-89": 1, "90-100": 2}
    assert [r["band"] for r in data.score_histogram] == dashboard_service.SCORE_BANDS
    assert data.by_source == [
        {"source": "website", "leads": 4, "high": 2, "won": 1, "conversion_pct": 25.0},
        {"source": "referral", "leads": 2, "high": 1, "won": 0, "conversion_pct": 0.0},
        {"source": "event", "leads": 1, "high": 0, "won": 0, "conversion_pct": 0.0},
        {"source": "linkedin", "leads": 1, "high": 0, "won": 0, "conversion_pct": 0.0},
    ]
    assert data.followup_outcomes == [
        {"channel": "CALL", "step": 2, "status": "DONE", "count": 1},
        {"channel": "EMAIL", "step": 1, "status": "SENT", "count": 2},
        {"channel": "EMAIL", "step": 1, "status": "FAILED", "count": 1},
        {"channel": "EMAIL", "step": 4, "status": "SENT", "count": 1},
        {"channel": "EMAIL", "step": 4, "status": "CANCELLED", "count": 1},
        {"channel": "SMS", "step": 3, "status": "FAILED", "count": 1},
    ]
    # Open leads of the period by score, a tie (C and F at 70) broken by the larger budget.
    top = data.top_opportunities
    assert [r["name"] for r in top] == ["Lead E", "Lead B", "Lead C", "Lead F", "Lead G"]
    assert top[1] == {"id": known["B"], "name": "Lead B", "company": "B Ltd", "score": 85, "priority": "HIGH",
                      "budget": "$80,000", "budget_usd": 80000.0, "status": "PROPOSAL_SENT", "age_days": 5,
                      "assignee": "sam"}


def test_leads_fall_on_their_local_day_across_the_end_of_daylight_saving_time(engine, known):
    days = view(engine).leads_by_day

    assert [r["day"] for r in days[::3]] == [date(2026, 10, 29) + timedelta(days=i) for i in range(7)]
    by_day = {(r["day"], r["priority"]): r["leads"] for r in days if r["leads"]}
    assert by_day == {
        (date(2026, 10, 29), "HIGH"): 1,  # A at 00:00 EDT, the first instant of the period
        (date(2026, 10, 30), "HIGH"): 1, (date(2026, 10, 30), "MEDIUM"): 1,
        (date(2026, 10, 31), "MEDIUM"): 1,  # C: 03:30 UTC on 1 Nov is still Saturday evening in New York
        # D and E at 01:30 on either side of the change, F at 23:30 EST (a fixed -4 h offset would say 2 Nov)
        (date(2026, 11, 1), "LOW"): 1, (date(2026, 11, 1), "HIGH"): 1, (date(2026, 11, 1), "MEDIUM"): 1,
        (date(2026, 11, 4), "LOW"): 1,
    }
    assert sum(r["leads"] for r in days) == 8


def test_a_half_hour_zone_splits_days_at_its_own_midnight(engine):
    # Kolkata is UTC+05:30: local midnight is 18:30 UTC.
    add_leads(engine, [Row("K1", utc(2026, 11, 2, 18, 29), N, LOW, 10, "api"),
                       Row("K2", utc(2026, 11, 2, 18, 30), N, LOW, 10, "api")])

    days = view(engine, timezone="Asia/Kolkata").leads_by_day

    assert {r["day"]: r["leads"] for r in days if r["leads"]} == {date(2026, 11, 2): 1, date(2026, 11, 3): 1}


def test_filters_narrow_every_figure(engine, known):
    website = view(engine, filters=DashboardFilters(source="website"))

    assert (website.current.new_leads, website.current.high_leads, website.previous.new_leads) == (4, 2, 2)
    assert website.pipeline == {"NEW": 2, "CONTACTED": 0, "QUALIFIED": 0, "PROPOSAL_SENT": 1, "WON": 3, "LOST": 1}
    assert website.sources == ["event", "linkedin", "referral", "website"]  # what the source filter offers
    assert [r["source"] for r in website.by_source] == ["website"]
    assert sum(r["leads"] for r in website.leads_by_day) == sum(r["leads"] for r in website.score_histogram) == 4
    assert website.funnel[0] == {"stage": "NEW", "leads": 4}
    assert [r["name"] for r in website.top_opportunities] == ["Lead B", "Lead G"]
    assert (website.current.followups_sent, website.current.followups_failed, website.current.calls_done) == (2, 1, 1)
    assert (website.previous.followups_sent, website.previous.followups_failed) == (1, 0)

    sams = view(engine, filters=DashboardFilters(assignee_id=user_id(engine, "sam")))

    assert (sams.current.new_leads, sams.current.won, sams.current.lost, sams.previous.new_leads) == (3, 0, 2, 1)
    assert sams.pipeline == {"NEW": 0, "CONTACTED": 0, "QUALIFIED": 0, "PROPOSAL_SENT": 1, "WON": 0, "LOST": 3}
    assert sams.sources == ["event", "website"]  # the sources of their leads of the period
    assert (sams.current.followups_sent, sams.current.followups_failed) == (2, 1)  # B's email and P4's step 4
    assert (sams.previous.followups_sent, sams.previous.followups_failed) == (1, 1)
    assert [r["name"] for r in sams.top_opportunities] == ["Lead B"]
    assert {(r["channel"], r["step"], r["status"]) for r in sams.followup_outcomes} == {
        ("EMAIL", 1, "SENT"), ("SMS", 3, "FAILED"), ("EMAIL", 4, "SENT")}

    both = view(engine, filters=DashboardFilters(source="referral", assignee_id=user_id(engine, "sam")))
    assert both.current.new_leads == 0 and both.is_empty


def test_an_empty_database_gives_zeros_and_no_shares(engine):
    data = view(engine)

    assert data.is_empty
    assert data.current.new_leads == 0 and data.current.high_share_pct is None
    assert data.current.average_score is None and data.current.conversion_to_won_pct is None
    assert data.top_opportunities == [] and data.by_source == [] and data.followup_outcomes == []
    assert sum(r["leads"] for r in data.leads_by_day) == 0 and len(data.leads_by_day) == 7 * 3


def test_a_period_built_by_hand_compares_with_the_same_span_before(engine, known):
    # As a weekly report would ask: Monday to Monday in New York, built without period_for.
    week = Period(start=ny(2026, 10, 26), end=ny(2026, 11, 2), label="week 44")

    data = view(engine, period=week)

    assert (data.previous_period.start, data.previous_period.end) == (ny(2026, 10, 19), ny(2026, 10, 26))
    # P4 (Mon 26 Oct), P1 (Wed 28 Oct), A, B, H, C, D, E; F is Sunday 23:30 EST, still in.
    assert data.current.new_leads == 9
    assert data.previous.new_leads == 2  # P2 and P3
    assert len(data.leads_by_day) == 7 * 3


# --- periods -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "start", "end"), [
    ("last_7_days", ny(2026, 10, 29), ny(2026, 11, 5)),
    ("last_30_days", ny(2026, 10, 6), ny(2026, 11, 5)),
    ("last_90_days", ny(2026, 8, 7), ny(2026, 11, 5)),
    ("this_week", ny(2026, 11, 2), NOW),
    ("last_week", ny(2026, 10, 26), ny(2026, 11, 2)),
    ("this_month", ny(2026, 11, 1), NOW),
    ("last_month", ny(2026, 10, 1), ny(2026, 11, 1)),
])
def test_period_bounds_are_local_midnights(kind, start, end):
    period = period_for(kind, now=NOW, timezone=NEW_YORK)

    assert (period.start, period.end) == (start, end)
    assert period.start.utcoffset() == start.utcoffset()  # the zone's own offset on that day
    assert period.label.startswith(dashboard_service.PERIOD_KINDS[kind])


@pytest.mark.parametrize(("kind", "start", "end"), [
    ("last_7_days", ny(2026, 10, 22), ny(2026, 10, 29)),
    ("last_30_days", ny(2026, 9, 6), ny(2026, 10, 6)),
    ("this_week", ny(2026, 10, 26), ny(2026, 10, 28, 12)),  # last week up to the same hour
    ("last_week", ny(2026, 10, 19), ny(2026, 10, 26)),
    ("this_month", ny(2026, 10, 1), ny(2026, 10, 4, 12)),  # last month up to the same day and hour
    ("last_month", ny(2026, 9, 1), ny(2026, 10, 1)),
])
def test_the_previous_period_is_the_same_span_just_before(kind, start, end):
    previous = period_for(kind, now=NOW, timezone=NEW_YORK).previous()

    assert (previous.start, previous.end) == (start, end)


def test_day_and_month_bounds_across_the_start_of_daylight_saving_time():
    # Europe/Berlin springs forward on Sun 29 Mar 2026: that day has 23 hours.
    berlin = ZoneInfo("Europe/Berlin")
    now = datetime(2026, 4, 1, 10, tzinfo=UTC)

    week = period_for("last_7_days", now=now, timezone="Europe/Berlin")
    month = period_for("last_month", now=now, timezone="Europe/Berlin")

    assert week.start == datetime(2026, 3, 26, tzinfo=berlin) and week.end == datetime(2026, 4, 2, tzinfo=berlin)
    assert week.end.astimezone(UTC) - week.start.astimezone(UTC) == timedelta(days=7, hours=-1)  # 23-hour Sunday
    assert (month.start, month.end) == (datetime(2026, 3, 1, tzinfo=berlin), datetime(2026, 4, 1, tzinfo=berlin))
    previous = month.previous()
    assert (previous.start, previous.end) == (datetime(2026, 2, 1, tzinfo=berlin), datetime(2026, 3, 1, tzinfo=berlin))


def test_an_unknown_zone_or_period_is_refused():
    with pytest.raises(ValidationFailed):
        period_for("last_7_days", now=NOW, timezone="Mars/Olympus")
    with pytest.raises(ValidationFailed):
        period_for("last_fortnight", now=NOW, timezone=NEW_YORK)  # type: ignore[arg-type]


# --- the figures the page draws -----------------------------------------------------------------------------------


def test_the_charts_show_the_series(engine, known):
    data = view(engine)

    over_time = charts.leads_over_time(data.leads_by_day)
    assert [t.name for t in over_time.data] == ["HIGH", "MEDIUM", "LOW"] and over_time.layout.barmode == "stack"
    assert [t.type for t in over_time.data] == ["bar"] * 3
    assert list(over_time.data[0].y) == [1, 1, 0, 1, 0, 0, 0]  # HIGH: A, B, E
    assert list(over_time.data[0].x)[3] == date(2026, 11, 1)

    funnel = charts.status_funnel(data.funnel)
    assert funnel.data[0].type == "funnel"
    assert list(funnel.data[0].x) == [8, 6, 3, 2, 1]
    assert list(funnel.data[0].y) == ["New", "Contacted", "Qualified", "Proposal sent", "Won"]

    scores = charts.score_distribution(data.score_histogram)
    assert list(scores.data[0].x) == dashboard_service.SCORE_BANDS and sum(scores.data[0].y) == 8

    sources = charts.leads_by_source(data.by_source)
    assert [t.name for t in sources.data] == ["Leads", "HIGH", "Conversion to WON %"]
    assert list(sources.data[0].x) == ["website", "referral", "event", "linkedin"]
    assert list(sources.data[0].y) == [4, 2, 1, 1] and list(sources.data[2].y) == [25.0, 0.0, 0.0, 0.0]
    assert sources.data[2].yaxis == "y2"

    response = charts.response_times(data.response_times)
    assert list(response.data[0].y) == [1, 1, 2, 1, 1, 2]

    outcomes = charts.follow_up_outcomes(data.followup_outcomes)
    assert list(outcomes.data[0].x) == ["Call · step 2", "Email · step 1", "Email · step 4", "SMS · step 3"]
    assert {t.name: list(t.y) for t in outcomes.data} == {
        "Sent": [0, 2, 1, 0], "Call made": [1, 0, 0, 0], "Failed": [0, 1, 0, 1], "Stopped": [0, 0, 1, 0]}

    pipeline = charts.pipeline(data.pipeline)
    assert list(pipeline.data[0].x) == [3, 2, 1, 1, 3, 3] and pipeline.data[0].orientation == "h"

    # What the page caches: every figure as a plain dict, made a figure again without a second validation.
    specs = charts.specs(data)
    assert set(specs) == {"leads_over_time", "pipeline", "funnel", "scores", "sources", "response_times",
                          "follow_up_outcomes"}
    again = charts.figure(specs["funnel"])
    assert again.data[0].type == "funnel" and list(again.data[0].x) == [8, 6, 3, 2, 1]
    assert again.to_plotly_json() == funnel.to_plotly_json()


def test_the_charts_module_does_not_need_streamlit():
    import ast
    from pathlib import Path

    tree = ast.parse(Path(charts.__file__).read_text(encoding="utf-8"))
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.module}
    assert imported <= {"__future__", "collections", "typing", "plotly"}
