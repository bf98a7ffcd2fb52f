"""Tests for core.demo: the synthetic leads a new installation and the benchmarks start from."""

from __future__ import annotations

import re
import socket
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from core import app_settings, demo, followups, message_copy, sequences
from core.analysis.base import LeadFacts
from core.analysis.rules import RulesEngine
from core.config import Settings
from core.schemas import LeadCreate
from db.models import (
    Activity,
    ActivityKind,
    Channel,
    CopyMode,
    FollowUp,
    FollowUpStatus,
    Lead,
    LeadAnalysis,
    LeadStatus,
    Priority,
    Role,
    Suppression,
    User,
    WorkflowLog,
)
from db.session import make_engine, session_scope

NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
LEADS = 300


@pytest.fixture
def seeded(engine: Engine) -> Engine:
    assert demo.is_empty(engine=engine)
    calls: list[tuple[int, int]] = []
    assert demo.seed(engine=engine, leads=LEADS, now=NOW, progress=lambda done, total: calls.append((done, total))) \
        == LEADS
    assert calls[-1] == (LEADS, LEADS)
    return engine


def _leads(engine: Engine) -> list[Lead]:
    with session_scope(engine) as session:
        return list(session.scalars(select(Lead)))


def test_seed_creates_the_asked_number_of_leads_each_with_one_matching_analysis(seeded: Engine) -> None:
    assert not demo.is_empty(engine=seeded)
    with session_scope(seeded) as session:
        assert session.scalar(select(func.count()).select_from(Lead)) == LEADS
        rows = session.execute(select(Lead.score, Lead.priority, Lead.needs_review, LeadAnalysis.score,
                                      LeadAnalysis.priority, LeadAnalysis.review_reason, LeadAnalysis.engine)
                               .join(LeadAnalysis, LeadAnalysis.lead_id == Lead.id)).all()
    assert len(rows) == LEADS
    for score, priority, needs_review, a_score, a_priority, review_reason, engine_name in rows:
        assert (score, priority) == (a_score, a_priority)
        assert needs_review == (review_reason is not None)
        assert engine_name == "rules"
    assert {r[1].value for r in rows} == {"HIGH", "MEDIUM", "LOW"}


def test_scores_are_the_rules_engines_own(seeded: Engine) -> None:
    with session_scope(seeded) as session:
        profile = app_settings.get_profile(session=session)
        scoring = app_settings.get_scoring(session=session)
        sample = list(session.scalars(select(Lead).order_by(Lead.created_at).limit(40)))
        for lead in sample:
            facts = LeadFacts.of(full_name=lead.full_name, email=lead.email, message=lead.message, phone=lead.phone,
                                 company=lead.company, budget=lead.budget, project_type=lead.project_type,
                                 source=lead.source)
            assert RulesEngine().analyze(facts, profile=profile, scoring=scoring).score == lead.score


def test_dates_spread_over_the_past_six_months_and_never_in_the_future(seeded: Engine) -> None:
    with session_scope(seeded) as session:
        created = list(session.scalars(select(Lead.created_at)))
        latest_activity = session.scalar(select(func.max(Activity.created_at)))
        updated = list(session.scalars(select(Lead.updated_at)))
    assert all(NOW - timedelta(days=183) <= c <= NOW for c in created)
    assert all(c.tzinfo is not None for c in created)
    assert latest_activity <= NOW and max(updated) <= NOW
    # Spread out, with the recent months busier than the oldest.
    months = Counter((NOW - c).days // 30 for c in created)
    assert len(months) >= 6
    assert months[0] + months[1] > months[4] + months[5]


def test_leads_look_like_a_real_inbox(seeded: Engine) -> None:
    leads = _leads(seeded)
    assert len({lead.source for lead in leads}) >= 5
    assert {lead.status for lead in leads} == set(LeadStatus)
    assert len({lead.company for lead in leads if lead.company}) >= 50
    assert len({lead.budget for lead in leads if lead.budget}) >= 50
    assert any(lead.budget is None for lead in leads)
    assert len({lead.project_type for lead in leads}) >= 6
    assert len({lead.full_name for lead in leads}) >= 200
    company_mail = [lead for lead in leads if lead.email.endswith(".example")]
    assert len(company_mail) > LEADS / 3
    assert any(lead.email.endswith(("@gmail.com", "@outlook.com", "@yahoo.com")) for lead in leads)
    # Every lead would pass the intake form's validation unchanged.
    for lead in leads:
        checked = LeadCreate(full_name=lead.full_name, email=lead.email, message=lead.message, phone=lead.phone,
                             company=lead.company, budget=lead.budget, project_type=lead.project_type,
                             source=lead.source)
        assert (checked.email, checked.phone, checked.message) == (lead.email, lead.phone, lead.message)


def _share_new(leads: list[Lead]) -> float:
    return sum(lead.status == LeadStatus.NEW for lead in leads) / len(leads)


def test_older_leads_are_further_along_the_funnel(seeded: Engine) -> None:
    leads = _leads(seeded)
    recent = [lead for lead in leads if NOW - lead.created_at < timedelta(days=7)]
    old = [lead for lead in leads if NOW - lead.created_at > timedelta(days=60)]
    assert _share_new(recent) > 2 * _share_new(old)
    assert all(lead.status not in (LeadStatus.WON, LeadStatus.PROPOSAL_SENT) for lead in recent
               if NOW - lead.created_at < timedelta(days=1))


def test_some_leads_are_assigned_to_the_demo_team(seeded: Engine) -> None:
    with session_scope(seeded) as session:
        team = {u.id: u for u in session.scalars(select(User))}
        assignees = [a for a in session.scalars(select(Lead.assignee_id)) if a]
    assert 3 <= len(team) <= 4
    assert {u.role for u in team.values()} == {Role.MANAGER, Role.STAFF}
    assert len(assignees) > LEADS / 4
    assert set(assignees) <= set(team)


def test_every_lead_has_a_timeline_that_ends_in_its_status(seeded: Engine) -> None:
    with session_scope(seeded) as session:
        leads = {lead.id: lead for lead in session.scalars(select(Lead))}
        entries = session.execute(select(Activity.lead_id, Activity.kind, Activity.data, Activity.created_at)
                                  .order_by(Activity.created_at)).all()
    kinds: dict[str, list[ActivityKind]] = {}
    last_status: dict[str, str] = {}
    for lead_id, kind, data, _at in entries:
        kinds.setdefault(lead_id, []).append(kind)
        if kind == ActivityKind.STATUS_CHANGED:
            last_status[lead_id] = data["to"]
    assert set(kinds) == set(leads)
    for lead_id, lead in leads.items():
        assert kinds[lead_id][:2] == [ActivityKind.CREATED, ActivityKind.ANALYZED]
        assert last_status.get(lead_id, "NEW") == lead.status.value
    every_kind = Counter(kind for ks in kinds.values() for kind in ks)
    # Demo leads are neither imported, merged nor marked reviewed by a person: every other kind of entry appears.
    assert set(every_kind) == set(ActivityKind) - {ActivityKind.IMPORTED, ActivityKind.MERGED, ActivityKind.REVIEWED}


def test_the_same_seed_gives_the_same_leads(seeded: Engine, capsys: pytest.CaptureFixture[str]) -> None:
    first = Counter((lead.full_name, lead.email, lead.score, lead.status) for lead in _leads(seeded))
    assert demo.seed(engine=seeded, leads=LEADS, now=NOW) == LEADS
    both = Counter((lead.full_name, lead.email, lead.score, lead.status) for lead in _leads(seeded))
    assert both == first + first
    with session_scope(seeded) as session:
        assert session.scalar(select(func.count()).select_from(User)) <= 4  # the team is reused, not duplicated
    assert capsys.readouterr() == ("", "")  # nothing printed: no passwords anywhere


def test_another_seed_gives_other_leads(engine: Engine) -> None:
    demo.seed(engine=engine, leads=50, seed=1, now=NOW)
    first = {lead.email for lead in _leads(engine)}
    demo.seed(engine=engine, leads=50, seed=2, now=NOW)
    assert len({lead.email for lead in _leads(engine)} - first) > 40


def test_zero_leads_adds_nothing(engine: Engine) -> None:
    assert demo.seed(engine=engine, leads=0, now=NOW) == 0
    assert demo.is_empty(engine=engine)


# --- follow-ups and workflow history ----------------------------------------------------------------------------

def _outbox(engine: Engine) -> dict[str, Any]:
    """Everything the demo wrote about follow-ups, keyed the way the assertions need it."""
    with session_scope(engine) as session:
        leads = {lead.id: lead for lead in session.scalars(select(Lead))}
        follow_ups = list(session.scalars(select(FollowUp).order_by(FollowUp.due_at, FollowUp.number)))
        logs: dict[str, list[WorkflowLog]] = defaultdict(list)
        for log in session.scalars(select(WorkflowLog).order_by(WorkflowLog.created_at)):
            logs[log.subject_id].append(log)
        timeline: dict[str, list[Activity]] = defaultdict(list)
        moved: dict[str, Activity] = {}
        for entry in session.scalars(select(Activity).order_by(Activity.created_at)):
            if entry.kind == ActivityKind.FOLLOW_UP:
                timeline[entry.data["follow_up"]].append(entry)
            elif entry.kind == ActivityKind.STATUS_CHANGED:
                moved.setdefault(entry.lead_id, entry)
        suppressions = {s.address: s for s in session.scalars(select(Suppression))}
        spam = {lead_id for lead_id, advice in session.execute(select(LeadAnalysis.lead_id,
                                                                      LeadAnalysis.recommendation))
                if advice.startswith("Do not reply")}
        steps = {p: [s.id for s in sequences.get_steps(session=session, priority=p, include_disabled=False)]
                 for p in Priority}
        team = set(session.scalars(select(User.username)))
    return dict(leads=leads, follow_ups=follow_ups, logs=logs, timeline=timeline, moved=moved,
                suppressions=suppressions, spam=spam, steps=steps, team=team)


def test_most_leads_got_their_prioritys_sequence_once_and_spam_none(seeded: Engine) -> None:
    box = _outbox(seeded)
    by_lead: dict[str, list[FollowUp]] = defaultdict(list)
    for follow_up in box["follow_ups"]:
        by_lead[follow_up.lead_id].append(follow_up)
    assert not box["spam"] & set(by_lead)
    buyers = set(box["leads"]) - box["spam"]
    assert len(buyers & set(by_lead)) >= 0.9 * len(buyers)
    for lead_id, planned in by_lead.items():
        # One follow-up per live step of the lead's priority: none twice, none from another priority's sequence.
        assert sorted(f.step_id for f in planned) == sorted(box["steps"][box["leads"][lead_id].priority])
        assert sorted(f.number for f in planned) == list(range(1, len(planned) + 1))
        assert all(f.channel == f.step.channel and f.number == f.step.position for f in planned)


def test_follow_ups_stop_once_a_person_takes_the_lead_on(seeded: Engine) -> None:
    box = _outbox(seeded)
    for follow_up in box["follow_ups"]:
        lead = box["leads"][follow_up.lead_id]
        assert not lead.auto_follow_up  # what is still waiting is never sent (see the run_pass test below)
        if follow_up.status in followups.PENDING:
            assert lead.status == LeadStatus.NEW
            assert follow_up.status == FollowUpStatus.TASK or follow_up.due_at >= NOW - timedelta(minutes=2)
        moved = box["moved"].get(lead.id)
        if follow_up.cancel_reason and follow_up.cancel_reason.startswith("the lead moved to"):
            assert moved is not None and follow_up.cancel_reason == f"the lead moved to {moved.data['to']}"
            assert follow_up.updated_at == moved.created_at
        for log in box["logs"][follow_up.id]:
            assert follow_up.created_at < log.created_at <= NOW
            assert moved is None or log.outcome == "done" or log.created_at < moved.created_at
        if follow_up.attempts == 0:
            due = follow_up.due_at
            assert due.weekday() < 5 and 9 <= due.hour < 18, "due inside the send window"


def test_every_attempt_is_in_the_workflow_log_and_on_the_timeline(seeded: Engine) -> None:
    box = _outbox(seeded)
    retried = 0
    for follow_up in box["follow_ups"]:
        lead = box["leads"][follow_up.lead_id]
        logs, entries = box["logs"][follow_up.id], box["timeline"][follow_up.id]
        outcomes = [log.outcome for log in logs]
        tried = [log for log in logs if log.outcome in ("sent", "retry", "failed", "bounced")]
        assert len(tried) == follow_up.attempts
        assert all(40 <= log.duration_ms <= 900 for log in tried)
        assert all(log.lead_id == lead.id and log.channel == follow_up.channel.value for log in logs)
        channel = follow_up.channel.value.lower()
        if follow_up.status == FollowUpStatus.SENT:
            assert outcomes[-1] == "sent" and follow_up.sent_at == logs[-1].created_at
            assert follow_up.recipient == (lead.email if follow_up.channel == Channel.EMAIL else lead.phone)
            assert follow_up.body and follow_up.last_error is None
            assert follow_up.copy_source == ("ai" if follow_up.step.copy_mode == CopyMode.AI else "template")
            if follow_up.channel == Channel.EMAIL:
                assert follow_up.subject and re.fullmatch(r"[0-9A-F]{10}", follow_up.provider_id)
            else:
                assert follow_up.subject is None and re.fullmatch(r"SM[0-9a-f]{32}", follow_up.provider_id)
            assert entries[-1].body == f"Follow-up {follow_up.number} sent by {channel}" + (
                f": {follow_up.subject}" if follow_up.subject else "")
            retried += outcomes == ["retry", "sent"]
        elif follow_up.status == FollowUpStatus.FAILED:
            assert outcomes[-1] in ("failed", "bounced") and follow_up.last_error == logs[-1].detail
            assert entries[-1].body.startswith(f"Follow-up {follow_up.number} by {channel} failed ({outcomes[-1]})")
        elif follow_up.status == FollowUpStatus.DONE:
            assert outcomes == ["task", "done"] and follow_up.completed_by in box["team"]
            assert [e.body for e in entries] == [f"Follow-up {follow_up.number}: call to make",
                                                 f"Call {follow_up.number} made"]
            assert entries[-1].actor == follow_up.completed_by and follow_up.sent_at == logs[-1].created_at
        elif follow_up.status == FollowUpStatus.TASK:
            assert outcomes == ["task"] and follow_up.body
        elif follow_up.cancel_reason == "the lead has no phone number":
            assert lead.phone is None and outcomes == ["cancelled"]
        else:
            assert outcomes in ([], ["retry"], ["task"])  # stopped by a status change, a bounce or an unsubscribe
        assert len(entries) == len(logs)
        assert all(e.created_at <= NOW and e.lead_id == lead.id for e in entries)
    assert retried >= 3


def test_bounced_and_unsubscribed_addresses_are_suppressed_and_get_nothing_more(seeded: Engine) -> None:
    box = _outbox(seeded)
    by_lead: dict[str, list[FollowUp]] = defaultdict(list)
    for follow_up in box["follow_ups"]:
        by_lead[follow_up.lead_id].append(follow_up)
    bounced = [(f, box["logs"][f.id][-1]) for f in box["follow_ups"] if f.status == FollowUpStatus.FAILED
               and box["logs"][f.id][-1].outcome == "bounced"]
    assert bounced
    for follow_up, log in bounced:
        lead = box["leads"][follow_up.lead_id]
        assert follow_up.channel == Channel.EMAIL and "550 5.1.1" in follow_up.last_error
        suppression = box["suppressions"][lead.email.lower()]
        assert (suppression.reason, suppression.lead_id, suppression.created_at) == ("BOUNCED", lead.id,
                                                                                     log.created_at)
        later = [box["logs"][f.id] for f in by_lead[lead.id] if f is not follow_up]
        assert not any(g.created_at > log.created_at and g.outcome != "done" for logs in later for g in logs)
    assert any(f.cancel_reason == demo._BOUNCED for f in box["follow_ups"])
    with session_scope(seeded) as session:
        unsubscribed = {a.lead_id: a for a in session.scalars(
            select(Activity).where(Activity.kind == ActivityKind.UNSUBSCRIBED))}
        unsubscribe_logs = list(session.scalars(select(WorkflowLog).where(WorkflowLog.kind == "unsubscribe")))
    assert unsubscribed and {log.lead_id for log in unsubscribe_logs} == set(unsubscribed)
    for lead_id, entry in unsubscribed.items():
        assert box["suppressions"][box["leads"][lead_id].email.lower()].reason == "UNSUBSCRIBED"
        sent_after = [f for f in by_lead[lead_id] if f.sent_at and f.sent_at > entry.created_at
                      and f.channel != Channel.CALL]
        assert not sent_after
    reasons = Counter(s.reason for s in box["suppressions"].values())
    assert set(reasons) == {"BOUNCED", "UNSUBSCRIBED"}
    assert all(address == address.strip().lower() for address in box["suppressions"])


def test_follow_up_statuses_spread_like_a_real_outbox(seeded: Engine) -> None:
    statuses = Counter(f.status for f in _outbox(seeded)["follow_ups"])
    assert set(statuses) >= set(FollowUpStatus) - {FollowUpStatus.TASK}
    # Most sequences are cut short by a person (CANCELLED); of what went out, nearly everything was delivered.
    assert statuses.most_common(2)[0][0] in (FollowUpStatus.SENT, FollowUpStatus.CANCELLED)
    assert max(set(statuses) - {FollowUpStatus.CANCELLED}, key=statuses.__getitem__) == FollowUpStatus.SENT
    went_out = statuses[FollowUpStatus.SENT] + statuses[FollowUpStatus.FAILED]
    assert 0.9 <= statuses[FollowUpStatus.SENT] / went_out < 1


def test_copy_is_what_the_step_templates_give_the_lead(seeded: Engine) -> None:
    with session_scope(seeded) as session:
        profile = app_settings.get_profile(session=session)
        written = list(session.scalars(select(FollowUp).where(FollowUp.body.is_not(None)).limit(60)))
        assert len(written) == 60
        for follow_up in written:
            step, lead = follow_up.step, follow_up.lead
            context = message_copy.context_for(lead, profile)
            expected = message_copy.from_template(subject_template=step.subject_template,
                                                  body_template=step.body_template, context=context)
            assert (follow_up.subject, follow_up.body) == (expected.subject, expected.body)
            # The demo builds the same variables from the rows it is about to write.
            rows = [{c.key: getattr(row, c.key) for c in type(row).__table__.columns} for row in (lead, lead.analysis)]
            assert demo._context(*rows, profile.business_name) == context


def _signature(engine: Engine) -> tuple[Counter[Any], Counter[Any], Counter[Any]]:
    with session_scope(engine) as session:
        follow_ups = Counter(session.execute(
            select(Lead.email, Lead.full_name, FollowUp.number, FollowUp.channel, FollowUp.status, FollowUp.due_at,
                   FollowUp.subject, FollowUp.body, FollowUp.attempts, FollowUp.last_error, FollowUp.cancel_reason,
                   FollowUp.sent_at, FollowUp.completed_by, FollowUp.provider_id)
            .join(Lead, Lead.id == FollowUp.lead_id)).all())
        logs = Counter(session.execute(
            select(Lead.email, WorkflowLog.kind, WorkflowLog.outcome, WorkflowLog.detail, WorkflowLog.duration_ms,
                   WorkflowLog.created_at).join(Lead, Lead.id == WorkflowLog.lead_id)).all())
        suppressions = Counter(session.execute(select(Suppression.address, Suppression.reason,
                                                      Suppression.created_at)).all())
    return follow_ups, logs, suppressions


def test_the_same_seed_gives_the_same_follow_ups(engine: Engine, sqlite_url: str) -> None:
    other = make_engine(sqlite_url)
    for target in (engine, other):
        demo.seed(engine=target, leads=150, seed=3, now=NOW)
    first, second = _signature(engine), _signature(other)
    assert sum(first[0].values()) > 150
    assert first == second


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_run_pass_never_sends_a_demo_follow_up(seeded: Engine) -> None:
    port = _closed_port()
    settings = Settings(_env_file=None, smtp_host="127.0.0.1", smtp_port=port, mail_from="sales@agency.example",
                        twilio_account_sid="AC" + "0" * 32, twilio_auth_token="token", twilio_from="+15005550006",
                        twilio_whatsapp_from="whatsapp:+15005550006", twilio_base_url=f"http://127.0.0.1:{port}")
    with session_scope(seeded) as session:
        waiting = set(session.scalars(select(FollowUp.id).where(FollowUp.status == FollowUpStatus.SCHEDULED)))
        tasks = set(session.scalars(select(FollowUp.id).where(FollowUp.status == FollowUpStatus.TASK)))
        logged = set(session.scalars(select(WorkflowLog.id)))
    assert waiting
    later = datetime(2026, 4, 1, 10, 0, tzinfo=UTC)  # a Wednesday in the window, after every demo due date
    summary = followups.run_pass(engine=seeded, settings=settings, now=later)
    assert (summary.sent, summary.failed, summary.bounced, summary.retrying) == (0, 0, 0, 0)
    assert summary.cancelled == len(waiting)
    with session_scope(seeded) as session:
        after = {f.id: f for f in session.scalars(select(FollowUp).where(FollowUp.id.in_(waiting | tasks)))}
        new_logs = list(session.scalars(select(WorkflowLog).where(WorkflowLog.id.not_in(logged))))
    assert all(after[i].status == FollowUpStatus.CANCELLED
               and after[i].cancel_reason == "automatic follow-ups are off for this lead" for i in waiting)
    assert all(after[i].status == FollowUpStatus.TASK for i in tasks)  # call tasks wait for a person
    assert {log.outcome for log in new_logs} == {"cancelled"}
