"""Insights: the founders' weekly and monthly reports, their history, two side by side, and exports."""

from datetime import UTC, datetime

import pandas as pd
import streamlit as st

from core import insights, uow
from pages._common import may, require

HISTORY = 104
SHOW = {"All": None, "Weekly": "WEEKLY", "Monthly": "MONTHLY"}
GENERATE = {"WEEKLY": "Last closed week", "MONTHLY": "Last closed month"}
# Figures where a rise is bad news: their deltas are drawn red when they go up.
WORSE_WHEN_UP = {"followups_failed", "lost"}
# The count behind "contacted within 24 h (%)" repeats its percentage: the page shows the percentage only.
HIDDEN_KPIS = {"contacted_within_24h"}
EMPTY = ("No report yet: the first weekly report is written after the first full week with leads; managers can "
         "generate one now.")
UNVERIFIED = "Unverified: this sentence states numbers that are not in the report's facts."

user = require("insights")
state = st.session_state.setdefault("insights_page", {"flash": None, "level": "success", "detail": None,
                                                      "selected": None})


@st.cache_data(ttl=60, show_spinner=False)
def _reports() -> list[dict]:
    return [insights.to_public(report) for report in uow.read(insights.get_all, limit=HISTORY)]


def _name(report: dict) -> str:
    return f"{report['label']} ({report['period'].lower()})"


def _outcome_message(outcome: insights.InsightOutcome) -> tuple[str, str, str | None]:
    """The level, the message and a plain-text detail for what "Generate now" did."""
    if outcome.status in ("generated", "regenerated"):
        written = "written" if outcome.status == "generated" else "written again"
        return "success", f"The report for {outcome.label} was {written}.", outcome.note
    if outcome.status == "failed":
        return "error", f"The report for {outcome.label} could not be written.", outcome.note
    return "info", f"The report for {outcome.label} is being written by another process; try again shortly.", None


def _generate(kind: str) -> None:
    with st.spinner("Writing the report: this can take up to a minute with the AI..."):
        outcome = insights.generate(engine=uow.engine(), settings=uow.settings(), kind=kind, force=True)
    _reports.clear()
    state["level"], state["flash"], state["detail"] = _outcome_message(outcome)
    state["selected"] = outcome.report_id
    st.rerun()


def _metrics(report: dict) -> None:
    rows = [row for row in insights.kpi_rows(report) if row["name"] not in HIDDEN_KPIS]
    for start in range(0, len(rows), 4):
        for column, row in zip(st.columns(4), rows[start:start + 4], strict=False):
            column.metric(row["label"], row["current"], delta=row["change"],
                          delta_color="inverse" if row["name"] in WORSE_WHEN_UP else "normal",
                          help=f"Previous period: {insights.shown_value(row['previous'])}")


def _statement(report: dict, statement: dict) -> None:
    """One sentence as plain text (it may come from the AI), a warning when unverified, and the facts it cites."""
    st.text(statement["text"])
    if statement.get("flagged"):
        st.warning(UNVERIFIED, icon=":material/warning:")
        st.text("Numbers not found in the facts: " + ", ".join(statement.get("unverified_numbers") or []))
    with st.expander("Facts behind this"):
        cited = statement.get("facts") or []
        if cited:
            st.text("\n".join(f"{fact} = {insights.shown_value(insights.fact_value(report['facts'], fact))}"
                              for fact in cited))
        else:
            st.text("This sentence cites no figure.")


def _figures(report: dict) -> None:
    facts = report["facts"]
    with st.expander("All figures of this report"):
        st.caption("Top open opportunities")
        st.dataframe(pd.DataFrame(facts.get("top_opportunities") or []), hide_index=True, width="stretch")
        st.caption("Leads by source")
        st.dataframe(pd.DataFrame(facts.get("by_source") or []), hide_index=True, width="stretch")
        left, right = st.columns(2)
        left.caption("Pipeline now")
        left.dataframe(pd.DataFrame([{"status": k, "leads": v} for k, v in
                                     (facts.get("status_distribution") or {}).items()]), hide_index=True)
        right.caption("Response times")
        right.dataframe(pd.DataFrame(facts.get("response_times") or []), hide_index=True)
        st.caption("Follow-ups by channel")
        st.dataframe(pd.DataFrame((facts.get("followups") or {}).get("by_channel") or []), hide_index=True)
        st.caption("Workflow")
        st.dataframe(pd.DataFrame([facts.get("workflow") or {}]), hide_index=True)


def _about(report: dict) -> str:
    engine = report.get("engine") or "-"
    model = f" ({report['model']})" if report.get("model") else ""
    generated = (report.get("generated_at") or "-").replace("T", " ").replace("Z", " UTC")
    return (f"{report['start'][:10]} to {report['end'][:10]} (end excluded), {report['timezone']} · "
            f"written by {engine}{model} · generated {generated}")


def _show(report: dict) -> None:
    st.subheader(report["label"])
    # The model name comes back from the AI service: plain text, like everything the AI wrote.
    st.text(_about(report))
    if report.get("note"):
        st.text(f"Note: {report['note']}")
    _metrics(report)
    sections = (report.get("narrative") or {}).get("sections") or {}
    for name, title in insights.SECTIONS.items():
        st.markdown(f"#### {title}")
        statements = sections.get(name) or []
        if not statements:
            st.text("Nothing to report.")
        for statement in statements:
            _statement(report, statement)
    _figures(report)
    slug = f"{report['period'].lower()}-{report['start'][:10]}"
    markdown, document = st.columns(2)
    markdown.download_button("Download Markdown", insights.export_markdown(report), file_name=f"insights-{slug}.md",
                             mime="text/markdown", on_click="ignore", icon=":material/download:")
    document.download_button("Download HTML (prints well)", insights.export_html(report),
                             file_name=f"insights-{slug}.html", mime="text/html", on_click="ignore",
                             icon=":material/print:")


def _side(report: dict) -> None:
    st.subheader(report["label"])
    st.text(f"written by {report.get('engine') or '-'}")
    sections = (report.get("narrative") or {}).get("sections") or {}
    for name, title in insights.SECTIONS.items():
        st.markdown(f"#### {title}")
        lines = [("[unverified] " if s.get("flagged") else "- ") + s["text"] for s in sections.get(name) or []]
        st.text("\n".join(lines) or "Nothing to report.")


def _compare(reports: dict[str, dict], ids: list[str]) -> None:
    if len(ids) < 2:
        st.info("Two reports are needed to compare: there is one so far.")
        return
    left_col, right_col = st.columns(2)
    left_id = left_col.selectbox("Report", ids, format_func=lambda i: _name(reports[i]), key="insights_compare_a")
    right_id = right_col.selectbox("Compared with", ids, index=1, format_func=lambda i: _name(reports[i]),
                                   key="insights_compare_b")
    left, right = reports[left_id], reports[right_id]
    table = [{"Figure": row["label"], "Report": insights.shown_value(row["current"]),
              "Compared with": insights.shown_value(row["other"]),
              "Difference": insights.shown_value(row["difference"], change=True)}
             for row in insights.compare_kpis(left, right) if row["name"] not in HIDDEN_KPIS]
    # Tall enough for every figure: a scrolling table hides the last rows.
    st.dataframe(pd.DataFrame(table), hide_index=True, width="stretch", height=35 * (len(table) + 1) + 3)
    left_side, right_side = st.columns(2)
    with left_side:
        _side(left)
    with right_side:
        _side(right)


# --- the page --------------------------------------------------------------------------------------------------------

st.title("Insights")
if state["flash"]:
    getattr(st, state["level"])(state["flash"])
    if state["detail"]:
        st.text(state["detail"])  # may quote an error or the AI's failure: plain text
    state["flash"] = state["detail"] = None

if may(user, "insights.generate"):
    with st.container(border=True):
        timezone = uow.settings().leadops_timezone
        now = datetime.now(UTC)
        kind = st.radio("Generate a report for", list(GENERATE), horizontal=True,
                        format_func=lambda k: f"{GENERATE[k]}: " + insights.period_label(
                            k, start=insights.closed_period(k, now=now, timezone=timezone)[0], timezone=timezone))
        st.caption("Writes the report now, or writes it again in place if it exists.")
        if st.button("Generate now", icon=":material/auto_awesome:"):
            _generate(kind)

reports = _reports()
if not reports:
    st.info(EMPTY, icon=":material/insights:")
    st.stop()

by_id = {report["id"]: report for report in reports}
report_tab, compare_tab = st.tabs(["Report", "Compare"])
with report_tab:
    show = st.radio("Show", list(SHOW), horizontal=True, key="insights_show")
    ids = [r["id"] for r in reports if SHOW[show] in (None, r["period"])]
    if not ids:
        st.info(f"No {show.lower()} report yet.")
    else:
        # The latest report first; after "Generate now", the report it wrote.
        chosen = state.pop("selected", None)
        index = ids.index(chosen) if chosen in ids else 0
        if chosen in ids:
            st.session_state.pop("insights_report", None)
        selected = st.selectbox("Report", ids, index=index, format_func=lambda i: _name(by_id[i]),
                                key="insights_report", help="Every report, newest first")
        _show(by_id[selected])
with compare_tab:
    _compare(by_id, [r["id"] for r in reports])
