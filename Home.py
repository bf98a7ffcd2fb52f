"""LeadOps entry point: sign-in, then the menu of pages the signed-in role may open."""

from datetime import UTC, datetime, timedelta

import streamlit as st
import streamlit_authenticator as stauth
from streamlit_authenticator.utilities import LoginError

from core import app_settings, auth, permissions, uow
from pages._common import REISSUE_COOKIE, SIGNED_IN_AT

st.set_page_config(page_title="LeadOps", page_icon=":material/leaderboard:", layout="wide")

COOKIE_NAME = "leadops_session"
# The widget's cookie cannot be revoked and is readable by scripts: keep it short-lived, and re-check the user in
# the database on every rerun (below), so a disabled user is out at once.
COOKIE_DAYS = 0.5
SIGN_IN_FIELDS = {"Form name": "Sign in to LeadOps", "Username": "Username", "Password": "Password",
                  "Login": "Sign in"}

# Admins, managers and viewers land on the Dashboard; staff, whose menu lacks it, on their menu's first page (What
# needs doing): st.navigation opens the first page it is given when none of them is the default.
PAGES = {
    "dashboard": st.Page("pages/dashboard.py", title="Dashboard", icon=":material/monitoring:", default=True),
    "home": st.Page("pages/home.py", title="To do", icon=":material/checklist:"),
    "intake": st.Page("pages/intake.py", title="New lead", icon=":material/person_add:"),
    "queue": st.Page("pages/queue.py", title="Lead queue", icon=":material/view_list:"),
    "lead": st.Page("pages/lead.py", title="Lead", icon=":material/person:", visibility="hidden"),
    "followups": st.Page("pages/followups.py", title="Follow-ups", icon=":material/schedule_send:"),
    "insights": st.Page("pages/insights.py", title="Insights", icon=":material/insights:"),
    "ai_usage": st.Page("pages/ai_usage.py", title="AI usage", icon=":material/smart_toy:"),
    "imports": st.Page("pages/imports.py", title="Import", icon=":material/upload_file:"),
    "learned": st.Page("pages/learned_score.py", title="Learned score", icon=":material/model_training:"),
    "admin": st.Page("pages/admin.py", title="Admin", icon=":material/settings:"),
    "account": st.Page("pages/account.py", title="My account", icon=":material/account_circle:"),
}


def _authenticator() -> stauth.Authenticate:
    config = uow.settings()
    with uow.transaction() as session:
        credentials = auth.authenticator_credentials(session=session)
        key = (config.leadops_cookie_key.get_secret_value() if config.leadops_cookie_key
               else app_settings.get_or_create_cookie_key(session=session))
    # The widget reads its cookie from the request's headers (st.context.cookies), so its pause before drawing the
    # form (0.7 s on every signed-out run) buys nothing, and a Sign in press landing in it could be lost to a rerun.
    authenticator = stauth.Authenticate(credentials, COOKIE_NAME, key, cookie_expiry_days=COOKIE_DAYS,
                                        auto_hash=False, login_sleep_time=0)

    def checked(username: str, password: str) -> bool:
        # Our lockout and audit trail decide, not the widget's own (which does not persist).
        with uow.transaction() as session:
            result = auth.check_login(session=session, username=username, password=password)
        st.session_state["login_message"] = None if result.ok else result.message
        if result.ok:
            st.session_state[SIGNED_IN_AT] = datetime.now(UTC)
        return result.ok

    authenticator.authentication_controller.authentication_model.check_credentials = checked
    return authenticator


def _sign_in(authenticator: stauth.Authenticate) -> dict | None:
    """The signed-in user as re-read from the database, or None after drawing the sign-in form."""
    try:
        authenticator.login(location="main", fields=SIGN_IN_FIELDS)
    except LoginError:
        # Raised only for a still-valid cookie whose user is no longer active (disabled or deleted): forget the
        # cookie and show the form, so this browser is not stuck until the cookie expires.
        authenticator.cookie_controller.delete_cookie()
        st.session_state["logout"] = True  # the widget then ignores the cookie for the rest of this session
        st.warning("Your account is no longer active. Ask an admin if this is a mistake.")
        authenticator.login(location="main", fields=SIGN_IN_FIELDS)
    status = st.session_state.get("authentication_status")
    if status is False:
        st.error(st.session_state.get("login_message") or "Wrong username or password.")
    if not status:
        return None
    user = uow.read(auth.active_user, username=st.session_state.get("username") or "")
    if user is None:
        # Disabled or deleted since the cookie was issued: out now, not when the cookie expires.
        return _signed_out_now(authenticator, "Your account is no longer active. Ask an admin if this is a mistake.")
    if st.session_state.pop(REISSUE_COOKIE, False):
        authenticator.cookie_controller.set_cookie()  # issued now: after this session's own password change
    if auth.signed_in_before_password_change(user, _signed_in_at(authenticator)):
        return _signed_out_now(authenticator, "Your password was changed since you signed in here. Sign in again "
                                              "with the new one.")
    return {"id": user.id, "username": user.username, "name": user.name or user.username, "role": user.role.value}


def _signed_out_now(authenticator: stauth.Authenticate, why: str) -> None:
    """Ends this session and forgets the browser's cookie, says why, and shows the sign-in form."""
    authenticator.logout(location="unrendered")
    st.session_state.pop("leadops_user", None)
    st.warning(why)
    authenticator.login(location="main", fields=SIGN_IN_FIELDS)


def _signed_in_at(authenticator: stauth.Authenticate) -> datetime | None:
    """When this session signed in: at the form, or when the browser's cookie was issued (half a day before it
    expires); None when neither is known."""
    if SIGNED_IN_AT not in st.session_state:
        token = authenticator.cookie_controller.get_cookie()
        expires = token.get("exp_date") if isinstance(token, dict) else None
        st.session_state[SIGNED_IN_AT] = (datetime.fromtimestamp(expires, UTC) - timedelta(days=COOKIE_DAYS)
                                          if expires else None)
    return st.session_state[SIGNED_IN_AT]


def _signed_out() -> None:
    """The only page before sign-in (the form above is all it shows)."""


authenticator = _authenticator()
user = _sign_in(authenticator)
if user is None:
    st.session_state.pop("leadops_user", None)
    st.session_state.pop(SIGNED_IN_AT, None)
    # Always declare the navigation, so no page is listed, or reachable, before sign-in.
    st.navigation([st.Page(_signed_out, title="Sign in")], position="hidden").run()
    st.stop()
st.session_state["leadops_user"] = user

with st.sidebar:
    # A user's name is data: shown as plain text, never as markdown.
    st.text(f"Signed in as {user['name']} ({user['role']})")
    authenticator.logout("Sign out", location="sidebar")

navigation = st.navigation([PAGES[name] for name in permissions.pages_for(user["role"])])
navigation.run()
