"""AI usage (admins): model calls, tokens and estimated cost per day and per purpose, and failures by kind."""

import pandas as pd
import plotly.express as px
import streamlit as st

from core import ai_usage, uow
from pages._common import require

HEIGHT = 320
COLOURS = {"Lead analysis": "#1f77b4", "Follow-up copy": "#ff7f0e", "Reports": "#2ca02c"}

require("ai_usage")
st.title("AI usage")
st.caption("Every call to the model: what it was for, the tokens it used, its estimated cost and how it ended. "
           "Costs are estimates from the model's published prices, not an invoice.")


@st.cache_data(ttl=60, show_spinner=False)
def _usage(kind: str) -> ai_usage.UsageReport:
    period = ai_usage.period_for(kind, timezone=uow.settings().leadops_timezone)
    return uow.read(ai_usage.usage_report, period=period)


def _layout(figure):  # noqa: ANN001, ANN202 - a Plotly figure in, the same figure out
    figure.update_layout(height=HEIGHT, margin={"l": 10, "r": 10, "t": 30, "b": 10},
                         legend={"orientation": "h", "y": -0.2, "title": None})
    return figure


def _cost_per_day(report: ai_usage.UsageReport):  # noqa: ANN202 - a Plotly figure
    """Estimated cost per day, stacked by purpose, over every day of the period (days without calls at zero)."""
    frame = pd.DataFrame([{"day": row.day, "purpose": ai_usage.purpose_label(row.purpose),
                           "cost": float(row.cost_usd), "calls": row.calls} for row in report.daily])
    figure = px.bar(frame, x="day", y="cost", color="purpose", color_discrete_map=COLOURS, hover_data=["calls"],
                    category_orders={"purpose": list(COLOURS)},
                    labels={"day": "", "cost": "Estimated cost (USD)", "purpose": "Purpose", "calls": "Calls"})
    figure.update_xaxes(range=[pd.Timestamp(report.period.days[0]) - pd.Timedelta(hours=12),
                               pd.Timestamp(report.period.days[-1]) + pd.Timedelta(hours=12)], tickformat="%d %b")
    figure.update_yaxes(tickprefix="$")
    return _layout(figure.update_layout(barmode="stack"))


def _calls_per_purpose(report: ai_usage.UsageReport):  # noqa: ANN202 - a Plotly figure
    frame = pd.DataFrame([{"purpose": ai_usage.purpose_label(p.purpose), "Succeeded": p.calls - p.failures,
                           "Failed": p.failures} for p in report.by_purpose])
    figure = px.bar(frame, x="purpose", y=["Succeeded", "Failed"], labels={"purpose": "", "value": "Calls"},
                    color_discrete_map={"Succeeded": "#1f77b4", "Failed": "#d62728"})
    return _layout(figure.update_layout(barmode="stack"))


def _failures_by_kind(report: ai_usage.UsageReport):  # noqa: ANN202 - a Plotly figure
    frame = pd.DataFrame([{"kind": f.kind, "purpose": ai_usage.purpose_label(f.purpose), "calls": f.calls}
                          for f in report.failures])
    figure = px.bar(frame, x="kind", y="calls", color="purpose", color_discrete_map=COLOURS,
                    category_orders={"purpose": list(COLOURS)},
                    labels={"kind": "", "calls": "Failed calls", "purpose": "Purpose"})
    return _layout(figure.update_layout(barmode="stack"))


def _table(report: ai_usage.UsageReport) -> pd.DataFrame:
    return pd.DataFrame([{"Purpose": ai_usage.purpose_label(p.purpose), "Calls": p.calls, "Failed": p.failures,
                          "Input tokens": p.input_tokens, "Output tokens": p.output_tokens,
                          "Estimated cost (USD)": float(p.cost_usd), "Average latency (ms)": p.average_latency_ms}
                         for p in report.by_purpose])


kind = st.selectbox("Period", list(ai_usage.PERIODS), index=1, format_func=ai_usage.PERIODS.get, key="ai_period")
report = _usage(kind)
st.caption(f"{report.period.label}, days in {report.period.timezone}.")
totals = report.totals

if totals.calls == 0:
    st.info("No model calls were made in this period.", icon=":material/smart_toy:")
    if not uow.settings().ai_enabled:
        st.info("GEMINI_API_KEY is not set, so lead analyses, follow-up copy and report narratives come from the "
                "built-in rules engine: it makes no model calls and costs nothing.")
else:
    calls, failed, tokens_in, tokens_out, cost = st.columns(5)
    calls.metric("Model calls", f"{totals.calls:,}")
    failed.metric("Failed calls", f"{totals.failures:,}", help="Timeouts, rate limits (http_429), answers that "
                  "were not valid JSON…: each time the built-in fallback (rules engine or template) stood in.")
    tokens_in.metric("Input tokens", f"{totals.input_tokens:,}")
    tokens_out.metric("Output tokens", f"{totals.output_tokens:,}")
    cost.metric("Estimated cost", f"${totals.cost_usd:,.4f}")

    st.subheader("Estimated cost per day")
    st.plotly_chart(_cost_per_day(report), width="stretch")
    left, right = st.columns(2)
    with left:
        st.subheader("Calls per purpose")
        st.plotly_chart(_calls_per_purpose(report), width="stretch")
    with right:
        st.subheader("Failures by kind")
        if report.failures:
            st.plotly_chart(_failures_by_kind(report), width="stretch")
        else:
            st.success("No failed calls in this period.", icon=":material/check_circle:")
    st.subheader("Per purpose")
    st.dataframe(_table(report), hide_index=True, width="stretch",
                 column_config={"Estimated cost (USD)": st.column_config.NumberColumn(format="$%.4f")})
