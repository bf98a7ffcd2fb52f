"""Re-analysing leads whose AI analysis failed when they arrived."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine, update

from core import ai_usage, app_settings
from core import leads as lead_service
from core.analysis import LeadFacts, analyze
from core.config import Settings
from core.errors import NotFound
from db.models import Lead
from db.session import session_scope

ACTOR = "system:reanalyze"


@dataclass(frozen=True)
class ReanalysisSummary:
    """What one pass did."""

    analysed: int
    still_failing: int
    waiting: int
    note: str = ""

    def line(self) -> str:
        """The one-line summary a job prints."""
        text = f"reanalyze: {self.analysed} analysed by AI, {self.still_failing} still failing, {self.waiting} waiting"
        return f"{text} ({self.note})" if self.note else text


def run_pass(*, engine: Engine, settings: Settings, limit: int = 50) -> ReanalysisSummary:
    """Re-analyses up to `limit` queued leads; each is claimed first so two passes never take the same one."""
    with session_scope(engine) as session:
        queued = [(lead.id, lead.reanalyze_attempts) for lead in
                  lead_service.queued_for_reanalysis(session=session, limit=limit)]
        profile = app_settings.get_profile(session=session)
        scoring = app_settings.get_scoring(session=session)
    if not settings.ai_enabled:
        return ReanalysisSummary(0, 0, len(queued), note="GEMINI_API_KEY is not set; leads keep the rules analysis")
    analysed = failing = 0
    for lead_id, attempts in queued:
        facts = _claim(engine, lead_id, attempts)
        if facts is None:
            continue
        result = analyze(facts, settings=settings, profile=profile, scoring=scoring)
        with session_scope(engine) as session:
            lead = session.get(Lead, lead_id)
            if lead is None:
                continue
            ai_usage.record(session=session, calls=result.ai_calls, lead_id=lead_id)
            if result.fallback_reason:
                failing += 1
            else:
                lead_service.apply_analysis(session=session, lead=lead, result=result, actor=ACTOR)
                analysed += 1
    return ReanalysisSummary(analysed, failing, max(len(queued) - analysed - failing, 0))


def _claim(engine: Engine, lead_id: str, attempts: int) -> LeadFacts | None:
    """Counts the attempt only if nobody else did (a conditional update), returning the lead's facts."""
    with session_scope(engine) as session:
        claimed = session.execute(
            update(Lead).where(Lead.id == lead_id, Lead.reanalyze_attempts == attempts,
                               Lead.reanalyze_requested_at.is_not(None))
            .values(reanalyze_attempts=attempts + 1)).rowcount
        if not claimed:
            return None
        lead = session.get(Lead, lead_id)
        assert lead is not None
        return _facts(lead)


def analyze_now(*, engine: Engine, settings: Settings, lead_id: str, actor: str) -> str:
    """Analyses one lead again at a person's request and saves the result; returns the engine that answered."""
    with session_scope(engine) as session:
        lead = session.get(Lead, lead_id)
        if lead is None:
            raise NotFound(f"no lead with id {lead_id}")
        facts = _facts(lead)
    profile, scoring = app_settings.scoring_inputs(engine=engine)
    result = analyze(facts, settings=settings, profile=profile, scoring=scoring)
    with session_scope(engine) as session:
        lead = session.get(Lead, lead_id)
        if lead is None:
            raise NotFound(f"lead {lead_id} was deleted meanwhile")
        ai_usage.record(session=session, calls=result.ai_calls, lead_id=lead_id)
        lead_service.apply_analysis(session=session, lead=lead, result=result, actor=actor)
    return result.engine


def _facts(lead: Lead) -> LeadFacts:
    return LeadFacts.of(full_name=lead.full_name, email=lead.email, message=lead.message, phone=lead.phone,
                        company=lead.company, budget=lead.budget, project_type=lead.project_type, source=lead.source)
