"""Leads on SQLite and PostgreSQL: duplicates, bulk changes, review, deletion, what staff see, the home summary."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, func, select

from core import audit, duplicates, webhooks
from core import leads as lead_service
from core.config import Settings
from core.errors import NotFound, ValidationFailed
from core.leads import LeadFilters
from core.schemas import LeadUpdate
from db.models import (
    Activity,
    ActivityKind,
    AiUsage,
    AuditEvent,
    DeliveryStatus,
    IdempotencyRecord,
    ImportBatch,
    ImportRow,
    Lead,
    LeadAnalysis,
    LeadStatus,
    Priority,
    Role,
    WebhookDelivery,
    WebhookEvent,
)
from db.session import session_scope
from tests.support.factories import make_lead, make_user
from tests.support.webhook_receiver import WebhookReceiver

pytestmark = pytest.mark.usefixtures("fast_bcrypt")

BERLIN = "Europe/Berlin"
# A Wednesday, 10:00 in Berlin (UTC+1 in March, before the clocks change).
NOW = datetime(2026, 3, 4, 9, 0, tzinfo=UTC)
JANUARY = datetime(2026, 1, 12, 9, 0, tzinfo=UTC)


def timeline_kinds(engine: Engine, lead_id: str) -> list[ActivityKind]:
    with session_scope(engine) as session:
        return [a.kind for a in session.scalars(select(Activity).where(Activity.lead_id == lead_id)
                                                .order_by(Activity.created_at, Activity.id))]


def rows_of(engine: Engine, model: type) -> int:
    with session_scope(engine) as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


# --- duplicates -------------------------------------------------------------------------------------------------


def test_find_by_email_lists_other_leads_with_the_same_address_newest_first(engine: Engine):
    with session_scope(engine) as session:
        first = make_lead(session, created_at=JANUARY)
        second = make_lead(session, created_at=JANUARY + timedelta(days=3))
        latest = make_lead(session, created_at=JANUARY + timedelta(days=9))
        make_lead(session, email="someone.else@harborlinefreight.example")

    with session_scope(engine) as session:
        found = lead_service.find_by_email(session=session, email="  Dana.Whitfield@HarborlineFreight.EXAMPLE ",
                                           exclude_id=latest.id)
        assert [lead.id for lead in found] == [second.id, first.id]
        assert len(lead_service.find_by_email(session=session, email=latest.email, limit=2)) == 2
        assert lead_service.find_by_email(session=session, email="new.person@example.com") == []


# --- bulk changes -----------------------------------------------------------------------------------------------


def test_bulk_status_change_touches_only_the_leads_it_changes(engine: Engine):
    with session_scope(engine) as session:
        fresh = [make_lead(session).id for _ in range(2)]
        already = make_lead(session, status=LeadStatus.CONTACTED).id

    with session_scope(engine) as session:
        changed = lead_service.bulk_update(session=session, lead_ids=[*fresh, already, "01UNKNOWN", fresh[0]],
                                           changes=LeadUpdate(status=LeadStatus.CONTACTED), actor="user:maria")

    assert changed == 2
    for lead_id in fresh:
        # The status change, then the note that the automatic sequence stopped because of it.
        assert timeline_kinds(engine, lead_id)[-2:] == [ActivityKind.STATUS_CHANGED, ActivityKind.FOLLOW_UP]
        assert timeline_kinds(engine, lead_id).count(ActivityKind.STATUS_CHANGED) == 1
    assert ActivityKind.STATUS_CHANGED not in timeline_kinds(engine, already)
    with session_scope(engine) as session:
        assert {lead.status for lead in session.scalars(select(Lead))} == {LeadStatus.CONTACTED}


def test_bulk_assignment_and_unassignment(engine: Engine):
    with session_scope(engine) as session:
        sam = make_user(session, "sam", Role.STAFF)
        ids = [make_lead(session).id for _ in range(3)]
        make_lead(session)  # not selected

    with session_scope(engine) as session:
        assert lead_service.bulk_update(session=session, lead_ids=ids, changes=LeadUpdate(assignee="SAM"),
                                        actor="user:maria") == 3
    with session_scope(engine) as session:
        assert lead_service.count(session=session, filters=LeadFilters(assignee_id=sam.id)) == 3
        assert lead_service.bulk_update(session=session, lead_ids=ids[:1], changes=LeadUpdate(assignee=None),
                                        actor="user:maria") == 1
    with session_scope(engine) as session:
        assert lead_service.count(session=session, filters=LeadFilters(assignee_id=sam.id)) == 2
    assert timeline_kinds(engine, ids[0]).count(ActivityKind.ASSIGNED) == 2


def test_bulk_assignment_to_an_unknown_user_changes_nothing(engine: Engine):
    with session_scope(engine) as session:
        ids = [make_lead(session).id for _ in range(2)]

    with session_scope(engine) as session, pytest.raises(ValidationFailed) as error:
        lead_service.bulk_update(session=session, lead_ids=ids,
                                 changes=LeadUpdate(status=LeadStatus.QUALIFIED, assignee="ghost"), actor="user:m")

    assert [e.field for e in error.value.errors] == ["assignee"]
    with session_scope(engine) as session:
        assert {lead.status for lead in session.scalars(select(Lead))} == {LeadStatus.NEW}


# --- review -----------------------------------------------------------------------------------------------------

INJECTION = "possible prompt injection: ignore previous instructions"
FALLBACK = "AI unavailable (timeout); rules analysis saved, re-analysis queued"


def test_marking_a_lead_reviewed_clears_the_flag_notes_who_and_takes_it_off_the_to_do_list(engine: Engine):
    with session_scope(engine) as session:
        flagged = make_lead(session, score=40, created_at=NOW - timedelta(days=1), review_reason=INJECTION).id
        other = make_lead(session, score=55, created_at=NOW - timedelta(days=2), fallback_reason=FALLBACK).id
    assert [b.id for b in _home(engine).needs_review] == [other, flagged]

    with session_scope(engine) as session:
        lead = lead_service.mark_reviewed(session=session, lead_id=flagged, actor="user:maria")
        assert lead.needs_review is False

    with session_scope(engine) as session:
        lead = session.get(Lead, flagged)
        assert lead.needs_review is False
        assert lead.analysis.review_reason == INJECTION, "the analysis still says what it found"
        entry = session.scalars(select(Activity).where(Activity.lead_id == flagged,
                                                       Activity.kind == ActivityKind.REVIEWED)).one()
        assert (entry.actor, entry.body) == ("user:maria", f"Marked as reviewed by maria; it was flagged: {INJECTION}")
        assert entry.data == {"flagged": INJECTION}
        assert lead_service.count(session=session, filters=LeadFilters(needs_review=True)) == 1
    summary = _home(engine)
    assert ([b.id for b in summary.needs_review], summary.needs_review_total) == ([other], 1)


def test_marking_a_lead_reviewed_twice_leaves_one_entry(engine: Engine):
    with session_scope(engine) as session:
        lead_id = make_lead(session, fallback_reason=FALLBACK).id
        plain = make_lead(session, email="calm.person@example.com").id

    for who in ("user:maria", "user:tom"):
        with session_scope(engine) as session:
            lead_service.mark_reviewed(session=session, lead_id=lead_id, actor=who)
    with session_scope(engine) as session:
        lead_service.mark_reviewed(session=session, lead_id=plain, actor="user:maria")

    assert timeline_kinds(engine, lead_id).count(ActivityKind.REVIEWED) == 1
    assert ActivityKind.REVIEWED not in timeline_kinds(engine, plain), "nothing was waiting for review there"
    with session_scope(engine) as session, pytest.raises(NotFound):
        lead_service.mark_reviewed(session=session, lead_id="01UNKNOWN", actor="user:maria")


def test_won_and_lost_leads_wait_for_no_review_and_no_first_contact(engine: Engine):
    with session_scope(engine) as session:
        open_one = make_lead(session, score=92, created_at=JANUARY, review_reason=INJECTION).id
        for status in (LeadStatus.WON, LeadStatus.LOST):
            make_lead(session, score=92, status=status, created_at=JANUARY, review_reason=INJECTION)

    summary = _home(engine)

    assert ([b.id for b in summary.needs_review], summary.needs_review_total) == ([open_one], 1)
    assert ([b.id for b in summary.high_uncontacted], summary.high_uncontacted_total) == ([open_one], 1)


# --- deletion ---------------------------------------------------------------------------------------------------


def test_delete_removes_the_lead_and_everything_belonging_to_it(engine: Engine):
    with session_scope(engine) as session:
        lead = make_lead(session)
        kept = make_lead(session, email="other.person@example.com")
        session.add(IdempotencyRecord(scope="api", key="k-1", request_hash="h", lead_id=lead.id, status_code=201,
                                      response={"email": lead.email}))
        session.add(AiUsage(purpose="analysis", model="gemini-2.5-flash", lead_id=lead.id, outcome="ok"))

    with session_scope(engine) as session:
        lead_service.delete(session=session, lead_id=lead.id, actor="user:maria")

    with session_scope(engine) as session:
        assert [x.id for x in session.scalars(select(Lead))] == [kept.id]
        assert session.scalar(select(func.count()).select_from(LeadAnalysis)) == 1
        assert session.scalar(select(func.count()).select_from(Activity).where(Activity.lead_id == lead.id)) == 0
        usage = session.scalars(select(AiUsage)).one()
        assert usage.lead_id is None, "the cost record stays, without the lead"
    assert rows_of(engine, IdempotencyRecord) == 0


def test_a_deleted_lead_leaves_an_audit_event_without_personal_data(engine: Engine):
    with session_scope(engine) as session:
        webhooks.create_endpoint(session=session, name="crm", url="https://crm.example.com/hook", event_types=(),
                                 actor="user:ada")
        lead = make_lead(session, company="Harborline Freight", phone="+1 312 555 0148", budget="$80k-$120k")
        _imported_update_of(session, lead)

    with session_scope(engine) as session:
        lead_service.delete(session=session, lead_id=lead.id, actor="user:maria")

    with session_scope(engine) as session:
        event = audit.get_all(session=session, action="lead.deleted")[0]
        every_audit_entry = json.dumps([[e.action, e.target_id, e.detail] for e in session.scalars(select(AuditEvent))])
    assert (event.actor, event.target_type, event.target_id) == ("user:maria", "lead", lead.id)
    assert event.detail == {"status": "NEW", "priority": lead.priority.value, "score": lead.score, "source": "website",
                            "created_at": lead.created_at.isoformat()}
    for personal in ("dana", "whitfield", "harborline", "555", "80k", "tracking portal"):
        assert personal not in json.dumps(event.detail).lower()
        assert personal not in every_audit_entry.lower(), "no other audit entry took the copies either"


def _imported_update_of(session, lead: Lead) -> ImportRow:  # noqa: ANN001 - a Session
    """An import row as core.imports writes it for a lead the file updated: the lead's values before."""
    batch = ImportBatch(filename="crm-export.csv", created_by="user:max")
    session.add(batch)
    session.flush()
    row = ImportRow(batch_id=batch.id, row_number=2, action="updated", lead_id=lead.id,
                    previous={"lead": {"full_name": lead.full_name, "email": lead.email, "phone": lead.phone,
                                       "message": lead.message}})
    session.add(row)
    session.flush()
    return row


def _mentions(engine: Engine, text: str) -> list[str]:
    """The webhook events and import rows whose stored text contains `text`."""
    text = text.lower()
    with session_scope(engine) as session:
        events = [f"event {e.id}" for e in session.scalars(select(WebhookEvent))
                  if text in json.dumps(e.payload).lower()]
        rows = [f"import row {r.id}" for r in session.scalars(select(ImportRow))
                if text in json.dumps([r.previous, r.raw]).lower()]
    return events + rows


def test_delete_takes_the_leads_webhook_events_and_import_rows_and_nothing_more_is_sent(
        engine: Engine, settings: Settings):
    with WebhookReceiver() as receiver:
        with session_scope(engine) as session:
            webhooks.create_endpoint(session=session, name="crm", url=receiver.url, event_types=(), actor="user:ada")
            lead = make_lead(session)
            kept = make_lead(session, full_name="Lee Okafor", email="lee.okafor@example.com")
            _imported_update_of(session, lead)
            _imported_update_of(session, kept)
        assert webhooks.run_pass(engine=engine, settings=settings).delivered == 4  # created and analyzed, twice
        with session_scope(engine) as session:
            lead_service.update(session=session, lead=session.get(Lead, lead.id),
                                changes=LeadUpdate(status=LeadStatus.CONTACTED), actor="user:maria")
        with session_scope(engine) as session:
            pending = session.scalars(select(WebhookDelivery).where(
                WebhookDelivery.status == DeliveryStatus.PENDING)).one()
            assert pending.event.type == "lead.status_changed" and pending.event.lead_id == lead.id
        assert len(_mentions(engine, lead.email)) == 4  # three events and the import row

        with session_scope(engine) as session:
            lead_service.delete(session=session, lead_id=lead.id, actor="user:maria")
        later = webhooks.run_pass(engine=engine, settings=settings)
        requests = receiver.requests

    assert _mentions(engine, lead.email) == [] and _mentions(engine, "whitfield") == []
    assert later.line() == "webhooks: 0 delivered, 0 retrying, 0 failed", "the pending event was never sent"
    assert len(requests) == 4 and not any(b"CONTACTED" in r.body for r in requests)
    assert len(_mentions(engine, kept.email)) == 3, "the other lead's events and import row stay"
    with session_scope(engine) as session:
        assert {e.lead_id for e in session.scalars(select(WebhookEvent))} == {kept.id}
        assert session.scalar(select(func.count()).select_from(WebhookDelivery)) == 2
        assert session.scalar(select(func.count()).select_from(ImportBatch)) == 2, "the imports' records stay"


def test_deleting_a_lead_takes_the_events_of_the_leads_merged_into_it(engine: Engine):
    with session_scope(engine) as session:
        webhooks.create_endpoint(session=session, name="crm", url="https://crm.example.com/hook", event_types=(),
                                 actor="user:ada")
        keep = make_lead(session)
        drop = make_lead(session, full_name="Dana W.", email="dana.w@harborlinefreight.example")
    with session_scope(engine) as session:
        duplicates.merge(session=session, keep_id=keep.id, drop_id=drop.id, actor="user:max")

    with session_scope(engine) as session:
        lead_service.delete(session=session, lead_id=keep.id, actor="user:maria")

    assert _mentions(engine, "dana.w@") == [] and _mentions(engine, keep.email) == []
    assert rows_of(engine, WebhookEvent) == 0


def test_deleting_an_unknown_lead_raises_not_found(engine: Engine):
    with session_scope(engine) as session, pytest.raises(NotFound):
        lead_service.delete(session=session, lead_id="01UNKNOWN", actor="user:maria")


# --- what staff see ---------------------------------------------------------------------------------------------


def test_staff_filter_keeps_their_own_and_unassigned_leads(engine: Engine):
    with session_scope(engine) as session:
        sam, kim = make_user(session, "sam"), make_user(session, "kim")
        own = make_lead(session, assignee=sam).id
        free = make_lead(session).id
        make_lead(session, assignee=kim)

    filters = LeadFilters(own_or_unassigned_for=sam.id)
    with session_scope(engine) as session:
        page = lead_service.get_all(session=session, filters=filters)
        assert {lead.id for lead in page.items} == {own, free}
        assert lead_service.count(session=session, filters=filters) == 2
        assert lead_service.count(session=session, filters=LeadFilters()) == 3


# --- home summary -----------------------------------------------------------------------------------------------


def _home(engine: Engine, timezone: str = BERLIN, **kwargs: str) -> lead_service.HomeSummary:
    with session_scope(engine) as session:
        return lead_service.home_summary(session=session, now=NOW, timezone=timezone, **kwargs)


def test_home_counts_new_leads_by_business_day_and_monday_week(engine: Engine):
    created = {
        "today": datetime(2026, 3, 4, 8, 30, tzinfo=UTC),
        "today, though yesterday in UTC": datetime(2026, 3, 3, 23, 30, tzinfo=UTC),
        "Monday 00:30 in Berlin": datetime(2026, 3, 1, 23, 30, tzinfo=UTC),
        "last Sunday 23:30 in Berlin": datetime(2026, 3, 1, 22, 30, tzinfo=UTC),
        "last Wednesday 09:30": datetime(2026, 2, 25, 8, 30, tzinfo=UTC),
        "last Wednesday 10:30": datetime(2026, 2, 25, 9, 30, tzinfo=UTC),
        "last Monday 01:00": datetime(2026, 2, 23, 0, 0, tzinfo=UTC),
        "the week before": datetime(2026, 2, 22, 22, 30, tzinfo=UTC),
    }
    with session_scope(engine) as session:
        for when in created.values():
            make_lead(session, score=60, created_at=when)

    summary = _home(engine)

    assert (summary.today, summary.this_week, summary.last_week, summary.last_week_to_date) == (2, 3, 4, 2)
    assert summary.week_change == 1
    assert summary.week_start == datetime(2026, 3, 2, tzinfo=ZoneInfo(BERLIN))
    in_utc = _home(engine, timezone="UTC")
    assert (in_utc.today, in_utc.this_week) == (1, 2), "Monday 00:30 in Berlin is still Sunday in UTC"


def test_home_lists_uncontacted_high_leads_oldest_first_with_their_age(engine: Engine):
    with session_scope(engine) as session:
        oldest = make_lead(session, score=92, created_at=JANUARY).id
        newer = make_lead(session, score=85, created_at=JANUARY + timedelta(days=20)).id
        make_lead(session, score=95, status=LeadStatus.CONTACTED, created_at=JANUARY - timedelta(days=5))
        make_lead(session, score=70, created_at=JANUARY - timedelta(days=5))

    summary = _home(engine)

    assert [(b.id, b.priority, b.status) for b in summary.high_uncontacted] == [
        (oldest, Priority.HIGH, LeadStatus.NEW), (newer, Priority.HIGH, LeadStatus.NEW)]
    assert summary.high_uncontacted_total == 2
    assert NOW - summary.high_uncontacted[0].created_at == NOW - JANUARY
    assert summary.high_uncontacted[0].full_name == "Dana Whitfield"


def test_home_shows_twenty_high_leads_and_how_many_there_are_in_all(engine: Engine):
    with session_scope(engine) as session:
        for day in range(23):
            make_lead(session, score=90, created_at=JANUARY + timedelta(days=day))

    summary = _home(engine)

    assert len(summary.high_uncontacted) == lead_service.HOME_LIST_LIMIT == 20
    assert summary.high_uncontacted_total == 23
    assert summary.high_uncontacted[0].created_at == JANUARY


def test_home_lists_leads_waiting_for_review_with_the_reason(engine: Engine):
    with session_scope(engine) as session:
        fell_back = make_lead(session, score=55, created_at=JANUARY,
                              fallback_reason="AI unavailable (timeout); rules analysis saved, re-analysis queued").id
        injected = make_lead(session, score=40, created_at=JANUARY + timedelta(days=1),
                             review_reason="possible prompt injection: ignore previous instructions").id
        make_lead(session, score=60)

    summary = _home(engine)

    assert [(b.id, b.reason) for b in summary.needs_review] == [
        (fell_back, "AI unavailable (timeout); rules analysis saved, re-analysis queued"),
        (injected, "possible prompt injection: ignore previous instructions")]
    assert summary.needs_review_total == 2


def test_home_for_staff_counts_only_their_own_and_unassigned_leads(engine: Engine):
    with session_scope(engine) as session:
        sam, kim = make_user(session, "sam"), make_user(session, "kim")
        own = make_lead(session, score=90, assignee=sam, created_at=NOW - timedelta(hours=1)).id
        free = make_lead(session, score=90, created_at=NOW - timedelta(hours=2)).id
        make_lead(session, score=90, assignee=kim, created_at=NOW - timedelta(hours=3))

    mine = _home(engine, own_or_unassigned_for=sam.id)
    everyone = _home(engine)

    assert {b.id for b in mine.high_uncontacted} == {own, free}
    assert (mine.high_uncontacted_total, mine.today) == (2, 2)
    assert (everyone.high_uncontacted_total, everyone.today) == (3, 3)


def test_home_with_no_leads_is_all_zero(engine: Engine):
    summary = _home(engine)

    assert (summary.high_uncontacted, summary.high_uncontacted_total, summary.needs_review,
            summary.needs_review_total) == ([], 0, [], 0)
    assert (summary.today, summary.this_week, summary.last_week, summary.last_week_to_date) == (0, 0, 0, 0)


def test_home_rejects_an_unknown_time_zone(engine: Engine):
    with pytest.raises(ValidationFailed, match="timezone"):
        _home(engine, timezone="Mars/Olympus")
