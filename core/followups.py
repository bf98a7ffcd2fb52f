"""Follow-ups: planned when a lead is qualified, sent by the jobs pass exactly once, stopped when they must stop.

The pass claims due rows in the database (core.claims) and sends them in one SMTP connection and one HTTP client;
each outcome is written in its own short transaction with its workflow-log entry, timeline entry and webhook event,
so a crash loses at most the message in flight (its claim runs out and it is tried again: email receivers see the
same Message-ID and can drop the repeat).
"""

from __future__ import annotations

import logging
import time as clock
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, and_, select, update
from sqlalchemy.orm import Session

from core import activities, ai_usage, app_settings, claims, day_stats, message_copy, sequences, unsubscribe, webhooks
from core.channels import OutgoingEmail, SendOutcome
from core.config import Settings
from core.errors import FieldError, NotFound, ValidationFailed
from core.profile import BusinessProfile
from db.models import (
    ActivityKind,
    Channel,
    CopyMode,
    FollowUp,
    FollowUpStatus,
    Lead,
    LeadStatus,
    SequenceStep,
    Suppression,
    WorkflowLog,
    utcnow,
)
from db.session import run_with_retry, session_scope

log = logging.getLogger(__name__)

ACTOR = "system:followups"
LEASE = timedelta(minutes=10)
BATCH = 100
AI_BATCH = 10  # AI-written copy takes seconds per message: smaller claims keep well inside the lease
# Waits after a temporary refusal (SMTP 4xx, HTTP 429/5xx); one more refusal after the last fails the message.
RETRY_DELAYS = (timedelta(minutes=1), timedelta(minutes=5), timedelta(minutes=30), timedelta(hours=2),
                timedelta(hours=6))
PENDING = (FollowUpStatus.SCHEDULED, FollowUpStatus.TASK)
# A person took the lead on (or it closed): automatic messages stop.
STOPPING_STATUSES = frozenset(LeadStatus) - {LeadStatus.NEW}
TEXT_CHANNELS = (Channel.SMS, Channel.WHATSAPP)


# --- planning and stopping -----------------------------------------------------------------------------------------

def is_suppressed(*, session: Session, address: str | None) -> Suppression | None:
    """The suppression entry of an address that must not be contacted again, if any."""
    return session.get(Suppression, address.strip().lower()) if address else None


def suppress(*, session: Session, address: str, reason: str, lead_id: str | None, detail: str | None = None) -> None:
    """Marks an address as never to be contacted again (unsubscribed or bounced); keeps the first reason."""
    key = address.strip().lower()
    if session.get(Suppression, key) is None:
        session.add(Suppression(address=key, reason=reason, lead_id=lead_id, detail=(detail or "")[:500] or None))
        session.flush()


def plan(*, session: Session, lead: Lead, not_before: datetime | None = None) -> list[FollowUp]:
    """Plans the lead's sequence for its priority: one follow-up per enabled step not planned for it before.

    Each step is due its delay after the lead arrived; `not_before` keeps a late plan (after a new priority) from
    making every step due at once: steps are then spaced by their delays from that moment.
    """
    if not lead.auto_follow_up or lead.status != LeadStatus.NEW:
        return []
    if is_suppressed(session=session, address=lead.email):
        return []
    start = not_before or lead.created_at or utcnow()
    already = set(session.scalars(select(FollowUp.step_id).where(FollowUp.lead_id == lead.id)))
    planned = []
    for number, step in enumerate(sequences.get_steps(session=session, priority=lead.priority,
                                                      include_disabled=False), start=1):
        if step.id in already:
            continue
        follow_up = FollowUp(lead_id=lead.id, step_id=step.id, number=number, channel=step.channel,
                             status=FollowUpStatus.SCHEDULED,
                             due_at=start + timedelta(minutes=step.delay_minutes))
        session.add(follow_up)
        planned.append(follow_up)
    session.flush()
    return planned


def replan(*, session: Session, lead: Lead, now: datetime | None = None) -> list[FollowUp]:
    """After a new priority: steps of other priorities not yet attempted are cancelled, the new sequence planned."""
    stale = session.scalars(select(FollowUp).join(FollowUp.step).where(
        FollowUp.lead_id == lead.id, FollowUp.status.in_(PENDING), FollowUp.attempts == 0))
    for follow_up in stale:
        if follow_up.step.priority != lead.priority:
            follow_up.status = FollowUpStatus.CANCELLED
            follow_up.cancel_reason = f"the lead's priority changed to {lead.priority.value}"
    session.flush()
    return plan(session=session, lead=lead, not_before=now or utcnow())


def cancel_pending(*, session: Session, lead_id: str, reason: str) -> int:
    """Stops every follow-up of a lead that has not gone out yet; returns how many."""
    result = session.execute(
        update(FollowUp).where(FollowUp.lead_id == lead_id, FollowUp.status.in_(PENDING))
        .values(status=FollowUpStatus.CANCELLED, cancel_reason=reason[:200], claim_token=None, claimed_until=None,
                updated_at=utcnow())
        .execution_options(synchronize_session=False))
    return result.rowcount or 0


def on_status_change(*, session: Session, lead: Lead, new_status: LeadStatus) -> int:
    """Stops the automatic sequence once a lead moves on from NEW (contacted by a person, qualified, won, lost)."""
    if new_status not in STOPPING_STATUSES:
        return 0
    return cancel_pending(session=session, lead_id=lead.id, reason=f"the lead moved to {new_status.value}")


def unsubscribe_lead(*, session: Session, lead_id: str, via: str) -> bool:
    """Unsubscribes a lead: its address is suppressed and every pending follow-up stops; False if already done."""
    lead = session.get(Lead, lead_id)
    if lead is None:
        return False
    first_time = is_suppressed(session=session, address=lead.email) is None
    suppress(session=session, address=lead.email, reason="UNSUBSCRIBED", lead_id=lead.id, detail=via)
    lead.auto_follow_up = False
    stopped = cancel_pending(session=session, lead_id=lead.id, reason="the lead unsubscribed")
    if first_time:
        activities.record(session=session, lead_id=lead.id, kind=ActivityKind.UNSUBSCRIBED, actor="lead",
                          body=f"Unsubscribed ({via}); {stopped} pending follow-up(s) stopped")
        session.add(WorkflowLog(kind="unsubscribe", subject_id=lead.id, lead_id=lead.id, channel="EMAIL",
                                outcome="unsubscribed", detail=via))
    session.flush()
    return first_time


# --- the pass ------------------------------------------------------------------------------------------------------

@dataclass
class FollowUpSummary:
    """What one pass did."""

    sent: int = 0
    retrying: int = 0
    failed: int = 0
    bounced: int = 0
    cancelled: int = 0
    tasks: int = 0
    skipped: int = 0  # claimed by another pass meanwhile
    notes: list[str] = field(default_factory=list)

    def line(self) -> str:
        """The one-line summary a job prints."""
        text = (f"followups: {self.sent} sent, {self.tasks} call tasks, {self.retrying} to retry, "
                f"{self.failed} failed, {self.bounced} bounced, {self.cancelled} cancelled")
        return f"{text} ({'; '.join(self.notes)})" if self.notes else text


def channel_problem(settings: Settings, channel: Channel) -> str | None:
    """Why a channel cannot send with these settings, or None when it can."""
    if channel == Channel.EMAIL:
        missing = [n for n, v in (("SMTP_HOST", settings.smtp_host), ("MAIL_FROM", settings.mail_from)) if not v]
    elif channel in TEXT_CHANNELS:
        sender = settings.twilio_from if channel == Channel.SMS else settings.twilio_whatsapp_from
        name = "TWILIO_FROM" if channel == Channel.SMS else "TWILIO_WHATSAPP_FROM"
        missing = [n for n, v in (("TWILIO_ACCOUNT_SID", settings.twilio_account_sid),
                                  ("TWILIO_AUTH_TOKEN", settings.twilio_auth_token), (name, sender)) if not v]
    else:
        return None
    return f"waiting: {', '.join(missing)} not set" if missing else None


@dataclass
class _Transports:
    """The pass's open connections, made on first use and closed at the end."""

    settings: Settings
    timeout_s: float
    mailer: Any = None
    texter: Any = None
    down: dict[Channel, str] = field(default_factory=dict)
    _opened: list[Any] = field(default_factory=list)

    def email(self) -> Any:
        if self.mailer is None:
            from core.channels.email import SmtpMailer  # late: only passes that send email need smtplib set up

            self.mailer = SmtpMailer(self.settings, timeout_s=self.timeout_s).__enter__()
            self._opened.append(self.mailer)
        return self.mailer

    def text(self) -> Any:
        if self.texter is None:
            from core.channels.twilio import TwilioSender

            self.texter = TwilioSender(self.settings, timeout_s=self.timeout_s).__enter__()
            self._opened.append(self.texter)
        return self.texter

    def close(self) -> None:
        for transport in self._opened:
            try:
                transport.__exit__(None, None, None)
            except Exception:  # noqa: BLE001 - closing a broken connection must not hide the pass's result
                log.debug("closing a transport failed", exc_info=True)


def run_pass(*, engine: Engine, settings: Settings, now: datetime | None = None, limit: int = 2_000,
             timeout_s: float = 10.0) -> FollowUpSummary:
    """Sends (or turns into call tasks) the follow-ups that are due, inside the send window; one pass."""
    started_at, started = now or utcnow(), clock.monotonic()

    def current() -> datetime:
        return started_at + timedelta(seconds=clock.monotonic() - started)

    summary = FollowUpSummary()

    def read_setup() -> tuple[sequences.SendWindow, BusinessProfile, Callable[[str], str]]:
        with session_scope(engine) as session:
            return (sequences.get_send_window(session=session), app_settings.get_profile(session=session),
                    unsubscribe.link_maker(session=session, base_url=settings.leadops_base_url))

    # Retried: the first pass ever creates the unsubscribe key, and two passes may start together.
    window, profile, link_for = run_with_retry(read_setup, what="reading the follow-up settings")
    if not window.is_open(started_at, settings.leadops_timezone):
        opens = window.next_open(started_at, settings.leadops_timezone)
        summary.notes.append(f"outside the send window {window.describe()} {settings.leadops_timezone}; "
                             f"next opens {opens:%Y-%m-%d %H:%M %Z}")
        return summary
    sendable = [c for c in Channel if channel_problem(settings, c) is None]
    _note_waiting(engine, settings, started_at, summary)
    transports = _Transports(settings, timeout_s)
    batch = AI_BATCH if settings.ai_enabled else BATCH
    handled = 0
    try:
        while handled < limit:
            ready = and_(FollowUp.status == FollowUpStatus.SCHEDULED, FollowUp.due_at <= current(),
                         FollowUp.channel.in_([c for c in sendable if c not in transports.down]))
            token, ids = claims.claim_batch(engine=engine, model=FollowUp, ready=ready,
                                            order_by=[FollowUp.due_at, FollowUp.id],
                                            limit=min(batch, limit - handled), now=current(), lease=LEASE)
            if not ids:
                break
            handled += len(ids)
            with session_scope(engine) as session:
                jobs = _load_batch(session, ids, token, profile)
            summary.skipped += len(ids) - len(jobs)
            for job in jobs:
                _handle(engine, settings, transports, profile, link_for, job, token, current, summary)
    finally:
        transports.close()
    for channel, reason in transports.down.items():
        summary.notes.append(f"{channel.value} unreachable, will try again next pass: {reason}")
    return summary


def _note_waiting(engine: Engine, settings: Settings, now: datetime, summary: FollowUpSummary) -> None:
    """Due follow-ups of a channel with no configuration stay queued, with the reason on them (one statement)."""
    with session_scope(engine) as session:
        for channel in Channel:
            problem = channel_problem(settings, channel)
            if problem is None:
                continue
            waiting = session.execute(
                update(FollowUp).where(FollowUp.status == FollowUpStatus.SCHEDULED, FollowUp.channel == channel,
                                       FollowUp.due_at <= now,
                                       (FollowUp.last_error.is_(None)) | (FollowUp.last_error != problem))
                .values(last_error=problem).execution_options(synchronize_session=False)).rowcount
            if waiting:
                summary.notes.append(f"{waiting} {channel.value} follow-up(s) {problem}")


@dataclass(frozen=True)
class _Job:
    """What sending one follow-up needs, read in one short transaction."""

    id: str
    lead_id: str
    number: int
    attempts: int
    channel: Channel
    copy_mode: CopyMode
    subject: str | None
    body: str | None
    edited: bool
    subject_template: str | None
    body_template: str
    context: dict[str, Any]
    email: str
    phone: str | None
    stop_reason: str | None


def _load_batch(session: Session, ids: list[str], token: str, profile: BusinessProfile) -> list[_Job]:
    """The claimed follow-ups with their leads and steps, and the addresses among them that are suppressed."""
    rows = session.execute(
        select(FollowUp, Lead, SequenceStep).join(Lead, Lead.id == FollowUp.lead_id)
        .join(SequenceStep, SequenceStep.id == FollowUp.step_id)
        .where(FollowUp.id.in_(ids), FollowUp.claim_token == token, FollowUp.status == FollowUpStatus.SCHEDULED)
        .order_by(FollowUp.due_at, FollowUp.id)).all()
    addresses = {address.strip().lower() for _, lead, _ in rows for address in (lead.email, lead.phone) if address}
    suppressed = set(session.scalars(select(Suppression.address).where(Suppression.address.in_(addresses))))
    return [_job(follow_up, lead, step, profile, suppressed) for follow_up, lead, step in rows]


def _job(follow_up: FollowUp, lead: Lead, step: SequenceStep, profile: BusinessProfile,
         suppressed: set[str]) -> _Job:
    stop = None
    if not lead.auto_follow_up:
        # Demo and imported leads, and leads that unsubscribed: never contacted automatically.
        stop = "automatic follow-ups are off for this lead"
    elif lead.status in STOPPING_STATUSES:
        stop = f"the lead moved to {lead.status.value}"
    elif step.archived_at is not None or not step.enabled:
        stop = "the step was removed from the sequence"
    elif follow_up.channel == Channel.EMAIL and lead.email.strip().lower() in suppressed:
        stop = "the address unsubscribed or bounced"
    elif follow_up.channel in TEXT_CHANNELS and not lead.phone:
        stop = "the lead has no phone number"
    elif follow_up.channel in TEXT_CHANNELS and (lead.phone or "").strip().lower() in suppressed:
        stop = "the number opted out or cannot receive messages"
    return _Job(id=follow_up.id, lead_id=lead.id, number=follow_up.number, attempts=follow_up.attempts,
                channel=follow_up.channel,
                copy_mode=step.copy_mode, subject=follow_up.subject, body=follow_up.body,
                edited=follow_up.copy_source == "edited", subject_template=step.subject_template,
                body_template=step.body_template, context=message_copy.context_for(lead, profile),
                email=lead.email, phone=lead.phone, stop_reason=stop)


def _handle(engine: Engine, settings: Settings, transports: _Transports, profile: BusinessProfile,
            link_for: Callable[[str], str], job: _Job, token: str, current: Callable[[], datetime],
            summary: FollowUpSummary) -> None:
    if job.stop_reason:
        _finish(engine, job, token, current(), status=FollowUpStatus.CANCELLED, summary=summary,
                outcome="cancelled", detail=job.stop_reason)
        return
    if job.channel in transports.down:
        _release(engine, job.id, token)
        return
    try:
        copy = _copy_for(settings, job, profile)
    except Exception as exc:  # noqa: BLE001 - a template that no longer renders fails this message, not the pass
        _finish(engine, job, token, current(), status=FollowUpStatus.FAILED, summary=summary, outcome="failed",
                detail=f"the message could not be written: {exc}")
        return
    if job.channel == Channel.CALL:
        _finish(engine, job, token, current(), status=FollowUpStatus.TASK, summary=summary, outcome="task",
                detail="call task created", copy=copy)
        return
    began = clock.monotonic()
    outcome = _send(transports, job, copy, link_for, profile)
    elapsed_ms = int((clock.monotonic() - began) * 1000)
    if outcome.kind == "unreachable":
        transports.down[job.channel] = outcome.detail
        _log_only(engine, job, "unreachable", outcome.detail, elapsed_ms)
        _release(engine, job.id, token)
        return
    _record_outcome(engine, job, token, current(), outcome, copy, elapsed_ms, summary)


def _copy_for(settings: Settings, job: _Job, profile: BusinessProfile) -> message_copy.Copy:
    if job.body and job.edited:
        return message_copy.Copy(subject=job.subject, body=job.body, source="edited")
    if job.copy_mode == CopyMode.AI:
        return message_copy.from_ai(settings=settings, channel=job.channel, subject_template=job.subject_template,
                                    body_template=job.body_template, context=job.context, profile=profile)
    return message_copy.from_template(subject_template=job.subject_template, body_template=job.body_template,
                                      context=job.context)


def message_id_for(follow_up_id: str, mail_from: str | None) -> str:
    """The email's Message-ID: the same on every retry of one follow-up, so receivers can drop repeats."""
    domain = (mail_from or "").rpartition("@")[2].strip(" >") or "leadops.local"
    return f"<followup.{follow_up_id.lower()}@{domain}>"


def _send(transports: _Transports, job: _Job, copy: message_copy.Copy, link_for: Callable[[str], str],
          profile: BusinessProfile) -> SendOutcome:
    from core.channels.email import ChannelNotConfigured

    try:
        if job.channel == Channel.EMAIL:
            link = link_for(job.lead_id)
            email = OutgoingEmail(
                to=job.email, subject=copy.subject or f"{profile.business_name}: following up",
                text=message_copy.text_body(copy.body, unsubscribe_url=link, business_name=profile.business_name),
                html=message_copy.html_body(copy.body, unsubscribe_url=link, business_name=profile.business_name),
                message_id=message_id_for(job.id, transports.settings.mail_from), unsubscribe_url=link,
                headers={"X-LeadOps-Follow-Up": job.id})
            return transports.email().send(email)
        return transports.text().send(channel=job.channel.value, to=job.phone or "", body=copy.body)
    except ChannelNotConfigured as exc:
        return SendOutcome("unreachable", f"not configured: {exc}")
    except ValueError as exc:  # e.g. a header that would carry a line break
        return SendOutcome("failed", str(exc))


def _record_outcome(engine: Engine, job: _Job, token: str, now: datetime, outcome: SendOutcome,
                    copy: message_copy.Copy, elapsed_ms: int, summary: FollowUpSummary) -> None:
    detail = f"{outcome.code} {outcome.detail}".strip() if outcome.code else outcome.detail
    if outcome.kind == "sent":
        _finish(engine, job, token, now, status=FollowUpStatus.SENT, summary=summary, outcome="sent",
                detail=detail or "accepted", copy=copy, provider_id=outcome.provider_id, elapsed_ms=elapsed_ms)
    elif outcome.kind == "retry":
        _finish(engine, job, token, now, status=FollowUpStatus.SCHEDULED, summary=summary, outcome="retry",
                detail=detail, copy=copy, elapsed_ms=elapsed_ms, retry=True)
    elif outcome.kind == "bounced":
        _finish(engine, job, token, now, status=FollowUpStatus.FAILED, summary=summary, outcome="bounced",
                detail=detail, copy=copy, elapsed_ms=elapsed_ms, bounced=True)
    else:
        _finish(engine, job, token, now, status=FollowUpStatus.FAILED, summary=summary, outcome="failed",
                detail=detail, copy=copy, elapsed_ms=elapsed_ms)


def _finish(engine: Engine, job: _Job, token: str, now: datetime, *, status: FollowUpStatus,
            summary: FollowUpSummary, outcome: str, detail: str, copy: message_copy.Copy | None = None,
            provider_id: str | None = None, elapsed_ms: int | None = None, retry: bool = False,
            bounced: bool = False) -> None:
    """Writes one attempt's result with its log, timeline entry and webhook event, in one transaction."""
    counted = outcome not in ("cancelled", "task")
    attempts = job.attempts + (1 if counted else 0)
    if retry and attempts > len(RETRY_DELAYS):
        status = FollowUpStatus.FAILED
    values: dict[str, Any] = dict(status=status, attempts=attempts, claim_token=None, claimed_until=None,
                                  updated_at=now)
    if copy is not None:
        values.update(subject=copy.subject, body=copy.body, copy_source=copy.source)
    if status == FollowUpStatus.SCHEDULED:
        values["due_at"] = now + RETRY_DELAYS[attempts - 1]
    if status == FollowUpStatus.CANCELLED:
        values["cancel_reason"] = detail[:200]
    if counted:
        values["recipient"] = job.email if job.channel == Channel.EMAIL else job.phone
        values["last_error"] = None if status == FollowUpStatus.SENT else detail
    if status == FollowUpStatus.SENT:
        values.update(sent_at=now, provider_id=provider_id)

    def write() -> bool:
        with session_scope(engine) as session:
            # Only while this pass still holds the claim: one that ran out belongs to another pass now.
            owned = session.execute(update(FollowUp).where(FollowUp.id == job.id, FollowUp.claim_token == token)
                                    .values(**values).execution_options(synchronize_session=False)).rowcount
            if not owned:
                return False
            if copy is not None and copy.calls:
                ai_usage.record(session=session, calls=copy.calls, lead_id=job.lead_id)
            session.add(WorkflowLog(kind="followup", subject_id=job.id, lead_id=job.lead_id, channel=job.channel.value,
                                    outcome=outcome, detail=_detail(detail, copy), duration_ms=elapsed_ms))
            if bounced:
                address = job.email if job.channel == Channel.EMAIL else job.phone
                if address:
                    suppress(session=session, address=address, reason="BOUNCED", lead_id=job.lead_id, detail=detail)
                cancel_pending(session=session, lead_id=job.lead_id,
                               reason="an earlier message bounced: the address cannot receive mail")
            _timeline(session, job, values, outcome, detail)
            _emit(session, job, values, outcome, detail)
            return True

    if not run_with_retry(write, what="recording a follow-up"):
        summary.skipped += 1
    elif outcome == "bounced":
        summary.bounced += 1
    else:
        field_name = {FollowUpStatus.SENT: "sent", FollowUpStatus.TASK: "tasks", FollowUpStatus.CANCELLED: "cancelled",
                      FollowUpStatus.SCHEDULED: "retrying"}.get(status, "failed")
        setattr(summary, field_name, getattr(summary, field_name) + 1)


def _detail(detail: str, copy: message_copy.Copy | None) -> str:
    if copy is not None and copy.note:
        return f"{detail} ({copy.note})"[:1000]
    return detail[:1000]


def _timeline(session: Session, job: _Job, values: dict[str, Any], outcome: str, detail: str) -> None:
    status, channel, number = values["status"], job.channel.value.lower(), job.number
    subject = values.get("subject")
    text = {
        FollowUpStatus.SENT: f"Follow-up {number} sent by {channel}" + (f": {subject}" if subject else ""),
        FollowUpStatus.TASK: f"Follow-up {number}: call to make",
        FollowUpStatus.CANCELLED: f"Follow-up {number} ({channel}) stopped: {detail}",
        FollowUpStatus.FAILED: f"Follow-up {number} by {channel} failed ({outcome}): {detail}",
    }.get(status)
    if status == FollowUpStatus.SCHEDULED:
        text = f"Follow-up {number} by {channel} deferred ({detail}); next try {values['due_at']:%Y-%m-%d %H:%M} UTC"
    if text:
        activities.record(session=session, lead_id=job.lead_id, kind=ActivityKind.FOLLOW_UP, actor=ACTOR,
                          body=text[:1000], data={"follow_up": job.id, "status": status.value})


def _emit(session: Session, job: _Job, values: dict[str, Any], outcome: str, detail: str) -> None:
    status = values["status"]
    if status not in (FollowUpStatus.SENT, FollowUpStatus.FAILED):
        return
    sent_at = values.get("sent_at")
    data = {"follow_up": {"id": job.id, "lead_id": job.lead_id, "number": job.number, "channel": job.channel.value,
                          "status": status.value, "sent_at": sent_at.isoformat() if sent_at else None,
                          "subject": values.get("subject"), "attempts": values["attempts"],
                          "error": None if status == FollowUpStatus.SENT else f"{outcome}: {detail}"[:500]}}
    webhooks.emit(session=session, type="followup.sent" if status == FollowUpStatus.SENT else "followup.failed",
                  data=data)


def _log_only(engine: Engine, job: _Job, outcome: str, detail: str, elapsed_ms: int | None) -> None:
    with session_scope(engine) as session:
        session.add(WorkflowLog(kind="followup", subject_id=job.id, lead_id=job.lead_id, channel=job.channel.value,
                                outcome=outcome, detail=detail[:1000], duration_ms=elapsed_ms))


def _release(engine: Engine, follow_up_id: str, token: str) -> None:
    with session_scope(engine) as session:
        claims.release(session=session, model=FollowUp, row_id=follow_up_id, token=token)


# --- what people do ------------------------------------------------------------------------------------------------

def get_or_raise(*, session: Session, follow_up_id: str) -> FollowUp:
    """One follow-up; raises NotFound."""
    follow_up = session.get(FollowUp, follow_up_id)
    if follow_up is None:
        raise NotFound(f"no follow-up with id {follow_up_id}")
    return follow_up


def retry(*, session: Session, follow_up_id: str, actor: str, now: datetime | None = None) -> FollowUp:
    """Puts a FAILED follow-up back in the queue, due now (a person decided to try again)."""
    follow_up = get_or_raise(session=session, follow_up_id=follow_up_id)
    if follow_up.status != FollowUpStatus.FAILED:
        raise ValidationFailed([FieldError("status", f"only a failed follow-up can be retried (this one is "
                                                     f"{follow_up.status.value})")])
    lead = follow_up.lead
    address = lead.email if follow_up.channel == Channel.EMAIL else lead.phone
    blocked = is_suppressed(session=session, address=address)
    if blocked is not None:
        reason = "unsubscribed" if blocked.reason == "UNSUBSCRIBED" else "bounced permanently"
        raise ValidationFailed([FieldError("recipient", f"{address} {reason}; it is not contacted again")])
    day_stats.mark_follow_up(session, follow_up)  # its failure leaves the dashboard's count of that day
    follow_up.status, follow_up.attempts, follow_up.due_at = FollowUpStatus.SCHEDULED, 0, now or utcnow()
    follow_up.claim_token = follow_up.claimed_until = None
    activities.record(session=session, lead_id=lead.id, kind=ActivityKind.FOLLOW_UP, actor=actor,
                      body=f"Follow-up {follow_up.number} by {follow_up.channel.value.lower()} queued again")
    session.flush()
    return follow_up


def edit(*, session: Session, follow_up_id: str, subject: str | None, body: str, actor: str) -> FollowUp:
    """Replaces the copy of a follow-up that has not gone out; it is sent as written."""
    follow_up = get_or_raise(session=session, follow_up_id=follow_up_id)
    if follow_up.status != FollowUpStatus.SCHEDULED:
        raise ValidationFailed([FieldError("status", f"only a scheduled follow-up can be edited (this one is "
                                                     f"{follow_up.status.value})")])
    subject = " ".join((subject or "").split()) or None
    body = (body or "").strip()
    problems = []
    if follow_up.channel == Channel.EMAIL and not subject:
        problems.append(FieldError("subject", "an email needs a subject"))
    if subject and len(subject) > message_copy.MAX_SUBJECT:
        problems.append(FieldError("subject", f"is longer than {message_copy.MAX_SUBJECT} characters"))
    limit = message_copy.MAX_TEXT_MESSAGE if follow_up.channel in TEXT_CHANNELS else message_copy.MAX_BODY
    if not body:
        problems.append(FieldError("body", "is required"))
    elif len(body) > limit:
        problems.append(FieldError("body", f"is longer than {limit} characters"))
    if problems:
        raise ValidationFailed(problems)
    follow_up.subject = subject if follow_up.channel == Channel.EMAIL else None
    follow_up.body, follow_up.copy_source = body, "edited"
    activities.record(session=session, lead_id=follow_up.lead_id, kind=ActivityKind.FOLLOW_UP, actor=actor,
                      body=f"Follow-up {follow_up.number} ({follow_up.channel.value.lower()}) rewritten")
    session.flush()
    return follow_up


def preview(*, session: Session, settings: Settings, follow_up_id: str, use_ai: bool = False) -> message_copy.Copy:
    """The copy this follow-up would go out with now (AI-written only when asked: it costs a model call)."""
    follow_up = get_or_raise(session=session, follow_up_id=follow_up_id)
    written = follow_up.copy_source == "edited" or follow_up.status != FollowUpStatus.SCHEDULED
    if follow_up.body and written:
        return message_copy.Copy(subject=follow_up.subject, body=follow_up.body,
                                 source=follow_up.copy_source or "template")
    profile = app_settings.get_profile(session=session)
    step = follow_up.step
    context = message_copy.context_for(follow_up.lead, profile)
    if use_ai and step.copy_mode == CopyMode.AI:
        return message_copy.from_ai(settings=settings, channel=follow_up.channel,
                                    subject_template=step.subject_template, body_template=step.body_template,
                                    context=context, profile=profile)
    return message_copy.from_template(subject_template=step.subject_template, body_template=step.body_template,
                                      context=context)


def cancel(*, session: Session, follow_up_id: str, actor: str) -> FollowUp:
    """A person stops one pending follow-up."""
    follow_up = get_or_raise(session=session, follow_up_id=follow_up_id)
    if follow_up.status not in PENDING:
        raise ValidationFailed([FieldError("status", f"this follow-up is already {follow_up.status.value}")])
    follow_up.status, follow_up.cancel_reason = FollowUpStatus.CANCELLED, f"stopped by {actor}"
    follow_up.claim_token = follow_up.claimed_until = None
    activities.record(session=session, lead_id=follow_up.lead_id, kind=ActivityKind.FOLLOW_UP, actor=actor,
                      body=f"Follow-up {follow_up.number} ({follow_up.channel.value.lower()}) stopped")
    session.flush()
    return follow_up


def complete_call(*, session: Session, follow_up_id: str, actor: str, note: str | None = None) -> FollowUp:
    """Marks a call task as made, with an optional note on the lead's timeline."""
    follow_up = get_or_raise(session=session, follow_up_id=follow_up_id)
    if follow_up.status != FollowUpStatus.TASK:
        raise ValidationFailed([FieldError("status", "only an open call task can be marked as done")])
    follow_up.status, follow_up.completed_by, follow_up.sent_at = FollowUpStatus.DONE, actor, utcnow()
    text = f"Call {follow_up.number} made" + (f": {note.strip()}" if note and note.strip() else "")
    activities.record(session=session, lead_id=follow_up.lead_id, kind=ActivityKind.FOLLOW_UP, actor=actor,
                      body=text[:2000])
    session.add(WorkflowLog(kind="followup", subject_id=follow_up.id, lead_id=follow_up.lead_id, channel="CALL",
                            outcome="done", detail=f"by {actor}"))
    session.flush()
    return follow_up


def for_lead(*, session: Session, lead_id: str) -> list[FollowUp]:
    """A lead's follow-ups in sequence order."""
    return list(session.scalars(select(FollowUp).where(FollowUp.lead_id == lead_id)
                                .order_by(FollowUp.due_at, FollowUp.number)))


def attempts_of(*, session: Session, follow_up_id: str) -> list[WorkflowLog]:
    """Every attempt of one follow-up, oldest first."""
    return list(session.scalars(select(WorkflowLog).where(WorkflowLog.subject_id == follow_up_id)
                                .order_by(WorkflowLog.created_at, WorkflowLog.id)))
