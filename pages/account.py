"""My account: change my password."""

import streamlit as st

from core import errors, uow, users
from pages._common import require

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
                    st.error(f"{problem.field.replace('_', ' ').capitalize()}: {problem.message}")
            else:
                st.success("Password changed.")
