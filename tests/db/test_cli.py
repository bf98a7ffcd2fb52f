"""The `python -m db` and `python -m jobs` commands as an operator runs them."""

import os
import subprocess
import sys

from sqlalchemy import func, select

from core import users
from db.models import Lead, Role, User
from db.session import make_engine, session_scope
from tests.conftest import PROJECT


def run(args: list[str], url: str, stdin: str = "", **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("GEMINI_", "LEADOPS_"))}
    environment.update(DATABASE_URL=url, **env)
    return subprocess.run([sys.executable, *args], input=stdin, capture_output=True, text=True, cwd=PROJECT,
                          env=environment, timeout=120)


def test_upgrade_then_create_user_reads_the_password_from_stdin(tmp_path):
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    assert run(["-m", "db", "upgrade"], url).returncode == 0
    done = run(["-m", "db", "create-user", "Priya", "--role", "manager", "--email", "priya@agency.example"], url,
               stdin="a long enough secret\n")
    assert done.returncode == 0, done.stderr
    assert "a long enough secret" not in done.stdout + done.stderr
    with session_scope(make_engine(url)) as session:
        user = users.get_by_username(session=session, username="priya")
        assert user is not None and user.role == Role.MANAGER
        assert users.verify_password("a long enough secret", user.password_hash)


def test_create_user_refuses_a_short_password_and_a_taken_name(tmp_path):
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    run(["-m", "db", "upgrade"], url)
    short = run(["-m", "db", "create-user", "sam", "--role", "staff"], url, stdin="short\n")
    assert short.returncode == 2 and "password must be at least" in short.stderr
    assert run(["-m", "db", "create-user", "sam", "--role", "staff"], url, stdin="long enough pw 1\n").returncode == 0
    again = run(["-m", "db", "create-user", "sam", "--role", "staff"], url, stdin="long enough pw 1\n")
    assert again.returncode == 2 and "already taken" in again.stderr


def test_setup_creates_the_first_admin_once_and_demo_data_only_in_an_empty_database(tmp_path):
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    first = run(["-m", "db", "setup"], url)
    assert first.returncode == 0, first.stderr
    assert "First admin created: user 'admin', password '" in first.stdout
    second = run(["-m", "db", "setup"], url)
    assert "First admin" not in second.stdout and "demo leads" not in second.stdout
    with session_scope(make_engine(url)) as session:
        assert session.scalar(select(func.count()).select_from(Lead)) == 400
        assert session.scalar(select(func.count()).select_from(User).where(User.role == Role.ADMIN)) == 1


def test_setup_uses_the_configured_admin_password_without_printing_it(tmp_path):
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    done = run(["-m", "db", "setup"], url, LEADOPS_ADMIN_USERNAME="boss", LEADOPS_ADMIN_PASSWORD="chosen by me 42")
    assert done.returncode == 0 and "chosen by me 42" not in done.stdout and "First admin" not in done.stdout
    with session_scope(make_engine(url)) as session:
        boss = users.get_by_username(session=session, username="boss")
        assert boss is not None and users.verify_password("chosen by me 42", boss.password_hash)


def test_api_key_from_the_cli_opens_the_api(tmp_path, sqlite_url):
    from starlette.applications import Starlette
    from starlette.testclient import TestClient

    from api.routes import Api
    from core.config import Settings

    made = run(["-m", "db", "create-api-key", "website form"], sqlite_url)
    assert made.returncode == 0, made.stderr
    secret = made.stdout.strip().splitlines()[-1]
    settings = Settings(_env_file=None, database_url=sqlite_url)
    client = TestClient(Starlette(routes=Api(engine=make_engine(sqlite_url), settings=settings).routes()))
    assert client.get("/api/leads", headers={"Authorization": f"Bearer {secret}"}).status_code == 200
    assert client.get("/api/leads", headers={"Authorization": "Bearer lo_nope_nope"}).status_code == 401


def test_seed_demo_adds_the_requested_number_of_leads(sqlite_url):
    done = run(["-m", "db", "seed-demo", "--leads", "120", "--seed", "3"], sqlite_url)
    assert done.returncode == 0, done.stderr
    assert "created 120 demo leads" in done.stdout
    with session_scope(make_engine(sqlite_url)) as session:
        assert session.scalar(select(func.count()).select_from(Lead)) == 120
        assert not session.scalar(select(func.count()).select_from(Lead).where(Lead.auto_follow_up.is_(True)))


def test_jobs_run_with_an_unknown_name_fails(sqlite_url):
    done = run(["-m", "jobs", "run", "nope"], sqlite_url)
    assert done.returncode != 0 and "invalid choice" in done.stderr
