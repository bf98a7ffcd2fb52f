"""dashboard daily summaries: leads and follow-up outcomes per local day, refreshed by the dashboard job

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-24
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op



revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('day_stats_dirty',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_day_stats_dirty'))
    )
    op.create_table('day_stats_state',
    sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('timezone', sa.String(length=64), nullable=True),
    sa.Column('refreshed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('rebuilt_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('changes_since', sa.DateTime(timezone=True), nullable=True),
    sa.Column('days_refreshed', sa.Integer(), nullable=False),
    sa.Column('seconds', sa.Numeric(precision=10, scale=3), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_day_stats_state'))
    )
    op.create_table('follow_up_day_stats',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('day', sa.Integer(), nullable=False),
    sa.Column('channel', sa.Enum('EMAIL', 'SMS', 'WHATSAPP', 'CALL', name='channel', native_enum=False, create_constraint=True, length=20), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('status', sa.Enum('SCHEDULED', 'SENT', 'FAILED', 'CANCELLED', 'TASK', 'DONE', name='follow_up_status', native_enum=False, create_constraint=True, length=20), nullable=False),
    sa.Column('source', sa.String(length=50), nullable=False),
    sa.Column('assignee_id', sa.String(length=26), nullable=True),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_follow_up_day_stats'))
    )
    with op.batch_alter_table('follow_up_day_stats', schema=None) as batch_op:
        batch_op.create_index('ix_follow_up_day_stats_day', ['day'], unique=False)

    op.create_table('lead_day_stats',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('day', sa.Integer(), nullable=False),
    sa.Column('source', sa.String(length=50), nullable=False),
    sa.Column('assignee_id', sa.String(length=26), nullable=True),
    sa.Column('priority', sa.Enum('HIGH', 'MEDIUM', 'LOW', name='priority', native_enum=False, create_constraint=True, length=20), nullable=False),
    sa.Column('status', sa.Enum('NEW', 'CONTACTED', 'QUALIFIED', 'PROPOSAL_SENT', 'WON', 'LOST', name='lead_status', native_enum=False, create_constraint=True, length=20), nullable=False),
    sa.Column('band', sa.Integer(), nullable=False),
    sa.Column('response', sa.Integer(), nullable=False),
    sa.Column('leads', sa.Integer(), nullable=False),
    sa.Column('score_sum', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_lead_day_stats'))
    )
    with op.batch_alter_table('lead_day_stats', schema=None) as batch_op:
        batch_op.create_index('ix_lead_day_stats_day', ['day'], unique=False)

    with op.batch_alter_table('leads', schema=None) as batch_op:
        batch_op.create_index('ix_leads_updated_at', ['updated_at'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('leads', schema=None) as batch_op:
        batch_op.drop_index('ix_leads_updated_at')

    with op.batch_alter_table('lead_day_stats', schema=None) as batch_op:
        batch_op.drop_index('ix_lead_day_stats_day')

    op.drop_table('lead_day_stats')
    with op.batch_alter_table('follow_up_day_stats', schema=None) as batch_op:
        batch_op.drop_index('ix_follow_up_day_stats_day')

    op.drop_table('follow_up_day_stats')
    op.drop_table('day_stats_state')
    op.drop_table('day_stats_dirty')
