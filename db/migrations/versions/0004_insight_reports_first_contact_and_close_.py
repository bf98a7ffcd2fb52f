"""insight reports, first contact and close times, digest opt-in

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from sqlalchemy.dialects import postgresql

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table('insight_reports',
    sa.Column('id', sa.String(length=26), nullable=False),
    sa.Column('period', sa.Enum('WEEKLY', 'MONTHLY', name='insight_period', native_enum=False, create_constraint=True, length=20), nullable=False),
    sa.Column('period_start', sa.DateTime(timezone=True), nullable=False),
    sa.Column('period_end', sa.DateTime(timezone=True), nullable=False),
    sa.Column('timezone', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('facts', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('narrative', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('engine', sa.String(length=10), nullable=True),
    sa.Column('model', sa.String(length=80), nullable=True),
    sa.Column('note', sa.String(length=500), nullable=True),
    sa.Column('claimed_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('digest_sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('generated_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_insight_reports')),
    sa.UniqueConstraint('period', 'period_start', name=op.f('uq_insight_reports_period_period_start'))
    )
    with op.batch_alter_table('insight_reports', schema=None) as batch_op:
        batch_op.create_index('ix_insight_reports_period_end', ['period', 'period_end'], unique=False)

    with op.batch_alter_table('leads', schema=None) as batch_op:
        batch_op.add_column(sa.Column('first_contacted_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True))

    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('digest_opt_in', sa.Boolean(), nullable=False, server_default=sa.false()))

    # Leads moved on before this release: their first status change and, for WON and LOST, their last one.
    op.execute(sa.text(
        "UPDATE leads SET first_contacted_at = (SELECT MIN(a.created_at) FROM activities a "
        "WHERE a.lead_id = leads.id AND a.kind = 'STATUS_CHANGED') WHERE status <> 'NEW'"))
    op.execute(sa.text(
        "UPDATE leads SET closed_at = (SELECT MAX(a.created_at) FROM activities a "
        "WHERE a.lead_id = leads.id AND a.kind = 'STATUS_CHANGED') WHERE status IN ('WON', 'LOST')"))

def downgrade() -> None:

    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('digest_opt_in')

    with op.batch_alter_table('leads', schema=None) as batch_op:
        batch_op.drop_column('closed_at')
        batch_op.drop_column('first_contacted_at')

    with op.batch_alter_table('insight_reports', schema=None) as batch_op:
        batch_op.drop_index('ix_insight_reports_period_end')

    op.drop_table('insight_reports')

