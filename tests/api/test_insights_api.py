"""GET /api/insights as an integration (n8n, a BI tool) sees it: the ready reports, newest first, with their facts
and narrative; bad parameters named; keys required."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from starlette.testclient import TestClient

from core import insights
from db.models import InsightPeriod, InsightReport
from db.session import session_scope
from tests.support.factories import make_lead

# Wednesdays after three closed weeks (UTC business time zone): the weeks of 26 Oct, 2 Nov and 9 Nov 2026.
WEDNESDAYS = [datetime(2026, 11, 4, 12, tzinfo=UTC), datetime(2026, 11, 11, 12, tzinfo=UTC),
              datetime(2026, 11, 18, 12, tzinfo=UTC)]


def error_fields(response: Any) -> set[str]:
    body = response.json()
    assert set(body) == {"errors"}, body
    return {e["field"] for e in body["errors"]}


@pytest.fixture
def reports(api, settings) -> dict[str, str]:
    """Three weekly reports and one monthly (October), written by the rules engine; their ids by start date."""
    with session_scope(api.engine) as session:
        for day in range(20):
            make_lead(session, created_at=datetime(2026, 10, 20, 9, tzinfo=UTC) + timedelta(days=day * 1.5),
                      email=f"lead{day}@client.example")
    ids = {}
    for now in WEDNESDAYS:
        outcome = insights.generate(engine=api.engine, settings=settings, kind="weekly", now=now)
        ids[outcome.start.date().isoformat()] = outcome.report_id
    monthly = insights.generate(engine=api.engine, settings=settings, kind="monthly", now=WEDNESDAYS[0])
    ids["monthly"] = monthly.report_id
    with session_scope(api.engine) as session:
        # A period being written right now is not a report yet.
        session.add(InsightReport(period=InsightPeriod.WEEKLY, period_start=datetime(2026, 11, 23, tzinfo=UTC),
                                  period_end=datetime(2026, 11, 30, tzinfo=UTC), timezone="UTC",
                                  status="GENERATING", claimed_until=datetime.now(UTC) + timedelta(minutes=5)))
    return ids


def test_the_weekly_reports_newest_first_with_facts_and_narrative(api, reports):
    response = api.get("/api/insights", params={"period": "weekly"})

    assert response.status_code == 200, response.text
    items = response.json()["items"]
    assert [item["id"] for item in items] == [reports["2026-11-09"], reports["2026-11-02"], reports["2026-10-26"]]
    latest = items[0]
    assert {"id", "period", "start", "end", "label", "timezone", "status", "engine", "model", "generated_at",
            "facts", "narrative"} <= set(latest)
    assert (latest["period"], latest["label"], latest["status"]) == ("WEEKLY", "Week of 9 Nov 2026", "READY")
    assert (latest["start"], latest["end"]) == ("2026-11-09T00:00:00+00:00", "2026-11-16T00:00:00+00:00")
    assert latest["facts"]["kpis"]["new_leads"]["current"] == 4
    assert latest["narrative"]["engine"] == "rules"
    assert set(latest["narrative"]["sections"]) == set(insights.SECTIONS)
    statement = latest["narrative"]["sections"]["executive_summary"][0]
    assert set(statement) == {"text", "facts", "flagged", "unverified_numbers"}


def test_both_kinds_by_default_and_the_limit(api, reports):
    every = api.get("/api/insights").json()["items"]
    monthly = api.get("/api/insights", params={"period": "MONTHLY"}).json()["items"]
    one = api.get("/api/insights", params={"limit": "1"}).json()["items"]

    assert len(every) == 4 and {item["period"] for item in every} == {"WEEKLY", "MONTHLY"}
    assert [item["id"] for item in monthly] == [reports["monthly"]]
    assert monthly[0]["label"] == "October 2026"
    assert [item["id"] for item in one] == [reports["2026-11-09"]]


def test_no_report_yet_is_an_empty_list(api):
    response = api.get("/api/insights")

    assert (response.status_code, response.json()) == (200, {"items": []})


@pytest.mark.parametrize(("params", "field"), [
    ({"period": "daily"}, "period"), ({"period": "week"}, "period"), ({"limit": "0"}, "limit"),
    ({"limit": "101"}, "limit"), ({"limit": "ten"}, "limit"), ({"limit": "²"}, "limit"),
])
def test_bad_parameters_are_named(api, params, field):
    response = api.get("/api/insights", params=params)

    assert response.status_code == 422, response.text
    assert error_fields(response) == {field}


@pytest.mark.parametrize("authorization", [None, "Bearer lo_deadbeef_not-a-real-key"])
def test_a_key_is_required(api, reports, authorization):
    headers = {"Authorization": authorization} if authorization else {}
    response = TestClient(api.app, headers=headers).get("/api/insights")

    assert response.status_code == 401
    assert error_fields(response) == {"Authorization"}
