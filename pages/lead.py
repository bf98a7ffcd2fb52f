"""One lead: contact data, analysis and its factors, the timeline, and what a person can do with it."""

import streamlit as st

from core import errors, followup_views, lead_views, reanalysis, schemas, uow, users
from core import leads as lead_service
from core.display import plain
from pages._common import analysis_card, may, require

STATUSES = ["NEW", "CONTACTED", "QUALIFIED", "PROPOSAL_SENT", "WON", "LOST"]
GONE = "This lead was deleted while you had it open (by someone else, or in another tab), so nothing was changed."

user = require("lead")
lead_id = st.query_params.get("id")
if not lead_id:
    st.info("Choose a lead in the Lead queue to open it here.")
    st.page_link("pages/queue.py", label="Go to the lead queue", icon=":material/view_list:")
    st.stop()


def _deleted_while_open() -> bool:
    """True when this session showed the lead a moment ago and it no longer exists at all."""
    if st.session_state.get("lead_open") != lead_id:
        return False
    # The user saw this lead, so saying it was deleted (rather than reassigned) tells them nothing new.
    try:
        uow.read(lead_views.get_public, lead_id=lead_id)
    except errors.NotFound:
        return True
    return False


try:
    lead = uow.read(lead_views.get_for_user, lead_id=lead_id, user_id=user["id"], role=user["role"])
except errors.NotFound:
    st.error(GONE if _deleted_while_open() else "This lead does not exist any more, or it is assigned to someone else.")
    st.page_link("pages/queue.py", label="Back to the lead queue", icon=":material/view_list:")
    st.stop()
# Remembered so that a button pressed after someone else deleted the lead gets a message saying just that.
st.session_state["lead_open"] = lead_id

actor = f"user:{user['username']}"


def _gone() -> None:
    """The lead was deleted between this run's first read and the action: drawn again, the page says so."""
    st.cache_data.clear()
    st.rerun()


def _save(changes: dict, done: str) -> None:
    try:
        with uow.transaction() as session:
            record = lead_service.get_or_raise(session=session, lead_id=lead_id)
            lead_service.update(session=session, lead=record, changes=schemas.parse_update(changes), actor=actor)
    except errors.NotFound:
        _gone()
    except errors.ValidationFailed as exc:
        st.error(plain(exc))
        return
    st.cache_data.clear()
    st.toast(done)
    st.rerun()


st.page_link("pages/queue.py", label="Lead queue", icon=":material/arrow_back:")
st.header("Lead", anchor=False)
# The name is the lead's own text: plain text, never markdown.
st.text(lead["full_name"])

contact, work = st.columns([2, 3])
with contact, st.container(border=True):
    st.caption("Contact")
    st.text("\n".join(filter(None, [lead["email"], lead["phone"], lead["company"]])))
    st.caption("Budget as typed")
    st.text(lead["budget"] or "not given")
    st.caption("Project type · source · received")
    st.text(f"{lead['project_type'] or '—'} · {lead['source']} · {lead['created_at'][:16].replace('T', ' ')} UTC")
    st.caption("Message")
    st.text(lead["message"])

analysis = lead.get("analysis") or {}
flagged = "\n".join(r for r in (analysis.get("review_reason"), analysis.get("fallback_reason")) if r)

with work:
    # Why the lead was flagged is shown once, below, with its review state; the card leaves it out.
    analysis_card({**lead, "analysis": analysis and {**analysis, "review_reason": None, "fallback_reason": None}})
    if analysis.get("needs_review"):
        with st.container(border=True):
            st.caption("Waiting for a person's review, because")
            # The reasons can quote the lead's own words: plain text.
            st.text(flagged or "the analysis asked for a person's review")
            if may(user, "lead.update") and st.button("Mark as reviewed", icon=":material/task_alt:"):
                try:
                    with uow.transaction() as session:
                        lead_service.mark_reviewed(session=session, lead_id=lead_id, actor=actor)
                except errors.NotFound:
                    _gone()
                st.cache_data.clear()
                st.toast("Marked as reviewed")
                st.rerun()
    elif flagged:
        st.caption("Flagged for review, and since reviewed (see the timeline):")
        st.text(flagged)

    status_col, owner_col = st.columns(2)
    with status_col.form("status"):
        new_status = st.selectbox("Status", STATUSES, index=STATUSES.index(lead["status"]))
        if st.form_submit_button("Change status"):
            if new_status == lead["status"]:
                st.info("That is already the status.")
            else:
                _save({"status": new_status}, f"Status changed to {new_status}")
    with owner_col.form("assign"):
        if may(user, "lead.assign_any"):
            choices = ["(nobody)", *[u.username for u in uow.read(users.get_all) if not u.disabled]]
        else:
            choices = ["(nobody)", user["username"]]
        current = lead["assignee"] or "(nobody)"
        owner = st.selectbox("Assignee", choices, index=choices.index(current) if current in choices else 0)
        if st.form_submit_button("Assign"):
            _save({"assignee": None if owner == "(nobody)" else owner}, "Assignment saved")

    with st.form("note", clear_on_submit=True):
        note = st.text_area("Add a note", max_chars=schemas.MAX_NOTE, height=80)
        if st.form_submit_button("Save note"):
            if note.strip():
                _save({"note": note}, "Note saved")
            else:
                st.warning("Write something first.")

    again, delete = st.columns(2)
    if may(user, "lead.reanalyze") and again.button("Re-analyse now", icon=":material/refresh:"):
        with st.spinner("Analysing…"):
            try:
                engine = reanalysis.analyze_now(engine=uow.engine(), settings=uow.settings(), lead_id=lead_id,
                                                actor=actor)
            except errors.NotFound:
                _gone()
            else:
                st.cache_data.clear()
                st.toast(f"Re-analysed by the {engine} engine")
                st.rerun()
    if may(user, "lead.delete"):
        with delete.popover("Delete lead", icon=":material/delete:"):
            st.write("This deletes the lead, its analysis, its whole timeline and the copies kept of it "
                     "(webhook events, import records). It cannot be undone.")
            sure = st.checkbox("Yes, delete this lead and everything belonging to it")
            if st.button("Delete for good", type="primary", disabled=not sure):
                try:
                    with uow.transaction() as session:
                        lead_service.delete(session=session, lead_id=lead_id, actor=actor)
                except errors.NotFound:
                    _gone()
                st.session_state.pop("lead_open", None)
                st.cache_data.clear()
                st.query_params.clear()
                st.switch_page("pages/queue.py")


def _resolve(action, candidate_id: str, done: str) -> None:  # noqa: ANN001 - a lead_views service function
    try:
        with uow.transaction() as session:
            action(session=session, lead_id=lead_id, candidate_id=candidate_id, role=user["role"], actor=actor)
    except (errors.ValidationFailed, errors.NotFound) as exc:
        st.error(plain(exc))
        return
    st.session_state.pop("merge_pending", None)
    st.cache_data.clear()
    st.toast(done)
    st.rerun()


lookalikes = uow.read(lead_views.duplicates_for_user, lead_id=lead_id, user_id=user["id"], role=user["role"])
if lookalikes:
    st.subheader("Possible duplicates")
    may_merge = may(user, "lead.merge")
    for dupe in lookalikes:
        with st.container(border=True):
            about, actions = st.columns([3, 2])
            # The other lead's name, company and address are its own text: plain text only.
            about.text(f"{dupe['confidence']}% alike: {dupe['reasons']}")
            about.text(" · ".join(filter(None, [dupe["name"], dupe["company"], dupe["email"]])))
            about.caption(f"{dupe['status']} · received {dupe['created_at']:%d %b %Y, %H:%M} UTC")
            actions.page_link("pages/lead.py", label="Open the other lead", icon=":material/open_in_new:",
                              query_params={"id": dupe["other_id"]})
            if not may_merge:
                continue
            if st.session_state.get("merge_pending") == dupe["id"]:
                actions.warning("Merging moves the other lead's timeline, follow-ups and analysis to this lead, stops "
                                "its pending follow-ups, fills this lead's empty fields from it, and then deletes the "
                                "other lead. It cannot be undone.", icon=":material/merge:")
                yes, no = actions.columns(2)
                if yes.button("Yes, merge", type="primary", key=f"merge_yes_{dupe['id']}"):
                    _resolve(lead_views.merge_duplicate, dupe["id"], "Leads merged")
                if no.button("Cancel", key=f"merge_no_{dupe['id']}"):
                    st.session_state.pop("merge_pending", None)
                    st.rerun()
            else:
                merge, dismiss = actions.columns(2)
                if merge.button("Merge into this lead", key=f"merge_{dupe['id']}", icon=":material/merge:"):
                    st.session_state["merge_pending"] = dupe["id"]
                    st.rerun()
                if dismiss.button("Not a duplicate", key=f"dismiss_{dupe['id']}"):
                    _resolve(lead_views.dismiss_duplicate, dupe["id"], "Marked as not a duplicate")

if lead.get("custom_attributes"):
    with st.expander(f"Imported attributes ({len(lead['custom_attributes'])})"):
        # Values as they came in the file: a table cell shows them as plain text.
        st.dataframe([{"attribute": k, "value": str(v)} for k, v in sorted(lead["custom_attributes"].items())],
                     hide_index=True, width="stretch")

st.subheader("Follow-ups")
planned = uow.read(followup_views.for_lead, lead_id=lead_id)
if planned:
    # The last error is provider text that can quote the lead's address: shown in the table as plain text.
    st.dataframe([{k: v for k, v in row.items() if k != "id"} for row in planned], hide_index=True, width="stretch",
                 column_config={"number": st.column_config.NumberColumn("Step", width=50), "channel": "Channel",
                                "status": "Status",
                                "due_at": st.column_config.DatetimeColumn("Due", format="D MMM YYYY, HH:mm"),
                                "sent_at": st.column_config.DatetimeColumn("Sent / done", format="D MMM YYYY, HH:mm"),
                                "attempts": st.column_config.NumberColumn("Tries", width=50),
                                "problem": "Last error / stopped because"})
else:
    st.caption("No follow-ups: this lead gets none (it was not new, opted out, or its sequence has no steps).")
st.page_link("pages/followups.py", label="All follow-ups", icon=":material/schedule_send:")

st.subheader("Timeline")
history = uow.read(lead_views.timeline, lead_id=lead_id)
st.dataframe(history, hide_index=True, width="stretch",
             column_config={"when": st.column_config.DatetimeColumn("When", format="D MMM YYYY, HH:mm"),
                            "what": "What", "who": "Who", "detail": "Detail"})
