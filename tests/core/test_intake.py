"""Intake through the service on SQLite and PostgreSQL: one transaction for lead, analysis and timeline; replays."""

from __future__ import annotations

import sqlite3
from typing import Any

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from core import intake
from core import leads as lead_service
from core.config import Settings
from core.errors import IdempotencyConflict
from core.schemas import parse_lead
from db.models import Activity, ActivityKind, AiUsage, IdempotencyRecord, Lead, LeadAnalysis, Priority
from db.session import session_scope
from tests.conftest import lead_payload
from tests.support.gemini_server import GeminiServer


def submit(engine: Engine, settings: Settings, key: str | None = None, scope: str = "api",
           **overrides: Any) -> intake.IntakeOutcome:
    return intake.submit(engine=engine, settings=settings, lead_in=parse_lead(lead_payload(**overrides)),
                         actor="test", default_source="api", idempotency_key=key, idempotency_scope=scope)


def counts(engine: Engine) -> dict[str, int]:
    """How many rows each intake table holds."""
    with session_scope(engine) as session:
        return {model.__tablename__: session.scalar(select(func.count()).select_from(model)) or 0
                for model in (Lead, LeadAnalysis, Activity, AiUsage, IdempotencyRecord)}


def test_lead_analysis_and_activities_are_saved_together(engine: Engine, settings: Settings):
    outcome = submit(engine, settings)

    assert outcome.created
    with session_scope(engine) as session:
        lead = session.scalars(select(Lead)).one()
        timeline = list(session.scalars(select(Activity).where(Activity.lead_id == lead.id)
                                        .order_by(Activity.created_at)))
        assert lead.analysis is not None
        assert (lead.analysis.score, lead.analysis.priority) == (lead.score, lead.priority)
    assert outcome.lead["id"] == lead.id
    assert outcome.lead["analysis"]["score"] == lead.score
    assert (lead.email, lead.phone, lead.source) == ("dana.whitfield@harborlinefreight.example", "+13125550148",
                                                     "website")
    assert (lead.budget_min, lead.budget_max, lead.budget_currency) == (80_000, 120_000, "USD")
    assert [(a.kind, a.actor) for a in timeline] == [(ActivityKind.CREATED, "test"), (ActivityKind.ANALYZED, "test")]
    assert timeline[1].data["score"] == lead.score
    assert counts(engine) == {"leads": 1, "lead_analyses": 1, "activities": 2, "ai_usage": 0,
                              "idempotency_records": 0}


def test_default_source_is_used_when_the_lead_names_none(engine: Engine, settings: Settings):
    outcome = submit(engine, settings, source=None)

    assert outcome.lead["source"] == "api"


def test_rules_engine_when_no_key_is_set(engine: Engine, settings: Settings):
    assert not settings.ai_enabled

    outcome = submit(engine, settings)

    analysis = outcome.lead["analysis"]
    assert (analysis["engine"], analysis["model"], analysis["fallback_reason"]) == ("rules", None, None)
    assert analysis["priority"] == Priority.HIGH.value  # the default lead is a strong one
    assert analysis["needs_review"] is False
    with session_scope(engine) as session:
        lead = session.scalars(select(Lead)).one()
        assert lead.reanalyze_requested_at is None, "nothing to re-analyse when no AI is configured"
        assert lead.needs_review is False
    assert counts(engine)["ai_usage"] == 0


def test_failure_while_saving_the_analysis_saves_no_lead(engine: Engine, settings: Settings,
                                                          monkeypatch: pytest.MonkeyPatch):
    seen: list[str] = []

    def failing_apply_analysis(*, session: Session, lead: Lead, **_: Any) -> None:
        # The lead row is already written in this transaction when the analysis fails.
        assert session.scalar(select(func.count()).select_from(Lead).where(Lead.id == lead.id)) == 1
        seen.append(lead.id)
        raise RuntimeError("disk full while saving the analysis")

    monkeypatch.setattr(lead_service, "apply_analysis", failing_apply_analysis)

    with pytest.raises(RuntimeError, match="disk full"):
        submit(engine, settings, key="k-1")

    assert len(seen) == 1
    assert counts(engine) == {"leads": 0, "lead_analyses": 0, "activities": 0, "ai_usage": 0,
                              "idempotency_records": 0}


def test_transient_failure_while_saving_is_retried_and_saves_once(engine: Engine, settings: Settings,
                                                                  monkeypatch: pytest.MonkeyPatch):
    real_apply = lead_service.apply_analysis
    calls: list[str] = []

    def locked_once(**kwargs: Any) -> Any:
        calls.append(kwargs["lead"].id)
        if len(calls) == 1:
            raise OperationalError("INSERT INTO lead_analyses ...", {}, sqlite3.OperationalError("database is locked"))
        return real_apply(**kwargs)

    monkeypatch.setattr(lead_service, "apply_analysis", locked_once)

    outcome = submit(engine, settings)

    assert len(calls) == 2 and calls[0] != calls[1], "the whole transaction is run again, with a new lead"
    assert outcome.created and outcome.lead["id"] == calls[1]
    assert counts(engine) == {"leads": 1, "lead_analyses": 1, "activities": 2, "ai_usage": 0,
                              "idempotency_records": 0}


def test_idempotent_replay_returns_the_first_result(engine: Engine, settings: Settings):
    first = submit(engine, settings, key="order-42")
    again = submit(engine, settings, key="order-42")

    assert first.created and not again.created
    assert again.lead == first.lead
    assert counts(engine) == {"leads": 1, "lead_analyses": 1, "activities": 2, "ai_usage": 0,
                              "idempotency_records": 1}

    with pytest.raises(IdempotencyConflict):
        submit(engine, settings, key="order-42", message="A different lead reusing the same key.")
    assert counts(engine)["leads"] == 1

    # Keys are per caller: the same key from another scope is another request.
    other = submit(engine, settings, key="order-42", scope="public")
    assert other.created and other.lead["id"] != first.lead["id"]
    assert counts(engine)["leads"] == 2


def test_replay_does_not_ask_the_model_again(engine: Engine, ai_settings: Settings, gemini: GeminiServer):
    gemini.queue(GeminiServer.json_reply({
        "score": 90, "priority": "HIGH", "budget_category": "100k+", "summary": "A freight portal.",
        "recommendation": "Call today.", "factors": [{"name": "budget", "impact": 30, "detail": "$80k-$120k"}],
        "instructions_in_lead": False}))

    first = submit(engine, ai_settings, key="form-7")
    again = submit(engine, ai_settings, key="form-7")

    assert again.lead == first.lead and first.lead["analysis"]["engine"] == "gemini"
    assert len(gemini.requests) == 1
    assert counts(engine)["ai_usage"] == 1


def test_concurrent_request_with_the_same_key_gets_the_winners_answer(engine: Engine, settings: Settings,
                                                                      monkeypatch: pytest.MonkeyPatch):
    winner = submit(engine, settings, key="race-1")
    real_replay = intake._replay
    replays: list[bool] = []

    def not_yet_committed(*args: Any) -> Any:
        # The first look happens before the winner committed (it sees nothing); later looks are real.
        replays.append(True)
        return None if len(replays) == 1 else real_replay(*args)

    monkeypatch.setattr(intake, "_replay", not_yet_committed)

    loser = submit(engine, settings, key="race-1")

    assert len(replays) == 2, "the unique key must have stopped the second save, which then replayed"
    assert not loser.created and loser.lead == winner.lead
    assert counts(engine) == {"leads": 1, "lead_analyses": 1, "activities": 2, "ai_usage": 0,
                              "idempotency_records": 1}
