"""Lead analysis: the one place that chooses between the Gemini engine and the rules engine."""

from __future__ import annotations

import logging

from core import ai  # the module, not its names: core.ai itself imports core.analysis.base
from core.analysis.base import AnalysisResult, Factor, LeadFacts
from core.analysis.gemini import GeminiEngine
from core.analysis.rules import RulesEngine
from core.config import Settings
from core.profile import BusinessProfile, ScoringConfig
from db.models import Priority

log = logging.getLogger(__name__)

__all__ = ["AnalysisResult", "LeadFacts", "analyze", "engine_name"]


def engine_name(settings: Settings) -> str:
    """The engine new leads are analysed with under these settings."""
    return "gemini" if settings.ai_enabled else "rules"


def analyze(lead: LeadFacts, *, settings: Settings, profile: BusinessProfile, scoring: ScoringConfig) -> AnalysisResult:
    """Gemini's analysis when a key is set and it answers well, otherwise the rules engine's, marked as a fallback."""
    rules = RulesEngine().analyze(lead, profile=profile, scoring=scoring)
    if not settings.ai_enabled:
        return rules
    try:
        result = GeminiEngine(settings).analyze(lead, profile=profile, scoring=scoring)
    except ai.AiUnavailable as exc:
        log.warning("AI analysis unavailable (%s); using the rules engine", exc)
        return rules.model_copy(update={
            "fallback_reason": f"AI unavailable ({exc.kind}); rules analysis saved, re-analysis queued",
            "ai_calls": exc.calls,
        })
    return _guard_injection(result, rules, scoring)


def _guard_injection(result: AnalysisResult, rules: AnalysisResult, scoring: ScoringConfig) -> AnalysisResult:
    """A lead that tries to instruct the model is flagged, and reaches HIGH only if the rules agree."""
    if not (result.injection_suspected or rules.injection_suspected):
        return result
    reason = rules.review_reason or "possible prompt injection: the model reported instructions in the lead"
    update: dict[str, object] = {"injection_suspected": True, "review_reason": reason}
    if result.priority == Priority.HIGH and rules.priority != Priority.HIGH:
        # The model may have been talked into HIGH: the rules' score (the lead's merit without the model) stands.
        update["score"] = rules.score
        update["priority"] = rules.priority
        update["factors"] = [*result.factors, Factor(
            name="injection guard", impact=rules.score - result.score,
            detail="the lead tries to instruct the AI; HIGH needs the rules engine to agree")]
    return result.model_copy(update=update)
