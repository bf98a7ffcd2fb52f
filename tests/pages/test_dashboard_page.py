"""The Dashboard as its users see it: who lands on it, the KPIs, the period and filters, the empty state."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import streamlit as st
from sqlalchemy import update
from streamlit.testing.v1 import AppTest

from core import day_stats
from core.config import get_settings
from db.models import Lead
from tests.pages.conftest import REFUSED, by_label, open_page, values

EMPTY = "No leads yet."


def metric(at: AppTest, label: str) -> str:
    [found] = [m.value for m in at.metric if m.label == label]
    return found


def titles(at: AppTest) -> list[str]:
    return values(at.title)


def created_days_ago(app_db, lead_id: str, days: float) -> None:  # noqa: ANN001 - the AppDb fixture
    with app_db.session() as session:
        session.execute(update(Lead).where(Lead.id == lead_id)
                        .values(created_at=datetime.now(UTC) - timedelta(days=days)))


@pytest.mark.parametrize("role", ["manager", "viewer", "admin"])
def test_managers_viewers_and_admins_land_on_the_dashboard_and_see_the_kpis(signed_in, add_lead, role):
    add_lead(full_name="Dana Whitfield")
    add_lead(full_name="Omar Haddad", email="omar@haddad.example", source="referral")

    at = signed_in(role)

    assert not at.exception
    assert titles(at) == ["Dashboard"]
    assert metric(at, "New leads") == "2"
    assert {"HIGH share", "Average score", "Contacted within 24 h", "Conversion to WON", "Follow-ups sent",
            "Follow-ups failed", "Calls made"} <= {m.label for m in at.metric}
    assert any("compared with" in c for c in values(at.caption))
    assert {"Leads over time", "Status funnel", "Top open opportunities"} <= set(values(at.subheader))
    # The best open leads, names as plain table cells.
    assert set(at.dataframe[0].value["name"]) == {"Dana Whitfield", "Omar Haddad"}


def test_staff_land_on_what_needs_doing_and_are_refused_the_dashboard(signed_in, add_lead):
    add_lead()
    at = signed_in("staff")

    assert titles(at) == ["What needs doing"]

    at = open_page(at, "pages/dashboard.py")

    assert not at.exception
    assert REFUSED in values(at.error)
    assert not at.metric and not at.dataframe


def test_an_empty_database_says_how_leads_get_there(signed_in):
    at = signed_in("manager")

    assert not at.exception
    assert titles(at) == ["Dashboard"]
    assert any(i.startswith(EMPTY) and "seed-demo" in i for i in values(at.info))
    assert not at.metric


def test_changing_the_period_recounts(app_db, signed_in, add_lead):
    recent = add_lead(full_name="Recent Rita")
    older = add_lead(full_name="Older Otto", email="otto@example.com")
    created_days_ago(app_db, recent["id"], 2)
    created_days_ago(app_db, older["id"], 20)
    at = signed_in("manager")
    assert by_label(at.selectbox, "Period").value == "last_30_days"
    assert metric(at, "New leads") == "2"

    by_label(at.selectbox, "Period").select("last_7_days")
    at.run()

    assert not at.exception
    assert metric(at, "New leads") == "1"
    assert any(c.startswith("Last 7 days") for c in values(at.caption))
    assert list(at.dataframe[0].value["name"]) == ["Recent Rita"]

    created_days_ago(app_db, recent["id"], 40)
    st.cache_data.clear()  # as a save elsewhere in the app does
    at.run()
    assert metric(at, "New leads") == "0"
    assert any(i.startswith("No leads arrived in this period") for i in values(at.info))


def test_the_source_filter_narrows_the_figures(signed_in, add_lead):
    add_lead(full_name="Web Wendy", source="website")
    add_lead(full_name="Ref Rafa", email="rafa@example.com", source="referral")
    at = signed_in("manager")

    by_label(at.selectbox, "Source").select("referral")
    at.run()

    assert not at.exception
    assert metric(at, "New leads") == "1"
    assert list(at.dataframe[0].value["name"]) == ["Ref Rafa"]


def test_selecting_an_opportunity_opens_the_lead(signed_in, add_lead):
    lead = add_lead(full_name="Priya Raman", email="priya@northwindclinics.example")
    at = signed_in("manager")
    table = at.dataframe[0]

    at.session_state[table.key] = {"selection": {"rows": [0], "columns": [], "cells": []}}
    at.run()

    assert not at.exception
    assert at.query_params.get("id") == lead["id"]
    assert values(at.header) == ["Lead"] and values(at.text)[0] == "Priya Raman"


def test_a_viewer_sees_the_opportunities_but_cannot_open_them(signed_in, add_lead):
    add_lead()
    at = signed_in("viewer")

    assert list(at.dataframe[0].value["name"]) == ["Dana Whitfield"]
    assert not any("Select a row" in c for c in values(at.caption))
    assert not at.button and not at.text_input


def test_after_a_jobs_pass_earlier_days_come_from_the_summaries_and_say_how_fresh_they_are(app_db, signed_in,
                                                                                          add_lead):
    older = add_lead(full_name="Older Otto", email="otto@example.com")
    created_days_ago(app_db, older["id"], 3)
    with app_db.session() as session:
        day_stats.refresh(session=session, timezone=get_settings().leadops_timezone)
    add_lead(full_name="Today Tia")  # after the pass: today is counted from the leads

    at = signed_in("manager")

    assert not at.exception
    assert metric(at, "New leads") == "2"
    assert any("earlier days' as of" in c for c in values(at.caption))
