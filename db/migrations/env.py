"""Alembic environment: the URL comes from the caller or the app's settings, the metadata from db.models."""

from alembic import context
from sqlalchemy import pool

from db.models import Base
from db.session import make_engine

config = context.config
target_metadata = Base.metadata
# Made by hand in the migrations (PostgreSQL only, expression columns autogenerate cannot compare).
HAND_MADE_INDEXES = {"ix_leads_search_trgm"}


def include_object(obj, name, type_, reflected, compare_to):  # noqa: ANN001, ANN201 - Alembic's hook signature
    return not (type_ == "index" and name in HAND_MADE_INDEXES)


def _url() -> str:
    url = config.get_main_option("sqlalchemy.url")
    if url:
        return url
    from core.config import get_settings

    return get_settings().database_url


def run_migrations_offline() -> None:
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True, render_as_batch=True,
                      include_object=include_object)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connectable = config.attributes.get("connection")
    if connectable is not None:
        context.configure(connection=connectable, target_metadata=target_metadata, render_as_batch=True,
                          include_object=include_object)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = make_engine(_url(), poolclass=pool.NullPool)
    with engine.connect() as connection:
        # SQLite changes tables by copying them (batch mode), so it needs real ALTER-free migrations.
        context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True,
                          include_object=include_object)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
