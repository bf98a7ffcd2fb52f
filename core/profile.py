"""The business profile and scoring configuration that both analysis engines read (kept in settings)."""

from __future__ import annotations

from pydantic import BaseModel, Field, model_validator

from db.models import Priority

FACTOR_FAMILIES = ("budget", "scope", "urgency", "legitimacy", "negative")


class BusinessProfile(BaseModel):
    """What the business sells and which budgets it considers small, typical and large."""

    business_name: str = Field(default="Our agency", max_length=120)
    what_we_sell: str = Field(
        default="Custom web apps, mobile apps, e-commerce stores, AI integrations and ongoing maintenance "
        "for small and mid-sized businesses.", max_length=2000)
    ideal_customer: str = Field(
        default="An established business with a clearly described project, a budget of $25k or more, a timeline, "
        "and a decision maker in the conversation.", max_length=2000)
    currency: str = Field(default="USD", min_length=3, max_length=3)
    min_budget: int = Field(default=5_000, ge=0, description="below this, real work is not viable")
    target_budget: int = Field(default=25_000, ge=0, description="a budget that can make a lead HIGH")
    large_budget: int = Field(default=100_000, ge=0, description="a large project for this business")

    @model_validator(mode="after")
    def _ordered(self) -> BusinessProfile:
        if not self.min_budget <= self.target_budget <= self.large_budget:
            raise ValueError("budgets must be ordered: min_budget <= target_budget <= large_budget")
        return self

    def budget_category(self, usd: float | None) -> str:
        """The label of the band an amount (in the profile's currency) falls in."""
        if usd is None:
            return "unknown"
        bands = [(self.min_budget, f"under {_k(self.min_budget)}"),
                 (self.target_budget, f"{_k(self.min_budget)}-{_k(self.target_budget)}"),
                 (self.large_budget, f"{_k(self.target_budget)}-{_k(self.large_budget)}")]
        for limit, label in bands:
            if usd < limit:
                return label
        return f"{_k(self.large_budget)}+"


def _k(amount: int) -> str:
    return f"{amount // 1000}k" if amount >= 1000 and amount % 1000 == 0 else str(amount)


class ScoringConfig(BaseModel):
    """Score bands and a weight per factor family (1.0 = as designed, 0 = ignore)."""

    high_min: int = Field(default=80, ge=1, le=100)
    medium_min: int = Field(default=50, ge=0, le=99)
    weights: dict[str, float] = Field(default_factory=lambda: dict.fromkeys(FACTOR_FAMILIES, 1.0))

    @model_validator(mode="after")
    def _consistent(self) -> ScoringConfig:
        if self.medium_min >= self.high_min:
            raise ValueError("medium_min must be below high_min")
        unknown = set(self.weights) - set(FACTOR_FAMILIES)
        if unknown:
            raise ValueError(f"unknown weight(s): {', '.join(sorted(unknown))}")
        if any(not 0 <= w <= 3 for w in self.weights.values()):
            raise ValueError("weights must be between 0 and 3")
        return self

    def weight(self, family: str) -> float:
        """The multiplier for one factor family."""
        return self.weights.get(family, 1.0)

    def priority_for(self, score: int) -> Priority:
        """The priority band a score falls in."""
        if score >= self.high_min:
            return Priority.HIGH
        if score >= self.medium_min:
            return Priority.MEDIUM
        return Priority.LOW
