"""The Insights page as founders and managers see it: the latest report, its history and exports, flagged sentences
apart, "Generate now" for managers, and the empty state."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from streamlit.testing.v1 import AppTest

from core import insights
from core.config import get_settings
from db.models import InsightPeriod, InsightReport
from db.session import get_engine
from tests.pages.conftest import REFUSED, AppDb, open_page, values
from tests.support.factories import make_lead

PAGE = "pages/insights.py"
XSS = "<img src=x onerror=alert(1)> **Call** [now](http://evil.test)"


def labels(elements) -> list[str]:  # noqa: ANN001 - an AppTest element list
    return [e.label for e in elements]


def last_closed_week() -> tuple[datetime, datetime]:
    return insights.closed_period("weekly", now=datetime.now(UTC), timezone=get_settings().leadops_timezone)


def seed_leads(db: AppDb, *, days_back: int = 0, count: int = 3) -> None:
    """`count` leads in the last closed week (or that many weeks earlier)."""
    start, _end = last_closed_week()
    with db.session() as session:
        for i in range(count):
            make_lead(session, created_at=start - timedelta(weeks=days_back) + timedelta(hours=10 + 20 * i),
                      email=f"lead{days_back}.{i}@client.example")


def write_report(weeks_back: int = 0) -> insights.InsightOutcome:
    """The weekly report of the last closed week (or an earlier one), as the insights job writes it."""
    now = datetime.now(UTC) - timedelta(weeks=weeks_back)
    outcome = insights.generate(engine=get_engine(get_settings().database_url), settings=get_settings(),
                                kind="weekly", now=now)
    assert outcome.status == "generated", outcome
    return outcome


def stored_reports(db: AppDb) -> list[InsightReport]:
    with db.session() as session:
        return list(session.scalars(select(InsightReport)))


def markdown_texts(at: AppTest) -> list[str]:
    elements = [*at.markdown, *at.caption, *at.title, *at.header, *at.subheader, *at.error, *at.warning, *at.info,
                *at.success, *at.toast]
    return [str(e.value) for e in elements]


def test_a_viewer_sees_the_latest_report_and_can_export_it(app_db, signed_in):
    seed_leads(app_db, days_back=1, count=2)
    seed_leads(app_db)
    older = write_report(weeks_back=1)
    latest = write_report()

    at = open_page(signed_in("viewer"), PAGE)

    assert not at.exception, at.exception
    assert REFUSED not in values(at.error)
    assert values(at.title) == ["Insights"]
    assert latest.label in values(at.subheader)
    assert at.selectbox(key="insights_report").value == latest.report_id
    texts = values(at.text)
    assert any(t.startswith(f"{latest.label}: 3 new leads, against 2 in the previous period.") for t in texts)
    assert "New leads" in labels(at.metric)
    assert "Facts behind this" in labels(at.expander)
    assert any("kpis.new_leads.current = 3" in t for t in texts)
    assert labels(at.download_button) == ["Download Markdown", "Download HTML (prints well)"]
    # Viewers read; only managers and admins write reports.
    assert "Generate now" not in labels(at.button)

    # The history: an older report, chosen from the list.
    at.selectbox(key="insights_report").select(older.report_id)
    at.run()
    assert older.label in values(at.subheader)
    assert any(t.startswith(f"{older.label}: 2 new leads") for t in values(at.text))


def test_two_reports_side_by_side(app_db, signed_in):
    seed_leads(app_db, days_back=1, count=2)
    seed_leads(app_db)
    write_report(weeks_back=1)
    write_report()

    at = open_page(signed_in("manager"), PAGE)

    compare = next(tab for tab in at.tabs if tab.label == "Compare")
    table = compare.dataframe[0].value
    new_leads = table[table["Figure"] == "New leads"].iloc[0]
    assert (new_leads["Report"], new_leads["Compared with"], new_leads["Difference"]) == ("3", "2", "+1")


def test_staff_are_refused(app_db, signed_in):
    seed_leads(app_db)
    write_report()

    at = open_page(signed_in("staff"), PAGE)

    assert not at.exception
    assert REFUSED in values(at.error)
    assert not at.subheader and not at.download_button


def test_a_manager_generates_the_report_of_the_last_closed_week(app_db, signed_in):
    seed_leads(app_db)
    at = open_page(signed_in("manager"), PAGE)
    assert at.radio[0].value == "WEEKLY"

    next(b for b in at.button if b.label == "Generate now").click()
    at.run()

    assert not at.exception, at.exception
    [report] = stored_reports(app_db)
    assert (report.period, report.status, report.engine) == (InsightPeriod.WEEKLY, "READY", "rules")
    assert report.period_start == last_closed_week()[0]
    label = insights.period_label("weekly", start=report.period_start, timezone=report.timezone)
    assert f"The report for {label} was written." in values(at.success)
    assert insights.NO_KEY_NOTE in values(at.text)
    assert label in values(at.subheader)

    # Again: the same report is written again in place, never a second one.
    next(b for b in at.button if b.label == "Generate now").click()
    at.run()
    assert f"The report for {label} was written again." in values(at.success)
    assert [r.id for r in stored_reports(app_db)] == [report.id]


def test_no_report_yet(app_db, signed_in):
    viewer = open_page(signed_in("viewer"), PAGE)
    manager = open_page(signed_in("manager"), PAGE)

    empty = ("No report yet: the first weekly report is written after the first full week with leads; managers can "
             "generate one now.")
    assert not viewer.exception and not manager.exception
    assert values(viewer.info) == [empty] and values(manager.info) == [empty]
    assert "Generate now" in labels(manager.button) and "Generate now" not in labels(viewer.button)


def test_a_flagged_sentence_is_shown_with_a_warning_and_as_plain_text(app_db, signed_in):
    seed_leads(app_db)
    outcome = write_report()
    flagged = {"text": f"Revenue grew 48% this week. {XSS}", "facts": [], "flagged": True,
               "unverified_numbers": ["48%"]}
    with app_db.session() as session:
        report = session.get(InsightReport, outcome.report_id)
        sections = dict(report.narrative["sections"])
        sections["key_findings"] = [flagged, *sections["key_findings"]]
        report.narrative = {**report.narrative, "engine": "gemini", "sections": sections}

    at = open_page(signed_in("viewer"), PAGE)

    assert not at.exception
    assert values(at.warning) == ["Unverified: this sentence states numbers that are not in the report's facts."]
    assert flagged["text"] in values(at.text)
    assert "Numbers not found in the facts: 48%" in values(at.text)
    assert not [t for t in markdown_texts(at) if "onerror" in t or "evil.test" in t]
