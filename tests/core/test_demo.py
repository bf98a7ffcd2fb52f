"""Tests for core.demo: the synthetic leads a new installation and the benchmarks start from."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, func, select

from core import app_settings, demo
from core.analysis.base import LeadFacts
from core.analysis.rules import RulesEngine
from core.schemas import LeadCreate
from db.models import Activity, ActivityKind, Lead, LeadAnalysis, LeadStatus, Role, User
from db.session import session_scope

NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
LEADS = 300


@pytest.fixture
def seeded(engine: Engine) -> Engine:
    assert demo.is_empty(engine=engine)
    calls: list[tuple[int, int]] = []
    assert demo.seed(engine=engine, leads=LEADS, now=NOW, progress=lambda done, total: calls.append((done, total))) \
        == LEADS
    assert calls[-1] == (LEADS, LEADS)
    return engine


def _leads(engine: Engine) -> list[Lead]:
    with session_scope(engine) as session:
        return list(session.scalars(select(Lead)))


def test_seed_creates_the_asked_number_of_leads_each_with_one_matching_analysis(seeded: Engine) -> None:
    assert not demo.is_empty(engine=seeded)
    with session_scope(seeded) as session:
        assert session.scalar(select(func.count()).select_from(Lead)) == LEADS
        rows = session.execute(select(Lead.score, Lead.priority, Lead.needs_review, LeadAnalysis.score,
                                      LeadAnalysis.priority, LeadAnalysis.review_reason, LeadAnalysis.engine)
                               .join(LeadAnalysis, LeadAnalysis.lead_id == Lead.id)).all()
    assert len(rows) == LEADS
    for score, priority, needs_review, a_score, a_priority, review_reason, engine_name in rows:
        assert (score, priority) == (a_score, a_priority)
        assert needs_review == (review_reason is not None)
        assert engine_name == "rules"
    assert {r[1].value for r in rows} == {"HIGH", "MEDIUM", "LOW"}


def test_scores_are_the_rules_engines_own(seeded: Engine) -> None:
    with session_scope(seeded) as session:
        profile = app_settings.get_profile(session=session)
        scoring = app_settings.get_scoring(session=session)
        sample = list(session.scalars(select(Lead).order_by(Lead.created_at).limit(40)))
        for lead in sample:
            facts = LeadFacts.of(full_name=lead.full_name, email=lead.email, message=lead.message, phone=lead.phone,
                                 company=lead.company, budget=lead.budget, project_type=lead.project_type,
                                 source=lead.source)
            assert RulesEngine().analyze(facts, profile=profile, scoring=scoring).score == lead.score


def test_dates_spread_over_the_past_six_months_and_never_in_the_future(seeded: Engine) -> None:
    with session_scope(seeded) as session:
        created = list(session.scalars(select(Lead.created_at)))
        latest_activity = session.scalar(select(func.max(Activity.created_at)))
        updated = list(session.scalars(select(Lead.updated_at)))
    assert all(NOW - timedelta(days=183) <= c <= NOW for c in created)
    assert all(c.tzinfo is not None for c in created)
    assert latest_activity <= NOW and max(updated) <= NOW
    # Spread out, with the recent months busier than the oldest.
    months = Counter((NOW - c).days // 30 for c in created)
    assert len(months) >= 6
    assert months[0] + months[1] > months[4] + months[5]


def test_leads_look_like_a_real_inbox(seeded: Engine) -> None:
    leads = _leads(seeded)
    assert len({lead.source for lead in leads}) >= 5
    assert {lead.status for lead in leads} == set(LeadStatus)
    assert len({lead.company for lead in leads if lead.company}) >= 50
    assert len({lead.budget for lead in leads if lead.budget}) >= 50
    assert any(lead.budget is None for lead in leads)
    assert len({lead.project_type for lead in leads}) >= 6
    assert len({lead.full_name for lead in leads}) >= 200
    company_mail = [lead for lead in leads if lead.email.endswith(".example")]
    assert len(company_mail) > LEADS / 3
    assert any(lead.email.endswith(("@gmail.com", "@outlook.com", "@yahoo.com")) for lead in leads)
    # Every lead would pass the intake form's validation unchanged.
    for lead in leads:
        checked = LeadCreate(full_name=lead.full_name, email=lead.email, message=lead.message, phone=lead.phone,
                             company=lead.company, budget=lead.budget, project_type=lead.project_type,
                             source=lead.source)
        assert (checked.email, checked.phone, checked.message) == (lead.email, lead.phone, lead.message)


def _share_new(leads: list[Lead]) -> float:
    return sum(lead.status == LeadStatus.NEW for lead in leads) / len(leads)


def test_older_leads_are_further_along_the_funnel(seeded: Engine) -> None:
    leads = _leads(seeded)
    recent = [lead for lead in leads if NOW - lead.created_at < timedelta(days=7)]
    old = [lead for lead in leads if NOW - lead.created_at > timedelta(days=60)]
    assert _share_new(recent) > 2 * _share_new(old)
    assert all(lead.status not in (LeadStatus.WON, LeadStatus.PROPOSAL_SENT) for lead in recent
               if NOW - lead.created_at < timedelta(days=1))


def test_some_leads_are_assigned_to_the_demo_team(seeded: Engine) -> None:
    with session_scope(seeded) as session:
        team = {u.id: u for u in session.scalars(select(User))}
        assignees = [a for a in session.scalars(select(Lead.assignee_id)) if a]
    assert 3 <= len(team) <= 4
    assert {u.role for u in team.values()} == {Role.MANAGER, Role.STAFF}
    assert len(assignees) > LEADS / 4
    assert set(assignees) <= set(team)


def test_every_lead_has_a_timeline_that_ends_in_its_status(seeded: Engine) -> None:
    with session_scope(seeded) as session:
        leads = {lead.id: lead for lead in session.scalars(select(Lead))}
        entries = session.execute(select(Activity.lead_id, Activity.kind, Activity.data, Activity.created_at)
                                  .order_by(Activity.created_at)).all()
    kinds: dict[str, list[ActivityKind]] = {}
    last_status: dict[str, str] = {}
    for lead_id, kind, data, _at in entries:
        kinds.setdefault(lead_id, []).append(kind)
        if kind == ActivityKind.STATUS_CHANGED:
            last_status[lead_id] = data["to"]
    assert set(kinds) == set(leads)
    for lead_id, lead in leads.items():
        assert kinds[lead_id][:2] == [ActivityKind.CREATED, ActivityKind.ANALYZED]
        assert last_status.get(lead_id, "NEW") == lead.status.value
    every_kind = Counter(kind for ks in kinds.values() for kind in ks)
    assert set(every_kind) == set(ActivityKind)


def test_the_same_seed_gives_the_same_leads(seeded: Engine, capsys: pytest.CaptureFixture[str]) -> None:
    first = Counter((lead.full_name, lead.email, lead.score, lead.status) for lead in _leads(seeded))
    assert demo.seed(engine=seeded, leads=LEADS, now=NOW) == LEADS
    both = Counter((lead.full_name, lead.email, lead.score, lead.status) for lead in _leads(seeded))
    assert both == first + first
    with session_scope(seeded) as session:
        assert session.scalar(select(func.count()).select_from(User)) <= 4  # the team is reused, not duplicated
    assert capsys.readouterr() == ("", "")  # nothing printed: no passwords anywhere


def test_another_seed_gives_other_leads(engine: Engine) -> None:
    demo.seed(engine=engine, leads=50, seed=1, now=NOW)
    first = {lead.email for lead in _leads(engine)}
    demo.seed(engine=engine, leads=50, seed=2, now=NOW)
    assert len({lead.email for lead in _leads(engine)} - first) > 40


def test_zero_leads_adds_nothing(engine: Engine) -> None:
    assert demo.seed(engine=engine, leads=0, now=NOW) == 0
    assert demo.is_empty(engine=engine)
