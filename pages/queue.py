"""Lead queue: every lead the user may see, filtered and sorted by the database, a page at a time."""

from datetime import UTC, date, datetime, time, timedelta

import streamlit as st

from core import errors, exports, lead_views, schemas, uow, users
from core import leads as lead_service
from core.display import plain
from pages._common import may, require

PAGE_SIZE = 50
STATUSES = ["NEW", "CONTACTED", "QUALIFIED", "PROPOSAL_SENT", "WON", "LOST"]
PRIORITIES = ["HIGH", "MEDIUM", "LOW"]
SORT_LABELS = {"score": "Highest score", "newest": "Newest", "oldest": "Oldest"}
# The filter widgets' keys and their "show everything" values, so one button can put them all back.
FILTER_DEFAULTS = {"queue_text": "", "queue_priority": "All", "queue_status": "All", "queue_owner": "Anyone",
                   "queue_source": "All", "queue_period": (), "queue_review": False}

user = require("queue")


@st.cache_data(ttl=30, show_spinner=False)
def _people() -> list[dict]:
    return [{"id": u.id, "username": u.username} for u in uow.read(users.get_all) if not u.disabled]


@st.cache_data(ttl=60, show_spinner=False)
def _sources() -> list[str]:
    return uow.read(lead_views.sources)


@st.cache_data(ttl=15, show_spinner=False)
def _page(filters: lead_service.LeadFilters, sort: str, cursor: str | None) -> lead_views.QueuePage:
    return uow.read(lead_views.queue_page, filters=filters, sort=sort, cursor=cursor, limit=PAGE_SIZE)


def _start_of(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def _clear_filters() -> None:
    st.session_state.update(FILTER_DEFAULTS)


st.title("Lead queue")
people = _people()
usernames = {p["id"]: p["username"] for p in people}

with st.container(border=True):
    text = st.text_input("Search name, email or company", placeholder="e.g. harbor or dana@harborline.example",
                         key="queue_text")
    a, b, c, d = st.columns(4)
    priority = a.selectbox("Priority", ["All", *PRIORITIES], key="queue_priority")
    status = b.selectbox("Status", ["All", *STATUSES], key="queue_status")
    owner_choices = ["Anyone", "Unassigned", *usernames.values()]
    owner = c.selectbox("Assignee", owner_choices, key="queue_owner")
    source = d.selectbox("Source", ["All", *_sources()], key="queue_source")
    e, f, g = st.columns([2, 1, 1])
    today = datetime.now(UTC).date()
    # Empty by default (every date), set through the session state only, as "Clear all filters" sets it too.
    st.session_state.setdefault("queue_period", FILTER_DEFAULTS["queue_period"])
    period = e.date_input("Created between", max_value=today, key="queue_period",
                          help="Leave empty to see leads of every date.")
    sort = f.radio("Sort by", list(lead_views.QUEUE_SORTS), horizontal=True, format_func=SORT_LABELS.get)
    review_only = g.toggle("Needs review only", key="queue_review")

# No dates: every lead. A start alone: from that day on. Both: those days, the end day included.
start, end = (tuple(period or ()) + (None, None))[:2]
owner_id = next((i for i, name in usernames.items() if name == owner), None)
filters = lead_views.visible_filters(lead_service.LeadFilters(
    status=lead_service.LeadStatus(status) if status != "All" else None,
    priority=lead_service.Priority(priority) if priority != "All" else None,
    source=source if source != "All" else None, text=text.strip()[:100] or None,
    created_after=_start_of(start) if start else None,
    created_before=_start_of(end + timedelta(days=1)) if end else None,
    assignee_id=owner_id, unassigned=owner == "Unassigned", needs_review=True if review_only else None,
), user_id=user["id"], role=user["role"])

# Paging walks forward with the database's cursors; the stack lets people step back.
signature = repr((filters, sort))
if st.session_state.get("queue_signature") != signature:
    st.session_state["queue_signature"] = signature
    st.session_state["queue_cursors"] = [None]
cursors: list = st.session_state["queue_cursors"]
page = _page(filters, sort, cursors[-1])

if not page.rows and len(cursors) > 1:
    # Leads left this page since it was reached (changed or deleted): start again from the first page.
    st.session_state["queue_cursors"] = [None]
    st.rerun()
if page.total == 0:
    if any(st.session_state.get(key, default) != default for key, default in FILTER_DEFAULTS.items()):
        st.info("No leads match these filters. Clear the search or some of the filters, or widen the dates.")
        st.button("Clear all filters", on_click=_clear_filters, icon=":material/filter_alt_off:")
    else:
        st.info("No leads to show yet. Add one under New lead.")
    st.stop()

first = (len(cursors) - 1) * PAGE_SIZE + 1
st.caption(f"Leads {first:,}–{first + len(page.rows) - 1:,} of {page.total:,}")
bulk = may(user, "lead.bulk")
# A selection is a list of row positions: it must not outlive the rows it was made on. The key changes with anything
# that can change the rows (filters, order, page, a bulk change, and the rows themselves, which other people's
# changes reorder once the cache expires), so a new table starts with nothing selected.
shown_ids = tuple(row["id"] for row in page.rows)
view = (signature, cursors[-1], st.session_state.get("queue_bulk_round", 0), shown_ids)
table = st.dataframe(
    [{k: v for k, v in row.items() if k != "id"} for row in page.rows],
    hide_index=True, width="stretch", on_select="rerun",
    selection_mode="multi-row" if bulk else "single-row", key=f"queue_table_{hash(view) & (2**64 - 1):016x}",
    column_config={
        # Widths that fit the table in a 1280 px window with the menu open, so the Review column is not scrolled off;
        # a long name or company is cut in the cell and shown whole on the lead page.
        "score": st.column_config.ProgressColumn("Score", min_value=0, max_value=100, format="%d", width=85),
        "priority": st.column_config.TextColumn("Priority", width=70),
        "name": st.column_config.TextColumn("Name", width=130),
        "company": st.column_config.TextColumn("Company", width=120),
        "budget": st.column_config.TextColumn("Budget", width=85),
        "status": st.column_config.TextColumn("Status", width=105),
        "assignee": st.column_config.TextColumn("Assignee", width=85), "source": None,
        "age_days": st.column_config.NumberColumn("Days", width=50, help="Days since the lead arrived"),
        "review": st.column_config.CheckboxColumn("Review", width=60),
    },
)
selected = [shown_ids[i] for i in dict.fromkeys(table.selection.rows) if 0 <= i < len(shown_ids)]

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
    note.caption(f"Exports hold all {page.total:,} leads matching these filters in this order, not just this page. "
                 "Cells that a spreadsheet would run as formulas start with ' so they open as plain text.")

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
                    st.error("; ".join(f"{e.field}: {plain(e.message)}" for e in exc.errors))
                else:
                    st.cache_data.clear()
                    # A new table: the changed leads may have left or moved, and the selection goes with them.
                    st.session_state["queue_bulk_round"] = st.session_state.get("queue_bulk_round", 0) + 1
                    st.toast(f"{changed} lead(s) updated")
                    st.rerun()
