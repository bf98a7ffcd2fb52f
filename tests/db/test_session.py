"""Sessions and the retry of transient database errors, with real locks, real conflicts and real constraint errors."""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg.errors
import pytest
from sqlalchemy import Engine, func, select, text, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.pool import NullPool

import db.session
from db.models import AppSetting, AuditEvent
from db.session import SQLITE_BUSY_TIMEOUT_MS, is_transient, make_engine, run_with_retry, session_scope


def _sqlite_file(url: str) -> Path:
    database = make_url(url).database
    assert database
    return Path(database)


@pytest.fixture
def write_lock(sqlite_url: str) -> Iterator[sqlite3.Connection]:
    """A second, plain sqlite3 connection holding the database's write lock (BEGIN IMMEDIATE) until released."""
    holder = sqlite3.connect(_sqlite_file(sqlite_url), isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    yield holder
    if holder.in_transaction:
        holder.execute("ROLLBACK")
    holder.close()


def _insert_setting(engine: Engine, key: str, attempts: list[BaseException | None]) -> None:
    """One transaction that writes a row; records how each attempt ended."""
    try:
        with session_scope(engine) as session:
            session.add(AppSetting(key=key, value={"written": True}))
    except DBAPIError as exc:
        attempts.append(exc)
        raise
    attempts.append(None)


def test_sqlite_connections_use_wal_and_a_busy_timeout(sqlite_url: str):
    engine = make_engine(sqlite_url)
    try:
        with engine.connect() as connection:
            assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            assert connection.execute(text("PRAGMA busy_timeout")).scalar() == SQLITE_BUSY_TIMEOUT_MS
            assert SQLITE_BUSY_TIMEOUT_MS >= 1000
            assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 1
    finally:
        engine.dispose()


def test_busy_timeout_makes_a_writer_wait_for_a_short_lock(sqlite_url: str, write_lock: sqlite3.Connection):
    engine = make_engine(sqlite_url)
    release = threading.Timer(0.3, write_lock.execute, args=("COMMIT",))
    attempts: list[BaseException | None] = []
    try:
        release.start()
        started = time.monotonic()
        run_with_retry(lambda: _insert_setting(engine, "waited", attempts))
        elapsed = time.monotonic() - started
    finally:
        release.join()
        engine.dispose()

    assert attempts == [None], "with the busy timeout the writer waits instead of failing"
    assert elapsed >= 0.25


def test_locked_database_is_retried_until_the_lock_is_released(sqlite_url: str, write_lock: sqlite3.Connection,
                                                               monkeypatch: pytest.MonkeyPatch):
    # A busy timeout far shorter than the lock, so "database is locked" really reaches run_with_retry.
    monkeypatch.setattr(db.session, "SQLITE_BUSY_TIMEOUT_MS", 50)
    engine = make_engine(sqlite_url)
    release = threading.Timer(0.3, write_lock.execute, args=("COMMIT",))
    attempts: list[BaseException | None] = []
    try:
        release.start()
        run_with_retry(lambda: _insert_setting(engine, "retried", attempts), attempts=8, base_delay_s=0.05)
    finally:
        release.join()

    try:
        failures, last = attempts[:-1], attempts[-1]
        assert last is None and len(failures) >= 1
        for exc in failures:
            assert isinstance(exc, OperationalError) and "database is locked" in str(exc.orig)
            assert is_transient(exc)
        with session_scope(engine) as session:
            assert session.get(AppSetting, "retried") is not None
    finally:
        engine.dispose()


def test_retry_gives_up_after_the_attempt_limit(sqlite_url: str, write_lock: sqlite3.Connection,
                                                monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(db.session, "SQLITE_BUSY_TIMEOUT_MS", 20)
    engine = make_engine(sqlite_url)
    attempts: list[BaseException | None] = []
    try:
        with pytest.raises(OperationalError, match="database is locked"):
            run_with_retry(lambda: _insert_setting(engine, "never", attempts), attempts=3, base_delay_s=0.001)
        write_lock.execute("ROLLBACK")
        with session_scope(engine) as session:
            assert session.get(AppSetting, "never") is None
    finally:
        engine.dispose()

    assert len(attempts) == 3


def test_integrity_error_is_not_retried(engine: Engine):
    attempts: list[BaseException | None] = []
    _insert_setting(engine, "unique-key", attempts)

    with pytest.raises(IntegrityError):
        run_with_retry(lambda: _insert_setting(engine, "unique-key", attempts), attempts=4, base_delay_s=0.001)

    assert len(attempts) == 2, "a duplicate is final: one failed attempt only"
    assert not is_transient(attempts[1])  # type: ignore[arg-type]


def test_non_transient_operational_error_is_not_retried(engine: Engine):
    attempts = 0

    def query_missing_table() -> None:
        nonlocal attempts
        attempts += 1
        with session_scope(engine) as session:
            session.execute(text("SELECT * FROM no_such_table"))

    with pytest.raises(DBAPIError) as raised:
        run_with_retry(query_missing_table, attempts=4, base_delay_s=0.001)

    assert attempts == 1
    assert not is_transient(raised.value)


@pytest.mark.postgres
def test_postgres_serialization_failure_is_retried(pg_database: str):
    engine = make_engine(pg_database)
    repeatable = engine.execution_options(isolation_level="REPEATABLE READ")
    key = f"counter-{uuid.uuid4().hex[:8]}"
    with session_scope(engine) as session:
        session.add(AppSetting(key=key, value={"n": 0}))

    def increment(first: bool) -> None:
        with session_scope(repeatable) as session:
            n = session.scalar(select(AppSetting.value).where(AppSetting.key == key))["n"]
            if first:  # another writer commits between our read and our write, once
                with session_scope(engine) as other:
                    other.execute(update(AppSetting).where(AppSetting.key == key).values(value={"n": 100}))
            session.execute(update(AppSetting).where(AppSetting.key == key).values(value={"n": n + 1}))

    try:
        attempts = retried(increment)
        with session_scope(engine) as session:
            assert session.get(AppSetting, key).value == {"n": 101}  # type: ignore[union-attr]
            session.execute(AppSetting.__table__.delete().where(AppSetting.key == key))
    finally:
        engine.dispose()

    assert len(attempts) == 2 and attempts[1] is None
    conflict = attempts[0]
    assert isinstance(conflict, OperationalError)
    assert isinstance(conflict.orig, psycopg.errors.SerializationFailure)
    assert conflict.orig.sqlstate == "40001"
    assert is_transient(conflict)


@pytest.mark.postgres
def test_postgres_connection_dropped_before_the_first_statement_is_retried(pg_database: str):
    engine = make_engine(pg_database)
    marker = f"dropped-{uuid.uuid4().hex[:8]}"

    def record_event(first: bool) -> None:
        with session_scope(engine) as session:
            # Checked out (and pinged by the pool) before the first statement; the server drops it just then,
            # as a restart, a failover or an idle-connection killer would.
            backend_pid = session.connection().connection.dbapi_connection.info.backend_pid
            if first:
                _terminate(pg_database, backend_pid)
            session.add(AuditEvent(actor="test", action="reconnect.check", target_id=marker))

    try:
        attempts = retried(record_event)
        with session_scope(engine) as session:
            saved = session.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.target_id == marker))
            session.execute(AuditEvent.__table__.delete().where(AuditEvent.target_id == marker))
    finally:
        engine.dispose()

    assert saved == 1, "the work is done exactly once: the dropped attempt wrote nothing, the retry everything"
    assert len(attempts) == 2 and attempts[1] is None
    dropped = attempts[0]
    assert isinstance(dropped, OperationalError)
    assert is_transient(dropped)


def retried(work: Callable[[bool], None]) -> list[BaseException | None]:
    """Runs `work(first_attempt)` through run_with_retry; each attempt's database error, None for the one that
    succeeded."""
    attempts: list[BaseException | None] = []

    def attempt() -> None:
        try:
            work(not attempts)
        except DBAPIError as exc:
            attempts.append(exc)
            raise
        attempts.append(None)

    run_with_retry(attempt, attempts=4, base_delay_s=0.001)
    return attempts


def _terminate(url: str, backend_pid: int) -> None:
    """Ends a PostgreSQL backend from another connection, and waits until it is gone."""
    killer = make_engine(url, poolclass=NullPool)
    try:
        with killer.connect() as connection:
            assert connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": backend_pid}).scalar()
            deadline = time.monotonic() + 10
            while connection.execute(text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid"),
                                     {"pid": backend_pid}).scalar():
                assert time.monotonic() < deadline, f"backend {backend_pid} did not end"
                time.sleep(0.02)
    finally:
        killer.dispose()
