"""The AI usage page: admins only; totals, charts and a table from the usage record, or an empty state."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal

import pytest
import streamlit as st

from db.models import AiUsage, utcnow
from tests.pages.conftest import REFUSED, AppDb, open_page


def add_calls(db: AppDb) -> None:
    """Five calls in the last day: three analyses (one timed out), a follow-up copy, a report hit by a 429."""
    now = utcnow() - timedelta(minutes=5)
    rows = [("analysis", "ok", 1_000, 200, "0.000135"), ("analysis", "ok", 1_200, 300, "0.000180"),
            ("analysis", "timeout", 0, 0, "0"), ("followup", "ok", 500, 150, "0.000083"),
            ("report", "http_429", 0, 0, "0")]
    with db.session() as session:
        session.add_all(AiUsage(purpose=purpose, model="gemini-2.5-flash", outcome=outcome, input_tokens=tokens_in,
                                output_tokens=tokens_out, cost_usd=Decimal(cost), latency_ms=900, created_at=now)
                        for purpose, outcome, tokens_in, tokens_out, cost in rows)


def charts(at) -> list[dict]:  # noqa: ANN001 - an AppTest
    return [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]


def test_an_admin_sees_totals_charts_and_the_table(app_db: AppDb, signed_in) -> None:
    add_calls(app_db)
    at = open_page(signed_in("admin"), "pages/ai_usage.py")

    assert not at.exception and not at.error
    metrics = {metric.label: metric.value for metric in at.metric}
    assert metrics == {"Model calls": "5", "Failed calls": "2", "Input tokens": "2,700", "Output tokens": "650",
                       "Estimated cost": "$0.0004"}
    figures = charts(at)
    assert len(figures) == 3  # cost per day, calls per purpose, failures by kind
    assert {trace["name"] for trace in figures[0]["data"]} == {"Lead analysis", "Follow-up copy", "Reports"}
    assert {trace["name"] for trace in figures[2]["data"]} == {"Lead analysis", "Reports"}
    table = at.dataframe[0].value
    assert list(table["Purpose"]) == ["Lead analysis", "Follow-up copy", "Reports"]
    assert list(table["Calls"]) == [3, 1, 1] and list(table["Failed"]) == [1, 0, 1]
    assert list(table["Input tokens"]) == [2_200, 500, 0]


def test_without_calls_the_page_says_none_were_made_and_why(app_db: AppDb, signed_in) -> None:
    at = open_page(signed_in("admin"), "pages/ai_usage.py")

    assert not at.exception
    infos = [info.value for info in at.info]
    assert infos[0] == "No model calls were made in this period."
    assert "GEMINI_API_KEY is not set" in infos[1]
    assert not at.metric and not charts(at)


def test_the_period_can_be_changed(app_db: AppDb, signed_in) -> None:
    add_calls(app_db)
    at = open_page(signed_in("admin"), "pages/ai_usage.py")

    at.selectbox(key="ai_period").select("last_month").run()

    assert not at.exception
    assert [info.value for info in at.info][0] == "No model calls were made in this period."


@pytest.mark.parametrize("role", ["manager", "staff", "viewer"])
def test_other_roles_are_refused(app_db: AppDb, signed_in, role: str) -> None:
    add_calls(app_db)
    at = open_page(signed_in(role), "pages/ai_usage.py")

    assert not at.exception
    assert [error.value for error in at.error] == [REFUSED]
    assert not at.metric


def test_only_the_admin_menu_lists_it(monkeypatch: pytest.MonkeyPatch, signed_in) -> None:
    menus: dict[str, list[str]] = {}
    real = st.navigation
    for role in ("admin", "manager", "viewer"):
        def spy(pages, role=role, **kwargs):  # noqa: ANN001, ANN003, ANN202 - st.navigation's own signature
            menus[role] = [p.title for p in pages if p.visibility == "visible"]
            return real(pages, **kwargs)

        monkeypatch.setattr(st, "navigation", spy)
        signed_in(role)

    assert "AI usage" in menus["admin"]
    assert "AI usage" not in menus["manager"] and "AI usage" not in menus["viewer"]
