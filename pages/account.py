"""My account: change my password; viewers, managers and admins choose whether the report comes by email."""

from datetime import UTC, datetime

import streamlit as st

from core import digest, errors, uow, users
from core.display import plain
from pages._common import REISSUE_COOKIE, SIGNED_IN_AT, require

user = require("account")
st.title("My account")
st.text(f"{user['name']} · {user['username']} · {user['role']}")

with st.form("change_password", clear_on_submit=True):
    st.subheader("Change password")
    current = st.text_input("Current password", type="password")
    new = st.text_input("New password", type="password",
                        help=f"At least {users.MIN_PASSWORD} characters, no spaces at either end.")
    repeat = st.text_input("Repeat the new password", type="password")
    if st.form_submit_button("Change password", type="primary"):
        if new != repeat:
            st.error("The two new passwords differ.")
        else:
            try:
                with uow.transaction() as session:
                    users.change_password(session=session, user_id=user["id"], current=current, new=new)
            except errors.ValidationFailed as exc:
                for problem in exc.errors:
                    st.error(f"{problem.field.replace('_', ' ').capitalize()}: {plain(problem.message)}")
            else:
                # Other sessions of this account end at their next click; this one stays signed in, and its
                # browser gets a fresh cookie (Home.py), so a reload or a new tab does not sign it out either.
                st.session_state[SIGNED_IN_AT] = datetime.now(UTC)
                st.session_state[REISSUE_COOKIE] = True
                st.success("Password changed. Other places you were signed in will ask for the new one.")


def _report_email() -> None:
    """The opt-in to the founders' digest, and the address it goes to."""
    account = uow.read(users.get, user_id=user["id"])
    if account is None:
        return
    email, opted_in = (account.email or "").strip(), account.digest_opt_in
    with st.form("report_email"):
        st.subheader("Report email")
        st.caption("When a weekly or monthly report is ready, it is emailed to you: the key figures against the "
                   "period before, the main charts, the summary and the recommendations.")
        address = st.text_input("Email address", value=email, max_chars=254)
        wanted = st.checkbox("Email me the weekly and monthly report", value=opted_in, key="digest_opt_in")
        if st.form_submit_button("Save email preference"):
            try:
                with uow.transaction() as session:
                    users.set_email(session=session, user_id=user["id"], email=address,
                                    actor=f"user:{user['username']}")
                    users.set_digest_opt_in(session=session, user_id=user["id"], opt_in=wanted,
                                            actor=f"user:{user['username']}")
            except errors.ValidationFailed as exc:
                # The address checker's message quotes the characters it refused: plain text.
                for problem in exc.errors:
                    st.error(f"{problem.field.replace('_', ' ').capitalize()}: {plain(problem.message)}")
            else:
                st.success("You will get the report by email." if wanted
                           else "You will no longer get the report by email.")

if digest.may_receive(user["role"]):
    _report_email()
