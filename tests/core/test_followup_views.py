"""The Follow-ups screen's read models on SQLite and PostgreSQL: lists, visibility, figures, sequences, actions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, select

from core import followup_views, followups, sequences
from core.config import Settings
from core.errors import NotFound, ValidationFailed
from core.followup_views import FollowUpFilters
from db.models import Channel, FollowUp, FollowUpStatus, Priority, Role, SequenceStep, WorkflowLog, utcnow
from db.session import session_scope
from tests.support.factories import make_lead, make_user

pytestmark = pytest.mark.usefixtures("fast_bcrypt")

BERLIN = "Europe/Berlin"
EVERYTHING = FollowUpFilters()
# The HIGH sequence every test starts from: (delay in minutes, channel, subject, body).
HIGH_STEPS = [
    (0, Channel.EMAIL, "Your {{ project_type }} with {{ business_name }}", "Hi {{ first_name }}, thanks for writing."),
    (60, Channel.CALL, None, "Call {{ full_name }} about {{ project_type }}."),
    (1440, Channel.SMS, None, "Hi {{ first_name }}, when suits you for a call?"),
    (4320, Channel.EMAIL, "Following up", "Hi {{ first_name }}, any news on your {{ project_type }}?"),
]


@pytest.fixture
def known_sequence(engine: Engine) -> None:
    """Replaces whatever sequences the database holds with HIGH_STEPS (MEDIUM and LOW get none)."""
    with session_scope(engine) as session:
        for step in session.scalars(select(SequenceStep).where(SequenceStep.archived_at.is_(None))):
            sequences.archive_step(session=session, step_id=step.id, actor="test")
        for delay, channel, subject, body in HIGH_STEPS:
            sequences.add_step(session=session, priority=Priority.HIGH, actor="test",
                               step_in=sequences.StepIn(delay_minutes=delay, channel=channel,
                                                        subject_template=subject, body_template=body))


def high_lead(engine: Engine, **fields) -> str:  # noqa: ANN003 - make_lead's fields
    """A HIGH lead created through core.leads, which plans its four follow-ups; returns its id."""
    with session_scope(engine) as session:
        return make_lead(session, score=90, **fields).id


def follow_ups_of(engine: Engine, lead_id: str) -> dict[int, str]:
    """The lead's follow-up ids by step number."""
    with session_scope(engine) as session:
        return {f.number: f.id for f in session.scalars(select(FollowUp).where(FollowUp.lead_id == lead_id))}


def set_state(engine: Engine, follow_up_id: str, **values) -> None:  # noqa: ANN003 - FollowUp columns
    """Puts a follow-up in the state a jobs pass would have left it in."""
    with session_scope(engine) as session:
        follow_up = session.get(FollowUp, follow_up_id)
        for name, value in values.items():
            setattr(follow_up, name, value)


def log_attempt(engine: Engine, follow_up_id: str, outcome: str, at: datetime) -> None:
    """One attempt in the workflow log, as the pass writes it."""
    with session_scope(engine) as session:
        follow_up = session.get(FollowUp, follow_up_id)
        session.add(WorkflowLog(kind="followup", subject_id=follow_up.id, lead_id=follow_up.lead_id,
                                channel=follow_up.channel.value, outcome=outcome, detail="test", created_at=at))


def sams_and_sues_leads(engine: Engine, mine_email: str, theirs_email: str) -> tuple[str, str, str]:
    """Users sam and sue with one HIGH lead each: sam's id, sam's lead and sue's lead."""
    with session_scope(engine) as session:
        sam = make_user(session, username="sam")
        sue = make_user(session, username="sue")
        mine = make_lead(session, score=90, email=mine_email, assignee=sam).id
        theirs = make_lead(session, score=90, email=theirs_email, assignee=sue).id
        return sam.id, mine, theirs


def listed(engine: Engine, view: str, filters: FollowUpFilters = EVERYTHING, *, now: datetime | None = None,
           timezone: str = "UTC", **paging: int) -> tuple[list[dict], int]:
    with session_scope(engine) as session:
        return followup_views.follow_up_list(session=session, view=view, filters=filters, now=now or utcnow(),
                                             timezone=timezone, **paging)


# --- the lists ----------------------------------------------------------------------------------------------------


def test_a_new_lead_s_first_email_is_due_today_with_the_lead_s_name(engine: Engine, known_sequence: None):
    lead_id = high_lead(engine, full_name="Dana Whitfield", company="Harborline Freight")
    numbers = follow_ups_of(engine, lead_id)

    rows, total = listed(engine, "due_today")

    first = next(r for r in rows if r["id"] == numbers[1])
    assert (first["lead"], first["company"], first["channel"], first["status"]) == \
        ("Dana Whitfield", "Harborline Freight", "EMAIL", "SCHEDULED")
    assert first["lead_id"] == lead_id and first["priority"] == "HIGH"
    assert numbers[3] not in [r["id"] for r in rows]  # the SMS a day later is not today's
    assert total == len(rows)
    scheduled, scheduled_total = listed(engine, "scheduled")
    assert scheduled_total == 4
    assert [r["number"] for r in scheduled] == [1, 2, 3, 4]  # soonest first


def test_due_today_ends_at_midnight_in_the_business_time_zone_and_keeps_overdue_ones(engine: Engine,
                                                                                     known_sequence: None):
    now = datetime(2026, 3, 4, 22, 30, tzinfo=UTC)  # 23:30 in Berlin
    ids = follow_ups_of(engine, high_lead(engine))
    set_state(engine, ids[1], due_at=now - timedelta(days=2))  # overdue
    set_state(engine, ids[2], due_at=datetime(2026, 3, 4, 22, 50, tzinfo=UTC))  # 23:50 in Berlin: today
    set_state(engine, ids[3], due_at=datetime(2026, 3, 4, 23, 10, tzinfo=UTC))  # 00:10 tomorrow in Berlin
    set_state(engine, ids[4], due_at=now + timedelta(days=3))

    berlin, _ = listed(engine, "due_today", now=now, timezone=BERLIN)
    in_utc, _ = listed(engine, "due_today", now=now, timezone="UTC")

    assert [r["id"] for r in berlin] == [ids[1], ids[2]]
    assert [r["id"] for r in in_utc] == [ids[1], ids[2], ids[3]]


def test_each_list_holds_its_own_status_newest_sent_first(engine: Engine, known_sequence: None):
    now = utcnow()
    ids = follow_ups_of(engine, high_lead(engine))
    other = follow_ups_of(engine, high_lead(engine, email="other@example.com"))
    set_state(engine, ids[1], status=FollowUpStatus.SENT, sent_at=now - timedelta(hours=5), subject="Hello")
    set_state(engine, other[1], status=FollowUpStatus.SENT, sent_at=now - timedelta(hours=1), subject="Hi")
    set_state(engine, ids[2], status=FollowUpStatus.TASK)
    set_state(engine, ids[3], status=FollowUpStatus.FAILED, last_error="550 no such user", attempts=1)
    set_state(engine, ids[4], status=FollowUpStatus.CANCELLED, cancel_reason="stopped by user:max")

    assert [r["id"] for r in listed(engine, "sent")[0]] == [other[1], ids[1]]
    calls, _ = listed(engine, "calls")
    assert [r["id"] for r in calls] == [ids[2]] and calls[0]["phone"]
    failed, _ = listed(engine, "failed")
    assert [(r["id"], r["last_error"]) for r in failed] == [(ids[3], "550 no such user")]
    cancelled, _ = listed(engine, "cancelled")
    assert [(r["id"], r["cancel_reason"]) for r in cancelled] == [(ids[4], "stopped by user:max")]
    assert listed(engine, "scheduled")[1] == 3  # the other lead's steps 2-4


def test_staff_see_follow_ups_of_their_own_and_unassigned_leads_only(engine: Engine, settings: Settings,
                                                                      known_sequence: None):
    with session_scope(engine) as session:
        sam = make_user(session, username="sam")
        sue = make_user(session, username="sue")
        manager = make_user(session, username="max", role=Role.MANAGER)
        mine = make_lead(session, score=90, full_name="Mine Mia", email="mia@example.com", assignee=sam).id
        make_lead(session, score=90, full_name="Open Olga", email="olga@example.com")
        make_lead(session, score=90, full_name="Theirs Tom", email="tom@example.com", assignee=sue)
        sam_id, manager_id = sam.id, manager.id

    staff_view = followup_views.visible_filters(EVERYTHING, user_id=sam_id, role="staff")
    manager_view = followup_views.visible_filters(EVERYTHING, user_id=manager_id, role="manager")

    staff_rows, staff_total = listed(engine, "scheduled", staff_view)
    assert {r["lead"] for r in staff_rows} == {"Mine Mia", "Open Olga"} and staff_total == 8
    assert {r["assignee"] for r in staff_rows} == {"sam", ""}
    assert {r["lead"] for r in listed(engine, "scheduled", manager_view)[0]} == {"Mine Mia", "Open Olga",
                                                                                  "Theirs Tom"}
    theirs = next(r for r in listed(engine, "scheduled", manager_view)[0] if r["lead"] == "Theirs Tom")
    with session_scope(engine) as session, pytest.raises(NotFound):
        followup_views.detail(session=session, settings=settings, follow_up_id=theirs["id"], user_id=sam_id,
                              role="staff")
    with session_scope(engine) as session:
        mine_first = follow_ups_of(engine, mine)[1]
        shown = followup_views.detail(session=session, settings=settings, follow_up_id=mine_first, user_id=sam_id,
                                      role="staff")
        assert shown["lead"] == "Mine Mia"


def test_filters_narrow_by_channel_priority_assignee_and_search(engine: Engine, known_sequence: None):
    with session_scope(engine) as session:
        sam = make_user(session, username="sam")
        make_lead(session, score=90, full_name="Dana Whitfield", company="Harborline Freight", assignee=sam)
        make_lead(session, score=90, full_name="Priya Raman", company="Northwind 100%", email="p@example.com")
        sam_id = sam.id

    def names(**filters) -> set[str]:  # noqa: ANN003 - FollowUpFilters fields
        return {r["lead"] for r in listed(engine, "scheduled", FollowUpFilters(**filters))[0]}

    assert names(text="HARBOR") == {"Dana Whitfield"}
    assert names(text="raman") == {"Priya Raman"}
    assert names(text="100%") == {"Priya Raman"}  # % is a character, not a wildcard
    assert names(text="50%") == set()
    assert names(assignee_id=sam_id) == {"Dana Whitfield"}
    assert names(unassigned=True) == {"Priya Raman"}
    assert names(priority=Priority.LOW) == set()
    sms = listed(engine, "scheduled", FollowUpFilters(channel=Channel.SMS))
    assert sms[1] == 2 and {r["channel"] for r in sms[0]} == {"SMS"}


def test_the_due_and_created_ranges_narrow_the_lists(engine: Engine, known_sequence: None):
    ids = follow_ups_of(engine, high_lead(engine))
    start = datetime(2026, 3, 2, tzinfo=UTC)
    for number, follow_up_id in ids.items():
        set_state(engine, follow_up_id, due_at=start + timedelta(days=number), created_at=start)

    def numbers(**filters) -> list[int]:  # noqa: ANN003 - FollowUpFilters fields
        return [r["number"] for r in listed(engine, "scheduled", FollowUpFilters(**filters))[0]]

    assert numbers(due_after=start + timedelta(days=2), due_before=start + timedelta(days=4)) == [2, 3]
    assert numbers(created_after=start) == [1, 2, 3, 4]
    assert numbers(created_before=start) == []


def test_lists_are_paged_by_the_database(engine: Engine, known_sequence: None):
    for n in range(3):
        high_lead(engine, email=f"lead{n}@example.com")

    first, total = listed(engine, "scheduled", limit=5)
    second, _ = listed(engine, "scheduled", limit=5, offset=5)
    last, _ = listed(engine, "scheduled", limit=5, offset=10)

    assert total == 12
    assert (len(first), len(second), len(last)) == (5, 5, 2)
    assert len({r["id"] for r in first + second + last}) == 12


# --- figures ------------------------------------------------------------------------------------------------------


def test_delivery_figures_equal_a_hand_count(engine: Engine, known_sequence: None):
    now = utcnow()
    since = now - timedelta(days=30)
    a = follow_ups_of(engine, high_lead(engine, email="a@example.com"))
    b = follow_ups_of(engine, high_lead(engine, email="b@example.com"))
    c = follow_ups_of(engine, high_lead(engine, email="c@example.com"))
    # Lead A: email sent after one retry, call still to make, SMS failed, last email waiting.
    set_state(engine, a[1], status=FollowUpStatus.SENT, sent_at=now - timedelta(days=1), attempts=2)
    log_attempt(engine, a[1], "retry", now - timedelta(days=1, minutes=5))
    log_attempt(engine, a[1], "sent", now - timedelta(days=1))
    set_state(engine, a[2], status=FollowUpStatus.TASK)
    set_state(engine, a[3], status=FollowUpStatus.FAILED, last_error="21211 invalid number", attempts=1)
    log_attempt(engine, a[3], "failed", now - timedelta(hours=3))
    # Lead B: email bounced, the call made, the SMS stopped, last email waiting.
    set_state(engine, b[1], status=FollowUpStatus.FAILED, last_error="550 no such user", attempts=1)
    log_attempt(engine, b[1], "bounced", now - timedelta(hours=2))
    set_state(engine, b[2], status=FollowUpStatus.DONE, sent_at=now - timedelta(hours=1))
    log_attempt(engine, b[2], "done", now - timedelta(hours=1))
    set_state(engine, b[3], status=FollowUpStatus.CANCELLED, cancel_reason="the lead moved to CONTACTED")
    # Lead C: an email sent long before the period (counted nowhere), the rest waiting.
    set_state(engine, c[1], status=FollowUpStatus.SENT, sent_at=now - timedelta(days=60), attempts=1)
    log_attempt(engine, c[1], "sent", now - timedelta(days=60))

    with session_scope(engine) as session:
        figures = {f["channel"]: f for f in followup_views.delivery_figures(session=session, since=since,
                                                                             filters=EVERYTHING)}

    assert list(figures) == ["EMAIL", "SMS", "WHATSAPP", "CALL"]
    email, sms, whatsapp, call = figures["EMAIL"], figures["SMS"], figures["WHATSAPP"], figures["CALL"]
    # Emails: A1 sent, B1 failed (bounced), A4 B4 C4 waiting.
    assert (email["sent"], email["failed"], email["bounced"], email["pending"]) == (1, 1, 1, 3)
    assert email["delivery_rate"] == pytest.approx(0.5)
    assert email["attempts"] == {"retry": 1, "sent": 1, "bounced": 1}
    # SMS: A3 failed, B3 cancelled, C3 waiting.
    assert (sms["sent"], sms["failed"], sms["pending"], sms["cancelled"]) == (0, 1, 1, 1)
    assert sms["delivery_rate"] == 0 and sms["attempts"] == {"failed": 1}
    # Calls: A2 open, B2 done, C2 not yet due.
    assert (call["calls_open"], call["calls_done"], call["pending"]) == (1, 1, 1)
    assert call["attempts"] == {"done": 1}
    assert (whatsapp["sent"], whatsapp["pending"], whatsapp["delivery_rate"], whatsapp["attempts"]) == \
        (0, 0, None, {})


def test_delivery_figures_follow_the_filters(engine: Engine, known_sequence: None):
    now = utcnow()
    sam_id, mine, theirs = sams_and_sues_leads(engine, "mine@example.com", "theirs@example.com")
    for lead_id in (mine, theirs):
        first = follow_ups_of(engine, lead_id)[1]
        set_state(engine, first, status=FollowUpStatus.SENT, sent_at=now)
        log_attempt(engine, first, "sent", now)

    staff_view = followup_views.visible_filters(EVERYTHING, user_id=sam_id, role="staff")
    with session_scope(engine) as session:
        figures = followup_views.delivery_figures(session=session, since=now - timedelta(days=1), filters=staff_view)
        only_email = followup_views.delivery_figures(session=session, since=now - timedelta(days=1),
                                                     filters=FollowUpFilters(channel=Channel.EMAIL))

    email = next(f for f in figures if f["channel"] == "EMAIL")
    assert (email["sent"], email["pending"], email["attempts"]) == (1, 1, {"sent": 1})
    assert [f["channel"] for f in only_email] == ["EMAIL"] and only_email[0]["sent"] == 2


# --- sequences ----------------------------------------------------------------------------------------------------


def test_sequence_overview_lists_each_priority_s_steps_in_order(engine: Engine, known_sequence: None):
    with session_scope(engine) as session:
        overview = followup_views.sequence_overview(session=session)
    assert list(overview) == ["HIGH", "MEDIUM", "LOW"]
    assert overview["MEDIUM"] == [] and overview["LOW"] == []
    high = overview["HIGH"]
    assert [(s["position"], s["after"], s["channel"]) for s in high] == \
        [(1, "at once", "EMAIL"), (2, "1 h", "CALL"), (3, "1 day", "SMS"), (4, "3 days", "EMAIL")]
    assert (high[3]["delay_amount"], high[3]["delay_unit"]) == (3, "days")

    with session_scope(engine) as session:
        sequences.move_step(session=session, step_id=high[1]["id"], direction=-1, actor="test")
        sequences.archive_step(session=session, step_id=high[3]["id"], actor="test")
    with session_scope(engine) as session:
        moved = followup_views.sequence_overview(session=session)["HIGH"]
    assert [s["channel"] for s in moved] == ["CALL", "EMAIL", "SMS"]
    assert [s["position"] for s in moved] == [1, 2, 3]


def test_a_step_entered_on_the_form_is_checked_field_by_field():
    step = followup_views.parse_step(delay_amount=2, delay_unit="hours", channel="SMS", copy_mode="TEMPLATE",
                                     subject_template="  ", body_template="Hi {{ first_name }}")
    assert (step.delay_minutes, step.channel, step.subject_template) == (120, Channel.SMS, None)

    with pytest.raises(ValidationFailed) as too_late:
        followup_views.parse_step(delay_amount=400, delay_unit="days", channel="EMAIL", copy_mode="TEMPLATE",
                                  subject_template="Hi", body_template="Hi")
    assert [e.field for e in too_late.value.errors] == ["delay_minutes"]
    assert "90 days" in too_late.value.errors[0].message
    with pytest.raises(ValidationFailed) as bad_unit:
        followup_views.parse_step(delay_amount=1, delay_unit="weeks", channel="EMAIL", copy_mode="TEMPLATE",
                                  subject_template="Hi", body_template="Hi")
    assert bad_unit.value.errors[0].field == "delay_minutes"


# --- one follow-up and what people do with it ---------------------------------------------------------------------


def test_the_detail_shows_the_message_as_it_will_go_and_what_each_role_may_do(engine: Engine, settings: Settings,
                                                                                known_sequence: None):
    ids = follow_ups_of(engine, high_lead(engine, full_name="Dana Whitfield", project_type="Web app"))
    with session_scope(engine) as session:
        as_manager = followup_views.detail(session=session, settings=settings, follow_up_id=ids[1], user_id="x",
                                           role="manager")
        as_staff = followup_views.detail(session=session, settings=settings, follow_up_id=ids[1], user_id="x",
                                         role="staff")
    assert as_manager["subject"] == "Your Web app with Our agency"
    assert as_manager["body"] == "Hi Dana, thanks for writing."
    assert as_manager["attempts_log"] == []
    assert as_manager["actions"] == ["cancel", "edit"]
    assert as_staff["actions"] == ["cancel"]


def test_act_runs_the_action_for_those_allowed_and_refuses_the_others(engine: Engine, known_sequence: None):
    sam_id, mine, theirs = sams_and_sues_leads(engine, "mia@example.com", "tom@example.com")
    their_ids, my_ids = follow_ups_of(engine, theirs), follow_ups_of(engine, mine)
    set_state(engine, my_ids[2], status=FollowUpStatus.TASK)
    set_state(engine, my_ids[3], status=FollowUpStatus.FAILED, attempts=6, last_error="timeout")

    def act(follow_up_id: str, action: str, role: str = "staff", **fields) -> str:  # noqa: ANN003
        with session_scope(engine) as session:
            return followup_views.act(session=session, follow_up_id=follow_up_id, user_id=sam_id, role=role,
                                      actor="user:sam", action=action, **fields)

    with pytest.raises(ValidationFailed) as refused:
        act(my_ids[1], "edit", subject="Hi", body="Hello")
    assert refused.value.errors[0].field == "role"
    with pytest.raises(NotFound):
        act(their_ids[1], "cancel")

    assert act(my_ids[3], "retry") == "SCHEDULED"
    assert act(my_ids[2], "complete_call", note="Booked a demo") == "DONE"
    assert act(my_ids[1], "edit", role="manager", subject="  A better   subject ", body="Hello Dana") == "SCHEDULED"
    with session_scope(engine) as session:
        retried = session.get(FollowUp, my_ids[3])
        assert (retried.status, retried.attempts) == (FollowUpStatus.SCHEDULED, 0)
        edited = session.get(FollowUp, my_ids[1])
        assert (edited.subject, edited.body, edited.copy_source) == ("A better subject", "Hello Dana", "edited")
        assert session.get(FollowUp, my_ids[2]).completed_by == "user:sam"
    assert listed(engine, "calls")[1] == 0
    with pytest.raises(ValidationFailed) as twice:
        act(my_ids[2], "complete_call")
    assert twice.value.errors[0].field == "status"


def test_a_lead_s_follow_ups_for_its_page(engine: Engine, known_sequence: None):
    lead_id = high_lead(engine)
    ids = follow_ups_of(engine, lead_id)
    set_state(engine, ids[1], status=FollowUpStatus.FAILED, last_error="550 no such user")
    with session_scope(engine) as session:
        followups.cancel(session=session, follow_up_id=ids[2], actor="user:max")

    with session_scope(engine) as session:
        rows = followup_views.for_lead(session=session, lead_id=lead_id)
        other = followup_views.for_lead(session=session, lead_id="no-such-lead")

    assert [(r["number"], r["channel"], r["status"]) for r in rows] == \
        [(1, "EMAIL", "FAILED"), (2, "CALL", "CANCELLED"), (3, "SMS", "SCHEDULED"), (4, "EMAIL", "SCHEDULED")]
    assert rows[0]["problem"] == "550 no such user" and rows[1]["problem"] == "stopped by user:max"
    assert other == []


def test_a_priority_without_steps_plans_nothing_to_list(engine: Engine, known_sequence: None):
    with session_scope(engine) as session:
        lead = make_lead(session, score=20, email="low@example.com")  # LOW: no steps in this sequence
        assert lead.priority == Priority.LOW
    assert listed(engine, "scheduled")[1] == 0
    assert listed(engine, "due_today")[1] == 0
