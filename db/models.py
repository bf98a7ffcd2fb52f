"""The tables of LeadOps as SQLAlchemy 2.0 typed models."""

from __future__ import annotations

import enum
import os
import time
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Enum,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_id() -> str:
    """A 26-character ULID: sortable by creation time, URL-safe, unguessable enough for ids."""
    value = (int(time.time() * 1000) << 80) | int.from_bytes(os.urandom(10), "big")
    chars = []
    for _ in range(26):
        value, rem = divmod(value, 32)
        chars.append(_CROCKFORD[rem])
    return "".join(reversed(chars))


def utcnow() -> datetime:
    """The current time, timezone-aware in UTC."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Stores UTC and always hands back aware datetimes, on SQLite (which keeps no zone) as on PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


JSONType = JSON().with_variant(JSONB(), "postgresql")


class LeadStatus(enum.StrEnum):
    NEW = "NEW"
    CONTACTED = "CONTACTED"
    QUALIFIED = "QUALIFIED"
    PROPOSAL_SENT = "PROPOSAL_SENT"
    WON = "WON"
    LOST = "LOST"


class Priority(enum.StrEnum):
    HIGH = "HIGH"
    MEDIUM = "MEDIUM"
    LOW = "LOW"


class Role(enum.StrEnum):
    ADMIN = "admin"
    MANAGER = "manager"
    STAFF = "staff"
    VIEWER = "viewer"


class ActivityKind(enum.StrEnum):
    CREATED = "CREATED"
    NOTE = "NOTE"
    STATUS_CHANGED = "STATUS_CHANGED"
    ASSIGNED = "ASSIGNED"
    ANALYZED = "ANALYZED"
    FOLLOW_UP = "FOLLOW_UP"
    UNSUBSCRIBED = "UNSUBSCRIBED"
    IMPORTED = "IMPORTED"
    MERGED = "MERGED"
    REVIEWED = "REVIEWED"  # a person looked at a lead flagged for review and cleared the flag


class Channel(enum.StrEnum):
    EMAIL = "EMAIL"
    SMS = "SMS"
    WHATSAPP = "WHATSAPP"
    CALL = "CALL"


class CopyMode(enum.StrEnum):
    TEMPLATE = "TEMPLATE"  # the step's Jinja2 template
    AI = "AI"  # written by Gemini from the lead and its analysis; the template when the AI is unavailable


class FollowUpStatus(enum.StrEnum):
    SCHEDULED = "SCHEDULED"  # waiting for its time and the send window (also between retries)
    SENT = "SENT"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"  # the sequence stopped: status moved on, unsubscribed, bounced, step removed
    TASK = "TASK"  # a CALL step that came due: a call for a person to make
    DONE = "DONE"  # the call was made


class InsightPeriod(enum.StrEnum):
    WEEKLY = "WEEKLY"
    MONTHLY = "MONTHLY"


class DeliveryStatus(enum.StrEnum):
    PENDING = "PENDING"
    DELIVERED = "DELIVERED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"  # the endpoint was disabled or removed before it got through


def _enum(cls: type[enum.Enum], name: str) -> Enum:
    # Stored as VARCHAR with a CHECK constraint: portable, and adding a value later is a small migration.
    return Enum(cls, name=name, native_enum=False, create_constraint=True, length=20,
                values_callable=lambda e: [m.value for m in e])


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    })
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSONType, list[Any]: JSONType}


class User(Base):
    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(26), primary_key=True, default=new_id)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    email: Mapped[str | None] = mapped_column(String(254))
    name: Mapped[str | None] = mapped_column(String(200))
    role: Mapped[Role] = mapped_column(_enum(Role, "role"))
    password_hash: Mapped[str] = mapped_column(String(100))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    # Viewers, managers and admins who want the founders' digest (the weekly and monthly report) by email.
    digest_opt_in: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None]
    # Sessions that signed in before this (another browser, a stolen cookie) end on their next click.
    password_changed_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Lead(Base):
    __tablename__ = "leads"
    __table_args__ = (
        Index("ix_leads_created_at_id", "created_at", "id"),
        # The queue's orders (score or newest first, ties broken by id), each behind its usual filter.
        Index("ix_leads_status_rank", "status", "score", "created_at", "id"),
        Index("ix_leads_priority_rank", "priority", "score", "created_at", "id"),
        Index("ix_leads_rank", "score", "created_at", "id"),
        Index("ix_leads_status_created_at", "status", "created_at", "id"),
        Index("ix_leads_assignee_status", "assignee_id", "status"),
        Index("ix_leads_email", "email"),
        Index("ix_leads_reanalyze_requested_at", "reanalyze_requested_at"),
        Index("ix_leads_external_id", "external_id"),
        Index("ix_leads_import_batch", "import_batch_id"),
        Index("ix_leads_phone", "phone"),
        # The dashboard's period scans read only these columns: on PostgreSQL an index-only scan instead of visiting
        # the wide lead rows (messages) spread over the whole table.
        Index("ix_leads_created_at_dashboard", "created_at",
              postgresql_include=["priority", "status", "score", "source", "assignee_id", "first_contacted_at"]),
        # The `dashboard` job's search for leads changed since its last pass.
        Index("ix_leads_updated_at", "updated_at"),
    )

    id: Mapped[str] = mapped_column(String(26), primary_key=True, default=new_id)
    full_name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(254))
    phone: Mapped[str | None] = mapped_column(String(40))
    company: Mapped[str | None] = mapped_column(String(200))
    budget: Mapped[str | None] = mapped_column(String(200))
    budget_min: Mapped[Decimal | None] = mapped_column(Numeric(16, 2))
    budget_max: Mapped[Decimal | None] = mapped_column(Numeric(16, 2))
    budget_currency: Mapped[str | None] = mapped_column(String(3))
    budget_period: Mapped[str | None] = mapped_column(String(8))
    budget_usd: Mapped[Decimal | None] = mapped_column(Numeric(16, 2))
    project_type: Mapped[str | None] = mapped_column(String(100))
    message: Mapped[str] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(50), default="api")
    status: Mapped[LeadStatus] = mapped_column(_enum(LeadStatus, "lead_status"), default=LeadStatus.NEW)
    assignee_id: Mapped[str | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    # Copies of the analysis's score and priority (a lead never exists without its analysis): the queue filters
    # and sorts on them without a join.
    score: Mapped[int] = mapped_column(Integer)
    priority: Mapped[Priority] = mapped_column(_enum(Priority, "priority"))
    needs_review: Mapped[bool] = mapped_column(Boolean, default=False)
    # False for leads that must not get automatic follow-ups (demo data, imports unless the user asks).
    auto_follow_up: Mapped[bool] = mapped_column(Boolean, default=True)
    # Set when the AI could not analyse the lead; the `reanalyze` job clears it.
    reanalyze_requested_at: Mapped[datetime | None]
    reanalyze_attempts: Mapped[int] = mapped_column(Integer, default=0)
    # When a person first moved the lead on from NEW, and when it was won or lost: the dashboard's response time
    # and conversion figures read these instead of searching the timeline.
    first_contacted_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    # Columns of an imported file that map to no field, kept as they came ({"Lead Origin": "API", ...}).
    custom_attributes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # The row key of an imported lead in its source system (e.g. a Prospect ID), and the import that brought it.
    external_id: Mapped[str | None] = mapped_column(String(100))
    import_batch_id: Mapped[str | None] = mapped_column(ForeignKey("import_batches.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    analysis: Mapped[LeadAnalysis | None] = relationship(
        back_populates="lead", cascade="all, delete-orphan", passive_deletes=True, uselist=False, lazy="selectin"
    )
    activities: Mapped[list[Activity]] = relationship(
        back_populates="lead", cascade="all, delete-orphan", passive_deletes=True, order_by="Activity.created_at"
    )
    assignee: Mapped[User | None] = relationship(lazy="selectin")


class LeadAnalysis(Base):
    __tablename__ = "lead_analyses"

    id: Mapped[str] = mapped_column(String(26), primary_key=True, default=new_id)
    lead_id: Mapped[str] = mapped_column(ForeignKey("leads.id", ondelete="CASCADE"), unique=True)
    score: Mapped[int] = mapped_column(Integer)
    priority: Mapped[Priority] = mapped_column(_enum(Priority, "priority"))
    budget_category: Mapped[str] = mapped_column(String(40))
    summary: Mapped[str] = mapped_column(Text)
    recommendation: Mapped[str] = mapped_column(Text)
    engine: Mapped[str] = mapped_column(String(10))
    model: Mapped[str | None] = mapped_column(String(80))
    factors: Mapped[list[Any]] = mapped_column(default=list)
    injection_suspected: Mapped[bool] = mapped_column(Boolean, default=False)
    review_reason: Mapped[str | None] = mapped_column(String(300))
    fallback_reason: Mapped[str | None] = mapped_column(String(300))
    # The learned model's view of the lead, shown beside the engine's score (and blended in when it earns it).
    learned_score: Mapped[int | None] = mapped_column(Integer)
    learned_factors: Mapped[list[Any]] = mapped_column(default=list)
    engine_score: Mapped[int | None] = mapped_column(Integer)  # the rules or AI score before any blending
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    lead: Mapped[Lead] = relationship(back_populates="analysis")


class Activity(Base):
    """One entry of a lead's timeline."""

    __tablename__ = "activities"
    __table_args__ = (Index("ix_activities_lead_created", "lead_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(26), primary_key=True, default=new_id)
    lead_id: Mapped[str] = mapped_column(ForeignKey("leads.id", ondelete="CASCADE"))
    kind: Mapped[ActivityKind] = mapped_column(_enum(ActivityKind, "activity_kind"))
    actor: Mapped[str] = mapped_column(String(100))
    body: Mapped[str | None] = mapped_column(Text)
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    lead: Mapped[Lead] = relationship(back_populates="activities")


class ApiKey(Base):
    """A bearer key for the HTTP API; only its SHA-256 is kept."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(26), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(16), unique=True)
    key_hash: Mapped[str] = mapped_column(String(64))
    created_by: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class AppSetting(Base):
    """A named piece of configuration kept in the database (business profile, scoring, origins)."""

    __tablename__ = "app_settings"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[dict[str, Any]] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class AiUsage(Base):
    """One model call: what it was for, what it cost, how it ended."""

    __tablename__ = "ai_usage"
    __table_args__ = (Index("ix_ai_usage_purpose_created", "purpose", "created_at"),
                      Index("ix_ai_usage_created_at", "created_at"))

    id: Mapped[str] = mapped_column(String(26), primary_key=True, default=new_id)
    purpose: Mapped[str] = mapped_column(String(20))
    model: Mapped[str] = mapped_column(String(80))
    lead_id: Mapped[str | None] = mapped_column(ForeignKey("leads.id", ondelete="SET NULL"))
    input_tokens: Mapped[int] = mapped_column(Integer, default=0)
    output_tokens: Mapped[int] = mapped_column(Integer, default=0)
    latency_ms: Mapped[int] = mapped_column(Integer, default=0)
    cost_usd: Mapped[Decimal] = mapped_column(Numeric(12, 6), default=Decimal(0))
    outcome: Mapped[str] = mapped_column(String(20))
    error: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class IdempotencyRecord(Base):
    """The first answer to a request carrying an `Idempotency-Key`, replayed for repeats."""

    __tablename__ = "idempotency_records"
    __table_args__ = (UniqueConstraint("scope", "key"),)

    id: Mapped[str] = mapped_column(String(26), primary_key=True, default=new_id)
    scope: Mapped[str] = mapped_column(String(64))
    key: Mapped[str] = mapped_column(String(200))
    request_hash: Mapped[str] = mapped_column(String(64))
    lead_id: Mapped[str | None] = mapped_column(ForeignKey("leads.id", ondelete="CASCADE"))
    status_code: Mapped[int] = mapped_column(Integer)
    response: Mapped[dict[str, Any]] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AuditEvent(Base):
    """Who did what to which record; never a lead's personal data (deleted leads leave only their id)."""

    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_events_created_at", "created_at"),
                      Index("ix_audit_events_action_created", "action", "created_at"))

    id: Mapped[str] = mapped_column(String(26), primary_key=True, default=new_id)
    actor: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(50))
    target_type: Mapped[str | None] = mapped_column(String(30))
    target_id: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class SequenceStep(Base):
    """One step of the follow-up sequence for a priority: after how long, on which channel, with what copy.

    Steps are archived, never deleted, so sent follow-ups keep pointing at the step that made them.
    """

    __tablename__ = "sequence_steps"
    __table_args__ = (Index("ix_sequence_steps_priority_position", "priority", "position"),)

    id: Mapped[str] = mapped_column(String(26), primary_key=True, default=new_id)
    priority: Mapped[Priority] = mapped_column(_enum(Priority, "priority"))
    position: Mapped[int] = mapped_column(Integer)
    delay_minutes: Mapped[int] = mapped_column(Integer)
    channel: Mapped[Channel] = mapped_column(_enum(Channel, "channel"))
    copy_mode: Mapped[CopyMode] = mapped_column(_enum(CopyMode, "copy_mode"), default=CopyMode.TEMPLATE)
    subject_template: Mapped[str | None] = mapped_column(Text)
    body_template: Mapped[str] = mapped_column(Text)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    archived_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


def _same_lead(context: Any) -> str:
    # A follow-up is planned for the lead it belongs to; only a merge makes the two differ.
    return str(context.get_current_parameters()["lead_id"])


class FollowUp(Base):
    """One planned message (or call) of a lead's sequence: one row per lead and step, claimed before it is sent."""

    __tablename__ = "follow_ups"
    __table_args__ = (
        # origin_lead_id is the lead the follow-up was planned for: after a merge, the kept lead holds the
        # follow-ups of both, and each original plan stays unique.
        UniqueConstraint("lead_id", "step_id", "origin_lead_id"),
        # The jobs pass's "what is due" query, and the Follow-ups page's lists.
        Index("ix_follow_ups_status_due", "status", "due_at"),
        Index("ix_follow_ups_lead_status", "lead_id", "status"),
        # The dashboard's follow-up outcomes by when they happened: sent and calls made by sent_at, the rest by
        # their last change.
        Index("ix_follow_ups_status_sent_at", "status", "sent_at", postgresql_include=["channel", "number", "lead_id"]),
        Index("ix_follow_ups_status_updated_at", "status", "updated_at",
              postgresql_include=["channel", "number", "lead_id"]),
    )

    id: Mapped[str] = mapped_column(String(26), primary_key=True, default=new_id)
    lead_id: Mapped[str] = mapped_column(ForeignKey("leads.id", ondelete="CASCADE"))
    origin_lead_id: Mapped[str] = mapped_column(String(26), default=_same_lead)
    step_id: Mapped[str] = mapped_column(ForeignKey("sequence_steps.id", ondelete="RESTRICT"))
    number: Mapped[int] = mapped_column(Integer)
    channel: Mapped[Channel] = mapped_column(_enum(Channel, "channel"))
    status: Mapped[FollowUpStatus] = mapped_column(_enum(FollowUpStatus, "follow_up_status"),
                                                   default=FollowUpStatus.SCHEDULED)
    due_at: Mapped[datetime]
    # Copy is written when the message goes out, unless a manager wrote or edited it before (copy_source "edited").
    subject: Mapped[str | None] = mapped_column(Text)
    body: Mapped[str | None] = mapped_column(Text)
    copy_source: Mapped[str | None] = mapped_column(String(10))
    recipient: Mapped[str | None] = mapped_column(String(254))
    provider_id: Mapped[str | None] = mapped_column(String(100))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # A pass owns the row while claimed_until is in the future; a pass that died lets the claim run out.
    claim_token: Mapped[str | None] = mapped_column(String(32))
    claimed_until: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    cancel_reason: Mapped[str | None] = mapped_column(String(200))
    sent_at: Mapped[datetime | None]
    completed_by: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    lead: Mapped[Lead] = relationship()
    step: Mapped[SequenceStep] = relationship(lazy="selectin")


class Suppression(Base):
    """An address that must not be contacted again: it unsubscribed or bounced permanently.

    Kept after the lead is deleted (no foreign key): a deleted lead's address must stay unreachable too.
    """

    __tablename__ = "suppressions"

    address: Mapped[str] = mapped_column(String(254), primary_key=True)
    reason: Mapped[str] = mapped_column(String(20))
    lead_id: Mapped[str | None] = mapped_column(String(26))
    detail: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class WorkflowLog(Base):
    """One attempt of automated work (a follow-up send, a webhook delivery, an unsubscribe) and how it ended."""

    __tablename__ = "workflow_log"
    __table_args__ = (Index("ix_workflow_log_kind_created", "kind", "created_at"),
                      Index("ix_workflow_log_subject", "subject_id", "created_at"),
                      Index("ix_workflow_log_lead", "lead_id"))

    id: Mapped[str] = mapped_column(String(26), primary_key=True, default=new_id)
    kind: Mapped[str] = mapped_column(String(20))
    subject_id: Mapped[str | None] = mapped_column(String(40))
    lead_id: Mapped[str | None] = mapped_column(ForeignKey("leads.id", ondelete="CASCADE"))
    channel: Mapped[str | None] = mapped_column(String(20))
    outcome: Mapped[str] = mapped_column(String(20))
    detail: Mapped[str | None] = mapped_column(Text)
    duration_ms: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class WebhookEndpoint(Base):
    """A receiver of outbound webhooks: where, signed with which secret, for which event types."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[str] = mapped_column(String(26), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(100))
    url: Mapped[str] = mapped_column(String(2000))
    # None only for the endpoint configured by WEBHOOK_URL, whose secret stays in WEBHOOK_SECRET.
    secret: Mapped[str | None] = mapped_column(String(200))
    event_types: Mapped[list[Any]] = mapped_column(default=list)  # empty: every type
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    from_env: Mapped[bool] = mapped_column(Boolean, default=False)
    disabled_reason: Mapped[str | None] = mapped_column(String(300))
    last_success_at: Mapped[datetime | None]
    last_failure_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class WebhookEvent(Base):
    """The outbox: an event written in the same transaction as the change that caused it."""

    __tablename__ = "webhook_events"
    __table_args__ = (Index("ix_webhook_events_created_at", "created_at"),
                      Index("ix_webhook_events_lead_id", "lead_id"))

    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # the `webhook-id`: msg_ + a ULID
    type: Mapped[str] = mapped_column(String(40))
    # The lead the payload describes (lead.* and followup.* events), so that deleting the lead can remove its copies.
    # No foreign key, as with suppressions: an event is written for whatever id its data names, and core.leads.delete
    # removes a lead's events itself.
    lead_id: Mapped[str | None] = mapped_column(String(26))
    payload: Mapped[dict[str, Any]] = mapped_column()  # the body as sent: {"type", "timestamp", "data"}
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class WebhookDelivery(Base):
    """One event on its way to one endpoint, retried with growing delays until a 2xx or the last try."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (UniqueConstraint("event_id", "endpoint_id"),
                      Index("ix_webhook_deliveries_status_next", "status", "next_attempt_at"))

    id: Mapped[str] = mapped_column(String(26), primary_key=True, default=new_id)
    event_id: Mapped[str] = mapped_column(ForeignKey("webhook_events.id", ondelete="CASCADE"))
    endpoint_id: Mapped[str] = mapped_column(ForeignKey("webhook_endpoints.id", ondelete="CASCADE"))
    status: Mapped[DeliveryStatus] = mapped_column(_enum(DeliveryStatus, "delivery_status"),
                                                   default=DeliveryStatus.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    claim_token: Mapped[str | None] = mapped_column(String(32))
    claimed_until: Mapped[datetime | None]
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(String(500))
    delivered_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    event: Mapped[WebhookEvent] = relationship(lazy="joined")
    endpoint: Mapped[WebhookEndpoint] = relationship(lazy="joined")


class InsightReport(Base):
    """The founders' report for one closed week or month: the facts computed in SQL and the narrative about them.

    One row per period (a unique constraint): a jobs process claims a period by inserting its row, so two
    processes can never write two reports for it.
    """

    __tablename__ = "insight_reports"
    __table_args__ = (UniqueConstraint("period", "period_start"),
                      Index("ix_insight_reports_period_end", "period", "period_end"))

    id: Mapped[str] = mapped_column(String(26), primary_key=True, default=new_id)
    period: Mapped[InsightPeriod] = mapped_column(_enum(InsightPeriod, "insight_period"))
    # The period's bounds as instants (local midnights in `timezone`), end exclusive.
    period_start: Mapped[datetime]
    period_end: Mapped[datetime]
    timezone: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(12), default="GENERATING")  # GENERATING, READY, FAILED
    facts: Mapped[dict[str, Any]] = mapped_column(default=dict)
    narrative: Mapped[dict[str, Any]] = mapped_column(default=dict)
    engine: Mapped[str | None] = mapped_column(String(10))
    model: Mapped[str | None] = mapped_column(String(80))
    note: Mapped[str | None] = mapped_column(String(500))
    claimed_until: Mapped[datetime | None]
    digest_sent_at: Mapped[datetime | None]
    generated_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class ImportBatch(Base):
    """One import of a CSV or Excel file: how it was mapped, what it did, and whether it was undone."""

    __tablename__ = "import_batches"

    id: Mapped[str] = mapped_column(String(26), primary_key=True, default=new_id)
    filename: Mapped[str] = mapped_column(String(300))
    created_by: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(12), default="RUNNING")  # RUNNING, DONE, FAILED, UNDONE
    mapping: Mapped[dict[str, Any]] = mapped_column(default=dict)
    options: Mapped[dict[str, Any]] = mapped_column(default=dict)
    total_rows: Mapped[int] = mapped_column(Integer, default=0)
    created: Mapped[int] = mapped_column(Integer, default=0)
    updated: Mapped[int] = mapped_column(Integer, default=0)
    skipped: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    undone_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]


class ImportRow(Base):
    """What an import did with one row: the lead it created or updated (with the values before, for the undo), or
    why the row failed (with the row as it came, for the download of failed rows)."""

    __tablename__ = "import_rows"
    __table_args__ = (Index("ix_import_rows_batch_row", "batch_id", "row_number"),)

    id: Mapped[str] = mapped_column(String(26), primary_key=True, default=new_id)
    batch_id: Mapped[str] = mapped_column(ForeignKey("import_batches.id", ondelete="CASCADE"))
    row_number: Mapped[int] = mapped_column(Integer)
    action: Mapped[str] = mapped_column(String(10))  # created, updated, skipped, failed
    lead_id: Mapped[str | None] = mapped_column(ForeignKey("leads.id", ondelete="SET NULL"))
    previous: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    error: Mapped[str | None] = mapped_column(Text)
    raw: Mapped[dict[str, Any] | None] = mapped_column(JSONType)


class DuplicateCandidate(Base):
    """A pair of leads that look like one person or company, with how sure we are and why."""

    __tablename__ = "duplicate_candidates"
    __table_args__ = (UniqueConstraint("lead_id", "other_id"), Index("ix_duplicate_candidates_other", "other_id"),
                      Index("ix_duplicate_candidates_status", "status", "confidence"))

    id: Mapped[str] = mapped_column(String(26), primary_key=True, default=new_id)
    lead_id: Mapped[str] = mapped_column(ForeignKey("leads.id", ondelete="CASCADE"))  # the newer lead
    other_id: Mapped[str] = mapped_column(ForeignKey("leads.id", ondelete="CASCADE"))  # the one it resembles
    confidence: Mapped[int] = mapped_column(Integer)  # 0-100
    reasons: Mapped[list[Any]] = mapped_column(default=list)  # ["same email", "same phone", "company domain", ...]
    status: Mapped[str] = mapped_column(String(10), default="OPEN")  # OPEN, MERGED, DISMISSED
    resolved_by: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    resolved_at: Mapped[datetime | None]


class LearnedModel(Base):
    """A model trained on the team's own WON and LOST leads, with how well it did on leads it did not see."""

    __tablename__ = "learned_models"
    __table_args__ = (Index("ix_learned_models_trained_at", "trained_at"),)

    id: Mapped[str] = mapped_column(String(26), primary_key=True, default=new_id)
    algorithm: Mapped[str] = mapped_column(String(40))
    fields: Mapped[list[Any]] = mapped_column(default=list)
    won: Mapped[int] = mapped_column(Integer)
    lost: Mapped[int] = mapped_column(Integer)
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)  # held-out AUC, accuracy, baseline, calibration
    # The fitted model as data (coefficients, encodings, trees as JSON): never a pickle, which would run code when
    # read back.
    parameters: Mapped[dict[str, Any]] = mapped_column(default=dict)
    active: Mapped[bool] = mapped_column(Boolean, default=False)
    blended: Mapped[bool] = mapped_column(Boolean, default=False)  # beats the engine on held-out leads
    note: Mapped[str | None] = mapped_column(String(500))
    trained_at: Mapped[datetime] = mapped_column(default=utcnow)


# --- the dashboard's daily summaries ---------------------------------------------------------------------------
# A cache of the leads and follow-ups grouped by local day, rebuilt from them by the `dashboard` job: the dashboard
# reads whole past days from here and today (and any part of a day) from the leads themselves.


class LeadDayStats(Base):
    """How many leads arrived on one local day, per source, assignee, priority, status, score band and response."""

    __tablename__ = "lead_day_stats"
    __table_args__ = (Index("ix_lead_day_stats_day", "day"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    day: Mapped[int] = mapped_column(Integer)  # date.toordinal() of the local day in the business time zone
    source: Mapped[str] = mapped_column(String(50))
    assignee_id: Mapped[str | None] = mapped_column(String(26))
    priority: Mapped[Priority] = mapped_column(_enum(Priority, "priority"))
    status: Mapped[LeadStatus] = mapped_column(_enum(LeadStatus, "lead_status"))
    band: Mapped[int] = mapped_column(Integer)  # score // 10, 90-100 as 9
    response: Mapped[int] = mapped_column(Integer)  # core.dashboard.RESPONSE_BUCKETS index; the last is "not yet"
    leads: Mapped[int] = mapped_column(Integer)
    score_sum: Mapped[int] = mapped_column(Integer)


class FollowUpDayStats(Base):
    """Follow-ups that reached an outcome on one local day, per channel, step, outcome and their lead's source and
    assignee (sent messages and calls made on the day they happened, failed and cancelled ones on their last change)."""

    __tablename__ = "follow_up_day_stats"
    __table_args__ = (Index("ix_follow_up_day_stats_day", "day"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    day: Mapped[int] = mapped_column(Integer)
    channel: Mapped[Channel] = mapped_column(_enum(Channel, "channel"))
    number: Mapped[int] = mapped_column(Integer)
    status: Mapped[FollowUpStatus] = mapped_column(_enum(FollowUpStatus, "follow_up_status"))
    source: Mapped[str] = mapped_column(String(50))
    assignee_id: Mapped[str | None] = mapped_column(String(26))
    count: Mapped[int] = mapped_column(Integer)


class DayStatsState(Base):
    """How far the daily summaries go: one row, locked by the pass that refreshes them."""

    __tablename__ = "day_stats_state"
    ONE = 1

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)  # always 1
    timezone: Mapped[str | None] = mapped_column(String(64))  # the zone the days were cut in; None: never built
    # Every change to a lead or follow-up made before this instant is in the summaries (with a margin for
    # transactions still open when a pass starts).
    refreshed_at: Mapped[datetime | None]
    rebuilt_at: Mapped[datetime | None]  # the last full rebuild (daily, and whenever the time zone changes)
    changes_since: Mapped[datetime | None]  # where the next pass looks for changed rows
    days_refreshed: Mapped[int] = mapped_column(Integer, default=0)  # by the last pass
    seconds: Mapped[float | None] = mapped_column(Numeric(10, 3))  # the last pass's duration


class DayStatsDirty(Base):
    """An instant whose local day must be summarised again: written where rows leave without a trace (a deleted
    lead takes its follow-ups with it)."""

    __tablename__ = "day_stats_dirty"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime]
