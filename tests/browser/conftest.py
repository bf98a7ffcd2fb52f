"""The real web process (`streamlit run app.py`) on a free port over a fresh SQLite database, and headless Chromium."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from core.config import Settings
from db.scratch import sqlite_database
from tests.conftest import IN_CI, PROJECT

OUTPUT = PROJECT / "test-output"
CONTRACT_VARS = {name.upper() for name in Settings.model_fields}
STARTUP_TIMEOUT_S = 60
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def _missing(message: str) -> None:
    # CI installs Chromium and Playwright (.ci/run, requirements-dev.txt): there a missing browser is a failure.
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


def chromium_path() -> str | None:
    for candidate in (os.environ.get("CHROMIUM_PATH"), shutil.which("chromium"), shutil.which("chromium-browser"),
                      "/usr/bin/chromium"):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class WebServer:
    """The running web process: its address and its database."""

    url: str
    database_url: str


def _server_env(database_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k.upper() not in CONTRACT_VARS}
    env["DATABASE_URL"] = database_url
    # A developer's .env must not reach the server either: these mean "unset" when empty (no Gemini, mail, webhooks).
    env.update(GEMINI_API_KEY="", SMTP_HOST="", WEBHOOK_URL="", LEADOPS_API_KEY="")
    env.update(STREAMLIT_BROWSER_GATHER_USAGE_STATS="false", PYTHONUNBUFFERED="1")
    return env


@pytest.fixture(scope="session")
def web_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebServer]:
    """`streamlit run app.py` as a subprocess until the session ends; ready once /api/health answers 200."""
    with serve(tmp_path_factory.mktemp("web") / "streamlit.log") as server:
        yield server


@pytest.fixture(scope="module")
def empty_web_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebServer]:
    """A second web process over its own fresh database, for one module: no test elsewhere adds leads to it."""
    with serve(tmp_path_factory.mktemp("web-empty") / "streamlit.log") as server:
        yield server


@contextmanager
def serve(log_path: Path) -> Iterator[WebServer]:
    """`streamlit run app.py` on a free port over a fresh SQLite database, stopped when the block ends."""
    port = _free_port()
    with sqlite_database() as database_url, log_path.open("wb") as log:
        command = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
                   "--server.address", "127.0.0.1", "--server.headless", "true"]
        process = subprocess.Popen(command, cwd=PROJECT, env=_server_env(database_url), stdout=log,
                                   stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"
        try:
            _wait_until_healthy(base, process, log_path)
            yield WebServer(url=base, database_url=database_url)
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)


def _wait_until_healthy(base: str, process: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    last = "no answer yet"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the web process exited with {process.returncode}:\n{log_path.read_text(errors='replace')}")
        try:
            response = httpx.get(f"{base}/api/health", timeout=2)
            if response.status_code == 200:
                return
            last = f"{response.status_code} {response.text[:200]}"
        except httpx.HTTPError as exc:
            last = type(exc).__name__
        time.sleep(0.25)
    pytest.fail(f"GET /api/health did not answer 200 within {STARTUP_TIMEOUT_S}s ({last}):\n"
                f"{log_path.read_text(errors='replace')}")


# One browser per test module: Playwright's sync API keeps an event loop running while it is open, which would
# break later tests that start their own (asyncio.run) if it lived for the whole session.
@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium through Playwright (the system's Chromium: Playwright's own download is not used)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("browser tests skipped: Playwright is not installed (pip install -r requirements-dev.txt)")
    executable = chromium_path()
    if executable is None:
        _missing("browser tests skipped: Chromium not found (apt-get install chromium, or set CHROMIUM_PATH)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def output_dir() -> Path:
    """test-output/ in the project (git-ignored), for screenshots."""
    OUTPUT.mkdir(exist_ok=True)
    return OUTPUT
