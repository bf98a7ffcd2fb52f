"""What every page needs first: the signed-in user, and a server-side check of the page's role."""

import streamlit as st

from core import auth, learned_score, permissions, uow
from core.display import plain

# When this session signed in (a datetime), and a flag that its cookie must be issued again (after its own password
# change): sessions that began before a password change end (Home.py).
SIGNED_IN_AT = "leadops_signed_in_at"
REISSUE_COOKIE = "leadops_reissue_cookie"


def require(page: str) -> dict:
    """The signed-in user, if their role may open `page`; otherwise the page stops with a message."""
    signed_in = st.session_state.get("leadops_user")
    # The role is read again from the database here, so a change by an admin applies on the very next click.
    record = uow.read(auth.active_user, username=signed_in["username"]) if signed_in else None
    if record is None:
        st.warning("Please sign in.")
        st.stop()
    user = {**signed_in, "role": record.role.value}
    st.session_state["leadops_user"] = user
    if not permissions.may_open(user["role"], page):
        st.error("Your role does not give access to this page.")
        st.stop()
    return user


def may(user: dict, action: str) -> bool:
    """True when the signed-in user's role allows `action`."""
    return permissions.may(user["role"], action)

PRIORITY_COLOURS = {"HIGH": "red", "MEDIUM": "orange", "LOW": "gray"}


def show_field_errors(errors: dict[str, str], field: str) -> None:
    """The error for one field, right under it (as plain text: a message can quote what was typed)."""
    if field in errors:
        st.error(plain(errors[field]), icon=":material/error:")


def analysis_card(lead: dict) -> None:
    """Score, priority, budget category, summary, next action and the factors behind the score, as plain text."""
    analysis = lead.get("analysis")
    if not analysis:
        st.info("No analysis yet.")
        return
    with st.container(border=True):
        score, priority, budget, engine = st.columns(4)
        score.metric("Score", analysis["score"])
        priority.markdown(f"**Priority**  \n:{PRIORITY_COLOURS[analysis['priority']]}-badge[{analysis['priority']}]")
        # Plain text that wraps: a metric cuts "25k-100k" or "gemini · gemini-2.5-flash" short in a narrow column.
        budget.caption("Budget category")
        budget.text(analysis["budget_category"])
        engine.caption("Engine")
        engine.text(analysis["engine"] + (f" · {analysis['model']}" if analysis.get("model") else ""))
        if analysis.get("fallback_reason"):
            st.warning(plain(analysis["fallback_reason"]), icon=":material/smart_toy:")
        if analysis.get("review_reason"):
            st.warning(f"Needs a person's review: {plain(analysis['review_reason'])}", icon=":material/flag:")
        st.caption("Summary")
        st.text(analysis["summary"])
        st.caption("Next action")
        st.text(analysis["recommendation"])
        st.caption("Why this score")
        # Plain text wraps long reasons, and st.table would render lead words as markdown: one line per factor.
        st.text("\n".join(f"{f['impact']:+4d}  {f['name']}: {f['detail']}" for f in analysis["factors"]))
        # The model trained on the team's won and lost leads (the Learned score page), beside the engine's score.
        learned = uow.read(learned_score.card, lead_id=lead["id"]) if lead.get("id") else None
        if learned:
            st.caption("Learned from past outcomes")
            how = "blended" if learned["blended"] else "not blended"
            st.text("\n".join([f"Learned score: {learned['score']} ({how})",
                               *(f"{f['impact']:+4d}  {f['detail']}" for f in learned["factors"])]))
