"""The Follow-ups page as its users see it: the lists, the detail panel and its actions, figures, sequences."""

from __future__ import annotations

from datetime import time, timedelta

import pytest
import streamlit as st
from sqlalchemy import select
from streamlit.testing.v1 import AppTest

from core import sequences
from db.models import Activity, FollowUp, FollowUpStatus, Priority, WorkflowLog, utcnow
from tests.pages.conftest import REFUSED, AppDb, by_label, click, open_page, values

PAGE = "pages/followups.py"
XSS_NAME = "<img src=x onerror=alert(1)><b>bold</b>"


def tab(at: AppTest, label: str):  # noqa: ANN201 - an AppTest Tab
    return by_label(at.tabs, label)


def listed(at: AppTest, label: str, column: str = "lead") -> list:
    """One column of a tab's list, or [] when the tab shows its empty state."""
    tables = tab(at, label).dataframe
    return list(tables[0].value[column]) if tables else []


def select_row(at: AppTest, label: str, row: int = 0) -> AppTest:
    """Clicks a row of a tab's list as the browser does."""
    table = tab(at, label).dataframe[0]
    at.session_state[table.key] = {"selection": {"rows": [row], "columns": [], "cells": []}}
    return at.run()


def follow_ups_of(db: AppDb, lead_id: str) -> dict[int, str]:
    """The lead's follow-up ids by step number (the default HIGH sequence: email, call, SMS, email)."""
    with db.session() as session:
        return {f.number: f.id for f in session.scalars(select(FollowUp).where(FollowUp.lead_id == lead_id))}


def stored(db: AppDb, follow_up_id: str) -> FollowUp:
    with db.session() as session:
        return session.get(FollowUp, follow_up_id)


def set_state(db: AppDb, follow_up_id: str, **values) -> None:  # noqa: ANN003 - FollowUp columns
    """Puts a follow-up in the state a jobs pass would have left it in."""
    with db.session() as session:
        follow_up = session.get(FollowUp, follow_up_id)
        for name, value in values.items():
            setattr(follow_up, name, value)


def log_attempt(db: AppDb, follow_up_id: str, outcome: str) -> None:
    with db.session() as session:
        follow_up = session.get(FollowUp, follow_up_id)
        session.add(WorkflowLog(kind="followup", subject_id=follow_up.id, lead_id=follow_up.lead_id,
                                channel=follow_up.channel.value, outcome=outcome, detail="test"))


def markdown_texts(at: AppTest) -> list[str]:
    elements = [*at.markdown, *at.caption, *at.title, *at.header, *at.subheader, *at.error, *at.warning, *at.info,
                *at.success, *at.toast]
    return [str(e.value) for e in elements]


# --- who gets in, and what they see ----------------------------------------------------------------------------------


def test_due_today_shows_a_new_lead_s_email_with_the_lead_s_name(signed_in, add_lead):
    add_lead(full_name="Dana Whitfield", company="Harborline Freight")
    at = open_page(signed_in("staff"), PAGE)

    assert not at.exception
    assert [t.value for t in at.title] == ["Follow-ups"]
    due = tab(at, "Due today").dataframe[0].value
    email = due[due["channel"] == "EMAIL"]
    assert list(email["lead"]) == ["Dana Whitfield"]
    assert list(email["company"]) == ["Harborline Freight"]
    assert listed(at, "Scheduled", "channel") == ["EMAIL", "CALL", "SMS", "EMAIL"]
    # No email server in tests: the page says why nothing goes out yet.
    assert any(i.startswith("Not configured, so their due follow-ups wait in the queue until it is: "
                            "Email (SMTP_HOST, MAIL_FROM not set); SMS (") for i in values(at.info))


def test_an_empty_list_says_what_to_do(signed_in):
    at = open_page(signed_in("manager"), PAGE)

    assert not at.exception
    assert ("No follow-ups due today. New leads get their sequence when they are qualified; sequences are on the "
            "Sequences tab.") in values(tab(at, "Due today").info)
    assert any(i.startswith("No calls to make.") for i in values(tab(at, "Calls to make").info))


def test_staff_do_not_see_follow_ups_of_another_staff_member_s_leads(signed_in, add_lead):
    add_lead(full_name="Mine Mia", email="mia@example.com", assignee="sam")
    add_lead(full_name="Open Olga", email="olga@example.com")
    add_lead(full_name="Theirs Tom", email="tom@example.com", assignee="sue")

    staff = open_page(signed_in("staff"), PAGE)
    assert not staff.exception
    assert set(listed(staff, "Scheduled")) == {"Mine Mia", "Open Olga"}
    assert set(listed(staff, "Due today")) == {"Mine Mia", "Open Olga"}
    assert not [s for s in staff.selectbox if s.key == "filter_assignee"]

    manager = open_page(signed_in("manager"), PAGE)
    assert set(listed(manager, "Scheduled")) == {"Mine Mia", "Open Olga", "Theirs Tom"}
    manager.selectbox(key="filter_assignee").select("sue")
    manager.run()
    assert set(listed(manager, "Scheduled")) == {"Theirs Tom"}


def test_the_search_and_channel_filters_narrow_the_lists(signed_in, add_lead):
    add_lead(full_name="Dana Whitfield", company="Harborline Freight", email="dana@example.com")
    add_lead(full_name="Priya Raman", company="Northwind Clinics", email="priya@example.com")
    at = open_page(signed_in("manager"), PAGE)

    at.text_input(key="filter_text").input("northwind")
    at.run()
    assert set(listed(at, "Scheduled")) == {"Priya Raman"}

    at.selectbox(key="filter_channel").select("SMS")
    at.run()
    assert listed(at, "Scheduled", "channel") == ["SMS"]
    assert "1–1 of 1 · select a row to see the message and what you can do" in values(tab(at, "Scheduled").caption)


def test_a_viewer_is_refused(signed_in, add_lead):
    lead = add_lead()
    at = open_page(signed_in("viewer"), PAGE)

    assert not at.exception
    assert REFUSED in values(at.error)
    assert not at.tabs and not at.dataframe
    assert not any(lead["full_name"] in t for t in values(at.text))


@pytest.mark.parametrize("role", ["admin", "manager", "staff"])
def test_the_menu_lists_follow_ups_after_the_lead_queue(monkeypatch, signed_in, role):
    menus: list[list[str]] = []
    real = st.navigation

    def spy(pages, **kwargs):  # noqa: ANN001, ANN003, ANN202 - st.navigation's own signature
        menus.append([p.title for p in pages if p.visibility == "visible"])
        return real(pages, **kwargs)

    monkeypatch.setattr(st, "navigation", spy)
    signed_in(role)

    menu = menus[-1]
    assert menu.index("Follow-ups") == menu.index("Lead queue") + 1


# --- the detail panel and its actions --------------------------------------------------------------------------------


def test_a_selected_follow_up_shows_its_message_as_plain_text_and_opens_its_lead(signed_in, add_lead):
    lead = add_lead(full_name=XSS_NAME)
    at = select_row(open_page(signed_in("staff"), PAGE), "Scheduled", 0)

    assert not at.exception
    panel = tab(at, "Scheduled")
    assert "Follow-up 1 · email · scheduled" in values(panel.subheader)
    texts = values(panel.text)
    assert any(t.startswith(XSS_NAME) for t in texts)
    assert any(t.startswith("Hi <img,") for t in texts)  # the template filled in with the lead's first name
    assert "No attempts yet." in texts
    assert not any("<img" in m for m in markdown_texts(at))

    at = click(at, "Open lead")
    assert not at.exception
    assert at.query_params.get("id") == lead["id"]


def test_a_manager_edits_a_scheduled_message_and_the_edit_is_stored(app_db, signed_in, add_lead):
    lead = add_lead(full_name="Dana Whitfield")
    first = follow_ups_of(app_db, lead["id"])[1]
    at = select_row(open_page(signed_in("manager"), PAGE), "Scheduled", 0)

    by_label(at.text_input, "Subject").input("Your tracking portal: a call this week?")
    by_label(at.text_area, "Message").input("Hi Dana,\n\nCould we talk on Thursday at 10?\n\nMax")
    at = click(at, "Save the message")

    assert not at.exception
    assert not at.error
    assert "Follow-up 1 rewritten." in values(at.success)
    saved = stored(app_db, first)
    assert saved.subject == "Your tracking portal: a call this week?"
    assert saved.body == "Hi Dana,\n\nCould we talk on Thursday at 10?\n\nMax"
    assert saved.copy_source == "edited"

    at = select_row(at, "Scheduled", 0)  # the panel now shows the message as written
    assert "Subject: Your tracking portal: a call this week?" in values(tab(at, "Scheduled").text)


def test_an_email_without_a_subject_is_refused_next_to_the_field(app_db, signed_in, add_lead):
    lead = add_lead()
    first = follow_ups_of(app_db, lead["id"])[1]
    at = select_row(open_page(signed_in("manager"), PAGE), "Scheduled", 0)

    by_label(at.text_input, "Subject").input("   ")
    at = click(at, "Save the message")

    assert not at.exception
    assert "Subject: an email needs a subject" in values(at.error)
    assert stored(app_db, first).copy_source is None


def test_staff_cannot_edit_a_message(signed_in, add_lead):
    add_lead()
    at = select_row(open_page(signed_in("staff"), PAGE), "Scheduled", 0)

    assert not at.exception
    assert not [b for b in at.button if b.label == "Save the message"]
    assert [b for b in at.button if b.label == "Open lead"]


def test_retry_puts_a_failed_follow_up_back_in_the_queue(app_db, signed_in, add_lead):
    lead = add_lead(full_name="Dana Whitfield")
    first = follow_ups_of(app_db, lead["id"])[1]
    set_state(app_db, first, status=FollowUpStatus.FAILED, attempts=6, last_error="421 try again later")
    log_attempt(app_db, first, "failed")
    at = open_page(signed_in("staff"), PAGE)
    assert listed(at, "Failed", "last_error") == ["421 try again later"]

    at = select_row(at, "Failed", 0)
    assert not at.exception
    assert "failed" in listed_attempts(at)
    at = click(at, "Retry")

    assert not at.exception
    saved = stored(app_db, first)
    assert (saved.status, saved.attempts) == (FollowUpStatus.SCHEDULED, 0)
    assert listed(at, "Failed") == []
    assert any(i.startswith("No failed follow-ups.") for i in values(tab(at, "Failed").info))
    assert "Dana Whitfield" in listed(at, "Due today")


def listed_attempts(at: AppTest) -> list[str]:
    table = next(d.value for d in tab(at, "Failed").dataframe if "outcome" in d.value.columns)
    return list(table["outcome"])


def test_a_call_marked_done_leaves_calls_to_make(app_db, signed_in, add_lead):
    lead = add_lead(full_name="Mine Mia", assignee="sam")
    call = follow_ups_of(app_db, lead["id"])[2]
    set_state(app_db, call, status=FollowUpStatus.TASK)
    at = open_page(signed_in("staff"), PAGE)
    assert listed(at, "Calls to make") == ["Mine Mia"]
    assert listed(at, "Calls to make", "phone") == [lead["phone"]]

    at = select_row(at, "Calls to make", 0)
    by_label(at.text_area, "What came of the call? (optional)").input("Booked a demo for Tuesday")
    at = click(at, "Mark the call as done")

    assert not at.exception
    assert listed(at, "Calls to make") == []
    assert "Call marked as done." in values(at.success)
    saved = stored(app_db, call)
    assert (saved.status, saved.completed_by) == (FollowUpStatus.DONE, "user:sam")
    with app_db.session() as session:
        notes = list(session.scalars(select(Activity.body).where(Activity.lead_id == lead["id"])))
    assert "Call 2 made: Booked a demo for Tuesday" in notes


def test_stopping_a_follow_up_needs_the_confirmation(app_db, signed_in, add_lead):
    lead = add_lead()
    last = follow_ups_of(app_db, lead["id"])[4]
    at = select_row(open_page(signed_in("manager"), PAGE), "Scheduled", 3)
    assert by_label(at.button, "Stop it").disabled

    by_label(at.checkbox, "Yes, stop it").check()
    at = click(at.run(), "Stop it")

    assert not at.exception
    saved = stored(app_db, last)
    assert (saved.status, saved.cancel_reason) == (FollowUpStatus.CANCELLED, "stopped by user:max")
    assert listed(at, "Scheduled", "number") == [1, 2, 3]


# --- figures -------------------------------------------------------------------------------------------------------


def test_the_figures_equal_a_hand_count(app_db, signed_in, add_lead):
    a = follow_ups_of(app_db, add_lead(email="a@example.com")["id"])
    b = follow_ups_of(app_db, add_lead(email="b@example.com")["id"])
    set_state(app_db, a[1], status=FollowUpStatus.SENT, sent_at=utcnow() - timedelta(hours=2), attempts=1)
    log_attempt(app_db, a[1], "sent")
    set_state(app_db, a[2], status=FollowUpStatus.TASK)
    set_state(app_db, a[3], status=FollowUpStatus.FAILED, attempts=1, last_error="21211 invalid number")
    log_attempt(app_db, a[3], "failed")
    set_state(app_db, b[1], status=FollowUpStatus.FAILED, attempts=1, last_error="550 no such user")
    log_attempt(app_db, b[1], "bounced")

    at = open_page(signed_in("manager"), PAGE)

    assert not at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert metrics == {"Email sent": "1", "SMS sent": "0", "WhatsApp sent": "0", "Calls to make": "1"}
    captions = values(at.caption)
    # Email: A1 sent, B1 bounced, A4 and B4 waiting. SMS: A3 failed, B3 waiting. Calls: A2 open, B2 planned.
    assert "1 failed · 1 bounced · 2 waiting · delivered 50%" in captions
    assert "1 failed · 0 bounced · 1 waiting · delivered 0%" in captions
    assert "0 done · 1 planned" in captions
    chart = at.get("plotly_chart")
    assert len(chart) == 1
    assert listed(at, "Sent") == [a_name(app_db, a[1])]


def a_name(db: AppDb, follow_up_id: str) -> str:
    with db.session() as session:
        return session.get(FollowUp, follow_up_id).lead.full_name


# --- sequences -----------------------------------------------------------------------------------------------------


def test_the_sequences_tab_is_only_for_managers_and_admins(signed_in):
    staff = open_page(signed_in("staff"), PAGE)
    assert "Sequences" not in [t.label for t in staff.tabs]
    assert not [b for b in staff.button if b.label in ("Add the step", "Save the send window")]

    for role in ("manager", "admin"):
        at = open_page(signed_in(role), PAGE)
        assert not at.exception
        assert [t.label for t in at.tabs][-1] == "Sequences"
        steps = tab(at, "Sequences").dataframe[1].value  # after the template variables: HIGH
        assert list(steps["channel"]) == ["EMAIL", "CALL", "SMS", "EMAIL"]


def live_steps(db: AppDb, priority: Priority) -> list:
    with db.session() as session:
        return [(s.channel.value, s.body_template) for s in sequences.get_steps(session=session, priority=priority)]


def test_a_template_with_an_unknown_variable_is_refused_under_its_field(app_db, signed_in):
    before = live_steps(app_db, Priority.HIGH)
    at = open_page(signed_in("manager"), PAGE)
    form = at.get_by_key("new_step_HIGH_0")
    form.text_input(key="new_step_HIGH_0_subject").input("Hello {{ first_name }}")
    form.text_area(key="new_step_HIGH_0_body").input("Hi {{ nickname }}, shall we talk?")
    form.button[0].click()
    at.run()

    assert not at.exception
    form = at.get_by_key("new_step_HIGH_0")
    shown = [text for e in form if (text := getattr(e, "label", None) or getattr(e, "value", None))]
    problem = shown[shown.index("Body template *") + 1]
    assert problem.startswith("Body template: uses an unknown variable ('nickname' is undefined); known: first_name")
    assert live_steps(app_db, Priority.HIGH) == before


def test_a_valid_step_is_added_to_the_sequence(app_db, signed_in):
    at = open_page(signed_in("manager"), PAGE)
    form = at.get_by_key("new_step_LOW_0")
    form.number_input(key="new_step_LOW_0_amount").set_value(2)
    form.selectbox(key="new_step_LOW_0_unit").select("hours")
    form.selectbox(key="new_step_LOW_0_channel").select("SMS")
    form.text_area(key="new_step_LOW_0_body").input("Hi {{ first_name }}, {{ business_name }} here.")
    form.button[0].click()
    at.run()

    assert not at.exception
    assert "Step added to the LOW sequence; new leads get it." in values(at.success)
    assert live_steps(app_db, Priority.LOW)[-1] == ("SMS", "Hi {{ first_name }}, {{ business_name }} here.")
    low = tab(at, "Sequences").dataframe[3].value
    assert list(low["after"])[-1] == "2 h"


def save_send_window(at: AppTest, start: time, end: time, *, days: list[int] | None = None) -> AppTest:
    """Fills in the send window form (its days too, when given) and saves it."""
    if days is not None:
        by_label(at.multiselect, "Days").set_value(days)
    by_label(at.time_input, "From (UTC)").set_value(start)
    by_label(at.time_input, "Until (UTC)").set_value(end)
    return click(at, "Save the send window")


def test_the_send_window_saves(app_db, signed_in):
    at = open_page(signed_in("manager"), PAGE)
    assert any("in UTC time" in c and "Mon-Fri 09:00-18:00" in c for c in values(at.caption))

    at = save_send_window(at, time(8, 0), time(17, 30), days=[0, 2, 4])

    assert not at.exception
    assert "Send window saved." in values(at.success)
    with app_db.session() as session:
        window = sequences.get_send_window(session=session)
    assert (window.days, window.start, window.end) == ([0, 2, 4], time(8, 0), time(17, 30))
    assert any("Mon, Wed, Fri 08:00-17:30" in c for c in values(at.caption))


def test_a_send_window_that_ends_before_it_starts_is_refused(app_db, signed_in):
    at = open_page(signed_in("manager"), PAGE)
    at = save_send_window(at, time(18, 0), time(9, 0))

    assert not at.exception
    assert "End: the window must end after it starts" in values(at.error)
    with app_db.session() as session:
        assert sequences.get_send_window(session=session).start == time(9, 0)


# --- the lead page's section ---------------------------------------------------------------------------------------


def test_the_lead_page_lists_the_lead_s_follow_ups(app_db, signed_in, add_lead):
    lead = add_lead()
    first = follow_ups_of(app_db, lead["id"])[1]
    set_state(app_db, first, status=FollowUpStatus.FAILED, last_error="550 no such user")
    at = open_page(signed_in("staff"), "pages/lead.py", id=lead["id"])

    assert not at.exception
    section = next(d.value for d in at.dataframe if "problem" in d.value.columns)
    assert list(section["channel"]) == ["EMAIL", "CALL", "SMS", "EMAIL"]
    assert list(section["status"]) == ["FAILED", "SCHEDULED", "SCHEDULED", "SCHEDULED"]
    assert list(section["problem"])[0] == "550 no such user"
    assert any(link.label == "All follow-ups" for link in at.get("page_link"))


def test_a_manager_runs_the_follow_ups_pass_from_the_page(app_db, signed_in, add_lead):
    lead = add_lead()
    first = follow_ups_of(app_db, lead["id"])[1]
    assert not [b for b in open_page(signed_in("staff"), PAGE).button if b.label == "Run the follow-ups pass now"]
    at = open_page(signed_in("manager"), PAGE)

    at = click(at, "Run the follow-ups pass now")

    assert not at.exception
    assert "The follow-ups pass ran." in values(at.success)
    summary = next(t for t in values(at.text) if t.startswith("followups: "))
    # No email server is configured: the due email stays queued, with the reason on it (or the window is shut).
    assert stored(app_db, first).status == FollowUpStatus.SCHEDULED
    assert "0 sent" in summary
