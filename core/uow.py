"""Transactions for the UI: one per button press or page read, on the configured database."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from core.config import Settings, get_settings
from db.session import get_engine, run_with_retry, session_scope

__all__ = ["Session", "engine", "read", "settings", "transaction"]


def settings() -> Settings:
    """The process's settings."""
    return get_settings()


def engine() -> Engine:
    """The process's engine (for services that open their own transactions, such as intake)."""
    return get_engine(get_settings().database_url)


@contextmanager
def transaction() -> Iterator[Session]:
    """A session whose work is committed when the block ends and rolled back if it raises."""
    with session_scope(engine()) as session:
        yield session


def read(fn, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN201 - passes any service call through
    """Runs a read-only service call `fn(session=..., *args, **kwargs)` in its own transaction, retried if transient."""
    def run():  # noqa: ANN202
        with transaction() as session:
            return fn(*args, session=session, **kwargs)
    return run_with_retry(run, what=getattr(fn, "__name__", "read"))
