"""What the benchmarks share: throwaway databases, demo seeding, a benchmark user, and the app under AppTest run as
a server runs it.

Each benchmark puts the project root first on sys.path before importing this (run as `python bench/x.py`, Python
puts bench/ there, where bench/queue.py would shadow the standard library's `queue`).
"""

from __future__ import annotations

import contextlib
import io
import os
import secrets
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, select, text
from sqlalchemy.engine import make_url

from core import demo, users
from core.config import Settings, get_settings
from db.models import Lead, Role
from db.scratch import PostgresUnavailable, postgres_database, sqlite_database
from db.session import get_engine, session_scope

ROOT = Path(__file__).resolve().parent.parent


# --- databases ----------------------------------------------------------------------------------------------------

@contextlib.contextmanager
def fresh_postgres(admin_url: str, *, keep: bool = False) -> Iterator[str]:
    """A fresh `leadops_bench_<random>` database, dropped afterwards unless `keep` (then its URL is printed);
    raises PostgresUnavailable."""
    with postgres_database(admin_url, prefix="leadops_bench", keep=keep) as url:
        yield url
        if keep:
            print(f"kept: {make_url(url).render_as_string(hide_password=True)}", file=sys.stderr)


def scratch_databases(*, sqlite: bool, postgres: bool, pg_admin_url: str) -> Iterator[tuple[str, str]]:
    """("sqlite", url) then ("postgresql", url) of fresh databases, each dropped once the next is asked for; a
    PostgreSQL server that does not answer is skipped with a note."""
    if sqlite:
        with sqlite_database() as url:
            yield "sqlite", url
    if postgres:
        try:
            with postgres_database(pg_admin_url, prefix="leadops_bench") as url:
                yield "postgresql", url
        except PostgresUnavailable as exc:
            print(f"PostgreSQL skipped: {exc}", file=sys.stderr)


def seed_demo(engine: Engine, leads: int) -> float:
    """core.demo's leads, with progress on stderr; the seconds it took."""
    started = time.perf_counter()
    live = sys.stderr.isatty()

    def progress(done: int, total: int) -> None:
        if live or done == total or done % max(total // 10, 1) < demo.BATCH:
            rate = done / max(time.perf_counter() - started, 1e-9)
            print(f"{chr(13) if live else ''}  seeding: {done:,}/{total:,} leads ({rate:,.0f}/s)",
                  end="" if live else "\n", file=sys.stderr, flush=True)

    demo.seed(engine=engine, leads=leads, progress=progress)
    seconds = time.perf_counter() - started
    print(f"{chr(13) if live else ''}  seeded {leads:,} leads in {seconds:.1f} s{' ' * 20}", file=sys.stderr)
    return seconds


def count_leads(engine: Engine) -> int:
    with session_scope(engine) as session:
        return session.scalar(select(func.count()).select_from(Lead)) or 0


def server_version(engine: Engine) -> str:
    with engine.connect() as connection:
        if engine.dialect.name == "postgresql":
            return str(connection.scalar(text("SHOW server_version")))
        return "SQLite " + str(connection.scalar(text("SELECT sqlite_version()")))


def add_user(engine: Engine, role: Role) -> tuple[str, str]:
    """A new user the benchmark signs in as: its username and password."""
    kind = role.value.lower()
    username, password = f"bench.{kind}.{secrets.token_hex(3)}", secrets.token_urlsafe(16)
    with session_scope(engine) as session:
        users.create(session=session, username=username, password=password, role=role,
                     name=f"Bench {kind.capitalize()}")
    return username, password


def remove_user(engine: Engine, username: str) -> None:
    """Deletes the benchmark's user again (it matters with --url: the database stays)."""
    with session_scope(engine) as session:
        user = users.get_by_username(session=session, username=username)
        if user is not None:
            session.delete(user)


# --- the app under AppTest ----------------------------------------------------------------------------------------

def use_database(url: str, **environment: str) -> None:
    """Points the app's settings at `url`; nothing from the shell or a .env (no Gemini, mail or webhooks)."""
    for name in Settings.model_fields:
        os.environ.pop(name.upper(), None)
    os.environ.update(DATABASE_URL=url, GEMINI_API_KEY="", SMTP_HOST="", WEBHOOK_URL="", LEADOPS_API_KEY="",
                      **environment)
    get_settings.cache_clear()
    get_engine.cache_clear()


@contextlib.contextmanager
def entry_script_every_run() -> Iterator[None]:
    """Makes AppTest run Home.py on every run, as the server does (st.navigation then picks the page); AppTest would
    otherwise rerun the page file alone after the first run (it finds a pages/ folder beside Home.py)."""
    from streamlit.runtime.pages_manager import PagesManager  # noqa: TID251 - this drives the UI

    original = PagesManager.__init__

    def init(self: PagesManager, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        PagesManager.uses_pages_directory = False  # what st.navigation sets in a running server

    PagesManager.__init__ = init  # type: ignore[method-assign]
    try:
        yield
    finally:
        PagesManager.__init__ = original  # type: ignore[method-assign]


@contextlib.contextmanager
def one_script_cache() -> Iterator[None]:
    """One script cache for the process, as a server has (AppTest makes a new one per run, so it compiles the
    scripts every time)."""
    from streamlit.runtime.scriptrunner.script_cache import ScriptCache  # noqa: TID251
    from streamlit.testing.v1 import app_test, local_script_runner  # noqa: TID251

    caches = (app_test.ScriptCache, local_script_runner.ScriptCache)
    shared = ScriptCache()
    app_test.ScriptCache = local_script_runner.ScriptCache = lambda: shared  # type: ignore[assignment,misc]
    try:
        yield
    finally:
        app_test.ScriptCache, local_script_runner.ScriptCache = caches  # type: ignore[misc]


def by_label(elements: Any, label: str) -> Any:
    [element] = [e for e in elements if e.label == label]
    return element


def run(at: Any) -> Any:
    """One script run; raises what the app raised."""
    # streamlit-authenticator prints when its cookie component (which AppTest does not run) answers nothing.
    with contextlib.redirect_stdout(io.StringIO()):
        at.run()
    if at.exception:
        raise RuntimeError(f"the app raised: {at.exception[0].value}")
    return at


def signed_in(username: str, password: str, *, timeout: float) -> Any:
    """A fresh AppTest session that signed in through the real form."""
    from streamlit.testing.v1 import AppTest  # noqa: TID251

    at = run(AppTest.from_file(str(ROOT / "Home.py"), default_timeout=timeout))
    by_label(at.text_input, "Username").input(username)
    by_label(at.text_input, "Password").input(password)
    by_label(at.button, "Sign in").click()
    run(at)
    run(at)  # in a browser the cookie component's answer reruns the app right after signing in
    return at
