"""Shared fixtures: real SQLite and PostgreSQL databases, settings, the HTTP API, a local Gemini server."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import bcrypt
import pytest
from sqlalchemy import Engine, text
from starlette.applications import Starlette
from starlette.testclient import TestClient

from api.routes import Api
from core import api_keys, app_settings, auth
from core.config import Settings
from db.migrate import upgrade
from db.models import Base
from db.scratch import DEFAULT_POSTGRES_ADMIN_URL, PostgresUnavailable, postgres_database
from db.session import make_engine, session_scope
from tests.support.gemini_server import GeminiServer

PROJECT = Path(__file__).resolve().parent.parent
SHARED = PROJECT.parent / "shared"
PG_ADMIN_URL = DEFAULT_POSTGRES_ADMIN_URL
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

# Settings come from each test, never from the developer's shell or .env.
_CONTRACT_VARS = [name.upper() for name in Settings.model_fields]


@pytest.fixture(autouse=True, scope="session")
def _clean_environment() -> Iterator[None]:
    saved = {k: os.environ.pop(k) for k in list(os.environ) if k in _CONTRACT_VARS}
    yield
    os.environ.update(saved)


@pytest.fixture(autouse=True)
def _fresh_settings_cache() -> None:
    # Tests reuse one PostgreSQL database (emptied between them); a profile cached by one must not leak into the next.
    app_settings._scoring_inputs.clear()


@pytest.fixture
def fast_bcrypt(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Cheap bcrypt hashes (cost 4) for tests that hash many passwords: same behaviour, a fraction of the time."""
    real = bcrypt.gensalt
    monkeypatch.setattr(bcrypt, "gensalt", lambda rounds=4, prefix=b"2b": real(4, prefix))
    auth._unknown_user_hash.cache_clear()
    yield
    auth._unknown_user_hash.cache_clear()


def shared_path(*parts: str) -> Path:
    """A file under ../shared, or a skip that says why it is missing."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        if IN_CI:
            pytest.fail(f"{path} is missing; CI always has ../shared")
        pytest.skip(f"{path} not found: this test reads ../shared, which a plain clone does not have")
    return path


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file that each test copies (migrating once is much faster)."""
    path = tmp_path_factory.mktemp("sqlite") / "template.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A fresh, migrated PostgreSQL database for this test run, dropped afterwards."""
    try:
        with postgres_database(PG_ADMIN_URL, prefix="leadops_test") as url:
            engine = make_engine(url)
            with engine.connect() as connection:
                # What the migrations write besides the schema (the default sequences): restored after each TRUNCATE.
                _MIGRATED_ROWS[url] = {table: [dict(row._mapping) for row in connection.execute(table.select())]
                                       for table in Base.metadata.sorted_tables if table.name in _SEEDED_TABLES}
            engine.dispose()
            yield url
    except PostgresUnavailable as exc:
        postgres_missing(exc)


def postgres_missing(exc: Exception) -> None:
    """Skips the test, saying why and how to run it; in CI a missing PostgreSQL fails it instead."""
    message = f"PostgreSQL tests skipped: {exc}; start PostgreSQL or set TEST_POSTGRES_URL"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


_SEEDED_TABLES = {"sequence_steps"}
_MIGRATED_ROWS: dict[str, dict[Any, list[dict[str, Any]]]] = {}


def _truncate_all(engine: Engine) -> None:
    """Empties every table and puts back the rows the migrations wrote, as in a freshly migrated database."""
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    url = engine.url.render_as_string(hide_password=False)
    with engine.begin() as connection:
        connection.execute(text(f"TRUNCATE {tables} CASCADE"))
        for table, rows in _MIGRATED_ROWS.get(url, {}).items():
            if rows:
                connection.execute(table.insert(), rows)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty, migrated database: once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        path = tmp_path / "leadops.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite:///{path}"
    url = request.getfixturevalue("pg_database")
    engine = make_engine(url)
    _truncate_all(engine)
    engine.dispose()
    return url


@pytest.fixture
def sqlite_url(tmp_path: Path, sqlite_template: Path) -> str:
    """An empty, migrated SQLite database only (for tests where the backend does not matter)."""
    path = tmp_path / "leadops.db"
    shutil.copy(sqlite_template, path)
    return f"sqlite:///{path}"


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def make_settings(db_url: str) -> Callable[..., Settings]:
    """Settings for this test's database, with overrides; nothing read from the environment."""
    def build(**overrides: Any) -> Settings:
        return Settings(_env_file=None, database_url=db_url, **overrides)  # type: ignore[call-arg]
    return build


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()


@pytest.fixture
def gemini() -> Iterator[GeminiServer]:
    """A local server speaking the Gemini REST protocol."""
    with GeminiServer() as server:
        yield server


@pytest.fixture
def ai_settings(make_settings: Callable[..., Settings], gemini: GeminiServer) -> Settings:
    """Settings whose Gemini endpoint is the local server, with a short timeout."""
    return make_settings(gemini_api_key="test-key", gemini_base_url=gemini.url, gemini_timeout_s=3)


class ApiClient(TestClient):
    """A test client for the HTTP API that knows its engine and a valid key."""

    engine: Engine
    key: str

    def authed(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


@pytest.fixture
def make_api(engine: Engine) -> Callable[[Settings], ApiClient]:
    """Builds the API's routes over this test's database with the given settings."""
    def build(settings: Settings) -> ApiClient:
        app = Starlette(routes=Api(engine=engine, settings=settings).routes())
        client = ApiClient(app, client=("203.0.113.7", 50000))
        client.engine = engine
        with session_scope(engine) as session:
            _key, client.key = api_keys.create(session=session, name="tests")
        client.headers.update(client.authed())
        return client
    return build


@pytest.fixture
def api(make_api: Callable[[Settings], ApiClient], settings: Settings) -> ApiClient:
    """The HTTP API with the rules engine (no Gemini key)."""
    return make_api(settings)


def lead_payload(**overrides: Any) -> dict[str, Any]:
    """A believable lead body for POST /api/leads."""
    body = {
        "full_name": "Dana Whitfield", "email": "dana.whitfield@harborlinefreight.example",
        "phone": "+1 (312) 555-0148", "company": "Harborline Freight", "budget": "$80k-$120k",
        "project_type": "Web app", "source": "website",
        "message": "We need a customer-facing shipment tracking portal with SSO, role-based access, live load "
                   "status from our TMS REST API and document uploads. Budget approved; pilot by the end of Q3.",
    }
    body.update(overrides)
    return body


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Figures that tests record (e.g. the scorer's agreement), shown at the end of every run."""
    figures = [value for report in terminalreporter.stats.get("passed", []) + terminalreporter.stats.get("failed", [])
               if report.when == "call" for name, value in report.user_properties if name.endswith("agreement")]
    if figures:
        terminalreporter.section("figures")
        for figure in figures:
            terminalreporter.write_line(str(figure))
