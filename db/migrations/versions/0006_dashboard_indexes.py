"""dashboard indexes

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op



revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    with op.batch_alter_table('follow_ups', schema=None) as batch_op:
        batch_op.create_index('ix_follow_ups_status_sent_at', ['status', 'sent_at'], unique=False, postgresql_include=['channel', 'number', 'lead_id'])
        batch_op.create_index('ix_follow_ups_status_updated_at', ['status', 'updated_at'], unique=False, postgresql_include=['channel', 'number', 'lead_id'])

    with op.batch_alter_table('leads', schema=None) as batch_op:
        batch_op.create_index('ix_leads_created_at_dashboard', ['created_at'], unique=False, postgresql_include=['priority', 'status', 'score', 'source', 'assignee_id', 'first_contacted_at'])




def downgrade() -> None:

    with op.batch_alter_table('leads', schema=None) as batch_op:
        batch_op.drop_index('ix_leads_created_at_dashboard', postgresql_include=['priority', 'status', 'score', 'source', 'assignee_id', 'first_contacted_at'])

    with op.batch_alter_table('follow_ups', schema=None) as batch_op:
        batch_op.drop_index('ix_follow_ups_status_updated_at', postgresql_include=['channel', 'number', 'lead_id'])
        batch_op.drop_index('ix_follow_ups_status_sent_at', postgresql_include=['channel', 'number', 'lead_id'])


