"""The dashboard's daily summaries, on SQLite and PostgreSQL: what the `dashboard` job counts is what counting the
leads and follow-ups gives, after any change a person or a pass can make, and the dashboard reads them.

The data set and its hand counts are tests/core/test_dashboard.py's (New York, "now" Wed 4 Nov 2026 at noon).
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest
from sqlalchemy import Engine, func, select

from core import dashboard as dashboard_service
from core import day_stats, duplicates, followups, leads
from core.dashboard import DashboardFilters, period_for
from core.schemas import LeadUpdate
from db.models import DayStatsDirty, FollowUp, FollowUpStatus, Lead, LeadDayStats, LeadStatus, Priority
from db.session import session_scope
from jobs import registry
from tests.core.test_dashboard import FOLLOW_UPS, LEADS, NEW_YORK, NOW, add_leads, user_id
from tests.support.concurrency import at_once

pytestmark = pytest.mark.usefixtures("fast_bcrypt")
KINDS = ("last_7_days", "last_30_days", "last_week", "this_month", "last_month")


@pytest.fixture
def known(engine: Engine) -> dict[str, str]:
    return add_leads(engine, LEADS, FOLLOW_UPS)


def refresh(engine: Engine, timezone: str = NEW_YORK, **kwargs) -> day_stats.RefreshSummary:
    with session_scope(engine) as session:
        return day_stats.refresh(session=session, timezone=timezone, **kwargs)


def view(engine: Engine, kind: str = "last_7_days", filters: DashboardFilters = DashboardFilters(),
         timezone: str = NEW_YORK, summaries: bool = True) -> dashboard_service.DashboardData:
    with session_scope(engine) as session:
        data = dashboard_service.dashboard(session=session, period=period_for(kind, now=NOW, timezone=timezone),
                                           filters=filters, timezone=timezone, now=NOW, summaries=summaries)
    return dataclasses.replace(data, computed_at=NOW)


def assert_summaries_agree(engine: Engine, timezone: str = NEW_YORK) -> None:
    """Every period and filter reads the same figures from the summaries as from the leads themselves."""
    sam = user_id(engine, "sam")
    for kind in KINDS:
        for filters in (DashboardFilters(), DashboardFilters(source="website"), DashboardFilters(assignee_id=sam)):
            summarised = view(engine, kind, filters, timezone)
            assert summarised.summaries_until is not None
            counted = view(engine, kind, filters, timezone, summaries=False)
            assert summarised.summarised_at is not None
            assert dataclasses.replace(summarised, summaries_until=None, summarised_at=None) == counted, (kind, filters)


def test_a_pass_counts_what_the_leads_say(engine, known):
    summary = refresh(engine)

    assert summary.rebuilt
    assert summary.line().startswith("dashboard: rebuilt every day")
    assert_summaries_agree(engine)
    with session_scope(engine) as session:
        assert session.scalar(select(func.sum(LeadDayStats.leads))) == len(LEADS)
    # Nothing changed: the next pass counts no day again.
    assert refresh(engine).days == 0


def test_a_change_to_an_older_lead_shows_after_the_next_pass(engine, known):
    refresh(engine)
    with session_scope(engine) as session:  # lead A (Thu 29 Oct), won, turns out lost
        lead = session.get(Lead, known["A"])
        leads.update(session=session, lead=lead, changes=LeadUpdate(status=LeadStatus.LOST), actor="maria")

    # Thu 29 Oct is read from the summaries until a pass counts it again.
    assert view(engine).current.won == 1
    summary = refresh(engine)

    assert not summary.rebuilt
    assert summary.days >= 1
    assert view(engine).current.won == 0
    assert_summaries_agree(engine)


def test_deleted_merged_and_retried_rows_leave_the_summaries(engine, known):
    refresh(engine)
    with session_scope(engine) as session:
        leads.delete(session=session, lead_id=known["H"], actor="maria")  # lost, Fri 30 Oct
        duplicates.merge(session=session, keep_id=known["C"], drop_id=known["E"], actor="maria")
        failed = session.scalar(select(FollowUp).where(FollowUp.lead_id == known["B"],
                                                       FollowUp.status == FollowUpStatus.FAILED))
        followups.retry(session=session, follow_up_id=failed.id, actor="maria")  # failed Sat 31 Oct, queued again

    refresh(engine)

    data = view(engine)
    assert data.current.new_leads == 6  # 8, less H deleted and E merged into C
    # B's SMS was queued again; E's email, moved to C, still failed on Sun 1 Nov.
    assert data.current.followups_failed == 1
    assert_summaries_agree(engine)


def test_a_pass_uses_up_the_marked_days(engine, known):
    refresh(engine)
    with session_scope(engine) as session:
        leads.delete(session=session, lead_id=known["H"], actor="maria")  # lost, Fri 30 Oct
        assert session.scalar(select(func.count()).select_from(DayStatsDirty))

    assert refresh(engine).days >= 1  # at least H's arrival day, counted again

    with session_scope(engine) as session:
        assert session.scalar(select(func.count()).select_from(DayStatsDirty)) == 0
    assert refresh(engine).days == 0  # nothing changed since
    assert_summaries_agree(engine)


def test_new_leads_show_before_any_pass(engine, known):
    refresh(engine)
    with session_scope(engine) as session:  # arrived an hour ago, today
        arrived = NOW - timedelta(hours=1)
        session.add(Lead(full_name="Lead T", email="t@example.com", message="hello", score=90, priority=Priority.HIGH,
                         source="website", created_at=arrived, updated_at=arrived))

    data = view(engine)

    assert data.current.new_leads == 9
    assert data.current.high_leads == 4
    assert_summaries_agree(engine)


def test_another_time_zone_rebuilds_every_day(engine, known):
    refresh(engine)

    summary = refresh(engine, timezone="Asia/Kolkata")

    assert summary.rebuilt
    assert_summaries_agree(engine, timezone="Asia/Kolkata")
    # Summaries cut in another zone are never read.
    with session_scope(engine) as session:
        data = dashboard_service.dashboard(session=session, period=period_for("last_7_days", now=NOW,
                                                                              timezone=NEW_YORK),
                                           filters=DashboardFilters(), timezone=NEW_YORK, now=NOW)
    assert data.summaries_until is None


def test_before_the_first_pass_every_figure_is_counted(engine, known):
    data = view(engine)

    assert data.summaries_until is None
    assert data.current.new_leads == 8


def test_two_passes_at_once_count_each_day_once(engine, db_url, known):
    def rebuild(own_engine: Engine) -> day_stats.RefreshSummary:
        with session_scope(own_engine) as session:
            return day_stats.refresh(session=session, timezone=NEW_YORK, rebuild=True)

    assert all(summary.rebuilt for summary in at_once(db_url, rebuild))

    with session_scope(engine) as session:
        assert session.scalar(select(func.sum(LeadDayStats.leads))) == len(LEADS)
    assert_summaries_agree(engine)


def test_the_dashboard_job_runs_a_pass(engine, known, make_settings):
    settings = make_settings(leadops_timezone=NEW_YORK)

    line = registry.run("dashboard", engine=engine, settings=settings)

    assert line.startswith("dashboard: rebuilt every day")
    assert registry.JOBS["dashboard"][1] == 60
    assert registry.run("dashboard", engine=engine, settings=settings).startswith("dashboard: counted again, 0 days")
