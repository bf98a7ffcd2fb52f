"""The insight report's key charts as small PNG images, for emails (where Plotly's interactive charts cannot go)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from io import BytesIO
from typing import Any

# The object-oriented API with the Agg canvas: no pyplot, so no global figure registry shared between threads and
# no GUI backend chosen from the environment.
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

WIDTH_PX, HEIGHT_PX, DPI = 600, 300, 100
PRIORITY_COLOURS = {"HIGH": "#d62728", "MEDIUM": "#ff7f0e", "LOW": "#9e9e9e"}
LEADS_COLOUR, WON_COLOUR = "#4c78a8", "#2ca02c"
MAX_SOURCES = 8
MAX_LABEL = 22


@dataclass(frozen=True)
class Chart:
    """One chart image: its PNG bytes, a title, and the words that describe it to someone who cannot see it."""

    key: str
    title: str
    alt: str
    png: bytes
    width: int = WIDTH_PX
    height: int = HEIGHT_PX


def key_charts(facts: dict[str, Any]) -> list[Chart]:
    """The charts of a report's facts that have something to show: new leads by day, leads and won by source."""
    charts = [leads_by_day(facts), leads_by_source(facts)]
    return [chart for chart in charts if chart is not None]


def leads_by_day(facts: dict[str, Any]) -> Chart | None:
    """New leads per day of the period, stacked by priority; None when the period had no leads."""
    days = facts.get("leads_by_day") or []
    counts = {p: [int(day.get(p) or 0) for day in days] for p in PRIORITY_COLOURS}
    if not any(sum(values) for values in counts.values()):
        return None
    labels = [_day_label(str(day.get("day", "")), len(days)) for day in days]
    figure, axes = _figure()
    positions = range(len(days))
    bottom = [0] * len(days)
    for priority, values in counts.items():
        axes.bar(positions, values, bottom=bottom, color=PRIORITY_COLOURS[priority], label=priority.capitalize(),
                 width=0.8)
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    step = max(1, -(-len(days) // 12))  # at most about 12 labels, so a month's days stay readable
    axes.set_xticks(list(positions)[::step], labels[::step])
    axes.yaxis.get_major_locator().set_params(integer=True)
    _legend(figure)
    total = sum(bottom)
    return Chart(key="leads-by-day", title="New leads by day and priority", png=_png(figure),
                 alt=f"Bar chart: {total} new leads over {len(days)} days, by priority")


def leads_by_source(facts: dict[str, Any]) -> Chart | None:
    """Leads and won leads per source (the largest sources); None when there were no leads."""
    sources = sorted(facts.get("by_source") or [], key=lambda row: -int(row.get("leads") or 0))[:MAX_SOURCES]
    sources = [row for row in sources if int(row.get("leads") or 0) > 0]
    if not sources:
        return None
    sources.reverse()  # largest at the top of a horizontal bar chart
    names = [_plain(str(row.get("source") or "unknown")) for row in sources]
    leads = [int(row.get("leads") or 0) for row in sources]
    won = [int(row.get("won") or 0) for row in sources]
    figure, axes = _figure()
    positions = range(len(sources))
    axes.barh([p + 0.2 for p in positions], leads, height=0.4, color=LEADS_COLOUR, label="Leads")
    axes.barh([p - 0.2 for p in positions], won, height=0.4, color=WON_COLOUR, label="Won")
    axes.set_yticks(list(positions), names)
    axes.xaxis.get_major_locator().set_params(integer=True)
    axes.grid(axis="x", color="#e6e6e6")
    axes.grid(axis="y", visible=False)
    _legend(figure)
    return Chart(key="leads-by-source", title="Leads and won deals by source", png=_png(figure),
                 alt=f"Bar chart: leads and won deals for {len(sources)} sources")


def _figure() -> tuple[Figure, Any]:
    figure = Figure(figsize=(WIDTH_PX / DPI, HEIGHT_PX / DPI), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    axes.spines[["top", "right"]].set_visible(False)
    axes.tick_params(labelsize=8)
    axes.grid(axis="y", color="#e6e6e6")
    axes.set_axisbelow(True)
    return figure, axes


def _legend(figure: Figure) -> None:
    # Above the plot, so it never covers a bar.
    figure.legend(loc="outside upper left", fontsize=8, frameon=False, ncols=3)


def _png(figure: Figure) -> bytes:
    buffer = BytesIO()
    # Fewer colours than RGBA would need: Pillow's optimiser keeps each chart well under email-friendly sizes.
    figure.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None}, pil_kwargs={"optimize": True})
    return buffer.getvalue()


def _day_label(day: str, days: int) -> str:
    try:
        value = date.fromisoformat(day)
    except ValueError:
        return _plain(day)
    return f"{value:%a} {value.day}" if days <= 8 else f"{value.day} {value:%b}"


def _plain(text: str) -> str:
    """A label as typed: shortened, with `$` escaped so matplotlib does not read it as mathematics."""
    text = " ".join(text.split())
    text = text if len(text) <= MAX_LABEL else text[:MAX_LABEL - 1] + "…"
    return text.replace("$", r"\$")
