"""Follow-up sequences end to end: planning, the jobs pass against a real SMTP server, stopping, unsubscribing.

Every test runs on SQLite and on PostgreSQL; email goes to an aiosmtpd server in this process.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, time, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, func, select, update
from sqlalchemy.exc import IntegrityError

from core import followups, sequences
from core import leads as lead_service
from core.config import Settings
from core.schemas import LeadUpdate
from db.models import (
    Activity,
    ActivityKind,
    Channel,
    CopyMode,
    FollowUp,
    FollowUpStatus,
    Lead,
    LeadStatus,
    Priority,
    Suppression,
    WorkflowLog,
    utcnow,
)
from db.session import session_scope
from tests.support.factories import make_lead
from tests.support.gemini_server import GeminiServer
from tests.support.smtp_server import SmtpServer

ALWAYS = dict(days=list(range(7)), start=time(0, 0), end=time(23, 59, 59, 999999))
# A Wednesday 10:00 UTC: inside the default window (weekdays 09:00-18:00).
WEDNESDAY_10 = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with SmtpServer() as server:
        yield server


@pytest.fixture
def mail_settings(make_settings: Callable[..., Settings], smtp: SmtpServer) -> Settings:
    return make_settings(smtp_host=smtp.host, smtp_port=smtp.port, smtp_starttls=False,
                         mail_from="Harbor Studio <hello@harbor.example>", leadops_base_url="https://leads.example")


def open_window(engine: Engine) -> None:
    with session_scope(engine) as session:
        sequences.set_send_window(session=session, actor="test", **ALWAYS)


def new_lead(engine: Engine, **fields: Any) -> str:
    with session_scope(engine) as session:
        return make_lead(session, **fields).id


def follow_ups(engine: Engine, lead_id: str) -> list[FollowUp]:
    with session_scope(engine) as session:
        return followups.for_lead(session=session, lead_id=lead_id)


def due_now(engine: Engine, lead_id: str, number: int = 1) -> str:
    """Makes the lead's follow-up `number` due a minute ago and returns its id."""
    with session_scope(engine) as session:
        row = session.scalar(select(FollowUp).where(FollowUp.lead_id == lead_id, FollowUp.number == number))
        assert row is not None
        row.due_at = utcnow() - timedelta(minutes=1)
        return row.id


def only_first_step(engine: Engine, priority: Priority) -> None:
    """Switches off every step of a priority but the first, so one lead makes one email."""
    with session_scope(engine) as session:
        for step in sequences.get_steps(session=session, priority=priority)[1:]:
            step.enabled = False


# --- planning ------------------------------------------------------------------------------------------------------

def test_a_qualified_lead_gets_the_sequence_of_its_priority(engine: Engine) -> None:
    lead_id = new_lead(engine, score=90)
    rows = follow_ups(engine, lead_id)
    with session_scope(engine) as session:
        steps = sequences.get_steps(session=session, priority=Priority.HIGH)
        lead = session.get(Lead, lead_id)
        assert lead is not None
        created = lead.created_at
    assert [(r.number, r.channel) for r in rows] == [(i, s.channel) for i, s in enumerate(steps, 1)]
    assert [r.due_at - created for r in rows] == [timedelta(minutes=s.delay_minutes) for s in steps]
    assert {r.status for r in rows} == {FollowUpStatus.SCHEDULED}


def test_one_row_per_lead_and_step_even_when_planned_twice(engine: Engine) -> None:
    lead_id = new_lead(engine, score=60)
    with session_scope(engine) as session:
        lead = session.get(Lead, lead_id)
        assert followups.plan(session=session, lead=lead) == []
    with pytest.raises(IntegrityError), session_scope(engine) as session:
        first = follow_ups(engine, lead_id)[0]
        session.add(FollowUp(lead_id=lead_id, step_id=first.step_id, number=9, channel=first.channel,
                             due_at=utcnow()))
        session.flush()
    assert len(follow_ups(engine, lead_id)) == 3


def test_leads_that_must_not_be_contacted_get_no_sequence(engine: Engine) -> None:
    with session_scope(engine) as session:
        session.add(Suppression(address="gone@bounce.example", reason="BOUNCED"))
    lead_id = new_lead(engine, email="gone@bounce.example")
    assert follow_ups(engine, lead_id) == []


def test_a_person_moving_the_lead_on_stops_what_is_pending(engine: Engine) -> None:
    lead_id = new_lead(engine, score=90)
    with session_scope(engine) as session:
        lead = lead_service.get_or_raise(session=session, lead_id=lead_id)
        lead_service.update(session=session, lead=lead, changes=LeadUpdate(status=LeadStatus.CONTACTED),
                            actor="user:sam")
    rows = follow_ups(engine, lead_id)
    assert {r.status for r in rows} == {FollowUpStatus.CANCELLED}
    assert rows[0].cancel_reason == "the lead moved to CONTACTED"
    with session_scope(engine) as session:
        bodies = [a.body for a in session.scalars(select(Activity).where(Activity.lead_id == lead_id,
                                                                         Activity.kind == ActivityKind.FOLLOW_UP))]
    assert any("4 pending follow-up(s) stopped" in (b or "") for b in bodies)


def test_a_new_priority_replaces_the_steps_not_yet_attempted(engine: Engine, settings: Settings) -> None:
    from core.analysis.base import AnalysisResult

    lead_id = new_lead(engine, score=60)
    with session_scope(engine) as session:
        lead = session.get(Lead, lead_id)
        assert lead is not None and lead.analysis is not None
        result = AnalysisResult(score=92, priority=Priority.HIGH, budget_category="25k-100k", summary="s",
                                recommendation="r", engine="rules", factors=[])
        lead_service.apply_analysis(session=session, lead=lead, result=result, actor="test")
    rows = follow_ups(engine, lead_id)
    live = [r for r in rows if r.status == FollowUpStatus.SCHEDULED]
    assert len(live) == 4 and all(r.step.priority == Priority.HIGH for r in live)
    assert sum(r.status == FollowUpStatus.CANCELLED for r in rows) == 3


# --- the pass ------------------------------------------------------------------------------------------------------

def test_a_due_email_goes_out_once_with_unsubscribe_headers(engine: Engine, mail_settings: Settings,
                                                              smtp: SmtpServer) -> None:
    open_window(engine)
    lead_id = new_lead(engine, score=90, full_name="Dana Whitfield", email="dana@harborline.example")
    follow_up_id = due_now(engine, lead_id)

    summary = followups.run_pass(engine=engine, settings=mail_settings)
    again = followups.run_pass(engine=engine, settings=mail_settings)

    assert summary.sent == 1 and again.sent == 0
    assert len(smtp.messages) == 1
    message = smtp.messages[0]
    assert message["To"] == "dana@harborline.example"
    assert message["Message-ID"] == followups.message_id_for(follow_up_id, mail_settings.mail_from)
    assert message["List-Unsubscribe"].startswith("<https://leads.example/u/")
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message.is_multipart()
    text = message.get_body(("plain",)).get_content()
    assert text.startswith("Hi Dana,") and "Unsubscribe: https://leads.example/u/" in text
    html = message.get_body(("html",)).get_content()
    assert "Harbor" not in html or "<p>" in html
    rows = {r.id: r for r in follow_ups(engine, lead_id)}
    sent = rows[follow_up_id]
    assert sent.status == FollowUpStatus.SENT and sent.sent_at is not None and sent.claim_token is None
    assert sent.subject == message["Subject"] and sent.recipient == "dana@harborline.example"
    with session_scope(engine) as session:
        outcomes = [w.outcome for w in followups.attempts_of(session=session, follow_up_id=follow_up_id)]
    assert outcomes == ["sent"]


def test_nothing_goes_out_outside_the_send_window(engine: Engine, mail_settings: Settings, smtp: SmtpServer) -> None:
    lead_id = new_lead(engine, score=90)
    with session_scope(engine) as session:
        session.execute(update(FollowUp).values(due_at=datetime(2026, 11, 1, tzinfo=UTC)))
    saturday = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    night = datetime(2026, 11, 25, 20, 0, tzinfo=UTC)

    for moment in (saturday, night):
        summary = followups.run_pass(engine=engine, settings=mail_settings, now=moment)
        assert summary.sent == 0 and "outside the send window Mon-Fri 09:00-18:00" in summary.line()
    assert smtp.messages == []
    assert "next opens 2026-11-30 09:00" in followups.run_pass(engine=engine, settings=mail_settings,
                                                               now=saturday).line()
    inside = followups.run_pass(engine=engine, settings=mail_settings, now=WEDNESDAY_10)
    assert inside.sent >= 1 and len(smtp.messages) == inside.sent
    assert lead_id


def test_the_window_is_read_in_the_business_time_zone(engine: Engine, make_settings: Callable[..., Settings],
                                                      smtp: SmtpServer) -> None:
    settings = make_settings(smtp_host=smtp.host, smtp_port=smtp.port, smtp_starttls=False,
                             mail_from="hello@harbor.example", leadops_timezone="America/New_York")
    only_first_step(engine, Priority.HIGH)
    new_lead(engine, score=90)
    with session_scope(engine) as session:
        session.execute(update(FollowUp).values(due_at=datetime(2026, 11, 1, tzinfo=UTC)))
    # 10:00 UTC is 05:00 in New York: closed there.
    assert followups.run_pass(engine=engine, settings=settings, now=WEDNESDAY_10).sent == 0
    assert followups.run_pass(engine=engine, settings=settings, now=WEDNESDAY_10 + timedelta(hours=5)).sent == 1


def test_a_451_is_retried_later_and_then_delivered(engine: Engine, mail_settings: Settings, smtp: SmtpServer) -> None:
    open_window(engine)
    lead_id = new_lead(engine, score=90, email="busy@harborline.example")
    follow_up_id = due_now(engine, lead_id)
    smtp.script_rcpt("busy@harborline.example", [451, 250])

    first = followups.run_pass(engine=engine, settings=mail_settings)
    row = {r.id: r for r in follow_ups(engine, lead_id)}[follow_up_id]
    assert first.retrying == 1 and smtp.messages == []
    assert row.status == FollowUpStatus.SCHEDULED and row.attempts == 1 and "451" in (row.last_error or "")
    assert row.due_at > utcnow() + timedelta(seconds=30)  # backed off, not hammered again at once
    assert followups.run_pass(engine=engine, settings=mail_settings).retrying == 0  # not yet due again

    later = followups.run_pass(engine=engine, settings=mail_settings, now=utcnow() + timedelta(minutes=2))
    assert later.sent == 1 and len(smtp.messages) == 1
    with session_scope(engine) as session:
        outcomes = [w.outcome for w in followups.attempts_of(session=session, follow_up_id=follow_up_id)]
    assert outcomes == ["retry", "sent"]


def test_a_550_fails_the_message_marks_the_address_bounced_and_stops_the_sequence(
        engine: Engine, mail_settings: Settings, smtp: SmtpServer) -> None:
    open_window(engine)
    lead_id = new_lead(engine, score=90, email="nobody@harborline.example")
    follow_up_id = due_now(engine, lead_id)
    smtp.refuse_rcpt("nobody@harborline.example", 550)

    summary = followups.run_pass(engine=engine, settings=mail_settings)

    assert summary.bounced == 1 and smtp.messages == []
    rows = {r.id: r for r in follow_ups(engine, lead_id)}
    assert rows[follow_up_id].status == FollowUpStatus.FAILED and "550" in (rows[follow_up_id].last_error or "")
    assert {r.status for i, r in rows.items() if i != follow_up_id} == {FollowUpStatus.CANCELLED}
    with session_scope(engine) as session:
        assert session.get(Suppression, "nobody@harborline.example").reason == "BOUNCED"
        with pytest.raises(Exception, match="bounced permanently"):
            followups.retry(session=session, follow_up_id=follow_up_id, actor="user:max")


def test_smtp_down_then_up_delivers_everything_afterwards_without_a_hot_loop(
        engine: Engine, mail_settings: Settings, smtp: SmtpServer) -> None:
    open_window(engine)
    only_first_step(engine, Priority.HIGH)
    lead_ids = [new_lead(engine, score=90, email=f"lead{i}@harborline.example") for i in range(5)]
    for lead_id in lead_ids:
        due_now(engine, lead_id)
    smtp.stop()

    down = followups.run_pass(engine=engine, settings=mail_settings, timeout_s=2)

    assert down.sent == 0 and "EMAIL unreachable" in down.line()
    with session_scope(engine) as session:
        rows = list(session.scalars(select(FollowUp)))
        log = list(session.scalars(select(WorkflowLog).where(WorkflowLog.outcome == "unreachable")))
    # One try for the whole pass, not one per message; nothing counted against the messages, nothing left claimed.
    assert len(log) == 1
    assert all(r.status == FollowUpStatus.SCHEDULED and r.attempts == 0 and r.claim_token is None for r in rows)

    smtp.start()
    up = followups.run_pass(engine=engine, settings=mail_settings)
    assert up.sent == 5 and len(smtp.messages) == 5


def test_email_waits_with_the_reason_when_smtp_is_not_configured(engine: Engine, settings: Settings) -> None:
    open_window(engine)
    lead_id = new_lead(engine, score=90)
    follow_up_id = due_now(engine, lead_id)

    summary = followups.run_pass(engine=engine, settings=settings)

    row = {r.id: r for r in follow_ups(engine, lead_id)}[follow_up_id]
    assert row.status == FollowUpStatus.SCHEDULED and row.last_error == "waiting: SMTP_HOST, MAIL_FROM not set"
    assert summary.sent == 0 and "SMTP_HOST, MAIL_FROM not set" in summary.line()


def test_a_due_call_becomes_a_task_and_is_marked_done_by_a_person(engine: Engine, settings: Settings) -> None:
    open_window(engine)
    lead_id = new_lead(engine, score=90)
    call_id = due_now(engine, lead_id, number=2)

    summary = followups.run_pass(engine=engine, settings=settings)

    assert summary.tasks == 1
    with session_scope(engine) as session:
        call = followups.get_or_raise(session=session, follow_up_id=call_id)
        assert call.status == FollowUpStatus.TASK and call.body and "Call " in call.body
        followups.complete_call(session=session, follow_up_id=call_id, actor="user:sam", note="left a voicemail")
    with session_scope(engine) as session:
        call = followups.get_or_raise(session=session, follow_up_id=call_id)
        assert call.status == FollowUpStatus.DONE and call.completed_by == "user:sam"


def test_an_edited_message_goes_out_as_written(engine: Engine, mail_settings: Settings, smtp: SmtpServer) -> None:
    open_window(engine)
    lead_id = new_lead(engine, score=90)
    follow_up_id = due_now(engine, lead_id)
    with session_scope(engine) as session:
        followups.edit(session=session, follow_up_id=follow_up_id, subject="Your portal: a plan",
                       body="Hi Dana,\n\nHere is a plan for the portal.", actor="user:max")

    followups.run_pass(engine=engine, settings=mail_settings)

    assert smtp.messages[0]["Subject"] == "Your portal: a plan"
    text = smtp.messages[0].get_body(("plain",)).get_content().replace("\r\n", "\n")
    assert text.startswith("Hi Dana,\n\nHere is a plan for the portal.")


def test_ai_copy_is_used_and_the_template_stands_in_when_the_ai_fails(
        engine: Engine, make_settings: Callable[..., Settings], smtp: SmtpServer, gemini: GeminiServer) -> None:
    settings = make_settings(smtp_host=smtp.host, smtp_port=smtp.port, smtp_starttls=False,
                             mail_from="hello@harbor.example", gemini_api_key="test-key",
                             gemini_base_url=gemini.url, gemini_timeout_s=3)
    open_window(engine)
    first = new_lead(engine, score=90)
    with session_scope(engine) as session:
        step = sequences.get_steps(session=session, priority=Priority.HIGH)[0]
        assert step.copy_mode == CopyMode.AI and step.channel == Channel.EMAIL
    due_now(engine, first)
    gemini.queue(GeminiServer.json_reply({"subject": "Tracking portal: a 20-minute call?",
                                          "body": "Hi Dana,\n\nYour tracking portal sounds great."}))
    assert followups.run_pass(engine=engine, settings=settings).sent == 1
    assert smtp.messages[-1]["Subject"] == "Tracking portal: a 20-minute call?"

    second = new_lead(engine, score=90, email="ops@harborline.example")
    gemini.queue(*[GeminiServer.json_reply({"subject": "x"}, status=500)] * 3)
    assert followups.run_pass(engine=engine, settings=settings).sent == 1
    assert smtp.messages[-1]["Subject"].endswith("next steps for your Web app")
    row = follow_ups(engine, second)[0]
    assert row.copy_source == "template"
    with session_scope(engine) as session:
        detail = followups.attempts_of(session=session, follow_up_id=row.id)[0].detail
    assert "AI unavailable" in (detail or "")


def test_a_claim_left_by_a_pass_that_died_runs_out_and_is_retried(engine: Engine, mail_settings: Settings,
                                                                  smtp: SmtpServer) -> None:
    open_window(engine)
    lead_id = new_lead(engine, score=90)
    follow_up_id = due_now(engine, lead_id)
    with session_scope(engine) as session:
        session.execute(update(FollowUp).where(FollowUp.id == follow_up_id)
                        .values(claim_token="dead-pass", claimed_until=utcnow() + timedelta(minutes=5)))
    assert followups.run_pass(engine=engine, settings=mail_settings).sent == 0
    later = followups.run_pass(engine=engine, settings=mail_settings, now=utcnow() + timedelta(minutes=6))
    assert later.sent == 1 and len(smtp.messages) == 1


def test_a_failed_message_can_be_retried_by_a_person(engine: Engine, mail_settings: Settings,
                                                     smtp: SmtpServer) -> None:
    open_window(engine)
    lead_id = new_lead(engine, score=90, email="flaky@harborline.example")
    follow_up_id = due_now(engine, lead_id)
    with session_scope(engine) as session:
        session.execute(update(FollowUp).where(FollowUp.id == follow_up_id)
                        .values(status=FollowUpStatus.FAILED, last_error="554 transaction failed"))
        followups.retry(session=session, follow_up_id=follow_up_id, actor="user:max")
    assert followups.run_pass(engine=engine, settings=mail_settings).sent == 1


def test_unsubscribing_stops_every_pending_follow_up_and_the_address_is_not_contacted_again(
        engine: Engine, mail_settings: Settings, smtp: SmtpServer) -> None:
    open_window(engine)
    lead_id = new_lead(engine, score=90, email="stop@harborline.example")
    due_now(engine, lead_id)
    with session_scope(engine) as session:
        assert followups.unsubscribe_lead(session=session, lead_id=lead_id, via="test") is True
        assert followups.unsubscribe_lead(session=session, lead_id=lead_id, via="test") is False

    assert followups.run_pass(engine=engine, settings=mail_settings).sent == 0
    assert smtp.messages == []
    assert {r.status for r in follow_ups(engine, lead_id)} == {FollowUpStatus.CANCELLED}
    again = new_lead(engine, score=90, email="stop@harborline.example")
    assert follow_ups(engine, again) == []
    with session_scope(engine) as session:
        assert session.scalar(select(func.count()).select_from(Suppression)) == 1


def test_a_due_sms_goes_out_through_twilio_and_a_stop_reply_bounces_the_number(
        engine: Engine, make_settings: Callable[..., Settings]) -> None:
    from tests.support.twilio_server import Reply, TwilioServer

    open_window(engine)
    with TwilioServer(account_sid="AC" + "5" * 32, auth_token="twilio-test-token") as twilio:
        settings = make_settings(twilio_account_sid=twilio.account_sid, twilio_auth_token=twilio.auth_token,
                                 twilio_from="+13125550100", twilio_base_url=twilio.url)
        first, second = new_lead(engine, score=90), new_lead(engine, score=90, phone="+44 20 7946 0018")
        sms = [due_now(engine, lead_id, number=3) for lead_id in (first, second)]
        twilio.queue(Reply(201), Reply(400, code=21610, message="Attempt to send to unsubscribed recipient"))

        summary = followups.run_pass(engine=engine, settings=settings)

        assert summary.sent == 1 and summary.bounced == 1
        form = twilio.requests[0]["form"]
        assert form["To"] == "+13125550148" and form["From"] == "+13125550100"
        assert form["Body"].startswith("Hi Dana, Our agency here about your Web app enquiry.")
    with session_scope(engine) as session:
        sent, refused = (followups.get_or_raise(session=session, follow_up_id=i) for i in sms)
        assert sent.status == FollowUpStatus.SENT and sent.provider_id == twilio.sids[0]
        assert refused.status == FollowUpStatus.FAILED and "21610" in (refused.last_error or "")
        assert session.get(Suppression, "+442079460018").reason == "BOUNCED"
