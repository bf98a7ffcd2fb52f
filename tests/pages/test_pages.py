"""The app as its users see it: sign-in and lockout, menus per role, intake, queue, lead page and account."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta

import pytest
import streamlit as st
from sqlalchemy import select
from streamlit.testing.v1 import AppTest
from streamlit_authenticator.models.cookie_model import CookieModel

from core import audit, users
from db.models import Lead
from tests.pages.conftest import (
    REFUSED,
    assign,
    by_label,
    click,
    new_app,
    open_page,
    password_of,
    queue_names,
    select_rows,
    shows_sign_in_form,
    signed_in_as,
    submit_sign_in,
    values,
)

XSS_NAME = "<img src=x onerror=alert(1)><b>bold</b>"
XSS_MESSAGE = "[click](http://evil.test) **x** — we need a booking portal for our clinics."


def refused(at: AppTest) -> bool:
    return REFUSED in values(at.error)


def lead_in_db(db, lead_id: str) -> Lead | None:  # noqa: ANN001 - the AppDb fixture
    with db.session() as session:
        return session.get(Lead, lead_id)


def assignee_of(db, lead_id: str) -> str | None:  # noqa: ANN001 - the AppDb fixture
    with db.session() as session:
        lead = session.get(Lead, lead_id)
        return lead.assignee.username if lead.assignee else None


def leads_named(db, name: str) -> list[Lead]:  # noqa: ANN001 - the AppDb fixture
    with db.session() as session:
        return list(session.scalars(select(Lead).where(Lead.full_name == name)))


def markdown_texts(at: AppTest) -> list[str]:
    """Everything on the page that Streamlit renders as markdown."""
    elements = [*at.markdown, *at.caption, *at.title, *at.header, *at.subheader, *at.error, *at.warning, *at.info,
                *at.success, *at.toast]
    return [str(e.value) for e in elements]


# --- sign-in ---------------------------------------------------------------------------------------------------


def test_a_wrong_password_is_refused(app_db):
    at = submit_sign_in(new_app(), "sam", "not-the-password")

    assert not at.exception
    assert "Wrong username or password." in values(at.error)
    assert shows_sign_in_form(at)
    assert signed_in_as(at) is None

    at = submit_sign_in(at, "sam", password_of("sam"))  # the right one still works after a slip
    assert signed_in_as(at) == "sam"


def test_five_wrong_passwords_lock_the_account_even_against_the_right_one(app_db):
    at = new_app()
    for _ in range(4):
        at = submit_sign_in(at, "sam", "not-the-password")
        assert values(at.error) == ["Wrong username or password."]
    at = submit_sign_in(at, "sam", "not-the-password")  # the fifth locks
    assert any("locked until" in e for e in values(at.error)), values(at.error)

    at = submit_sign_in(at, "sam", password_of("sam"))

    assert not at.exception
    locked = [e for e in values(at.error) if "locked until" in e]
    assert locked and re.search(r"locked until \d{2}:\d{2} \(UTC\) for 15 minutes", locked[0]), values(at.error)
    assert shows_sign_in_form(at)
    assert signed_in_as(at) is None
    with app_db.session() as session:
        events = audit.get_all(session=session, action="login.locked")
        reasons = sorted(e.detail["reason"] for e in events)
        assert all(e.actor == "sam" for e in events)
    assert reasons == ["account locked", "wrong password"]  # the lock itself, then the refused right password
    assert app_db.user("sam").locked_until is not None


def test_a_user_disabled_while_signed_in_is_signed_out_on_the_next_rerun(app_db, signed_in):
    at = signed_in("staff")
    with app_db.session() as session:
        users.set_disabled(session=session, user_id=app_db.user("sam").id, disabled=True, actor="ada")

    # The next click reruns the entry script, which re-reads the user (a running server always starts there; AppTest
    # has to be pointed at it, as it otherwise reruns the last page file alone).
    at.switch_page("Home.py")
    at.run()

    assert not at.exception
    assert any("no longer active" in w for w in values(at.warning)), values(at.warning)
    assert signed_in_as(at) is None
    assert "leadops_user" not in at.session_state
    # That run cleared the session; the one after it (in a browser, the cookie component's answer) shows the form.
    at.run()
    assert shows_sign_in_form(at)
    assert signed_in_as(at) is None


def test_a_browser_holding_a_disabled_users_cookie_gets_the_sign_in_form(app_db, monkeypatch):
    # A new session in a browser that still holds sam's signed cookie (valid for hours) after an admin disabled sam.
    with app_db.session() as session:
        users.set_disabled(session=session, user_id=app_db.user("sam").id, disabled=True, actor="ada")
    # As the widget's own get_cookie: nothing once the session has signed out.
    cookie = {"username": "sam", "exp_date": time.time() + 3600}
    monkeypatch.setattr(CookieModel, "get_cookie", lambda self: None if st.session_state.get("logout") else cookie)
    deleted: list[bool] = []
    monkeypatch.setattr(CookieModel, "delete_cookie", lambda self: deleted.append(True))

    at = new_app()

    assert not at.exception
    assert any("no longer active" in w for w in values(at.warning)), values(at.warning)
    assert shows_sign_in_form(at) and signed_in_as(at) is None
    assert deleted  # the browser is told to forget the cookie
    # Someone else can sign in on that browser.
    submit_sign_in(at, "max", password_of("max"))
    assert signed_in_as(at) == "max"


def test_a_page_asked_for_directly_rechecks_the_user_too(app_db, signed_in):
    at = open_page(signed_in("staff"), "pages/queue.py")
    assert not refused(at) and [t.value for t in at.title] == ["Lead queue"]
    with app_db.session() as session:
        users.set_disabled(session=session, user_id=app_db.user("sam").id, disabled=True, actor="ada")

    at.run()

    assert not at.exception
    assert "Please sign in." in values(at.warning)
    assert not at.title and not at.dataframe


# --- menus and the pages' own role check ---------------------------------------------------------------------------

MENUS = {
    "admin": ["Dashboard", "To do", "New lead", "Lead queue", "Follow-ups", "Import", "Learned score", "Insights",
              "AI usage", "Admin", "My account"],
    "manager": ["Dashboard", "To do", "New lead", "Lead queue", "Follow-ups", "Import", "Learned score", "Insights",
                "My account"],
    "staff": ["To do", "New lead", "Lead queue", "Follow-ups", "My account"],
    "viewer": ["Dashboard", "To do", "Insights", "My account"],
}


@pytest.mark.parametrize("role", MENUS)
def test_the_menu_lists_the_pages_of_the_role(monkeypatch, signed_in, role):
    menus: list[list[str]] = []
    real = st.navigation

    def spy(pages, **kwargs):  # noqa: ANN001, ANN003, ANN202 - st.navigation's own signature
        menus.append([p.title for p in pages if p.visibility == "visible"])
        return real(pages, **kwargs)

    monkeypatch.setattr(st, "navigation", spy)
    signed_in(role)

    assert menus[-1] == MENUS[role]


def test_an_admin_can_open_the_admin_page(signed_in):
    at = open_page(signed_in("admin"), "pages/admin.py")

    assert not at.exception
    assert not refused(at)
    assert "Users" in [tab.label for tab in at.tabs]


@pytest.mark.parametrize("role", ["manager", "staff", "viewer"])
def test_other_roles_asking_for_the_admin_page_are_refused(signed_in, role):
    at = open_page(signed_in(role), "pages/admin.py")

    assert not at.exception
    assert refused(at)
    assert not at.tabs


@pytest.mark.parametrize("page", ["pages/queue.py", "pages/intake.py", "pages/lead.py"])
def test_a_viewer_asking_for_a_working_page_is_refused(signed_in, add_lead, page):
    lead = add_lead()
    at = open_page(signed_in("viewer"), page, id=lead["id"])

    assert not at.exception
    assert refused(at)
    assert not at.dataframe and not at.text_input and not at.text_area
    assert not any(lead["full_name"] in t for t in values(at.text))


@pytest.mark.parametrize("page", ["pages/home.py", "pages/account.py"])
def test_a_viewer_may_open_home_and_account(signed_in, page):
    at = open_page(signed_in("viewer"), page)

    assert not at.exception
    assert not refused(at)


# --- intake ----------------------------------------------------------------------------------------------------


def fill_intake(at: AppTest, **fields: str) -> AppTest:
    labels = {"full_name": "Full name *", "email": "Email *", "phone": "Phone", "company": "Company",
              "budget": "Budget"}
    for field, value in fields.items():
        if field == "message":
            by_label(at.text_area, "What do they need? *").input(value)
        else:
            by_label(at.text_input, labels[field]).input(value)
    return click(at, "Save and analyse")


NEW_LEAD = {
    "full_name": "Priya Raman", "email": "priya@northwindclinics.example", "phone": "+44 20 7946 0958",
    "company": "Northwind Clinics", "budget": "$60k",
    "message": "We need a patient booking web app with SMS reminders and an admin dashboard; launch in Q2.",
}


def test_staff_enter_a_lead_and_see_its_analysis_then_find_it_in_the_queue(app_db, signed_in):
    at = open_page(signed_in("staff"), "pages/intake.py")
    at = fill_intake(at, **NEW_LEAD)

    assert not at.exception
    assert not at.error
    assert "Lead saved with its analysis." in values(at.success)
    score = by_label(at.metric, "Score")
    saved = leads_named(app_db, "Priya Raman")
    assert len(saved) == 1 and saved[0].email == "priya@northwindclinics.example"
    assert score.value == str(saved[0].score)
    assert any("Priya Raman of Northwind Clinics" in t for t in values(at.text))  # the summary
    assert saved[0].source == "phone"  # the form's first choice

    at = open_page(at, "pages/queue.py")
    assert not at.exception
    assert "Priya Raman" in list(at.dataframe[0].value["name"])


def test_missing_fields_and_a_bad_email_are_named_next_to_the_fields(app_db, signed_in):
    at = open_page(signed_in("staff"), "pages/intake.py")
    at = fill_intake(at, full_name="  ", email="priya@", company="Northwind Clinics")

    assert not at.exception
    errors = values(at.error)
    assert "Full name is required" in errors
    assert "Message is required" in errors
    assert any(e.startswith("Email is not a valid email address") for e in errors)
    assert not at.success
    # Each error sits right under its own field, inside the form.
    left = list(at.columns[0].children.values())
    labels = [getattr(e, "label", None) or e.value for e in left]
    assert labels.index("Full name *") + 1 == labels.index("Full name is required")
    assert labels[labels.index("Email *") + 1].startswith("Email is not a valid email address")
    with app_db.session() as session:
        assert session.scalar(select(Lead.id)) is None  # nothing saved


def test_a_refused_entry_after_a_saved_one_does_not_claim_to_be_saved(app_db, signed_in):
    at = fill_intake(open_page(signed_in("staff"), "pages/intake.py"), **NEW_LEAD)
    assert "Lead saved with its analysis." in values(at.success)

    at = fill_intake(at, full_name=" ", email="bob@example.com", message="Second lead, name forgotten.")

    assert "Full name is required" in values(at.error)
    assert not at.success  # the first lead's "saved" message and card are gone
    assert not at.metric
    with app_db.session() as session:
        assert session.scalar(select(Lead.id).where(Lead.email == "bob@example.com")) is None


def test_a_second_lead_with_the_same_email_is_flagged_as_a_possible_duplicate(app_db, signed_in, add_lead):
    add_lead(full_name="Priya R.", email=NEW_LEAD["email"])
    at = open_page(signed_in("staff"), "pages/intake.py")
    at = fill_intake(at, **NEW_LEAD)

    assert not at.exception
    warnings = values(at.warning)
    assert any(w.startswith("1 other lead(s) already use") for w in warnings), warnings
    assert any(b.label.startswith("Open the earlier lead from") for b in at.button)
    assert len(leads_named(app_db, "Priya Raman")) == 1  # saved all the same, with the warning


def test_the_saved_lead_and_its_earlier_duplicate_open_on_the_lead_page(app_db, signed_in, add_lead):
    earlier = add_lead(full_name="Priya R.", email=NEW_LEAD["email"])
    at = fill_intake(open_page(signed_in("staff"), "pages/intake.py"), **NEW_LEAD)
    saved = leads_named(app_db, "Priya Raman")[0]

    opened = click(at, "Open this lead")
    assert not opened.exception
    assert opened.query_params.get("id") == saved.id
    assert values(opened.text)[0] == "Priya Raman"

    at = open_page(opened, "pages/intake.py")  # the page still shows the saved lead and its warning
    at = click(at, next(b.label for b in at.button if b.label.startswith("Open the earlier lead from")))
    assert not at.exception
    assert at.query_params.get("id") == earlier["id"]
    assert values(at.text)[0] == "Priya R."


def test_a_first_lead_is_not_flagged_as_a_duplicate(app_db, signed_in):
    at = fill_intake(open_page(signed_in("staff"), "pages/intake.py"), **NEW_LEAD)
    assert not any("already use" in w for w in values(at.warning))


# --- the lead's own text is shown as text ------------------------------------------------------------------------


def test_html_and_markdown_in_a_lead_are_shown_as_plain_text(signed_in, add_lead):
    lead = add_lead(full_name=XSS_NAME, message=XSS_MESSAGE, company="Acme <script>x</script>")
    at = open_page(signed_in("staff"), "pages/lead.py", id=lead["id"])

    assert not at.exception
    texts = values(at.text)
    assert XSS_NAME in texts
    assert XSS_MESSAGE in texts
    rendered = markdown_texts(at)
    for dangerous in (XSS_NAME, "<img", "<b>", "<script>", "[click](http://evil.test)", "**x**"):
        assert not any(dangerous in m for m in rendered), (dangerous, rendered)


def test_html_in_a_lead_is_plain_text_on_the_home_page_too(signed_in, add_lead):
    lead = add_lead(full_name=XSS_NAME)  # HIGH and not contacted: listed on the home page
    at = open_page(signed_in("staff"), "pages/home.py")

    assert not at.exception
    assert any(t.startswith(XSS_NAME) for t in values(at.text))
    assert not any("<img" in m for m in markdown_texts(at))

    at = click(at, "Open")  # and it opens on the lead page
    assert not at.exception
    assert at.query_params.get("id") == lead["id"]
    assert values(at.text)[0] == XSS_NAME


# --- queue ------------------------------------------------------------------------------------------------------


def test_staff_see_only_their_own_and_unassigned_leads(app_db, signed_in, add_lead):
    add_lead(full_name="Open Olga", email="olga@example.com")
    add_lead(full_name="Mine Mia", email="mia@example.com", assignee="sam")
    theirs = add_lead(full_name="Theirs Tom", email="tom@example.com")
    assign(app_db, theirs["id"], "sue")  # as PATCH {"assignee": "sue"}

    at = open_page(signed_in("staff"), "pages/queue.py")
    assert not at.exception
    assert sorted(queue_names(at)) == ["Mine Mia", "Open Olga"]

    at = open_page(signed_in("manager"), "pages/queue.py")
    assert sorted(queue_names(at)) == ["Mine Mia", "Open Olga", "Theirs Tom"]


def test_the_priority_filter_narrows_the_rows(signed_in, add_lead):
    add_lead(full_name="High Hana", email="hana@example.com")
    add_lead(full_name="Low Lou", email="lou@example.com", company=None, budget=None, phone=None, project_type=None,
             message="Hi, just curious what you do.")
    at = open_page(signed_in("manager"), "pages/queue.py")
    assert sorted(queue_names(at)) == ["High Hana", "Low Lou"]

    by_label(at.selectbox, "Priority").select("HIGH")
    at.run()
    assert queue_names(at) == ["High Hana"]
    assert set(at.dataframe[0].value["priority"]) == {"HIGH"}

    by_label(at.selectbox, "Priority").select("LOW")
    at.run()
    assert queue_names(at) == ["Low Lou"]

    by_label(at.selectbox, "Priority").select("MEDIUM")
    at.run()
    assert not at.dataframe
    assert any("No leads match these filters" in i for i in values(at.info))


def test_a_manager_gets_bulk_actions_for_the_selected_leads(app_db, signed_in, add_lead):
    first = add_lead(full_name="Ann One", email="ann@example.com")
    second = add_lead(full_name="Ben Two", email="ben@example.com")
    at = open_page(signed_in("manager"), "pages/queue.py")
    assert not [b for b in at.button if b.label == "Apply to the selected leads"]  # nothing selected yet

    at = select_rows(at, [0, 1])
    assert not at.exception
    assert "Change 2 selected lead(s)" in values(at.subheader)
    by_label(at.selectbox, "Assign to").select("sue")
    at = click(at, "Apply to the selected leads")

    assert not at.exception
    assert set(at.dataframe[0].value["assignee"]) == {"sue"}
    for lead in (first, second):
        assert assignee_of(app_db, lead["id"]) == "sue"


def test_staff_get_no_bulk_actions(signed_in, add_lead):
    add_lead(full_name="Ann One", email="ann@example.com")
    add_lead(full_name="Ben Two", email="ben@example.com")
    at = open_page(signed_in("staff"), "pages/queue.py")

    at = select_rows(at, [0])
    assert not at.exception
    assert not any(s.startswith("Change ") for s in values(at.subheader))
    assert not [b for b in at.button if b.label == "Apply to the selected leads"]


def test_the_selected_lead_opens_on_the_lead_page(signed_in, add_lead):
    add_lead(full_name="Ann One", email="ann@example.com")
    ben = add_lead(full_name="Ben Two", email="ben@example.com", budget="$200k")  # the higher score: listed first
    at = open_page(signed_in("staff"), "pages/queue.py")
    assert queue_names(at)[0] == "Ben Two"

    at = click(select_rows(at, [0]), "Open the selected lead")

    assert not at.exception
    assert at.query_params.get("id") == ben["id"]
    assert values(at.text)[0] == "Ben Two"
    assert not any("Choose a lead" in i for i in values(at.info))


# --- the lead page ------------------------------------------------------------------------------------------------


def test_changing_the_status_adds_it_to_the_timeline(app_db, signed_in, add_lead):
    lead = add_lead()
    at = open_page(signed_in("staff"), "pages/lead.py", id=lead["id"])
    assert not at.exception
    assert "STATUS_CHANGED" not in list(at.dataframe[-1].value["what"])

    by_label(at.selectbox, "Status").select("CONTACTED")
    at = click(at, "Change status")

    assert not at.exception
    timeline = at.dataframe[-1].value
    changed = timeline[timeline["what"] == "STATUS_CHANGED"]
    assert list(changed["detail"]) == ["Status NEW → CONTACTED"]
    assert list(changed["who"]) == ["user:sam"]
    assert lead_in_db(app_db, lead["id"]).status.value == "CONTACTED"


def test_deleting_a_lead_needs_the_confirmation_and_leaves_no_personal_data_in_the_audit(app_db, signed_in,
                                                                                          add_lead):
    lead = add_lead()
    at = open_page(signed_in("manager"), "pages/lead.py", id=lead["id"])
    assert by_label(at.button, "Delete for good").disabled
    assert lead_in_db(app_db, lead["id"]) is not None

    by_label(at.checkbox, "Yes, delete this lead and everything belonging to it").check()
    at.run()
    assert not by_label(at.button, "Delete for good").disabled
    at = click(at, "Delete for good")

    assert not at.exception
    assert lead_in_db(app_db, lead["id"]) is None
    with app_db.session() as session:
        events = audit.get_all(session=session, action="lead.deleted")
        assert [(e.target_id, e.actor) for e in events] == [(lead["id"], "user:max")]
        detail = repr(events[0].detail)
    for personal in (lead["full_name"], lead["email"], lead["phone"], lead["company"], lead["message"][:30],
                     "Dana", "harborline"):
        assert personal.lower() not in detail.lower()


def test_staff_cannot_delete_leads(signed_in, add_lead):
    lead = add_lead()
    at = open_page(signed_in("staff"), "pages/lead.py", id=lead["id"])
    assert not at.exception
    assert not [b for b in at.button if b.label == "Delete for good"]


def test_staff_cannot_open_a_lead_assigned_to_someone_else(signed_in, add_lead):
    lead = add_lead(assignee="sue")
    at = open_page(signed_in("staff"), "pages/lead.py", id=lead["id"])

    assert not at.exception
    assert any("does not exist any more, or it is assigned to someone else" in e for e in values(at.error))
    assert lead["full_name"] not in values(at.text)
    assert not at.dataframe and not at.button


def test_a_lead_that_does_not_exist_gets_the_same_message(signed_in):
    at = open_page(signed_in("manager"), "pages/lead.py", id="no-such-lead")

    assert not at.exception
    assert any("does not exist any more" in e for e in values(at.error))


# --- account ----------------------------------------------------------------------------------------------------


def change_password(at: AppTest, current: str, new: str, repeat: str | None = None) -> AppTest:
    by_label(at.text_input, "Current password").input(current)
    by_label(at.text_input, "New password").input(new)
    by_label(at.text_input, "Repeat the new password").input(new if repeat is None else repeat)
    return click(at, "Change password")


def test_a_wrong_current_password_does_not_change_it(app_db, signed_in):
    at = change_password(open_page(signed_in("staff"), "pages/account.py"), "wrong-password", "a brand new secret")

    assert not at.exception
    assert "Current password: is not your current password" in values(at.error)
    assert not at.success
    assert users.verify_password(password_of("sam"), app_db.user("sam").password_hash)


def test_different_new_passwords_are_refused(app_db, signed_in):
    at = change_password(open_page(signed_in("staff"), "pages/account.py"), password_of("sam"),
                         "a brand new secret", repeat="a brand new secreT")

    assert "The two new passwords differ." in values(at.error)
    assert users.verify_password(password_of("sam"), app_db.user("sam").password_hash)


def test_the_right_current_password_changes_it(app_db, signed_in):
    at = change_password(open_page(signed_in("staff"), "pages/account.py"), password_of("sam"),
                         "a brand new secret")

    assert not at.exception
    assert not at.error
    assert any(s.startswith("Password changed.") for s in values(at.success)), values(at.success)
    stored = app_db.user("sam").password_hash
    assert users.verify_password("a brand new secret", stored)
    assert not users.verify_password(password_of("sam"), stored)
    # and the new one signs in
    assert signed_in_as(submit_sign_in(new_app(), "sam", "a brand new secret")) == "sam"


def test_a_password_reset_ends_the_sessions_signed_in_before_it(app_db, signed_in):
    at = signed_in("staff")
    with app_db.session() as session:
        users.reset_password(session=session, user_id=app_db.user("sam").id, actor="ada")

    at.switch_page("Home.py")  # the next click, whichever page it opens
    at.run()

    assert not at.exception
    assert any("password was changed" in w for w in values(at.warning)), values(at.warning)
    assert signed_in_as(at) is None
    at.run()
    assert shows_sign_in_form(at)


def test_changing_ones_own_password_keeps_this_session_and_its_browser(app_db, signed_in, monkeypatch):
    # The browser's cookie jar: what the widget last set, as its get_cookie would read it back.
    jar: dict[str, object] = {}
    monkeypatch.setattr(CookieModel, "set_cookie", lambda self: jar.update(
        username=st.session_state["username"], exp_date=time.time() + 12 * 3600))
    monkeypatch.setattr(CookieModel, "get_cookie", lambda self: None if st.session_state.get("logout") else (
        dict(jar) or None))
    at = change_password(open_page(signed_in("staff"), "pages/account.py"), password_of("sam"),
                         "a brand new secret")
    assert any(s.startswith("Password changed.") for s in values(at.success)), values(at.success)
    jar["exp_date"] = time.time() + 12 * 3600 - 60  # as issued at sign-in, before the change

    at.switch_page("Home.py")
    at.run()

    assert not at.exception
    assert signed_in_as(at) == "sam"
    # A reload (a new session on the same browser) is still signed in: the cookie was issued again.
    reloaded = new_app()
    assert signed_in_as(reloaded) == "sam", values(reloaded.warning)


@pytest.mark.parametrize(("issued_hours_ago", "still_signed_in"), [(1, False), (0, True)])
def test_a_cookie_from_before_a_password_reset_no_longer_signs_in(app_db, monkeypatch, issued_hours_ago,
                                                                   still_signed_in):
    with app_db.session() as session:
        users.reset_password(session=session, user_id=app_db.user("sam").id, actor="ada")
    # A browser holding sam's cookie, issued an hour before the reset (or just now, after it). The widget sets the
    # cookie's expiry half a day after it issues it.
    expires = time.time() + 12 * 3600 - issued_hours_ago * 3600 + (5 if still_signed_in else 0)
    cookie = {"username": "sam", "exp_date": expires}
    monkeypatch.setattr(CookieModel, "get_cookie", lambda self: None if st.session_state.get("logout") else cookie)
    monkeypatch.setattr(CookieModel, "delete_cookie", lambda self: None)

    at = new_app()

    assert not at.exception
    assert (signed_in_as(at) == "sam") is still_signed_in
    assert shows_sign_in_form(at) is not still_signed_in


def test_imported_attributes_are_listed_on_the_lead_as_plain_text(app_db, signed_in, add_lead):
    from db.models import Lead

    lead = add_lead()
    with app_db.session() as session:
        session.get(Lead, lead["id"]).custom_attributes = {"Lead Origin": "API", "TotalVisits": 5,
                                                           "Specialization": "**bold** <b>x</b>"}
    at = open_page(signed_in("staff"), "pages/lead.py", id=lead["id"])

    assert not at.exception
    assert "Imported attributes (3)" in [e.label for e in at.expander]
    table = next(df.value for df in at.dataframe if "attribute" in df.value.columns)
    assert dict(zip(table["attribute"], table["value"], strict=True)) == {
        "Lead Origin": "API", "Specialization": "**bold** <b>x</b>", "TotalVisits": "5"}
    assert not any("<b>x</b>" in m for m in markdown_texts(at))


def test_to_do_shows_how_long_a_high_lead_has_waited_and_the_weeks_counts(app_db, signed_in, add_lead):
    fresh = add_lead(full_name="Fresh Lead")  # HIGH by the default payload, not contacted
    waited = add_lead(full_name="Waiting Lead", email="waiting@harborline.example")
    now = datetime.now(UTC)
    five_hours_ago = now - timedelta(hours=5)
    with app_db.session() as session:
        session.get(Lead, waited["id"]).created_at = five_hours_ago
    # Days and weeks in UTC (LEADOPS_TIMEZONE's default), weeks from Monday: the older lead counts where it falls.
    today = 1 + (five_hours_ago.date() == now.date())
    this_week = 1 + (five_hours_ago.isocalendar()[:2] == now.isocalendar()[:2])

    at = open_page(signed_in("manager"), "pages/home.py")

    assert not at.exception
    shown = values(at.text)
    assert any(t.startswith(fresh["full_name"]) and t.endswith("waiting 1 min") for t in shown), shown
    assert any(t.startswith("Waiting Lead") and t.endswith("waiting 5 h") for t in shown), shown
    metrics = {m.label: m.value for m in at.metric}
    assert (metrics["New leads today"], metrics["This week so far"]) == (str(today), str(this_week))
    assert "HIGH leads not contacted (2)" in values(at.subheader)
