"""The lead queue as its users see it: selections that never outlive their rows, sources from the database, the
orders, every date by default, and what the page says when nothing matches."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import streamlit as st
from streamlit.testing.v1 import AppTest

from db.models import Lead, LeadStatus
from tests.pages.conftest import by_label, click, open_page, queue_names, select_rows, values

OPEN = "Open the selected lead"
APPLY = "Apply to the selected leads"


def bulk_status(at: AppTest, status: str) -> None:
    """Picks the status in the bulk form (the filter above the table has the same label)."""
    next(s for s in at.selectbox if s.label == "Status" and s.form_id == "bulk").select(status)


def search(at: AppTest, text: str) -> AppTest:
    by_label(at.text_input, "Search name, email or company").input(text)
    return at.run()


def offers(at: AppTest, label: str) -> bool:
    return any(b.label == label for b in at.button)


def selection_shown(at: AppTest) -> list[str]:
    """The "Change N selected lead(s)" heading of the bulk form, if any."""
    return [s for s in values(at.subheader) if s.startswith("Change ")]


def status_of(db, lead_id: str) -> LeadStatus:  # noqa: ANN001 - the AppDb fixture
    with db.session() as session:
        return session.get(Lead, lead_id).status


def set_created_at(db, lead_id: str, when: datetime) -> None:  # noqa: ANN001 - the AppDb fixture
    with db.session() as session:
        session.get(Lead, lead_id).created_at = when


def three_leads(add_lead) -> dict[str, str]:  # noqa: ANN001 - the add_lead fixture
    """Ann, Ben and Cy (all NEW), by name: their ids."""
    return {name: add_lead(full_name=name, email=f"{name.split()[0].lower()}@example.com", budget=budget)["id"]
            for name, budget in (("Ann One", "$5k"), ("Ben Two", "$200k"), ("Cy Three", "$40k"))}


# --- selections ---------------------------------------------------------------------------------------------------


def test_a_bulk_change_that_moves_rows_out_of_the_filter_leaves_a_working_page(app_db, signed_in, add_lead):
    ids = three_leads(add_lead)
    at = open_page(signed_in("manager"), "pages/queue.py")
    by_label(at.selectbox, "Status").select("NEW")
    at.run()
    names = queue_names(at)
    assert len(names) == 3

    at = select_rows(at, [1, 2])
    assert selection_shown(at) == ["Change 2 selected lead(s)"]
    bulk_status(at, "CONTACTED")
    at = click(at, APPLY)

    assert not at.exception
    assert queue_names(at) == [names[0]]  # the two changed leads left the NEW filter
    assert not selection_shown(at) and not offers(at, OPEN)
    assert [status_of(app_db, ids[name]) for name in names] == [LeadStatus.NEW, LeadStatus.CONTACTED,
                                                                LeadStatus.CONTACTED]


def test_a_search_drops_a_selection_of_rows_that_are_gone(signed_in, add_lead):
    three_leads(add_lead)
    at = open_page(signed_in("manager"), "pages/queue.py")
    at = select_rows(at, [2])
    assert offers(at, OPEN)

    at = search(at, "Ann")

    assert not at.exception
    assert queue_names(at) == ["Ann One"]
    assert not offers(at, OPEN) and not selection_shown(at)


def test_a_selection_never_moves_to_a_lead_nobody_selected(app_db, signed_in, add_lead):
    ids = three_leads(add_lead)
    at = open_page(signed_in("manager"), "pages/queue.py")
    at = select_rows(at, [0])
    assert queue_names(at)[0] != "Ann One"
    assert selection_shown(at) == ["Change 1 selected lead(s)"]

    at = search(at, "Ann")  # Ann is now row 0

    assert not at.exception
    assert queue_names(at) == ["Ann One"]
    assert not offers(at, OPEN), "Open would go to Ann, whom nobody selected"
    assert not offers(at, APPLY) and not selection_shown(at)
    assert status_of(app_db, ids["Ann One"]) == LeadStatus.NEW


def test_the_lead_opened_is_the_one_ticked_even_after_a_search(signed_in, add_lead):
    ids = three_leads(add_lead)
    at = search(open_page(signed_in("staff"), "pages/queue.py"), "Cy")
    at = click(select_rows(at, [0]), OPEN)

    assert not at.exception
    assert at.query_params.get("id") == ids["Cy Three"]
    assert values(at.text)[0] == "Cy Three"


def test_rows_that_are_not_in_the_table_are_not_selected(app_db, signed_in, add_lead):
    ids = three_leads(add_lead)
    at = open_page(signed_in("manager"), "pages/queue.py")
    top = queue_names(at)[0]

    at = select_rows(at, [0, 3, 7, -1])

    assert not at.exception
    assert selection_shown(at) == ["Change 1 selected lead(s)"]
    bulk_status(at, "QUALIFIED")
    at = click(at, APPLY)
    assert {name: status_of(app_db, lead_id) for name, lead_id in ids.items()} == {
        name: LeadStatus.QUALIFIED if name == top else LeadStatus.NEW for name in ids}


def test_a_selection_made_on_rows_that_changed_since_is_dropped(app_db, signed_in, add_lead):
    ids = three_leads(add_lead)
    at = open_page(signed_in("manager"), "pages/queue.py")
    shown_key, names = at.dataframe[0].key, queue_names(at)
    # Someone else's change reorders the rows, and the page's cache has expired by the time the click arrives.
    with app_db.session() as session:
        session.get(Lead, ids[names[0]]).score = 0
    st.cache_data.clear()

    at.session_state[shown_key] = {"selection": {"rows": [0], "columns": [], "cells": []}}  # a tick on the old top
    at.run()

    assert not at.exception
    assert queue_names(at) == [*names[1:], names[0]]
    assert not offers(at, OPEN) and not selection_shown(at)


# --- sources ------------------------------------------------------------------------------------------------------


def test_the_source_filter_offers_the_sources_leads_came_from(signed_in, add_lead):
    add_lead(full_name="Trade Tia", email="tia@example.com", source="trade-show-2026")
    add_lead(full_name="Walk Wes", email="wes@example.com", source="walk-in")
    add_lead(full_name="Web Wanda", email="wanda@example.com", source="website")
    at = open_page(signed_in("manager"), "pages/queue.py")

    assert by_label(at.selectbox, "Source").options == ["All", "trade-show-2026", "walk-in", "website"]

    by_label(at.selectbox, "Source").select("trade-show-2026")
    at.run()
    assert not at.exception
    assert queue_names(at) == ["Trade Tia"]


# --- orders and dates ---------------------------------------------------------------------------------------------


def test_the_queue_sorts_oldest_first_when_asked(app_db, signed_in, add_lead):
    ids = three_leads(add_lead)
    now = datetime.now(UTC)
    for days, name in ((3, "Ben Two"), (2, "Cy Three"), (1, "Ann One")):
        set_created_at(app_db, ids[name], now - timedelta(days=days))
    at = open_page(signed_in("manager"), "pages/queue.py")

    by_label(at.radio, "Sort by").set_value("oldest")
    at.run()
    assert queue_names(at) == ["Ben Two", "Cy Three", "Ann One"]

    by_label(at.radio, "Sort by").set_value("newest")
    at.run()
    assert queue_names(at) == ["Ann One", "Cy Three", "Ben Two"]


def test_old_leads_are_shown_until_dates_are_picked(app_db, signed_in, add_lead):
    ids = three_leads(add_lead)
    now = datetime.now(UTC)
    set_created_at(app_db, ids["Ann One"], now - timedelta(days=3 * 365))  # imported history
    at = open_page(signed_in("manager"), "pages/queue.py")
    assert sorted(queue_names(at)) == ["Ann One", "Ben Two", "Cy Three"]
    assert "Leads 1–3 of 3" in values(at.caption)

    dates = by_label(at.date_input, "Created between")
    dates.set_value((now.date() - timedelta(days=30), now.date()))
    at.run()
    assert sorted(queue_names(at)) == ["Ben Two", "Cy Three"]

    dates = by_label(at.date_input, "Created between")
    dates.set_value((now.date() - timedelta(days=4 * 365), now.date() - timedelta(days=2 * 365)))
    at.run()
    assert queue_names(at) == ["Ann One"]


# --- empty states -------------------------------------------------------------------------------------------------


def test_filters_that_match_nothing_say_so_and_can_be_cleared(signed_in, add_lead):
    three_leads(add_lead)
    at = open_page(signed_in("manager"), "pages/queue.py")
    by_label(at.selectbox, "Status").select("WON")
    at = search(at, "Ann")

    assert not at.exception
    assert not at.dataframe
    assert any("No leads match these filters" in i for i in values(at.info)), values(at.info)

    at = click(at, "Clear all filters")

    assert not at.exception
    assert sorted(queue_names(at)) == ["Ann One", "Ben Two", "Cy Three"]
    assert by_label(at.selectbox, "Status").value == "All"
    assert by_label(at.text_input, "Search name, email or company").value == ""


def test_an_empty_queue_says_there_are_no_leads_yet(signed_in):
    at = open_page(signed_in("manager"), "pages/queue.py")

    assert not at.exception
    assert not at.dataframe
    assert any("No leads to show yet" in i for i in values(at.info)), values(at.info)
    assert not offers(at, "Clear all filters")
