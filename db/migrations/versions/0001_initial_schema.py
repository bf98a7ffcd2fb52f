"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-24
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from sqlalchemy.dialects import postgresql

revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table('api_keys',
    sa.Column('id', sa.String(length=26), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('prefix', sa.String(length=16), nullable=False),
    sa.Column('key_hash', sa.String(length=64), nullable=False),
    sa.Column('created_by', sa.String(length=64), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_used_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_keys')),
    sa.UniqueConstraint('prefix', name=op.f('uq_api_keys_prefix'))
    )
    op.create_table('app_settings',
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('value', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_app_settings'))
    )
    op.create_table('users',
    sa.Column('id', sa.String(length=26), nullable=False),
    sa.Column('username', sa.String(length=64), nullable=False),
    sa.Column('email', sa.String(length=254), nullable=True),
    sa.Column('name', sa.String(length=200), nullable=True),
    sa.Column('role', sa.Enum('admin', 'manager', 'staff', 'viewer', name='role', native_enum=False, create_constraint=True, length=20), nullable=False),
    sa.Column('password_hash', sa.String(length=100), nullable=False),
    sa.Column('disabled', sa.Boolean(), nullable=False),
    sa.Column('failed_logins', sa.Integer(), nullable=False),
    sa.Column('locked_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_users')),
    sa.UniqueConstraint('username', name=op.f('uq_users_username'))
    )
    op.create_table('leads',
    sa.Column('id', sa.String(length=26), nullable=False),
    sa.Column('full_name', sa.String(length=200), nullable=False),
    sa.Column('email', sa.String(length=254), nullable=False),
    sa.Column('phone', sa.String(length=40), nullable=True),
    sa.Column('company', sa.String(length=200), nullable=True),
    sa.Column('budget', sa.String(length=200), nullable=True),
    sa.Column('budget_min', sa.Numeric(precision=16, scale=2), nullable=True),
    sa.Column('budget_max', sa.Numeric(precision=16, scale=2), nullable=True),
    sa.Column('budget_currency', sa.String(length=3), nullable=True),
    sa.Column('budget_period', sa.String(length=8), nullable=True),
    sa.Column('budget_usd', sa.Numeric(precision=16, scale=2), nullable=True),
    sa.Column('project_type', sa.String(length=100), nullable=True),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('source', sa.String(length=50), nullable=False),
    sa.Column('status', sa.Enum('NEW', 'CONTACTED', 'QUALIFIED', 'PROPOSAL_SENT', 'WON', 'LOST', name='lead_status', native_enum=False, create_constraint=True, length=20), nullable=False),
    sa.Column('assignee_id', sa.String(length=26), nullable=True),
    sa.Column('score', sa.Integer(), nullable=False),
    sa.Column('priority', sa.Enum('HIGH', 'MEDIUM', 'LOW', name='priority', native_enum=False, create_constraint=True, length=20), nullable=False),
    sa.Column('needs_review', sa.Boolean(), nullable=False),
    sa.Column('auto_follow_up', sa.Boolean(), nullable=False),
    sa.Column('reanalyze_requested_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('reanalyze_attempts', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['assignee_id'], ['users.id'], name=op.f('fk_leads_assignee_id_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_leads'))
    )
    with op.batch_alter_table('leads', schema=None) as batch_op:
        batch_op.create_index('ix_leads_assignee_status', ['assignee_id', 'status'], unique=False)
        batch_op.create_index('ix_leads_created_at_id', ['created_at', 'id'], unique=False)
        batch_op.create_index('ix_leads_email', ['email'], unique=False)
        batch_op.create_index('ix_leads_priority_rank', ['priority', 'score', 'created_at', 'id'], unique=False)
        batch_op.create_index('ix_leads_rank', ['score', 'created_at', 'id'], unique=False)
        batch_op.create_index('ix_leads_reanalyze_requested_at', ['reanalyze_requested_at'], unique=False)
        batch_op.create_index('ix_leads_status_created_at', ['status', 'created_at', 'id'], unique=False)
        batch_op.create_index('ix_leads_status_rank', ['status', 'score', 'created_at', 'id'], unique=False)

    if op.get_bind().dialect.name == "postgresql":
        # Substring search of the queue ("harbor" in a name, email or company) without reading every lead.
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        op.execute("CREATE INDEX ix_leads_search_trgm ON leads USING gin "
                   "(lower(full_name) gin_trgm_ops, lower(email) gin_trgm_ops, lower(company) gin_trgm_ops)")

    op.create_table('activities',
    sa.Column('id', sa.String(length=26), nullable=False),
    sa.Column('lead_id', sa.String(length=26), nullable=False),
    sa.Column('kind', sa.Enum('CREATED', 'NOTE', 'STATUS_CHANGED', 'ASSIGNED', 'ANALYZED', name='activity_kind', native_enum=False, create_constraint=True, length=20), nullable=False),
    sa.Column('actor', sa.String(length=100), nullable=False),
    sa.Column('body', sa.Text(), nullable=True),
    sa.Column('data', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['lead_id'], ['leads.id'], name=op.f('fk_activities_lead_id_leads'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_activities'))
    )
    with op.batch_alter_table('activities', schema=None) as batch_op:
        batch_op.create_index('ix_activities_lead_created', ['lead_id', 'created_at'], unique=False)

    op.create_table('ai_usage',
    sa.Column('id', sa.String(length=26), nullable=False),
    sa.Column('purpose', sa.String(length=20), nullable=False),
    sa.Column('model', sa.String(length=80), nullable=False),
    sa.Column('lead_id', sa.String(length=26), nullable=True),
    sa.Column('input_tokens', sa.Integer(), nullable=False),
    sa.Column('output_tokens', sa.Integer(), nullable=False),
    sa.Column('latency_ms', sa.Integer(), nullable=False),
    sa.Column('cost_usd', sa.Numeric(precision=12, scale=6), nullable=False),
    sa.Column('outcome', sa.String(length=20), nullable=False),
    sa.Column('error', sa.String(length=500), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['lead_id'], ['leads.id'], name=op.f('fk_ai_usage_lead_id_leads'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ai_usage'))
    )
    with op.batch_alter_table('ai_usage', schema=None) as batch_op:
        batch_op.create_index('ix_ai_usage_created_at', ['created_at'], unique=False)
        batch_op.create_index('ix_ai_usage_purpose_created', ['purpose', 'created_at'], unique=False)

    op.create_table('idempotency_records',
    sa.Column('id', sa.String(length=26), nullable=False),
    sa.Column('scope', sa.String(length=64), nullable=False),
    sa.Column('key', sa.String(length=200), nullable=False),
    sa.Column('request_hash', sa.String(length=64), nullable=False),
    sa.Column('lead_id', sa.String(length=26), nullable=True),
    sa.Column('status_code', sa.Integer(), nullable=False),
    sa.Column('response', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['lead_id'], ['leads.id'], name=op.f('fk_idempotency_records_lead_id_leads'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_idempotency_records')),
    sa.UniqueConstraint('scope', 'key', name=op.f('uq_idempotency_records_scope_key'))
    )
    op.create_table('lead_analyses',
    sa.Column('id', sa.String(length=26), nullable=False),
    sa.Column('lead_id', sa.String(length=26), nullable=False),
    sa.Column('score', sa.Integer(), nullable=False),
    sa.Column('priority', sa.Enum('HIGH', 'MEDIUM', 'LOW', name='priority', native_enum=False, create_constraint=True, length=20), nullable=False),
    sa.Column('budget_category', sa.String(length=40), nullable=False),
    sa.Column('summary', sa.Text(), nullable=False),
    sa.Column('recommendation', sa.Text(), nullable=False),
    sa.Column('engine', sa.String(length=10), nullable=False),
    sa.Column('model', sa.String(length=80), nullable=True),
    sa.Column('factors', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('injection_suspected', sa.Boolean(), nullable=False),
    sa.Column('review_reason', sa.String(length=300), nullable=True),
    sa.Column('fallback_reason', sa.String(length=300), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['lead_id'], ['leads.id'], name=op.f('fk_lead_analyses_lead_id_leads'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_lead_analyses')),
    sa.UniqueConstraint('lead_id', name=op.f('uq_lead_analyses_lead_id'))
    )



def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS ix_leads_search_trgm")

    op.drop_table('lead_analyses')
    op.drop_table('idempotency_records')
    with op.batch_alter_table('ai_usage', schema=None) as batch_op:
        batch_op.drop_index('ix_ai_usage_purpose_created')
        batch_op.drop_index('ix_ai_usage_created_at')

    op.drop_table('ai_usage')
    with op.batch_alter_table('activities', schema=None) as batch_op:
        batch_op.drop_index('ix_activities_lead_created')

    op.drop_table('activities')
    with op.batch_alter_table('leads', schema=None) as batch_op:
        batch_op.drop_index('ix_leads_status_rank')
        batch_op.drop_index('ix_leads_status_created_at')
        batch_op.drop_index('ix_leads_reanalyze_requested_at')
        batch_op.drop_index('ix_leads_rank')
        batch_op.drop_index('ix_leads_priority_rank')
        batch_op.drop_index('ix_leads_email')
        batch_op.drop_index('ix_leads_created_at_id')
        batch_op.drop_index('ix_leads_assignee_status')

    op.drop_table('leads')
    op.drop_table('users')
    op.drop_table('app_settings')
    op.drop_table('api_keys')

