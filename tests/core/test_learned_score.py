"""The learned score on SQLite and PostgreSQL: what it learns, the naive Bayes baseline by hand, the refusal with too
few outcomes, parameters kept as JSON, blending only when earned, and retraining after a win."""

from __future__ import annotations

import json
import math
import random
from datetime import timedelta
from typing import Any

import numpy as np
import pytest
from sqlalchemy import Engine, func, insert, select

from core import leads as lead_service
from core import learned_score
from core.analysis.base import LeadFacts
from core.analysis.rules import RulesEngine
from core.errors import ValidationFailed
from core.learned_score import LeadView
from core.profile import BusinessProfile, ScoringConfig
from core.schemas import LeadUpdate
from db.models import Activity, ActivityKind, Lead, LeadAnalysis, LeadStatus, LearnedModel, Priority, new_id, utcnow
from db.session import session_scope
from jobs import registry
from tests.support.factories import make_lead

FIELDS = ["Plan", "Colour", "Visits", "source"]


def add_outcomes(engine: Engine, n: int = 300, *, seed: int = 7, engine_scores: str = "flat",
                 won_share: dict[str, float] | None = None) -> tuple[int, int]:
    """`n` closed leads where the custom attribute "Plan" drives the outcome (enterprise mostly won, starter mostly
    lost) and "Colour" and "Visits" are noise; the engine's score is flat, random or perfect. Returns (won, lost)."""
    rng = random.Random(seed)
    share = won_share or {"enterprise": 0.9, "starter": 0.1}
    plans = list(share)
    now = utcnow()
    leads, analyses = [], []
    for i in range(n):
        plan = plans[i % len(plans)]
        won = rng.random() < share[plan]
        score = {"flat": 40, "random": rng.randint(0, 100), "perfect": 90 if won else 10}[engine_scores]
        lead_id = new_id()
        # A fixed external id (as an import keeps): the split is made on it, so every run splits the same way.
        leads.append(dict(id=lead_id, external_id=f"crm-{seed}-{i}", full_name=f"Closed Lead {i}",
                          email=f"closed{i}@client{i % 7}.example", message="We need a website.", source="website",
                          status=LeadStatus.WON if won else LeadStatus.LOST, score=score,
                          priority=ScoringConfig().priority_for(score), needs_review=False, auto_follow_up=False,
                          reanalyze_attempts=0,
                          custom_attributes={"Plan": plan, "Colour": rng.choice(["red", "green", "blue"]),
                                             "Visits": rng.randint(0, 20)},
                          created_at=now - timedelta(days=30), closed_at=now - timedelta(days=1), updated_at=now))
        analyses.append(dict(id=new_id(), lead_id=lead_id, score=score, priority=ScoringConfig().priority_for(score),
                             budget_category="unknown", summary="s", recommendation="r", engine="rules", factors=[],
                             injection_suspected=False, learned_factors=[], created_at=now, updated_at=now))
    with session_scope(engine) as session:
        session.execute(insert(Lead.__table__), leads)
        session.execute(insert(LeadAnalysis.__table__), analyses)
    won = sum(1 for lead in leads if lead["status"] == LeadStatus.WON)
    return won, n - won


def open_lead(engine: Engine, plan: str | None = None, *, score: int | None = None, **fields: Any) -> str:
    """A NEW lead created through core.leads (the analysis hook runs). With a plan, the lead gets that "Plan"
    attribute and is analysed again through core.leads.apply_analysis (as an imported lead re-analysed would be)."""
    with session_scope(engine) as session:
        lead = make_lead(session, score=score, **fields)
        if plan is not None:
            lead.custom_attributes = {"Plan": plan}
            result = RulesEngine().analyze(LeadFacts.of(full_name=lead.full_name, email=lead.email,
                                                        message=lead.message, company=lead.company,
                                                        budget=lead.budget, source=lead.source),
                                           profile=BusinessProfile(), scoring=ScoringConfig())
            if score is not None:
                result = result.model_copy(update={"score": score, "priority": ScoringConfig().priority_for(score)})
            lead_service.apply_analysis(session=session, lead=lead, result=result, actor="test")
        return lead.id


def models_of(engine: Engine) -> list[LearnedModel]:
    with session_scope(engine) as session:
        return list(session.scalars(select(LearnedModel).order_by(LearnedModel.trained_at)))


# --- what it learns -----------------------------------------------------------------------------------------------


def test_the_model_learns_the_field_that_drives_the_outcome(engine: Engine):
    won, lost = add_outcomes(engine)

    model = learned_score.train(engine=engine, fields=FIELDS, actor="max")

    assert (model.won, model.lost) == (won, lost)
    assert model.metrics["auc"] > 0.8
    assert model.metrics["models"]["naive_bayes"]["auc"] > 0.8
    assert model.metrics["models"]["logistic_regression"]["auc"] > 0.8
    assert model.algorithm in ("logistic_regression", "naive_bayes")
    weights = learned_score.top_weights(model.parameters)
    assert weights[0]["field"] == "Plan"
    assert max(model.metrics["field_auc"], key=model.metrics["field_auc"].get) == "Plan"
    with session_scope(engine) as session:
        current = learned_score.active(session=session)
        enterprise = session.get(Lead, open_lead(engine, "enterprise"))
        starter = session.get(Lead, open_lead(engine, "starter"))
        high, high_factors = learned_score.score(current, enterprise)
        low, low_factors = learned_score.score(current, starter)
    assert high > 75 > 25 > low  # about 90 and 10, as in the data
    assert high_factors[0]["name"] == "Plan" and high_factors[0]["impact"] > 0
    assert high_factors[0]["detail"] == "Plan: enterprise"
    assert low_factors[0]["name"] == "Plan" and low_factors[0]["impact"] < 0


def test_calibration_bands_sum_to_the_held_out_leads(engine: Engine):
    won, lost = add_outcomes(engine, 250)

    metrics = learned_score.train(engine=engine, fields=FIELDS, actor="max").metrics

    assert metrics["test_leads"] == round(won * 0.3) + round(lost * 0.3)
    assert metrics["train_leads"] + metrics["test_leads"] == won + lost
    assert [band["band"] for band in metrics["calibration"]] == ["0-19", "20-39", "40-59", "60-79", "80-100"]
    assert sum(band["leads"] for band in metrics["calibration"]) == metrics["test_leads"]
    filled = [band for band in metrics["calibration"] if band["leads"]]
    assert all(0 <= band["predicted"] <= 100 and 0 <= band["actual"] <= 100 for band in filled)


def test_the_split_is_fixed_stratified_and_keeps_each_lead_on_its_side():
    keys = [f"lead-{i}" for i in range(100)]
    outcomes = [1 if i % 4 == 0 else 0 for i in range(100)]

    train, test = learned_score.split(keys, outcomes)

    assert (train, test) == learned_score.split(keys, outcomes)
    assert len(test) == round(25 * 0.3) + round(75 * 0.3)
    assert sum(outcomes[i] for i in test) == round(25 * 0.3)
    assert not set(train) & set(test)
    # One more lead does not move the others to the other side.
    _, grown_test = learned_score.split([*keys, "lead-100"], [*outcomes, 0])
    assert len(set(test) - set(grown_test)) <= 1


# --- the baseline, by hand ----------------------------------------------------------------------------------------


def test_the_naive_bayes_baseline_matches_a_hand_computation():
    # Won: (A, yes) (A, no) (B, yes); lost: (A, yes) (B, no) (B, no) (B, no). Each field has 4 levels (A, B, other,
    # missing), so Laplace gives P(A | won) = (2+1)/(3+4), P(A | lost) = (1+1)/(4+4), and so on; prior odds 3/4.
    rows = [("A", "yes", 1), ("A", "no", 1), ("B", "yes", 1), ("A", "yes", 0), ("B", "no", 0), ("B", "no", 0),
            ("B", "no", 0)]
    columns = [[r[0] for r in rows], [r[1] for r in rows]]
    parameters = learned_score.fit_naive_bayes(["Source", "Phone given"], columns, [r[2] for r in rows])

    def p(source: Any, phone: Any) -> float:
        return learned_score.probability(parameters, LeadView(custom={"Source": source, "Phone given": phone}))

    a = yes = (3 / 7) / (2 / 8)  # likelihood ratios: 12/7
    b = no = (2 / 7) / (4 / 8)  # 4/7
    other = (1 / 7) / (1 / 8)  # a value never seen: 8/7
    prior = 3 / 4
    for lead, odds in [(("A", "yes"), prior * a * yes), (("B", "no"), prior * b * no), (("A", "no"), prior * a * no),
                       (("C", None), prior * other * other)]:
        assert p(*lead) == pytest.approx(odds / (1 + odds), abs=1e-9), lead
    assert p("A", "yes") == pytest.approx(108 / 157)
    assert p("B", "no") == pytest.approx(12 / 61)


def test_naive_bayes_bins_numbers():
    values = list(range(1000))
    outcomes = [1 if v >= 500 else 0 for v in values]

    parameters = learned_score.fit_naive_bayes(["Visits"], [values], outcomes)

    spec = parameters["fields"][0]
    assert spec["kind"] == "numeric" and len(spec["edges"]) == 4  # 1,000 leads: 5 bins of 200
    assert learned_score.probability(parameters, LeadView(custom={"Visits": 900})) > 0.9
    assert learned_score.probability(parameters, LeadView(custom={"Visits": 100})) < 0.1


# --- refusals -----------------------------------------------------------------------------------------------------


def test_training_refuses_with_too_few_outcomes(engine: Engine):
    add_outcomes(engine, 60, won_share={"enterprise": 0.3, "starter": 0.0})

    with pytest.raises(learned_score.NotEnoughOutcomes) as refused:
        learned_score.train(engine=engine, fields=FIELDS, actor="max")

    assert "a model needs at least 40 of each" in str(refused.value)
    assert not models_of(engine)


def test_training_refuses_fields_no_outcome_has(engine: Engine):
    add_outcomes(engine, 100)

    with pytest.raises(ValidationFailed, match="no won or lost lead has 'Shoe size'"):
        learned_score.train(engine=engine, fields=["Plan", "Shoe size"], actor="max")
    with pytest.raises(ValidationFailed, match="pick at least one field"):
        learned_score.train(engine=engine, fields=[], actor="max")


# --- parameters as data -------------------------------------------------------------------------------------------


def test_parameters_are_json_and_score_exactly_as_the_fitted_model():
    rng = random.Random(3)
    views = [LeadView(source=rng.choice(["web", "referral", "ads"]), budget_usd=rng.choice([None, 5e3, 3e4, 1e5]),
                      message_length=rng.randint(10, 900), custom={"Plan": rng.choice(["a", "b", "c", None]),
                                                                   "Visits": rng.randint(0, 30)})
             for _ in range(400)]
    outcomes = [int(rng.random() < (0.7 if v.custom["Plan"] == "a" else 0.3)) for v in views]
    names = ["source", "budget_usd", "message_length", "Plan", "Visits"]
    columns = [[learned_score.value_of(v, name) for v in views] for name in names]

    fitted = learned_score.fit_logistic(names, columns, outcomes)

    stored = json.loads(json.dumps(fitted.parameters))  # what the database gives back: plain JSON, no pickle
    assert stored == fitted.parameters
    expected = fitted.estimator.predict_proba(fitted.matrix)[:, 1]
    got = np.array([learned_score.probability(stored, v) for v in views])
    assert np.allclose(got, expected, atol=1e-9)
    # A lead with values never seen in training still scores (pooled as "other", or binned at the ends).
    assert 0 < learned_score.probability(stored, LeadView(source="fax", custom={"Visits": 10_000})) < 1


def test_the_stored_model_is_json_and_scores_leads_from_it(engine: Engine):
    add_outcomes(engine)
    model = learned_score.train(engine=engine, fields=FIELDS, actor="max")
    lead_id = open_lead(engine, "enterprise")

    with session_scope(engine) as session:
        stored = session.scalars(select(LearnedModel.parameters)).one()
        lead = session.get(Lead, lead_id)
        expected = learned_score.probability(stored, LeadView.of(lead))
        assert learned_score.score(model, lead)[0] == round(100 * expected)
    assert json.loads(json.dumps(stored)) == stored
    assert stored["format"] == "additive-logit/1"
    assert {spec["name"] for spec in stored["fields"]} == set(FIELDS)


# --- blending -----------------------------------------------------------------------------------------------------


def test_a_model_that_beats_the_engine_is_blended_into_new_and_open_leads(engine: Engine):
    before = open_lead(engine, "enterprise")  # an open lead from before the training
    add_outcomes(engine, engine_scores="flat")

    model = learned_score.train(engine=engine, fields=FIELDS, actor="max")

    assert model.blended
    assert model.note.startswith("Blended into the lead score")
    after = open_lead(engine, "starter")
    with session_scope(engine) as session:
        for lead_id in (before, after):
            lead = session.get(Lead, lead_id)
            analysis = lead.analysis
            assert analysis.learned_score is not None and analysis.learned_factors
            assert lead.score == analysis.score == learned_score.blend(analysis.engine_score, analysis.learned_score)
            assert lead.priority == ScoringConfig().priority_for(lead.score)
        notes = [a.body for a in session.scalars(select(Activity).where(Activity.lead_id == before,
                                                                        Activity.kind == ActivityKind.ANALYZED))]
        assert any("blended in" in note for note in notes)


def test_no_blend_when_the_engine_ranks_better(engine: Engine):
    add_outcomes(engine, engine_scores="perfect")

    model = learned_score.train(engine=engine, fields=FIELDS, actor="max")

    assert not model.blended
    assert model.metrics["engine"]["auc"] == 1.0
    assert "does not beat the engine" in model.note
    lead_id = open_lead(engine, "enterprise")
    with session_scope(engine) as session:
        lead = session.get(Lead, lead_id)
        assert lead.analysis.learned_score is not None  # shown beside the engine's score...
        assert lead.score == lead.analysis.score == lead.analysis.engine_score  # ...but not blended in


def test_no_blend_without_enough_outcomes(engine: Engine):
    won, lost = add_outcomes(engine, 60)
    assert won < learned_score.MIN_OUTCOMES or lost < learned_score.MIN_OUTCOMES

    model = learned_score.train(engine=engine, fields=FIELDS, actor="max", min_outcomes=10)

    assert not model.blended
    assert f"not enough outcomes yet ({won} won and {lost} lost" in model.note


def test_blending_can_be_switched_off_again(engine: Engine):
    add_outcomes(engine)
    learned_score.train(engine=engine, fields=FIELDS, actor="max")
    lead_id = open_lead(engine, "starter")
    with session_scope(engine) as session:
        lead = session.get(Lead, lead_id)
        engine_score, blended_score = lead.analysis.engine_score, lead.score
        assert blended_score != engine_score
        session.scalars(select(LearnedModel)).one().blended = False

    summary = learned_score.rescore_open(engine=engine)

    assert summary.changed == 1
    with session_scope(engine) as session:
        lead = session.get(Lead, lead_id)
        assert lead.score == lead.analysis.score == engine_score
        assert lead.analysis.learned_score is not None


def test_without_a_model_new_leads_keep_the_engine_score(engine: Engine):
    lead_id = open_lead(engine, "enterprise")

    with session_scope(engine) as session:
        analysis = session.get(Lead, lead_id).analysis
        assert analysis.learned_score is None and analysis.learned_factors == []
        assert analysis.engine_score == analysis.score


# --- the learn job ------------------------------------------------------------------------------------------------


def test_the_learn_pass_retrains_after_a_win(engine: Engine, settings):
    won, lost = add_outcomes(engine)
    open_id = open_lead(engine, "enterprise")
    first = learned_score.train(engine=engine, fields=FIELDS, actor="max")

    assert registry.run("learn", engine=engine, settings=settings).startswith("learn: outcomes unchanged")
    with session_scope(engine) as session:
        lead = lead_service.get_or_raise(session=session, lead_id=open_id)
        lead_service.update(session=session, lead=lead, changes=LeadUpdate(status=LeadStatus.WON), actor="sam")
    line = registry.run("learn", engine=engine, settings=settings)

    assert line.startswith(f"learn: trained logistic_regression on {won + 1} won, {lost} lost") or \
        line.startswith(f"learn: trained naive_bayes on {won + 1} won, {lost} lost")
    models = models_of(engine)
    assert len(models) == 2
    assert [m.active for m in models] == [False, True]
    assert (models[1].won, models[1].lost) == (first.won + 1, first.lost)
    assert models[1].fields == FIELDS  # the manager's fields, kept
    assert learned_score.run_pass(engine=engine, settings=settings).action == "unchanged"


def test_the_learn_pass_waits_for_outcomes_and_then_uses_the_lead_fields(engine: Engine, settings):
    add_outcomes(engine, 30)

    assert learned_score.run_pass(engine=engine, settings=settings).line().startswith("learn: waiting for outcomes")
    assert not models_of(engine)

    add_outcomes(engine, 200, seed=8)
    summary = learned_score.run_pass(engine=engine, settings=settings)

    assert summary.action == "trained"
    assert models_of(engine)[0].fields == list(learned_score.DEFAULT_FIELDS)


def test_the_learn_pass_scores_open_leads_that_arrived_without_the_hook(engine: Engine, settings):
    add_outcomes(engine)
    learned_score.train(engine=engine, fields=FIELDS, actor="max")
    imported = open_lead(engine)
    with session_scope(engine) as session:  # as an import writes it: the rules score only
        analysis = session.get(Lead, imported).analysis
        analysis.learned_score, analysis.learned_factors, analysis.engine_score = None, [], None

    line = learned_score.run_pass(engine=engine, settings=settings).line()

    assert line.endswith("; 1 new open lead(s) scored")
    with session_scope(engine) as session:
        lead = session.get(Lead, imported)
        assert lead.analysis.learned_score is not None
        assert lead.score == learned_score.blend(lead.analysis.engine_score, lead.analysis.learned_score)
    assert not learned_score.run_pass(engine=engine, settings=settings).newly_scored


def test_the_learn_job_is_registered():
    assert registry.JOBS["learn"][1] == 3600


# --- what the page reads ------------------------------------------------------------------------------------------


def test_available_fields_lists_lead_fields_and_custom_attributes_with_counts(engine: Engine):
    won, lost = add_outcomes(engine, 50)
    open_lead(engine, "enterprise")

    with session_scope(engine) as session:
        choices = {c.key: c for c in learned_score.available_fields(session=session)}

    assert set(learned_score.LEAD_FIELDS) <= set(choices)
    assert choices["source"].leads == 51 and choices["source"].outcomes == 50
    assert choices["budget_usd"].kind == "number" and choices["source"].kind == "text"
    assert (choices["Plan"].kind, choices["Plan"].leads, choices["Plan"].outcomes) == ("text", 51, won + lost)
    assert choices["Visits"].kind == "number" and choices["Visits"].custom
    assert choices["Plan"].distinct == 2 and not choices["Plan"].looks_like_id


def test_report_and_card_show_the_active_model(engine: Engine):
    add_outcomes(engine)
    model = learned_score.train(engine=engine, fields=FIELDS, actor="max")
    lead_id = open_lead(engine, "enterprise")

    with session_scope(engine) as session:
        report = learned_score.report(session=session)
        card = learned_score.card(session=session, lead_id=lead_id)
        history = learned_score.history(session=session)

    assert report.id == model.id and report.field_labels == ["Plan", "Colour", "Visits", "Source"]
    assert report.weights[0]["field"] == "Plan"
    assert report.weights[0]["odds"] == pytest.approx(math.exp(report.weights[0]["weight"]), abs=0.01)
    assert card["blended"] is True and card["score"] > 50 and card["factors"][0]["name"] == "Plan"
    assert len(history) == 1 and history[0]["active"]


def test_priority_follows_the_blended_score(engine: Engine):
    add_outcomes(engine, engine_scores="flat")
    learned_score.train(engine=engine, fields=FIELDS, actor="max")

    lead_id = open_lead(engine, score=78)  # a new lead: the engine says MEDIUM, the blend may say otherwise

    with session_scope(engine) as session:
        lead = session.get(Lead, lead_id)
        assert lead.analysis.engine_score == 78
        expected = learned_score.blend(78, lead.analysis.learned_score)
        assert lead.score == expected
        assert lead.priority == (Priority.HIGH if expected >= 80 else Priority.MEDIUM if expected >= 50
                                 else Priority.LOW)
        assert session.scalar(select(func.count()).select_from(LearnedModel)) == 1
