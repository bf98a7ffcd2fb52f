"""Dashboard: the period's KPIs against the period before, the charts behind them and the best open leads."""

from datetime import UTC, datetime

import streamlit as st

from core import dashboard as dashboard_service
from core import permissions, uow, users
from pages import _charts as charts
from pages._common import require

user = require("dashboard")
timezone = uow.settings().leadops_timezone
ALL_SOURCES, ANYONE = "All sources", "Anyone"


@st.cache_data(ttl=60, show_spinner=False)
def _dashboard(kind: str, filters: dashboard_service.DashboardFilters,
               zone: str) -> tuple[dashboard_service.DashboardData, dict[str, dict]]:
    """The view and its figures (as validated plain dicts: building Plotly figures is the page's slowest part)."""
    period = dashboard_service.period_for(kind, now=datetime.now(UTC), timezone=zone)
    data = uow.read(dashboard_service.dashboard, period=period, filters=filters, timezone=zone)
    return data, charts.specs(data)


def _chart(name: str) -> None:
    st.plotly_chart(charts.figure(figures[name]), key=name)


@st.cache_data(ttl=60, show_spinner=False)
def _people() -> dict[str, str]:
    return {u.id: u.username for u in uow.read(users.get_all) if not u.disabled}


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f} %"


def _points(current: float | None, previous: float | None, unit: str = " pp") -> str | None:
    """The change of a share (in percentage points) or an average; none when either side has no figure."""
    return None if current is None or previous is None else f"{current - previous:+.1f}{unit}"


st.title("Dashboard")
people = _people()
with st.container(border=True):
    left, middle, right = st.columns(3)
    kind = left.selectbox("Period", list(dashboard_service.PERIOD_KINDS), index=1,
                          format_func=dashboard_service.PERIOD_KINDS.__getitem__)
    owner = right.selectbox("Assignee", [ANYONE, *people.values()])
# The source list comes with the figures (the same database pass), so the Source box is drawn after reading them;
# its value is in the session from the click that started this run.
source = st.session_state.get("dashboard_source", ALL_SOURCES)
filters = dashboard_service.DashboardFilters(
    source=None if source == ALL_SOURCES else source,
    assignee_id=next((i for i, name in people.items() if name == owner), None))
data, figures = _dashboard(kind, filters, timezone)
# The chosen source stays listed even when the other filters leave it no leads.
choices = sorted({*data.sources, filters.source} - {None})
middle.selectbox("Source", [ALL_SOURCES, *choices], key="dashboard_source")

if data.is_empty:
    if filters != dashboard_service.DashboardFilters():
        st.info("No leads match these filters. Choose “All sources” and “Anyone” to see every lead.")
    else:
        st.info("No leads yet. They appear here as they arrive through the web form, the API or New lead. "
                "To explore the dashboard with sample data, run `python -m db seed-demo --leads 2000`.")
    st.stop()

local = data.period.start.tzinfo
freshness = f"figures as of {data.computed_at.astimezone(local):%H:%M}"
if data.summarised_at is not None:
    # Earlier days come from the jobs process's daily summaries: say how fresh they are.
    computed, summarised = data.computed_at.astimezone(local), data.summarised_at.astimezone(local)
    when = f"{summarised:%H:%M}" if summarised.date() == computed.date() else f"{summarised:%a %d %b %H:%M}"
    freshness = (f"today's figures as of {computed:%H:%M}, earlier days' as of {when} (the jobs process brings "
                 f"them up to date every minute)")
st.caption(f"{data.period.label}, compared with {data.previous_period.label}. Days in {timezone}; {freshness}.")
now, before = data.current, data.previous
kpis = st.columns(4)
kpis[0].metric("New leads", f"{now.new_leads:,}", delta=now.new_leads - before.new_leads,
               help=f"Leads that arrived in the period; {before.new_leads:,} in the period before")
kpis[1].metric("HIGH share", _pct(now.high_share_pct), delta=_points(now.high_share_pct, before.high_share_pct),
               help=f"{now.high_leads:,} HIGH leads among the new ones")
kpis[2].metric("Average score", "–" if now.average_score is None else f"{now.average_score:.1f}",
               delta=_points(now.average_score, before.average_score, ""))
kpis[3].metric("Contacted within 24 h", _pct(now.contacted_within_24h_pct),
               delta=_points(now.contacted_within_24h_pct, before.contacted_within_24h_pct),
               help=f"{now.contacted_within_24h:,} new leads moved on from NEW by a person within 24 hours")
kpis = st.columns(4)
kpis[0].metric("Conversion to WON", _pct(now.conversion_to_won_pct),
               delta=_points(now.conversion_to_won_pct, before.conversion_to_won_pct),
               help=f"Of the period's new leads, {now.won:,} won and {now.lost:,} lost so far")
kpis[1].metric("Follow-ups sent", f"{now.followups_sent:,}", delta=now.followups_sent - before.followups_sent,
               help="Emails and texts sent in the period")
kpis[2].metric("Follow-ups failed", f"{now.followups_failed:,}", delta_color="inverse",
               delta=now.followups_failed - before.followups_failed,
               help="Follow-ups that gave up in the period; the Follow-ups page lists them")
kpis[3].metric("Calls made", f"{now.calls_done:,}", delta=now.calls_done - before.calls_done)

has_leads = now.new_leads > 0
no_leads = "No leads arrived in this period. Pick a longer period above, or clear the filters."
# Two charts a row; "Pipeline now" counts every lead, the others only the period's (an empty period says so).
ROWS = [(("Leads over time", "leads_over_time", True), ("Pipeline now", "pipeline", False)),
        (("Status funnel", "funnel", True), ("Score distribution", "scores", True)),
        (("Leads and conversion by source", "sources", True), ("Response time", "response_times", True))]
for row in ROWS:
    for column, (title, name, of_period) in zip(st.columns(2), row, strict=True):
        with column:
            st.subheader(title)
            if has_leads or not of_period:
                _chart(name)
            else:
                st.info(no_leads)

st.subheader("Follow-up outcomes by channel and step")
if data.followup_outcomes:
    _chart("follow_up_outcomes")
else:
    st.info("No follow-up was sent, failed or stopped in this period. Sequences are set up on the Follow-ups page.")

st.subheader("Top open opportunities")
if not data.top_opportunities:
    st.info("No open lead arrived in this period: every one is won or lost, or none came in.")
    st.stop()
can_open = permissions.may_open(user["role"], "lead")
if can_open:
    st.caption("Select a row to open the lead.")
# Names and companies are what leads wrote: shown in a table, never as markdown.
table = st.dataframe(
    [{k: v for k, v in row.items() if k != "id"} for row in data.top_opportunities],
    hide_index=True, width="stretch", key="top_opportunities",
    on_select="rerun" if can_open else "ignore", selection_mode="single-row",
    column_config={
        "score": st.column_config.ProgressColumn("Score", min_value=0, max_value=100, format="%d", width=90),
        "priority": st.column_config.TextColumn("Priority", width=75), "name": "Name", "company": "Company",
        "budget": "Budget", "budget_usd": st.column_config.NumberColumn("Budget (USD)", format="dollar"),
        "status": st.column_config.TextColumn("Status", width=110),
        "age_days": st.column_config.NumberColumn("Days", width=55, help="Days since the lead arrived"),
        "assignee": "Assignee",
    },
)
if can_open:
    chosen = [i for i in table.selection.rows if i < len(data.top_opportunities)]
    if chosen:
        st.switch_page("pages/lead.py", query_params={"id": data.top_opportunities[chosen[0]]["id"]})
