"""Lead queue: every lead the user may see, filtered and sorted by the database, a page at a time."""

from datetime import UTC, date, datetime, time, timedelta

import streamlit as st

from core import errors, exports, lead_views, schemas, uow, users
from core import leads as lead_service
from pages._common import may, require

PAGE_SIZE = 50
STATUSES = ["NEW", "CONTACTED", "QUALIFIED", "PROPOSAL_SENT", "WON", "LOST"]
PRIORITIES = ["HIGH", "MEDIUM", "LOW"]
SOURCES = ["website", "api", "manual", "referral", "linkedin", "event", "phone", "email", "import"]

user = require("queue")


@st.cache_data(ttl=30, show_spinner=False)
def _people() -> list[dict]:
    return [{"id": u.id, "username": u.username} for u in uow.read(users.get_all) if not u.disabled]


@st.cache_data(ttl=15, show_spinner=False)
def _page(filters: lead_service.LeadFilters, sort: str, cursor: str | None) -> lead_views.QueuePage:
    return uow.read(lead_views.queue_page, filters=filters, sort=sort, cursor=cursor, limit=PAGE_SIZE)


def _start_of(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


st.title("Lead queue")
people = _people()
usernames = {p["id"]: p["username"] for p in people}

with st.container(border=True):
    text = st.text_input("Search name, email or company", placeholder="e.g. harbor or dana@harborline.example")
    a, b, c, d = st.columns(4)
    priority = a.selectbox("Priority", ["All", *PRIORITIES])
    status = b.selectbox("Status", ["All", *STATUSES])
    owner_choices = ["Anyone", "Unassigned", *usernames.values()]
    owner = c.selectbox("Assignee", owner_choices)
    source = d.selectbox("Source", ["All", *SOURCES])
    e, f, g = st.columns([2, 1, 1])
    today = datetime.now(UTC).date()
    period = e.date_input("Created between", value=(today - timedelta(days=180), today), max_value=today)
    sort = f.radio("Sort by", ["score", "newest"], horizontal=True,
                   format_func=lambda s: "Highest score" if s == "score" else "Newest")
    review_only = g.toggle("Needs review only")

start, end = (period if isinstance(period, tuple) and len(period) == 2 else (today - timedelta(days=180), today))
owner_id = next((i for i, name in usernames.items() if name == owner), None)
filters = lead_views.visible_filters(lead_service.LeadFilters(
    status=lead_service.LeadStatus(status) if status != "All" else None,
    priority=lead_service.Priority(priority) if priority != "All" else None,
    source=source if source != "All" else None, text=text.strip()[:100] or None,
    created_after=_start_of(start), created_before=_start_of(end + timedelta(days=1)),
    assignee_id=owner_id, unassigned=owner == "Unassigned", needs_review=True if review_only else None,
), user_id=user["id"], role=user["role"])

# Paging walks forward with the database's cursors; the stack lets people step back.
signature = repr((filters, sort))
if st.session_state.get("queue_signature") != signature:
    st.session_state["queue_signature"] = signature
    st.session_state["queue_cursors"] = [None]
cursors: list = st.session_state["queue_cursors"]
page = _page(filters, sort, cursors[-1])

if page.total == 0:
    st.info("No leads match these filters. Clear the search or widen the dates, or add one under New lead.")
    st.stop()

first = (len(cursors) - 1) * PAGE_SIZE + 1
st.caption(f"Leads {first:,}–{first + len(page.rows) - 1:,} of {page.total:,}")
bulk = may(user, "lead.bulk")
table = st.dataframe(
    [{k: v for k, v in row.items() if k != "id"} for row in page.rows],
    hide_index=True, width="stretch", on_select="rerun",
    selection_mode="multi-row" if bulk else "single-row", key=f"queue_table_{len(cursors)}",
    column_config={
        "score": st.column_config.ProgressColumn("Score", min_value=0, max_value=100, format="%d", width=90),
        "priority": st.column_config.TextColumn("Priority", width=75), "name": "Name", "company": "Company",
        "budget": "Budget", "status": st.column_config.TextColumn("Status", width=110),
        "assignee": "Assignee", "source": None,
        "age_days": st.column_config.NumberColumn("Days", width=55, help="Days since the lead arrived"),
        "review": st.column_config.CheckboxColumn("Review", width=60),
    },
)
selected = [page.rows[i]["id"] for i in table.selection.rows]

back, forward, open_ = st.columns([1, 1, 4])
if back.button("← Previous", disabled=len(cursors) == 1):
    cursors.pop()
    st.rerun()
if forward.button("Next →", disabled=page.next_cursor is None):
    cursors.append(page.next_cursor)
    st.rerun()
if len(selected) == 1 and open_.button("Open the selected lead", type="primary"):
    # switch_page clears the query string unless given one.
    st.switch_page("pages/lead.py", query_params={"id": selected[0]})

if may(user, "lead.export"):
    def _export(fmt: str) -> bytes:
        # Runs only when a button is clicked (a deferred download), on its own thread: no st.* calls in here.
        return uow.read(exports.export_queue, filters=filters, user_id=user["id"], role=user["role"], fmt=fmt,
                        sort=sort)

    csv_col, xlsx_col, note = st.columns([1, 1, 4], vertical_alignment="center")
    csv_col.download_button("Export CSV", data=lambda: _export("csv"), file_name="leads.csv",
                            mime=exports.MIME["csv"], icon=":material/download:", on_click="ignore")
    xlsx_col.download_button("Export Excel", data=lambda: _export("xlsx"), file_name="leads.xlsx",
                             mime=exports.MIME["xlsx"], icon=":material/download:", on_click="ignore")
    note.caption(f"Exports hold all {page.total:,} leads matching these filters, not just this page. Cells that a "
                 "spreadsheet would run as formulas start with ' so they open as plain text.")

if bulk and selected:
    with st.form("bulk"):
        st.subheader(f"Change {len(selected)} selected lead(s)")
        x, y = st.columns(2)
        new_status = x.selectbox("Status", ["(keep)", *STATUSES])
        new_owner = y.selectbox("Assign to", ["(keep)", "(nobody)", *usernames.values()])
        if st.form_submit_button("Apply to the selected leads"):
            changes: dict = {}
            if new_status != "(keep)":
                changes["status"] = new_status
            if new_owner != "(keep)":
                changes["assignee"] = None if new_owner == "(nobody)" else new_owner
            if not changes:
                st.warning("Choose a status or an assignee first.")
            else:
                try:
                    with uow.transaction() as session:
                        changed = lead_service.bulk_update(session=session, lead_ids=selected,
                                                           changes=schemas.parse_update(changes),
                                                           actor=f"user:{user['username']}")
                except errors.ValidationFailed as exc:
                    st.error("; ".join(f"{e.field}: {e.message}" for e in exc.errors))
                else:
                    st.cache_data.clear()
                    st.toast(f"{changed} lead(s) updated")
                    st.rerun()
