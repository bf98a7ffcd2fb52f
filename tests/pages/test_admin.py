"""The admin page: only admins get in, and what they do there lands in the database through the services."""

from collections.abc import Callable, Iterator

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from core import api_keys, app_settings, users
from core.config import get_settings
from core.display import plain
from db.models import Role
from db.session import get_engine, session_scope
from tests.conftest import PROJECT
from tests.support.factories import PASSWORD, make_lead, make_user

TABS = ["Users", "API keys", "Business profile", "Scoring", "Public form", "Integrations", "Webhooks"]


@pytest.fixture
def signed_in(monkeypatch: pytest.MonkeyPatch, sqlite_url: str, fast_bcrypt: None) -> Iterator[Callable[..., AppTest]]:
    """Signs a new user of the given role in through the login form and opens the admin page."""
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    get_settings.cache_clear()
    get_engine.cache_clear()
    st.cache_data.clear()  # the page's cached reads must not carry another test's database

    def open_admin(role: Role = Role.ADMIN, username: str = "alex") -> AppTest:
        with session_scope(get_engine()) as session:
            make_user(session, username=username, role=role, name="Alex Admin")
        at = AppTest.from_file(str(PROJECT / "Home.py"), default_timeout=15).run()
        at.text_input[0].input(username)
        at.text_input[1].input(PASSWORD)
        at.button[0].click()
        at.run()
        assert not at.exception
        # AppTest runs the app in the pages-directory mode a fresh server process starts in (its pages/ folder), so
        # after this run every file in pages/ can be asked for by URL: the page itself must refuse, not the menu.
        at.run()
        at.switch_page("pages/admin.py")
        return at.run()

    yield open_admin
    st.cache_data.clear()
    get_settings.cache_clear()
    get_engine.cache_clear()


def user_named(username: str):  # noqa: ANN201 - a detached User or None
    with session_scope(get_engine()) as session:
        return users.get_by_username(session=session, username=username)


def key_works(secret: str) -> bool:
    with session_scope(get_engine()) as session:
        return api_keys.authenticate(session=session, settings=get_settings(), secret=secret) is not None


def test_an_admin_sees_the_seven_tabs(signed_in):
    at = signed_in()
    assert not at.exception
    assert [tab.label for tab in at.tabs] == TABS
    assert not at.error


@pytest.mark.parametrize("role", [Role.MANAGER, Role.STAFF])
def test_other_roles_are_refused_by_the_page_itself(signed_in, role):
    at = signed_in(role=role, username="sam")
    assert not at.exception
    assert any("Your role does not give access" in e.value for e in at.error)
    assert not at.tabs
    assert not [b for b in at.button if b.label in ("Add user", "Create key")]


def add_user(at: AppTest, username: str, *, name: str = "", email: str = "", role: str = "staff") -> AppTest:
    """Fills the Add a user form and presses Add user."""
    at.text_input(key="new_user_username").input(username)
    at.text_input(key="new_user_name").input(name)
    at.text_input(key="new_user_email").input(email)
    at.selectbox(key="new_user_role").select(role)
    at.text_input(key="new_user_password").input("a long enough password")
    at.button(key="FormSubmitter:new_user-Add user").click()
    return at.run()


def test_creating_a_user_through_the_form_saves_it(signed_in):
    at = add_user(signed_in(), "Robin", name="Robin Park", email="robin@example.com", role="manager")

    assert not at.exception
    assert not at.error
    assert "User added" in at.success[0].value
    robin = user_named("robin")
    assert robin is not None and robin.role == Role.MANAGER and robin.email == "robin@example.com"
    assert "robin" in list(at.dataframe[0].value["username"])


def test_a_bad_new_user_is_refused_with_the_field_named(signed_in):
    at = add_user(signed_in(), "no spaces allowed")

    assert [e.value for e in at.error] == ["Username: 2-64 characters: lower-case letters, digits, . _ -"]
    assert user_named("no spaces allowed") is None


def test_the_last_admin_cannot_be_disabled(signed_in):
    at = signed_in()
    alex = user_named("alex")
    at.checkbox(key=f"confirm_disable_{alex.id}").check()
    at.run()
    at.button(key=f"set_state_{alex.id}").click()
    at.run()

    assert any("last active admin" in e.value for e in at.error)
    assert not user_named("alex").disabled


def test_a_reset_password_is_shown_once_and_works(signed_in):
    at = signed_in()
    alex = user_named("alex")
    at.button(key=f"reset_{alex.id}").click()
    at.run()

    new_password = at.code[0].value
    assert users.verify_password(new_password, user_named("alex").password_hash)
    assert any("shown once" in w.value for w in at.warning)
    at.run()
    assert new_password not in [c.value for c in at.code]


def test_a_new_api_key_is_shown_once_and_works(signed_in):
    at = signed_in()
    assert "No API keys yet" in at.info[0].value
    at.text_input(key="new_key_name").input("website")
    at.button(key="FormSubmitter:new_key-Create key").click()
    at.run()

    secret = at.code[0].value
    assert secret.startswith(api_keys.KEY_PREFIX)
    assert any("cannot be shown again" in w.value for w in at.warning)
    assert key_works(secret)
    listed = at.dataframe[1].value  # the users' table first, then the keys'
    assert list(listed["name"]) == ["website"] and secret not in listed.to_string()
    at.run()
    assert secret not in [c.value for c in at.code]


def test_revoking_a_key_needs_the_confirmation(signed_in):
    at = signed_in()
    at.text_input(key="new_key_name").input("zapier")
    at.button(key="FormSubmitter:new_key-Create key").click()
    at.run()
    secret = at.code[0].value

    assert at.button(key="revoke_key_button").disabled  # nothing to press until the box is ticked
    at.run()
    assert key_works(secret)

    next(c for c in at.checkbox if c.key.startswith("confirm_revoke_")).check()
    at.run()
    at.button(key="revoke_key_button").click()
    at.run()
    assert not at.exception
    assert not key_works(secret)
    assert any("revoked" in s.value for s in at.success)


def test_the_scoring_preview_says_when_there_are_no_leads(signed_in):
    at = signed_in()
    at.button(key="FormSubmitter:scoring-Preview").click()
    at.run()
    assert "No leads yet: the preview needs leads to re-rank." in [i.value for i in at.info]


def test_the_scoring_preview_lists_leads_that_change_priority(signed_in):
    with session_scope(get_engine()) as session:
        make_lead(session)
    at = signed_in()
    for family in ("budget", "scope", "urgency", "legitimacy"):
        at.slider(key=f"scoring_weight_{family}").set_value(0.0)
    at.button(key="FormSubmitter:scoring-Preview").click()
    at.run()

    assert not at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Move down a band"] == "1"
    changed = at.dataframe[-1].value
    assert list(changed["name"]) == ["Dana Whitfield"] and list(changed["new priority"]) == ["LOW"]
    assert list(changed["old priority"]) == ["HIGH"]
    with session_scope(get_engine()) as session:
        assert app_settings.get_scoring(session=session).weight("budget") == 1.0  # a preview saves nothing


def test_the_business_profile_is_checked_then_saved(signed_in):
    at = signed_in()
    at.number_input(key="profile_min_budget").set_value(50_000)  # above the target budget
    at.button(key="FormSubmitter:profile-Save profile").click()
    at.run()
    assert [e.value for e in at.error] == ["budgets must be ordered: min_budget <= target_budget <= large_budget"]

    at.number_input(key="profile_min_budget").set_value(2_000)
    at.text_input(key="profile_business_name").input("Northwind Studio")
    at.text_input(key="profile_currency").input("eur")
    at.button(key="FormSubmitter:profile-Save profile").click()
    at.run()
    assert not at.error
    with session_scope(get_engine()) as session:
        profile = app_settings.get_profile(session=session)
    assert (profile.business_name, profile.currency, profile.min_budget) == ("Northwind Studio", "EUR", 2_000)


def test_scoring_and_allowed_origins_are_saved(signed_in):
    at = signed_in()
    at.number_input(key="scoring_high_min").set_value(75)
    at.slider(key="scoring_weight_urgency").set_value(1.5)
    at.button(key="FormSubmitter:scoring-Save scoring").click()
    at.run()
    at.text_area(key="allowed_origins").input("https://www.example.com/\n\nhttps://shop.example.com")
    at.button(key="FormSubmitter:origins-Save origins").click()
    at.run()

    assert not at.exception and not at.error
    with session_scope(get_engine()) as session:
        scoring = app_settings.get_scoring(session=session)
        origins = app_settings.get_allowed_origins(session=session)
    assert (scoring.high_min, scoring.weight("urgency")) == (75, 1.5)
    assert origins == ["https://shop.example.com", "https://www.example.com"]
    assert any('<iframe src="http://localhost:8501/form"' in c.value for c in at.code)


def test_origins_that_a_browser_would_never_send_are_refused_by_line(signed_in):
    at = signed_in()
    at.text_area(key="allowed_origins").input("https://www.example.com\nwww.shop.example.com\nhttps://x.example.com/contact")
    at.button(key="FormSubmitter:origins-Save origins").click()
    at.run()

    assert not at.exception
    shown = [e.value for e in at.error]
    assert len(shown) == 2, shown
    assert shown[0].startswith("Origins: line 2:") and plain("https://www.shop.example.com") in shown[0]
    assert shown[1].startswith("Origins: line 3:") and plain("keep only https://x.example.com") in shown[1]
    with session_scope(get_engine()) as session:
        assert app_settings.get_allowed_origins(session=session) == []  # nothing half-saved


def test_an_admin_changes_a_users_role_and_disables_them(signed_in):
    at = signed_in()
    with session_scope(get_engine()) as session:
        make_user(session, username="robin", role=Role.STAFF, name="Robin")
    robin = user_named("robin")
    st.cache_data.clear()  # as after the page's short cache runs out
    at.run()
    chooser = at.selectbox(key="manage_user")
    chooser.select_index(chooser.options.index("robin"))
    at.run()
    at.selectbox(key=f"role_{robin.id}").select("manager")
    at.run()
    at.button(key=f"set_role_{robin.id}").click()
    at.run()
    assert not at.exception and not at.error
    assert any("Role changed to manager" in s.value for s in at.success)
    assert user_named("robin").role == Role.MANAGER

    assert at.button(key=f"set_state_{robin.id}").disabled  # not without the confirmation
    at.checkbox(key=f"confirm_disable_{robin.id}").check()
    at.run()
    at.button(key=f"set_state_{robin.id}").click()
    at.run()
    assert any("User disabled" in s.value for s in at.success)
    assert user_named("robin").disabled
    # The table says so, and the same button now offers to enable them again.
    table = at.dataframe[0].value
    assert not table.loc[table["username"] == "robin", "active"].item()
    assert at.button(key=f"set_state_{robin.id}").label == "Enable user"


def test_an_admin_cannot_give_a_new_user_a_bad_email(signed_in):
    at = add_user(signed_in(), "robin", email="robin at example")

    assert not at.exception
    assert [e.value.split(":")[0] for e in at.error] == ["Email"], [e.value for e in at.error]
    assert user_named("robin") is None


def test_integrations_say_what_is_not_configured(signed_in):
    at = signed_in()
    assert [s.value for s in at.subheader if s.value in ("Gemini", "Email (SMTP)", "Webhooks")] == [
        "Gemini", "Email (SMTP)", "Webhooks"]
    assert any("GEMINI_API_KEY is not set" in t.value for t in at.text)
