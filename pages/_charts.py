"""The dashboard's Plotly figures, built from the series of core.dashboard.DashboardData (plotly only, no Streamlit).

Kept apart from the page so tests can check the figures themselves: AppTest does not render Plotly.
Each figure is built in one go (data and layout together): Plotly validates every property it is given, which
costs a few milliseconds per call, so the page also caches the validated figures as plain dicts (`specs`) and
turns them back into figures without validating them again (`figure`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import plotly.graph_objects as go

PRIORITY_COLOURS = {"HIGH": "#d62728", "MEDIUM": "#ff7f0e", "LOW": "#9e9e9e"}
OUTCOME_COLOURS = {"SENT": "#2ca02c", "DONE": "#1f77b4", "FAILED": "#d62728", "CANCELLED": "#9e9e9e"}
OUTCOME_NAMES = {"SENT": "Sent", "DONE": "Call made", "FAILED": "Failed", "CANCELLED": "Stopped"}
STAGE_NAMES = {"NEW": "New", "CONTACTED": "Contacted", "QUALIFIED": "Qualified", "PROPOSAL_SENT": "Proposal sent",
               "WON": "Won", "LOST": "Lost"}
CHANNEL_NAMES = {"EMAIL": "Email", "SMS": "SMS", "WHATSAPP": "WhatsApp", "CALL": "Call"}
STATUS_COLOURS = {"WON": "#2ca02c", "LOST": "#9e9e9e"}  # the open stages in the default blue
RESPONSE_COLOURS = ["#2ca02c", "#2ca02c", "#bcbd22", "#ff7f0e", "#d62728", "#9e9e9e"]
BLUE = "#1f77b4"
HEIGHT = 320


def _figure(data: list[dict[str, Any]], **layout: Any) -> go.Figure:
    base = {"height": HEIGHT, "margin": {"l": 10, "r": 10, "t": 30, "b": 10}, "legend": {"orientation": "h", "y": -0.2}}
    return go.Figure(data=data, layout={**base, **layout})


def leads_over_time(leads_by_day: Sequence[Mapping]) -> go.Figure:
    """New leads per local day, stacked by priority (HIGH at the bottom)."""
    bars = []
    for priority, colour in PRIORITY_COLOURS.items():
        rows = [r for r in leads_by_day if r["priority"] == priority]
        bars.append({"type": "bar", "name": priority, "x": [r["day"] for r in rows], "y": [r["leads"] for r in rows],
                     "marker": {"color": colour},
                     "hovertemplate": "%{x|%a %d %b}: %{y} " + priority + "<extra></extra>"})
    return _figure(bars, barmode="stack", xaxis={"tickformat": "%d %b"}, yaxis={"title": {"text": "New leads"}})


def score_distribution(score_histogram: Sequence[Mapping]) -> go.Figure:
    """New leads per ten-point score band."""
    bar = {"type": "bar", "x": [r["band"] for r in score_histogram], "y": [r["leads"] for r in score_histogram],
           "marker": {"color": BLUE}, "hovertemplate": "Score %{x}: %{y} leads<extra></extra>"}
    return _figure([bar], xaxis={"title": {"text": "Score"}, "type": "category"},
                   yaxis={"title": {"text": "New leads"}})


def status_funnel(funnel: Sequence[Mapping]) -> go.Figure:
    """How many of the period's leads reached each stage."""
    stages = {"type": "funnel", "x": [r["leads"] for r in funnel],
              "y": [STAGE_NAMES.get(r["stage"], r["stage"]) for r in funnel],
              "textinfo": "value+percent initial", "marker": {"color": BLUE}}
    return _figure([stages])


def leads_by_source(by_source: Sequence[Mapping]) -> go.Figure:
    """Leads per source (bars) and each source's conversion to WON (a line on the right-hand axis)."""
    sources = [r["source"] for r in by_source]
    traces = [
        {"type": "bar", "name": "Leads", "x": sources, "y": [r["leads"] for r in by_source], "marker": {"color": BLUE}},
        {"type": "bar", "name": "HIGH", "x": sources, "y": [r["high"] for r in by_source],
         "marker": {"color": PRIORITY_COLOURS["HIGH"]}},
        {"type": "scatter", "name": "Conversion to WON %", "x": sources, "y": [r["conversion_pct"] for r in by_source],
         "mode": "lines+markers", "marker": {"color": "#2ca02c"}, "yaxis": "y2"},
    ]
    return _figure(traces, barmode="group", xaxis={"type": "category"}, yaxis={"title": {"text": "Leads"}},
                   yaxis2={"title": {"text": "Won %"}, "overlaying": "y", "side": "right", "rangemode": "tozero",
                           "showgrid": False})


def response_times(buckets: Sequence[Mapping]) -> go.Figure:
    """Time from a lead arriving to a person first moving it on from NEW."""
    bar = {"type": "bar", "x": [r["bucket"] for r in buckets], "y": [r["leads"] for r in buckets],
           "marker": {"color": RESPONSE_COLOURS[:len(buckets)]}, "hovertemplate": "%{x}: %{y} leads<extra></extra>"}
    return _figure([bar], xaxis={"title": {"text": "First contact after"}, "type": "category"},
                   yaxis={"title": {"text": "Leads"}})


def follow_up_outcomes(outcomes: Sequence[Mapping]) -> go.Figure:
    """Follow-ups that reached an outcome in the period, by channel and step, stacked by outcome."""
    steps = sorted({(r["channel"], r["step"]) for r in outcomes})
    labels = [f"{CHANNEL_NAMES.get(channel, channel)} · step {step}" for channel, step in steps]
    bars = []
    for status, colour in OUTCOME_COLOURS.items():
        counts = {(r["channel"], r["step"]): r["count"] for r in outcomes if r["status"] == status}
        if counts:
            bars.append({"type": "bar", "name": OUTCOME_NAMES[status], "x": labels,
                         "y": [counts.get(s, 0) for s in steps], "marker": {"color": colour}})
    return _figure(bars, barmode="stack", xaxis={"type": "category"}, yaxis={"title": {"text": "Follow-ups"}})


def pipeline(by_status: Mapping[str, int]) -> go.Figure:
    """Every lead by its status now, open stages first."""
    statuses = list(by_status)
    bar = {"type": "bar", "orientation": "h", "x": [by_status[s] for s in statuses],
           "y": [STAGE_NAMES.get(s, s) for s in statuses], "text": [by_status[s] for s in statuses],
           "marker": {"color": [STATUS_COLOURS.get(s, BLUE) for s in statuses]}}
    return _figure([bar], yaxis={"autorange": "reversed"}, xaxis={"title": {"text": "Leads"}})


def specs(view: Any) -> dict[str, dict]:
    """Every dashboard figure of a DashboardData, validated and kept as a plain dict (cheap to cache and copy)."""
    figures = {
        "leads_over_time": leads_over_time(view.leads_by_day), "pipeline": pipeline(view.pipeline),
        "funnel": status_funnel(view.funnel), "scores": score_distribution(view.score_histogram),
        "sources": leads_by_source(view.by_source), "response_times": response_times(view.response_times),
        "follow_up_outcomes": follow_up_outcomes(view.followup_outcomes),
    }
    return {name: figure.to_dict() for name, figure in figures.items()}


def figure(spec: dict) -> go.Figure:
    """A figure again from one of `specs`: it was validated when it was built, so Plotly does not check it twice."""
    return go.Figure(spec, _validate=False)
