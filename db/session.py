"""Engines, sessions and the retry of transient database errors."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

log = logging.getLogger(__name__)
T = TypeVar("T")

SQLITE_BUSY_TIMEOUT_MS = 10_000


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets the UI read while the jobs process writes; the busy timeout makes writers wait instead of failing.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def make_engine(url: str, **kwargs: Any) -> Engine:
    """A new engine for `url`, with SQLite set up for concurrent use."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        connect_args = {"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000,
                        **kwargs.pop("connect_args", {})}
        engine = create_engine(url, connect_args=connect_args, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    # psycopg prepares a statement after a few runs, and PostgreSQL may then keep a generic plan that is several
    # times slower for the queue's text search; plan each execution for its actual values instead.
    connect_args = kwargs.pop("connect_args", {})
    connect_args.setdefault("options", "-c plan_cache_mode=force_custom_plan")
    kwargs["connect_args"] = connect_args
    if "poolclass" not in kwargs:
        kwargs.setdefault("pool_size", 10)
        kwargs.setdefault("max_overflow", 10)
    return create_engine(url, **kwargs)


@lru_cache(maxsize=8)
def get_engine(url: str | None = None) -> Engine:
    """The process's shared engine for `url` (the configured database by default)."""
    if url is None:
        from core.config import get_settings  # late: db stays importable without the app's settings

        url = get_settings().database_url
    return make_engine(url)


@lru_cache(maxsize=8)
def _session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False)


@contextmanager
def session_scope(engine: Engine | None = None) -> Iterator[Session]:
    """One transaction: committed when the block ends, rolled back when it raises."""
    session = _session_factory(engine or get_engine())()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


_TRANSIENT_SQLSTATES = {"40001", "40P01", "08000", "08003", "08006", "08001", "57P01", "57P02", "57P03"}
_TRANSIENT_MESSAGES = ("database is locked", "database is busy", "server closed the connection",
                       "connection refused", "could not connect", "terminating connection")


def is_transient(exc: BaseException) -> bool:
    """True for errors worth retrying: lost connections, serialization failures, a locked SQLite file."""
    if isinstance(exc, IntegrityError):
        return False
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return True
        sqlstate = getattr(exc.orig, "sqlstate", None)
        if sqlstate in _TRANSIENT_SQLSTATES:
            return True
        if isinstance(exc, OperationalError):
            text = str(exc.orig).lower()
            return any(m in text for m in _TRANSIENT_MESSAGES)
    return False


def run_with_retry(operation: Callable[[], T], *, attempts: int = 4, base_delay_s: float = 0.05,
                   what: str = "database operation") -> T:
    """Runs `operation` (one whole transaction), again with backoff when it fails transiently."""
    for attempt in range(1, attempts + 1):
        try:
            return operation()
        except DBAPIError as exc:
            if attempt == attempts or not is_transient(exc):
                raise
            delay = base_delay_s * (2 ** (attempt - 1)) * (1 + random.random())
            log.warning("%s failed transiently (attempt %d/%d), retrying in %.2fs: %s",
                        what, attempt, attempts, delay, exc.orig)
            time.sleep(delay)
    raise AssertionError("unreachable")
