"""Previewing scoring settings on SQLite and PostgreSQL: who would move up or down a band, with nothing saved."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, select

from core import app_settings, scoring_preview
from core.profile import BusinessProfile, ScoringConfig
from db.models import AppSetting, Lead, LeadAnalysis, Priority
from db.session import session_scope
from tests.support.factories import make_lead

START = datetime(2026, 2, 2, 9, 0, tzinfo=UTC)
SALON = dict(budget="$12k", company=None, phone=None,
             message="Looking for a simple booking site for my salon with online payments. Not sure on timing.")
STUDENT = dict(email="kid@gmail.com", company=None, phone=None, budget=None,
               message="hi im a student, can you build my class project for free? thanks")


@pytest.fixture
def leads(engine: Engine) -> dict[str, str]:
    """A strong lead (HIGH 100), a small salon (LOW 47) and a student (LOW 0), oldest first: name -> id."""
    with session_scope(engine) as session:
        return {"strong": make_lead(session, created_at=START).id,
                "salon": make_lead(session, created_at=START + timedelta(days=1), **SALON).id,
                "student": make_lead(session, created_at=START + timedelta(days=2), **STUDENT).id}


def preview(engine: Engine, scoring: ScoringConfig | None = None, profile: BusinessProfile | None = None,
            limit: int = 200) -> list[scoring_preview.RerankRow]:
    with session_scope(engine) as session:
        return scoring_preview.rerank_preview(session=session, scoring=scoring or ScoringConfig(),
                                              profile=profile or BusinessProfile(), limit=limit)


def test_the_current_settings_move_nobody(engine: Engine, leads: dict[str, str]):
    rows = preview(engine)

    assert [r.id for r in rows] == [leads["student"], leads["salon"], leads["strong"]], "newest first"
    assert all(r.change == 0 and r.band_move == 0 for r in rows)
    assert scoring_preview.summary(rows) == scoring_preview.RerankSummary(
        total=3, moved_up=0, moved_down=0, unchanged_band=3, score_changed=0)


def test_a_lower_medium_band_lifts_the_salon_to_medium(engine: Engine, leads: dict[str, str]):
    rows = {r.id: r for r in preview(engine, ScoringConfig(medium_min=40))}

    salon = rows[leads["salon"]]
    assert (salon.full_name, salon.company) == ("Dana Whitfield", None)
    assert (salon.old_priority, salon.new_priority, salon.band_move) == (Priority.LOW, Priority.MEDIUM, 1)
    assert salon.old_score == salon.new_score == 47
    assert rows[leads["student"]].new_priority == Priority.LOW
    assert scoring_preview.summary(list(rows.values())) == scoring_preview.RerankSummary(
        total=3, moved_up=1, moved_down=0, unchanged_band=2, score_changed=0)


def test_ignoring_negative_signals_raises_scores_without_changing_bands(engine: Engine, leads: dict[str, str]):
    weights = {"budget": 1.0, "scope": 1.0, "urgency": 1.0, "legitimacy": 1.0, "negative": 0.0}
    rows = {r.id: r for r in preview(engine, ScoringConfig(weights=weights))}

    student = rows[leads["student"]]
    assert (student.old_score, student.new_score, student.change) == (0, 30, 30)
    assert student.band_move == 0
    assert scoring_preview.summary(list(rows.values())).score_changed == 1


def test_a_bigger_target_budget_in_the_profile_drops_the_strong_lead_a_band(engine: Engine, leads: dict[str, str]):
    profile = BusinessProfile(min_budget=50_000, target_budget=500_000, large_budget=1_000_000)

    rows = {r.id: r for r in preview(engine, profile=profile)}

    strong = rows[leads["strong"]]
    assert (strong.old_priority, strong.new_priority, strong.band_move) == (Priority.HIGH, Priority.MEDIUM, -1)
    assert strong.change < 0
    assert scoring_preview.summary(list(rows.values())).moved_down == 1


def test_a_preview_saves_nothing(engine: Engine, leads: dict[str, str]):
    with session_scope(engine) as session:
        before = session.execute(select(Lead.id, Lead.score, Lead.priority, LeadAnalysis.score, LeadAnalysis.updated_at)
                                 .join(LeadAnalysis).order_by(Lead.id)).all()

    preview(engine, ScoringConfig(high_min=60, medium_min=20))

    with session_scope(engine) as session:
        after = session.execute(select(Lead.id, Lead.score, Lead.priority, LeadAnalysis.score, LeadAnalysis.updated_at)
                                .join(LeadAnalysis).order_by(Lead.id)).all()
        assert session.scalars(select(AppSetting)).all() == []
        assert app_settings.get_scoring(session=session) == ScoringConfig()
    assert after == before


def test_only_the_latest_leads_are_previewed(engine: Engine, leads: dict[str, str]):
    rows = preview(engine, limit=2)

    assert [r.id for r in rows] == [leads["student"], leads["salon"]]


def test_the_row_says_which_engine_gave_the_current_score(engine: Engine, leads: dict[str, str]):
    with session_scope(engine) as session:
        analysis = session.scalar(select(LeadAnalysis).where(LeadAnalysis.lead_id == leads["salon"]))
        analysis.engine, analysis.model = "gemini", "gemini-2.5-flash"

    rows = {r.id: r for r in preview(engine)}

    assert rows[leads["salon"]].engine == "gemini"
    assert rows[leads["strong"]].engine == "rules"
