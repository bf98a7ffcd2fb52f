"""follow-ups, webhooks, workflow log

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24
"""
from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from sqlalchemy.dialects import postgresql

OLD_KINDS = ("CREATED", "NOTE", "STATUS_CHANGED", "ASSIGNED", "ANALYZED")
NEW_KINDS = OLD_KINDS + ("FOLLOW_UP", "UNSUBSCRIBED")

# The sequences a new installation starts with (managers edit them on the Follow-ups page). Frozen here: the
# migration must write the same rows whatever the code says later.
_SIGN_OFF = "\n\nBest regards,\n{{ business_name }}"
DEFAULT_STEPS = [
    # (priority, position, delay in minutes, channel, copy mode, subject, body)
    ("HIGH", 1, 0, "EMAIL", "AI",
     "{{ business_name }}: next steps for your {{ project_type or 'project' }}",
     "Hi {{ first_name }},\n\nThank you for telling us about your {{ project_type or 'project' }}"
     "{% if company %} at {{ company }}{% endif %}. It sounds like a good fit for what we do.\n\n"
     "Could we book a 20-minute call this week to go through the scope and the timeline?" + _SIGN_OFF),
    ("HIGH", 2, 60, "CALL", "TEMPLATE", None,
     "Call {{ full_name }}{% if company %} ({{ company }}){% endif %} about their {{ project_type or 'project' }}. "
     "{{ recommendation }}"),
    ("HIGH", 3, 1440, "SMS", "TEMPLATE", None,
     "Hi {{ first_name }}, {{ business_name }} here about your {{ project_type or 'project' }} enquiry. "
     "When would suit you for a quick call?"),
    ("HIGH", 4, 4320, "EMAIL", "TEMPLATE",
     "Following up: your {{ project_type or 'project' }}",
     "Hi {{ first_name }},\n\nI wanted to follow up on your {{ project_type or 'project' }} enquiry. "
     "If it helps, we can send a short proposal with a timeline and a cost range before we talk." + _SIGN_OFF),
    ("MEDIUM", 1, 60, "EMAIL", "AI",
     "Your {{ project_type or 'project' }} enquiry",
     "Hi {{ first_name }},\n\nThanks for getting in touch about your {{ project_type or 'project' }}. "
     "To point you in the right direction, could you tell us a little more about the timeline and the budget "
     "you have in mind?" + _SIGN_OFF),
    ("MEDIUM", 2, 4320, "EMAIL", "TEMPLATE",
     "Any questions about your {{ project_type or 'project' }}?",
     "Hi {{ first_name }},\n\nJust checking in: is your {{ project_type or 'project' }} still on the table? "
     "Reply to this email and we will take it from there." + _SIGN_OFF),
    ("MEDIUM", 3, 10080, "WHATSAPP", "TEMPLATE", None,
     "Hi {{ first_name }}, {{ business_name }} here. Is your {{ project_type or 'project' }} still something "
     "we can help with?"),
    ("LOW", 1, 1440, "EMAIL", "TEMPLATE",
     "Thanks for contacting {{ business_name }}",
     "Hi {{ first_name }},\n\nThank you for your message. We have noted your enquiry about "
     "{{ project_type or 'your project' }}. When you are ready to go ahead, reply to this email with your "
     "timeline and budget and we will get back to you." + _SIGN_OFF),
    ("LOW", 2, 10080, "EMAIL", "TEMPLATE",
     "Still thinking about your {{ project_type or 'project' }}?",
     "Hi {{ first_name }},\n\nIf your plans have firmed up, we would be glad to hear about them." + _SIGN_OFF),
]

revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table('sequence_steps',
    sa.Column('id', sa.String(length=26), nullable=False),
    sa.Column('priority', sa.Enum('HIGH', 'MEDIUM', 'LOW', name='priority', native_enum=False, create_constraint=True, length=20), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('delay_minutes', sa.Integer(), nullable=False),
    sa.Column('channel', sa.Enum('EMAIL', 'SMS', 'WHATSAPP', 'CALL', name='channel', native_enum=False, create_constraint=True, length=20), nullable=False),
    sa.Column('copy_mode', sa.Enum('TEMPLATE', 'AI', name='copy_mode', native_enum=False, create_constraint=True, length=20), nullable=False),
    sa.Column('subject_template', sa.Text(), nullable=True),
    sa.Column('body_template', sa.Text(), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('archived_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sequence_steps'))
    )
    with op.batch_alter_table('sequence_steps', schema=None) as batch_op:
        batch_op.create_index('ix_sequence_steps_priority_position', ['priority', 'position'], unique=False)

    op.create_table('suppressions',
    sa.Column('address', sa.String(length=254), nullable=False),
    sa.Column('reason', sa.String(length=20), nullable=False),
    sa.Column('lead_id', sa.String(length=26), nullable=True),
    sa.Column('detail', sa.String(length=500), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('address', name=op.f('pk_suppressions'))
    )
    op.create_table('webhook_endpoints',
    sa.Column('id', sa.String(length=26), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('url', sa.String(length=2000), nullable=False),
    sa.Column('secret', sa.String(length=200), nullable=True),
    sa.Column('event_types', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('from_env', sa.Boolean(), nullable=False),
    sa.Column('disabled_reason', sa.String(length=300), nullable=True),
    sa.Column('last_success_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_failure_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_error', sa.String(length=500), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_webhook_endpoints'))
    )
    op.create_table('webhook_events',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('type', sa.String(length=40), nullable=False),
    sa.Column('payload', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_webhook_events'))
    )
    with op.batch_alter_table('webhook_events', schema=None) as batch_op:
        batch_op.create_index('ix_webhook_events_created_at', ['created_at'], unique=False)

    op.create_table('webhook_deliveries',
    sa.Column('id', sa.String(length=26), nullable=False),
    sa.Column('event_id', sa.String(length=40), nullable=False),
    sa.Column('endpoint_id', sa.String(length=26), nullable=False),
    sa.Column('status', sa.Enum('PENDING', 'DELIVERED', 'FAILED', 'CANCELLED', name='delivery_status', native_enum=False, create_constraint=True, length=20), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('claim_token', sa.String(length=32), nullable=True),
    sa.Column('claimed_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_status_code', sa.Integer(), nullable=True),
    sa.Column('last_error', sa.String(length=500), nullable=True),
    sa.Column('delivered_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['endpoint_id'], ['webhook_endpoints.id'], name=op.f('fk_webhook_deliveries_endpoint_id_webhook_endpoints'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['event_id'], ['webhook_events.id'], name=op.f('fk_webhook_deliveries_event_id_webhook_events'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_webhook_deliveries')),
    sa.UniqueConstraint('event_id', 'endpoint_id', name=op.f('uq_webhook_deliveries_event_id_endpoint_id'))
    )
    with op.batch_alter_table('webhook_deliveries', schema=None) as batch_op:
        batch_op.create_index('ix_webhook_deliveries_status_next', ['status', 'next_attempt_at'], unique=False)

    op.create_table('follow_ups',
    sa.Column('id', sa.String(length=26), nullable=False),
    sa.Column('lead_id', sa.String(length=26), nullable=False),
    sa.Column('step_id', sa.String(length=26), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('channel', sa.Enum('EMAIL', 'SMS', 'WHATSAPP', 'CALL', name='channel', native_enum=False, create_constraint=True, length=20), nullable=False),
    sa.Column('status', sa.Enum('SCHEDULED', 'SENT', 'FAILED', 'CANCELLED', 'TASK', 'DONE', name='follow_up_status', native_enum=False, create_constraint=True, length=20), nullable=False),
    sa.Column('due_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('subject', sa.Text(), nullable=True),
    sa.Column('body', sa.Text(), nullable=True),
    sa.Column('copy_source', sa.String(length=10), nullable=True),
    sa.Column('recipient', sa.String(length=254), nullable=True),
    sa.Column('provider_id', sa.String(length=100), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('claim_token', sa.String(length=32), nullable=True),
    sa.Column('claimed_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('cancel_reason', sa.String(length=200), nullable=True),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('completed_by', sa.String(length=100), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['lead_id'], ['leads.id'], name=op.f('fk_follow_ups_lead_id_leads'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['step_id'], ['sequence_steps.id'], name=op.f('fk_follow_ups_step_id_sequence_steps'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_follow_ups')),
    sa.UniqueConstraint('lead_id', 'step_id', name=op.f('uq_follow_ups_lead_id_step_id'))
    )
    with op.batch_alter_table('follow_ups', schema=None) as batch_op:
        batch_op.create_index('ix_follow_ups_lead_status', ['lead_id', 'status'], unique=False)
        batch_op.create_index('ix_follow_ups_status_due', ['status', 'due_at'], unique=False)

    op.create_table('workflow_log',
    sa.Column('id', sa.String(length=26), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('subject_id', sa.String(length=40), nullable=True),
    sa.Column('lead_id', sa.String(length=26), nullable=True),
    sa.Column('channel', sa.String(length=20), nullable=True),
    sa.Column('outcome', sa.String(length=20), nullable=False),
    sa.Column('detail', sa.Text(), nullable=True),
    sa.Column('duration_ms', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['lead_id'], ['leads.id'], name=op.f('fk_workflow_log_lead_id_leads'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_workflow_log'))
    )
    with op.batch_alter_table('workflow_log', schema=None) as batch_op:
        batch_op.create_index('ix_workflow_log_kind_created', ['kind', 'created_at'], unique=False)
        batch_op.create_index('ix_workflow_log_lead', ['lead_id'], unique=False)
        batch_op.create_index('ix_workflow_log_subject', ['subject_id', 'created_at'], unique=False)

    _activity_kinds(NEW_KINDS)
    steps = sa.table("sequence_steps", *(sa.column(name) for name in (
        "id", "priority", "position", "delay_minutes", "channel", "copy_mode", "subject_template", "body_template",
        "enabled", "created_at", "updated_at")))
    now = datetime.now(UTC)
    op.bulk_insert(steps, [
        {"id": f"01SEQDEFAULT{priority[0]}{position:02d}".ljust(26, "0"), "priority": priority, "position": position,
         "delay_minutes": delay, "channel": channel, "copy_mode": mode, "subject_template": subject,
         "body_template": body, "enabled": True, "created_at": now, "updated_at": now}
        for priority, position, delay, channel, mode, subject, body in DEFAULT_STEPS])


def _activity_kinds(kinds: tuple[str, ...]) -> None:
    # A non-native enum is a VARCHAR with a CHECK constraint, which autogenerate does not compare: changed by hand.
    with op.batch_alter_table("activities", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_activities_activity_kind"), type_="check")
        batch_op.create_check_constraint("activity_kind", sa.column("kind").in_(kinds))



def downgrade() -> None:
    op.execute(sa.text("DELETE FROM activities WHERE kind IN ('FOLLOW_UP', 'UNSUBSCRIBED')"))
    _activity_kinds(OLD_KINDS)

    with op.batch_alter_table('workflow_log', schema=None) as batch_op:
        batch_op.drop_index('ix_workflow_log_subject')
        batch_op.drop_index('ix_workflow_log_lead')
        batch_op.drop_index('ix_workflow_log_kind_created')

    op.drop_table('workflow_log')
    with op.batch_alter_table('follow_ups', schema=None) as batch_op:
        batch_op.drop_index('ix_follow_ups_status_due')
        batch_op.drop_index('ix_follow_ups_lead_status')

    op.drop_table('follow_ups')
    with op.batch_alter_table('webhook_deliveries', schema=None) as batch_op:
        batch_op.drop_index('ix_webhook_deliveries_status_next')

    op.drop_table('webhook_deliveries')
    with op.batch_alter_table('webhook_events', schema=None) as batch_op:
        batch_op.drop_index('ix_webhook_events_created_at')

    op.drop_table('webhook_events')
    op.drop_table('webhook_endpoints')
    op.drop_table('suppressions')
    with op.batch_alter_table('sequence_steps', schema=None) as batch_op:
        batch_op.drop_index('ix_sequence_steps_priority_position')

    op.drop_table('sequence_steps')

