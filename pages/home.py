"""Home: what needs doing now."""

from datetime import UTC, datetime

import streamlit as st

from core import leads as lead_service
from core import status, uow
from pages._common import may, require

user = require("home")


@st.cache_data(ttl=20, show_spinner=False)
def _summary(own_or_unassigned_for: str | None) -> lead_service.HomeSummary:
    return uow.read(lead_service.home_summary, now=datetime.now(UTC), timezone=uow.settings().leadops_timezone,
                    own_or_unassigned_for=own_or_unassigned_for)


def _age(created: datetime) -> str:
    minutes = (datetime.now(UTC) - created).total_seconds() / 60
    if minutes < 60:
        return f"{max(minutes, 1):.0f} min"
    return f"{minutes / 60:.0f} h" if minutes < 48 * 60 else f"{minutes / 1440:.0f} days"


st.title("What needs doing")
system = status.system_status()
if not system.ai_enabled:
    st.info("No GEMINI_API_KEY is set: the built-in rules engine scores every lead.", icon=":material/rule:")
# Staff see their own and unassigned leads; the others see everything.
summary = _summary(None if may(user, "lead.view_all") else user["id"])
can_open = may(user, "lead.update")

today, week, last = st.columns(3)
today.metric("New leads today", summary.today)
week.metric("This week so far", summary.this_week, delta=summary.week_change,
            help="Compared with last week up to the same day and hour")
last.metric("Last week, in all", summary.last_week)



def _lead_cards(title: str, leads: list, total: int, empty: str, describe, key: str) -> None:  # noqa: ANN001
    """One titled list of leads, each a card with its line of text and an Open button."""
    st.subheader(f"{title} ({total})")
    if not leads:
        st.success(empty)
    for lead in leads:
        with st.container(border=True):
            st.text(describe(lead))
            if can_open and st.button("Open", key=f"{key}_{lead.id}"):
                st.switch_page("pages/lead.py", query_params={"id": lead.id})


hot, review = st.columns(2)
with hot:
    _lead_cards("HIGH leads not contacted", summary.high_uncontacted, summary.high_uncontacted_total,
                "Every HIGH lead has been contacted.", key="hot",
                describe=lambda lead: f"{lead.full_name} · {lead.company or 'no company'} · score {lead.score}"
                                      f" · waiting {_age(lead.created_at)}")
with review:
    _lead_cards("Waiting for review", summary.needs_review, summary.needs_review_total,
                "Nothing waits for a person's review.", key="review",
                describe=lambda lead: f"{lead.full_name} · {lead.reason}")
