"""The migrations build exactly the schema the models declare, on SQLite and PostgreSQL, and can be undone."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.dialects import postgresql

from db.migrate import alembic_config, upgrade
from db.models import Base
from db.scratch import PostgresUnavailable, postgres_database, sqlite_database
from db.session import make_engine, session_scope
from tests.conftest import PG_ADMIN_URL, postgres_missing
from tests.support.factories import make_lead

# What the migrations add on purpose beyond what the models declare; everything else must match exactly.
# - ix_leads_search_trgm: a PostgreSQL-only GIN trigram index over an expression (the queue's text search), made by
#   hand in 0001; the models cannot declare it portably and autogenerate cannot compare expression indexes
#   (db/migrations/env.py leaves it out of autogenerate for the same reason).
HAND_MADE_INDEXES = {"ix_leads_search_trgm"}
# - Server defaults on NOT NULL columns that 0005 added to tables which already had rows: the database needs a value
#   for those rows; the models give new rows their value in Python (default=dict / default=list) instead.
SERVER_DEFAULTS_FOR_EXISTING_ROWS = {("leads", "custom_attributes"), ("lead_analyses", "learned_factors")}


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def fresh_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """An empty database, not yet migrated, dropped afterwards."""
    if request.param == "sqlite":
        with sqlite_database(migrate=False) as url:
            yield url
        return
    try:
        with postgres_database(PG_ADMIN_URL, prefix="leadops_migrations", migrate=False) as url:
            yield url
    except PostgresUnavailable as exc:
        postgres_missing(exc)


def _include(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    return not (type_ == "index" and name in HAND_MADE_INDEXES)


def _intended(diff: Any) -> bool:
    """True for a difference listed above as intentional."""
    if isinstance(diff, tuple) and diff[0] == "modify_default":
        _op, _schema, table, column, _existing, _in_database, in_models = diff
        return (table, column) in SERVER_DEFAULTS_FOR_EXISTING_ROWS and in_models is None
    return False


def differences(url: str) -> list[Any]:
    """What autogenerate would change to make the database match db.models (column changes listed one by one)."""
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={
                "compare_type": True, "compare_server_default": True, "include_object": _include})
            found = compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()
    flat = [change for diff in found for change in (diff if isinstance(diff, list) else [diff])]
    return [diff for diff in flat if not _intended(diff)]


def tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def seeded_rows(url: str) -> list[tuple[Any, ...]]:
    """The rows the migrations themselves write (the default follow-up sequences)."""
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return [tuple(row) for row in connection.execute(text(
                "SELECT priority, position, channel, delay_minutes FROM sequence_steps ORDER BY priority, position"))]
    finally:
        engine.dispose()


def test_upgrade_head_builds_exactly_the_models_schema(fresh_url: str):
    upgrade(fresh_url)

    assert differences(fresh_url) == []
    assert tables(fresh_url) == {t.name for t in Base.metadata.sorted_tables} | {"alembic_version"}


def test_downgrade_to_base_and_upgrade_again_gives_the_same_database(fresh_url: str):
    upgrade(fresh_url)
    seeded = seeded_rows(fresh_url)
    assert seeded, "the migrations seed the default follow-up sequences"

    command.downgrade(alembic_config(fresh_url), "base")
    assert tables(fresh_url) <= {"alembic_version"}, "downgrading to base leaves no table of ours behind"

    upgrade(fresh_url)
    assert differences(fresh_url) == []
    assert seeded_rows(fresh_url) == seeded


def test_events_of_a_lead_merged_before_0008_follow_it_to_the_kept_lead(fresh_url: str):
    # Before 0008 a merge left the dropped lead's webhook events under the dropped id: 0008 hands them to the kept
    # lead, so deleting the kept lead deletes them too.
    command.upgrade(alembic_config(fresh_url), "0007")
    engine = make_engine(fresh_url)
    payload = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
    events = sa.table("webhook_events", sa.column("id", sa.String()), sa.column("type", sa.String()),
                      sa.column("created_at", sa.DateTime(timezone=True)), sa.column("payload", payload))
    activities = sa.table("activities", sa.column("id", sa.String()), sa.column("lead_id", sa.String()),
                          sa.column("kind", sa.String()), sa.column("actor", sa.String()),
                          sa.column("body", sa.String()), sa.column("data", payload),
                          sa.column("created_at", sa.DateTime(timezone=True)))
    try:
        with session_scope(engine) as session:
            kept = make_lead(session, email="kept@harborline.example").id
            other = make_lead(session, email="other@harborline.example").id
        with engine.begin() as connection:
            now = datetime.now(UTC)
            connection.execute(activities.insert().values(
                id="01MERGED000000000000000000", lead_id=kept, kind="MERGED", actor="user:max", body="merged",
                data={"merged_lead_id": "01DROPPED00000000000000000"}, created_at=now))
            connection.execute(events.insert(), [
                {"id": "msg_dropped", "type": "lead.created", "created_at": now,
                 "payload": {"type": "lead.created", "data": {"id": "01DROPPED00000000000000000"}}},
                {"id": "msg_other", "type": "lead.created", "created_at": now,
                 "payload": {"type": "lead.created", "data": {"id": other}}}])
    finally:
        engine.dispose()

    upgrade(fresh_url)

    engine = make_engine(fresh_url)
    try:
        with engine.connect() as connection:
            owners = dict(connection.execute(text("SELECT id, lead_id FROM webhook_events")).all())
    finally:
        engine.dispose()
    assert owners == {"msg_dropped": kept, "msg_other": other}
