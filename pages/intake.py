"""New lead: staff type in a lead from a call, an event or an email, and see its analysis at once."""

import streamlit as st

from core import errors, intake, lead_views, schemas, uow
from pages._common import analysis_card, require, show_field_errors

PROJECT_TYPES = ["", "Web app", "Mobile app", "E-commerce", "AI integration", "Maintenance", "Other"]
SOURCES = ["phone", "event", "email", "referral", "walk-in", "other"]

user = require("intake")
st.title("New lead")
st.caption("Everything typed here is checked, scored and saved together with its analysis.")

field_errors: dict[str, str] = st.session_state.get("intake_errors", {})
# Each saved lead starts a new round: the form's widgets get new keys and come back empty, so pressing Save again
# cannot save the same lead twice. A refused entry keeps its round, and so what was typed.
form_key = f"new_lead_{st.session_state.setdefault('intake_round', 0)}"
with st.form(form_key):
    left, right = st.columns(2)
    with left:
        full_name = st.text_input("Full name *", max_chars=schemas.MAX_NAME, key=f"{form_key}_full_name")
        show_field_errors(field_errors, "full_name")
        email = st.text_input("Email *", max_chars=schemas.MAX_EMAIL, key=f"{form_key}_email")
        show_field_errors(field_errors, "email")
        phone = st.text_input("Phone", max_chars=schemas.MAX_PHONE, help="International numbers: start with +",
                              key=f"{form_key}_phone")
        show_field_errors(field_errors, "phone")
    with right:
        company = st.text_input("Company", max_chars=schemas.MAX_COMPANY, key=f"{form_key}_company")
        show_field_errors(field_errors, "company")
        budget = st.text_input("Budget", max_chars=schemas.MAX_BUDGET, placeholder="e.g. $40k, 10-20k EUR",
                               key=f"{form_key}_budget")
        show_field_errors(field_errors, "budget")
        kind, source = st.columns(2)
        project_type = kind.selectbox("Project type", PROJECT_TYPES, key=f"{form_key}_project_type")
        lead_source = source.selectbox("Source", SOURCES, key=f"{form_key}_source")
    message = st.text_area("What do they need? *", max_chars=schemas.MAX_MESSAGE, height=150, key=f"{form_key}_message")
    show_field_errors(field_errors, "message")
    submitted = st.form_submit_button("Save and analyse", type="primary")

if submitted:
    payload = {"full_name": full_name, "email": email, "phone": phone, "company": company, "budget": budget,
               "project_type": project_type, "source": lead_source, "message": message}
    try:
        lead_in = schemas.parse_lead(payload)
    except errors.ValidationFailed as exc:
        st.session_state["intake_errors"] = {e.field: f"{e.field.replace('_', ' ').capitalize()} {e.message}"
                                             for e in exc.errors}
        # The card below belongs to the last lead saved; left up, it would say that this refused entry was saved.
        st.session_state.pop("intake_saved", None)
        st.rerun()
    st.session_state["intake_errors"] = {}
    with st.spinner("Analysing the lead…"):
        outcome = intake.submit(engine=uow.engine(), settings=uow.settings(), lead_in=lead_in,
                                actor=f"user:{user['username']}", default_source="manual")
    st.cache_data.clear()
    st.session_state["intake_saved"] = outcome.lead["id"]
    st.session_state["intake_round"] += 1
    st.rerun()

saved_id = st.session_state.get("intake_saved")
if saved_id:
    public = uow.read(lead_views.get_public, lead_id=saved_id)
    st.success("Lead saved with its analysis.", icon=":material/check_circle:")
    lookalikes = uow.read(lead_views.duplicates_for_user, lead_id=saved_id, user_id=user["id"], role=user["role"])
    if lookalikes:
        same_email = sum(d["same_email"] for d in lookalikes)
        alike = len(lookalikes) - same_email
        headline = (f"{same_email} other lead(s) already use this email address" if same_email
                    else f"{alike} other lead(s) look like this one")
        if same_email and alike:
            headline += f", and {alike} more look alike"
        # Names and addresses are the leads' own text, so they stay out of the (markdown) warning.
        st.warning(f"{headline}: this may be a duplicate. A manager can merge them on the lead's page.",
                   icon=":material/content_copy:")
        for dupe in lookalikes:
            st.text(f"{dupe['confidence']}% alike ({dupe['reasons']}): "
                    + " · ".join(filter(None, [dupe["name"], dupe["company"], dupe["email"]])))
            if st.button(f"Open the earlier lead from {dupe['created_at']:%d %b %Y}", key=f"dup_{dupe['other_id']}"):
                st.switch_page("pages/lead.py", query_params={"id": dupe["other_id"]})
    analysis_card(public)
    if st.button("Open this lead"):
        st.switch_page("pages/lead.py", query_params={"id": public["id"]})
