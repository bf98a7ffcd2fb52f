"""Throwaway databases for tests and benchmarks: created migrated, dropped afterwards."""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from db.migrate import upgrade

DEFAULT_POSTGRES_ADMIN_URL = os.environ.get(
    "TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


class PostgresUnavailable(Exception):
    """The PostgreSQL server does not answer; the message says where and why."""


def postgres_admin(admin_url: str = DEFAULT_POSTGRES_ADMIN_URL) -> Engine:
    """An autocommit engine on the server's maintenance database; raises PostgresUnavailable."""
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001 - any failure means "does not answer"
        admin.dispose()
        shown = make_url(admin_url).render_as_string(hide_password=True)
        raise PostgresUnavailable(f"PostgreSQL at {shown} does not answer ({exc.__class__.__name__})") from exc
    return admin


@contextmanager
def postgres_database(admin_url: str = DEFAULT_POSTGRES_ADMIN_URL, *, prefix: str = "leadops_scratch",
                      migrate: bool = True, keep: bool = False) -> Iterator[str]:
    """A fresh PostgreSQL database (migrated unless told not to), dropped afterwards unless `keep`."""
    admin = postgres_admin(admin_url)
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
        if migrate:
            upgrade(url)
        yield url
    finally:
        if not keep:
            with admin.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextmanager
def sqlite_database(*, migrate: bool = True) -> Iterator[str]:
    """A migrated SQLite file in a temporary folder."""
    with tempfile.TemporaryDirectory(prefix="leadops_scratch_") as folder:
        url = f"sqlite:///{folder}/leadops.db"
        if migrate:
            upgrade(url)
        yield url
