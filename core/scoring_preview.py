"""What proposed scoring settings would do to recent leads, before anyone saves them."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.analysis.base import LeadFacts
from core.analysis.rules import RulesEngine
from core.profile import BusinessProfile, ScoringConfig
from db.models import Lead, LeadAnalysis, Priority

MAX_PREVIEW = 1000
_BAND_RANK = {Priority.LOW: 0, Priority.MEDIUM: 1, Priority.HIGH: 2}


@dataclass(frozen=True)
class RerankRow:
    """One lead's score and priority now, and under the proposed settings."""

    id: str
    full_name: str
    company: str | None
    engine: str | None
    old_score: int
    old_priority: Priority
    new_score: int
    new_priority: Priority

    @property
    def change(self) -> int:
        """Points gained (positive) or lost (negative)."""
        return self.new_score - self.old_score

    @property
    def band_move(self) -> int:
        """+1 or more when the lead moves up a priority band, negative when it moves down, 0 when it stays."""
        return _BAND_RANK[self.new_priority] - _BAND_RANK[self.old_priority]


@dataclass(frozen=True)
class RerankSummary:
    """How many previewed leads move up a band, down a band, or stay."""

    total: int
    moved_up: int
    moved_down: int
    unchanged_band: int
    score_changed: int


def rerank_preview(*, session: Session, scoring: ScoringConfig, profile: BusinessProfile,
                   limit: int = 200) -> list[RerankRow]:
    """The latest `limit` leads, newest first, re-scored by the rules engine under proposed settings (nothing saved)."""
    stmt = (select(Lead.id, Lead.full_name, Lead.email, Lead.message, Lead.phone, Lead.company, Lead.budget,
                   Lead.project_type, Lead.source, Lead.score, Lead.priority, LeadAnalysis.engine)
            .outerjoin(LeadAnalysis, LeadAnalysis.lead_id == Lead.id)
            .order_by(Lead.created_at.desc(), Lead.id.desc()).limit(max(1, min(limit, MAX_PREVIEW))))
    engine = RulesEngine()
    rows = []
    for r in session.execute(stmt):
        facts = LeadFacts.of(full_name=r.full_name, email=r.email, message=r.message, phone=r.phone,
                             company=r.company, budget=r.budget, project_type=r.project_type, source=r.source)
        result = engine.analyze(facts, profile=profile, scoring=scoring)
        rows.append(RerankRow(id=r.id, full_name=r.full_name, company=r.company, engine=r.engine,
                              old_score=r.score, old_priority=r.priority, new_score=result.score,
                              new_priority=result.priority))
    return rows


def summary(rows: list[RerankRow]) -> RerankSummary:
    """Counts of leads moving up a band, down a band, or staying, and of scores that change at all."""
    up = sum(1 for r in rows if r.band_move > 0)
    down = sum(1 for r in rows if r.band_move < 0)
    return RerankSummary(total=len(rows), moved_up=up, moved_down=down, unchanged_band=len(rows) - up - down,
                         score_changed=sum(1 for r in rows if r.change))
