"""imports, duplicates, learned score

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from sqlalchemy.dialects import postgresql

OLD_KINDS = ("CREATED", "NOTE", "STATUS_CHANGED", "ASSIGNED", "ANALYZED", "FOLLOW_UP", "UNSUBSCRIBED")
NEW_KINDS = OLD_KINDS + ("IMPORTED", "MERGED")


def _activity_kinds(kinds: tuple[str, ...]) -> None:
    # A non-native enum is a VARCHAR with a CHECK constraint, which autogenerate does not compare: changed by hand.
    with op.batch_alter_table("activities", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_activities_activity_kind"), type_="check")
        batch_op.create_check_constraint("activity_kind", sa.column("kind").in_(kinds))

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table('import_batches',
    sa.Column('id', sa.String(length=26), nullable=False),
    sa.Column('filename', sa.String(length=300), nullable=False),
    sa.Column('created_by', sa.String(length=100), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('mapping', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('options', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('total_rows', sa.Integer(), nullable=False),
    sa.Column('created', sa.Integer(), nullable=False),
    sa.Column('updated', sa.Integer(), nullable=False),
    sa.Column('skipped', sa.Integer(), nullable=False),
    sa.Column('failed', sa.Integer(), nullable=False),
    sa.Column('undone_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_import_batches'))
    )
    op.create_table('learned_models',
    sa.Column('id', sa.String(length=26), nullable=False),
    sa.Column('algorithm', sa.String(length=40), nullable=False),
    sa.Column('fields', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('won', sa.Integer(), nullable=False),
    sa.Column('lost', sa.Integer(), nullable=False),
    sa.Column('metrics', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('parameters', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('blended', sa.Boolean(), nullable=False),
    sa.Column('note', sa.String(length=500), nullable=True),
    sa.Column('trained_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_learned_models'))
    )
    with op.batch_alter_table('learned_models', schema=None) as batch_op:
        batch_op.create_index('ix_learned_models_trained_at', ['trained_at'], unique=False)

    op.create_table('duplicate_candidates',
    sa.Column('id', sa.String(length=26), nullable=False),
    sa.Column('lead_id', sa.String(length=26), nullable=False),
    sa.Column('other_id', sa.String(length=26), nullable=False),
    sa.Column('confidence', sa.Integer(), nullable=False),
    sa.Column('reasons', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('resolved_by', sa.String(length=100), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['lead_id'], ['leads.id'], name=op.f('fk_duplicate_candidates_lead_id_leads'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['other_id'], ['leads.id'], name=op.f('fk_duplicate_candidates_other_id_leads'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_duplicate_candidates')),
    sa.UniqueConstraint('lead_id', 'other_id', name=op.f('uq_duplicate_candidates_lead_id_other_id'))
    )
    with op.batch_alter_table('duplicate_candidates', schema=None) as batch_op:
        batch_op.create_index('ix_duplicate_candidates_other', ['other_id'], unique=False)
        batch_op.create_index('ix_duplicate_candidates_status', ['status', 'confidence'], unique=False)

    op.create_table('import_rows',
    sa.Column('id', sa.String(length=26), nullable=False),
    sa.Column('batch_id', sa.String(length=26), nullable=False),
    sa.Column('row_number', sa.Integer(), nullable=False),
    sa.Column('action', sa.String(length=10), nullable=False),
    sa.Column('lead_id', sa.String(length=26), nullable=True),
    sa.Column('previous', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('raw', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.ForeignKeyConstraint(['batch_id'], ['import_batches.id'], name=op.f('fk_import_rows_batch_id_import_batches'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['lead_id'], ['leads.id'], name=op.f('fk_import_rows_lead_id_leads'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_import_rows'))
    )
    with op.batch_alter_table('import_rows', schema=None) as batch_op:
        batch_op.create_index('ix_import_rows_batch_row', ['batch_id', 'row_number'], unique=False)

    with op.batch_alter_table('follow_ups', schema=None) as batch_op:
        batch_op.add_column(sa.Column('origin_lead_id', sa.String(length=26), nullable=True))
    op.execute(sa.text("UPDATE follow_ups SET origin_lead_id = lead_id"))
    with op.batch_alter_table('follow_ups', schema=None) as batch_op:
        batch_op.alter_column('origin_lead_id', existing_type=sa.String(length=26), nullable=False)
        batch_op.drop_constraint(batch_op.f('uq_follow_ups_lead_id_step_id'), type_='unique')
        batch_op.create_unique_constraint(batch_op.f('uq_follow_ups_lead_id_step_id_origin_lead_id'), ['lead_id', 'step_id', 'origin_lead_id'])

    with op.batch_alter_table('lead_analyses', schema=None) as batch_op:
        batch_op.add_column(sa.Column('learned_score', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('learned_factors', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False, server_default=sa.text("'[]'")))
        batch_op.add_column(sa.Column('engine_score', sa.Integer(), nullable=True))

    with op.batch_alter_table('leads', schema=None) as batch_op:
        batch_op.add_column(sa.Column('custom_attributes', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False, server_default=sa.text("'{}'")))
        batch_op.add_column(sa.Column('external_id', sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column('import_batch_id', sa.String(length=26), nullable=True))
        batch_op.create_index('ix_leads_external_id', ['external_id'], unique=False)
        batch_op.create_index('ix_leads_import_batch', ['import_batch_id'], unique=False)
        batch_op.create_index('ix_leads_phone', ['phone'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_leads_import_batch_id_import_batches'), 'import_batches', ['import_batch_id'], ['id'], ondelete='SET NULL')

    _activity_kinds(NEW_KINDS)


def downgrade() -> None:
    op.execute(sa.text("DELETE FROM activities WHERE kind IN ('IMPORTED', 'MERGED')"))
    _activity_kinds(OLD_KINDS)

    with op.batch_alter_table('leads', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_leads_import_batch_id_import_batches'), type_='foreignkey')
        batch_op.drop_index('ix_leads_phone')
        batch_op.drop_index('ix_leads_import_batch')
        batch_op.drop_index('ix_leads_external_id')
        batch_op.drop_column('import_batch_id')
        batch_op.drop_column('external_id')
        batch_op.drop_column('custom_attributes')

    with op.batch_alter_table('lead_analyses', schema=None) as batch_op:
        batch_op.drop_column('engine_score')
        batch_op.drop_column('learned_factors')
        batch_op.drop_column('learned_score')

    with op.batch_alter_table('follow_ups', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_follow_ups_lead_id_step_id_origin_lead_id'), type_='unique')
        batch_op.create_unique_constraint(batch_op.f('uq_follow_ups_lead_id_step_id'), ['lead_id', 'step_id'])
        batch_op.drop_column('origin_lead_id')

    with op.batch_alter_table('import_rows', schema=None) as batch_op:
        batch_op.drop_index('ix_import_rows_batch_row')

    op.drop_table('import_rows')
    with op.batch_alter_table('duplicate_candidates', schema=None) as batch_op:
        batch_op.drop_index('ix_duplicate_candidates_status')
        batch_op.drop_index('ix_duplicate_candidates_other')

    op.drop_table('duplicate_candidates')
    with op.batch_alter_table('learned_models', schema=None) as batch_op:
        batch_op.drop_index('ix_learned_models_trained_at')

    op.drop_table('learned_models')
    op.drop_table('import_batches')

