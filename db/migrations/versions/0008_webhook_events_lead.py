"""webhook events know their lead; the REVIEWED timeline entry

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-24
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

OLD_KINDS = ("CREATED", "NOTE", "STATUS_CHANGED", "ASSIGNED", "ANALYZED", "FOLLOW_UP", "UNSUBSCRIBED", "IMPORTED",
             "MERGED")
NEW_KINDS = OLD_KINDS + ("REVIEWED",)


def _activity_kinds(kinds: tuple[str, ...]) -> None:
    # A non-native enum is a VARCHAR with a CHECK constraint, which autogenerate does not compare: changed by hand.
    with op.batch_alter_table("activities", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_activities_activity_kind"), type_="check")
        batch_op.create_check_constraint("activity_kind", sa.column("kind").in_(kinds))


def _backfill_lead_ids() -> None:
    # Where core.webhooks.emit finds the lead in an event's data; the JSON paths compile to json_extract on SQLite
    # and #>> on PostgreSQL. An id longer than a lead id names no lead.
    events = sa.table("webhook_events", sa.column("type", sa.String()), sa.column("lead_id", sa.String()),
                      sa.column("payload", sa.JSON().with_variant(postgresql.JSONB(), "postgresql")))
    found = sa.case(
        (events.c.type.in_(("lead.created", "lead.analyzed")), events.c.payload[("data", "id")].as_string()),
        (events.c.type == "lead.status_changed", events.c.payload[("data", "lead", "id")].as_string()),
        (events.c.type.in_(("followup.sent", "followup.failed")),
         events.c.payload[("data", "follow_up", "lead_id")].as_string()),
    )
    op.execute(events.update().where(events.c.lead_id.is_(None))
               .values(lead_id=sa.case((sa.func.length(found) <= 26, found))))

def _follow_merges() -> None:
    # Merges made before this migration left the dropped lead's events under its id; merges now move them. Each
    # MERGED timeline entry sits on the kept lead (a later merge moves it on too) and names the dropped one.
    bind = op.get_bind()
    json_type = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
    activities = sa.table("activities", sa.column("lead_id", sa.String()), sa.column("kind", sa.String()),
                          sa.column("data", json_type))
    events = sa.table("webhook_events", sa.column("lead_id", sa.String()))
    for kept, data in bind.execute(sa.select(activities.c.lead_id, activities.c.data)
                                   .where(activities.c.kind == "MERGED")):
        data = data or {}
        dropped = {i for i in (data.get("merged_lead_id"), (data.get("merged_lead") or {}).get("id"))
                   if isinstance(i, str)}
        if dropped:
            bind.execute(events.update().where(events.c.lead_id.in_(dropped)).values(lead_id=kept))


revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('webhook_events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('lead_id', sa.String(length=26), nullable=True))
        batch_op.create_index('ix_webhook_events_lead_id', ['lead_id'], unique=False)

    _backfill_lead_ids()
    _follow_merges()
    _activity_kinds(NEW_KINDS)


def downgrade() -> None:
    # A review stays on the timeline as a note rather than vanishing.
    op.execute(sa.text("UPDATE activities SET kind = 'NOTE' WHERE kind = 'REVIEWED'"))
    _activity_kinds(OLD_KINDS)

    with op.batch_alter_table('webhook_events', schema=None) as batch_op:
        batch_op.drop_index('ix_webhook_events_lead_id')
        batch_op.drop_column('lead_id')
