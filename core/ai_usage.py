"""The record of every model call: tokens, latency, estimated cost and outcome."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy.orm import Session

from core.analysis.base import AiCall
from db.models import AiUsage


def record(*, session: Session, calls: Iterable[AiCall], lead_id: str | None = None) -> None:
    """Writes one usage row per call."""
    session.add_all(AiUsage(purpose=c.purpose, model=c.model, lead_id=lead_id, input_tokens=c.input_tokens,
                            output_tokens=c.output_tokens, latency_ms=c.latency_ms, cost_usd=c.cost_usd,
                            outcome=c.outcome, error=c.error) for c in calls)
