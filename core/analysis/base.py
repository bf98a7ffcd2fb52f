"""What every analysis engine takes and gives back."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Literal, Protocol

from pydantic import BaseModel, Field

from core.budget import ParsedBudget, parse_budget
from core.profile import BusinessProfile, ScoringConfig
from db.models import Priority

EngineName = Literal["gemini", "rules", "learned"]

MAX_SUMMARY = 1200
MAX_RECOMMENDATION = 800
MAX_FACTOR_DETAIL = 200


@dataclass(frozen=True)
class LeadFacts:
    """The lead as the engines see it: what the person typed, plus the parsed budget."""

    full_name: str
    email: str
    message: str
    phone: str | None = None
    company: str | None = None
    budget: str | None = None
    project_type: str | None = None
    source: str | None = None
    parsed_budget: ParsedBudget | None = field(default=None)

    @classmethod
    def of(cls, *, full_name: str, email: str, message: str, phone: str | None = None, company: str | None = None,
           budget: str | None = None, project_type: str | None = None, source: str | None = None) -> LeadFacts:
        """Facts with the budget parsed from its text."""
        return cls(full_name=full_name, email=email, message=message, phone=phone, company=company, budget=budget,
                   project_type=project_type, source=source, parsed_budget=parse_budget(budget))

    def budget_usd(self) -> Decimal | None:
        """The representative budget in US dollars, when one can be read."""
        return self.parsed_budget.usd() if self.parsed_budget else None


class Factor(BaseModel):
    """One reason the score is what it is, and how many points it moved it."""

    name: str = Field(description="short name of the signal, e.g. budget, scope, urgency, spam")
    impact: int = Field(description="points this factor added (positive) or removed (negative)")
    detail: str = Field(max_length=MAX_FACTOR_DETAIL, description="what in the lead triggered it")


@dataclass(frozen=True)
class AiCall:
    """One model call, to be written to the AI usage record."""

    purpose: str
    model: str
    input_tokens: int
    output_tokens: int
    latency_ms: int
    cost_usd: Decimal
    outcome: str
    error: str | None = None


class AnalysisResult(BaseModel):
    """An engine's verdict on a lead."""

    score: int = Field(ge=0, le=100)
    priority: Priority
    budget_category: str
    summary: str
    recommendation: str
    engine: EngineName
    model: str | None = None
    factors: list[Factor] = Field(default_factory=list)
    injection_suspected: bool = False
    review_reason: str | None = None
    fallback_reason: str | None = Field(default=None, description="why the AI's answer is not the one used")
    ai_calls: list[AiCall] = Field(default_factory=list, exclude=True)

    @property
    def needs_review(self) -> bool:
        """True when a person should look at this lead before trusting the score."""
        return self.review_reason is not None or self.fallback_reason is not None


class Engine(Protocol):
    """Turns a lead's facts into an analysis."""

    name: EngineName

    def analyze(self, lead: LeadFacts, *, profile: BusinessProfile, scoring: ScoringConfig) -> AnalysisResult:
        """The analysis of one lead; an engine that depends on a service raises core.ai.AiUnavailable."""
        ...
