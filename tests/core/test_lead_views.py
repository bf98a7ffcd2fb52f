"""The queue's read model on SQLite and PostgreSQL: every order pages through each lead exactly once, and the
sources the source filter offers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine

from core import lead_views
from core.errors import ValidationFailed
from core.leads import LeadFilters
from db.models import LeadStatus
from db.session import session_scope
from tests.support.factories import make_lead

MOMENT = datetime(2026, 3, 4, 9, 0, tzinfo=UTC)
# Sort keys in Python, to hold the database's orders against: ties on score and on time fall back to the id.
EXPECTED = {
    "score": lambda lead: (-lead["score"], -lead["created_at"].timestamp(), _desc(lead["id"])),
    "newest": lambda lead: (-lead["created_at"].timestamp(), _desc(lead["id"])),
    "oldest": lambda lead: (lead["created_at"].timestamp(), lead["id"]),
}


def _desc(text: str) -> tuple[int, ...]:
    return tuple(-ord(c) for c in text)


def seed(engine: Engine) -> list[dict]:
    """Eleven leads with shared scores and shared arrival times, some of them years old, two of them CONTACTED."""
    leads = []
    with session_scope(engine) as session:
        for n in range(11):
            lead = make_lead(session, full_name=f"Lead {n:02d}", email=f"lead{n}@example.com",
                             score=(40, 70, 70)[n % 3], created_at=MOMENT - timedelta(days=(0, 0, 1, 900)[n % 4]),
                             status=LeadStatus.CONTACTED if n in (4, 9) else None)
            leads.append({"id": lead.id, "score": lead.score, "created_at": lead.created_at, "status": lead.status})
    return leads


def every_page(engine: Engine, sort: str, filters: LeadFilters, limit: int) -> tuple[list[list[str]], set[int]]:
    """The ids on each page, following the cursors to the end, and the totals the pages gave."""
    pages, totals, cursor = [], set(), None
    while True:
        with session_scope(engine) as session:
            page = lead_views.queue_page(session=session, filters=filters, sort=sort, cursor=cursor, limit=limit,
                                         now=MOMENT)
        pages.append([row["id"] for row in page.rows])
        totals.add(page.total)
        if page.next_cursor is None:
            return pages, totals
        cursor = page.next_cursor


@pytest.mark.parametrize("sort", lead_views.QUEUE_SORTS)
def test_every_order_pages_through_each_lead_once_in_order(engine: Engine, sort: str):
    leads = seed(engine)

    pages, totals = every_page(engine, sort, LeadFilters(), limit=4)

    assert [len(p) for p in pages] == [4, 4, 3] and totals == {11}
    assert [lead_id for page in pages for lead_id in page] == [lead["id"] for lead in sorted(leads, key=EXPECTED[sort])]


@pytest.mark.parametrize("sort", lead_views.QUEUE_SORTS)
def test_every_order_keeps_the_filters_on_later_pages(engine: Engine, sort: str):
    leads = seed(engine)
    new = [lead for lead in leads if lead["status"] == LeadStatus.NEW]

    pages, totals = every_page(engine, sort, LeadFilters(status=LeadStatus.NEW), limit=3)

    assert [len(p) for p in pages] == [3, 3, 3] and totals == {9}
    assert [lead_id for page in pages for lead_id in page] == [lead["id"] for lead in sorted(new, key=EXPECTED[sort])]


def test_a_cursor_of_another_order_is_refused(engine: Engine):
    seed(engine)
    with session_scope(engine) as session:
        cursor = lead_views.queue_page(session=session, filters=LeadFilters(), sort="score", limit=2).next_cursor
        with pytest.raises(ValidationFailed):
            lead_views.queue_page(session=session, filters=LeadFilters(), sort="oldest", cursor=cursor, limit=2)


def test_an_unknown_order_is_refused(engine: Engine):
    with session_scope(engine) as session, pytest.raises(ValidationFailed):
        lead_views.queue_page(session=session, filters=LeadFilters(), sort="name", limit=2)  # type: ignore[arg-type]


def test_sources_are_the_ones_leads_came_from_once_each_a_to_z(engine: Engine):
    with session_scope(engine) as session:
        for n, source in enumerate(["website", "trade-show-2026", "walk-in", "website", "other"]):
            make_lead(session, email=f"lead{n}@example.com", source=source)

    with session_scope(engine) as session:
        assert lead_views.sources(session=session) == ["other", "trade-show-2026", "walk-in", "website"]


def test_no_leads_no_sources(engine: Engine):
    with session_scope(engine) as session:
        assert lead_views.sources(session=session) == []
