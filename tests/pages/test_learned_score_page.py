"""The Learned score page (managers, admins): pick fields, train, read the figures; the lead card shows the score."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import Engine

from core import learned_score
from core.config import get_settings
from db.session import get_engine
from tests.core.test_learned_score import add_outcomes
from tests.pages.conftest import REFUSED, AppDb, open_page

PAGE = "pages/learned_score.py"


def app_engine() -> Engine:
    return get_engine(get_settings().database_url)


def train_button(at):  # noqa: ANN001, ANN201 - an AppTest and its button
    return next(b for b in at.button if b.label == "Train now")


def test_before_any_training_the_page_says_so_and_offers_the_fields(app_db: AppDb, signed_in):
    add_outcomes(app_engine(), 60)
    at = open_page(signed_in("manager"), PAGE)

    assert not at.exception and not at.error
    assert at.info[0].value.startswith("No model yet")
    fields = at.multiselect[0]
    assert {"Source (lead field, text; 60 won/lost leads have it)", "Budget (USD) (lead field, number; 0 won/lost "
            "leads have it)", "Plan (imported, text; 60 won/lost leads have it)",
            "Visits (imported, number; 60 won/lost leads have it)"} <= set(fields.options)
    assert fields.value == list(learned_score.DEFAULT_FIELDS)
    assert not at.metric


def test_a_manager_trains_a_model_and_sees_how_it_does(app_db: AppDb, signed_in):
    add_outcomes(app_engine())
    at = open_page(signed_in("manager"), PAGE)

    at.multiselect[0].set_value(["Plan", "Colour", "source"])
    train_button(at).click()
    at.run()

    assert not at.exception and not at.error
    assert at.success[0].value.startswith("Trained: ")
    assert "Blended into the lead score" in at.success[1].value
    metrics = {metric.label: metric.value for metric in at.metric}
    assert set(metrics) == {"Held-out AUC", "Baseline AUC", "Engine AUC", "Accuracy", "Outcomes used"}
    assert float(metrics["Held-out AUC"]) > 0.8 and metrics["Outcomes used"] == "300"
    assert float(metrics["Engine AUC"]) == pytest.approx(0.5)
    figure = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert [trace["name"] for trace in figure["data"]] == ["Predicted", "Actual"]
    assert list(figure["data"][0]["x"]) == ["0-19", "20-39", "40-59", "60-79", "80-100"]
    factors = at.dataframe[0].value
    assert factors["Field"].iloc[0] == "Plan"
    # The fields just trained on are the ones picked next time.
    assert at.multiselect[0].value == ["Plan", "Colour", "source"]


def test_too_few_outcomes_are_explained(app_db: AppDb, signed_in):
    add_outcomes(app_engine(), 30)
    at = open_page(signed_in("admin"), PAGE)

    train_button(at).click()
    at.run()

    assert not at.exception
    assert "a model needs at least 40 of each" in at.error[0].value
    assert at.info[0].value.startswith("No model yet")


def test_a_model_that_does_not_beat_the_engine_says_why(app_db: AppDb, signed_in):
    add_outcomes(app_engine(), engine_scores="perfect")
    learned_score.train(engine=app_engine(), fields=["Plan", "Colour"], actor="max")

    at = open_page(signed_in("manager"), PAGE)

    assert not at.exception
    note = next(info.value for info in at.info if info.value.startswith("Not blended"))
    assert "does not beat the engine" in note


@pytest.mark.parametrize("role", ["staff", "viewer"])
def test_other_roles_are_refused(app_db: AppDb, signed_in, role):
    at = open_page(signed_in(role), PAGE)

    assert not at.exception
    assert [e.value for e in at.error] == [REFUSED]
    assert not at.button or all(b.label != "Train now" for b in at.button)


def test_the_lead_card_shows_the_learned_score(app_db: AppDb, signed_in, add_lead):
    add_outcomes(app_engine())
    learned_score.train(engine=app_engine(), fields=["Plan", "source"], actor="max")
    lead = add_lead()

    at = open_page(signed_in("manager"), "pages/lead.py", id=lead["id"])

    assert not at.exception
    lines = next(t.value for t in at.text if t.value.startswith("Learned score: ")).splitlines()
    assert lines[0].endswith("(blended)")
