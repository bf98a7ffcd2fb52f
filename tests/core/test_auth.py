"""Sign-in on SQLite and PostgreSQL: passwords, the lockout after five failures, no user enumeration, the audit."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import bcrypt
import pytest
from sqlalchemy import Engine

from core import audit, auth, users
from db.models import Role, User
from db.session import session_scope
from tests.support.factories import PASSWORD, make_user

NOW = datetime(2026, 3, 4, 14, 5, tzinfo=UTC)


pytestmark = pytest.mark.usefixtures("fast_bcrypt")


@pytest.fixture
def dana(engine: Engine) -> str:
    with session_scope(engine) as session:
        return make_user(session, "dana", Role.MANAGER, email="dana@example.com", name="Dana Whitfield").id


def login(engine: Engine, username: str, password: str, now: datetime = NOW) -> auth.LoginResult:
    with session_scope(engine) as session:
        return auth.check_login(session=session, username=username, password=password, now=now)


def user_row(engine: Engine, user_id: str) -> User:
    with session_scope(engine) as session:
        user = session.get(User, user_id)
        assert user is not None
        return user


def test_the_right_password_signs_in_whatever_the_case_and_spaces_of_the_username(engine: Engine, dana: str):
    result = login(engine, "  Dana ", PASSWORD)

    assert result.ok
    assert (result.user_id, result.username, result.role, result.locked_until) == (dana, "dana", Role.MANAGER, None)


def test_wrong_password_unknown_and_disabled_users_all_get_the_same_answer(engine: Engine, dana: str):
    with session_scope(engine) as session:
        make_user(session, "former", Role.STAFF)
        users.set_disabled(session=session, user_id=users.get_by_username(session=session, username="former").id,
                           disabled=True, actor="admin")

    answers = [login(engine, "dana", "not the password"), login(engine, "nobody", PASSWORD),
               login(engine, "former", PASSWORD)]

    assert {a.message for a in answers} == {auth.WRONG_CREDENTIALS}
    assert all(not a.ok and a.user_id is None and a.username is None and a.role is None for a in answers)


def test_unknown_and_disabled_users_cost_a_password_check_like_everyone_else(
        engine: Engine, dana: str, monkeypatch: pytest.MonkeyPatch):
    checks: list[bytes] = []
    real = bcrypt.checkpw
    monkeypatch.setattr(bcrypt, "checkpw", lambda password, hashed: checks.append(hashed) or real(password, hashed))

    login(engine, "dana", "not the password")
    login(engine, "nobody", "not the password")

    assert len(checks) == 2
    assert bcrypt.gensalt().split(b"$")[2] == checks[1].split(b"$")[2], "the stand-in hash has the usual cost"


def test_the_fifth_failure_locks_the_account_for_fifteen_minutes(engine: Engine, dana: str):
    for attempt in range(1, auth.LOCKOUT_FAILURES):
        result = login(engine, "dana", f"guess {attempt}", NOW + timedelta(seconds=attempt))
        assert (result.ok, result.message, result.locked_until) == (False, auth.WRONG_CREDENTIALS, None)
    assert user_row(engine, dana).failed_logins == 4

    fifth = login(engine, "dana", "guess 5", NOW)

    assert not fifth.ok
    assert fifth.locked_until == NOW + timedelta(minutes=15)
    assert "locked until 14:20 (UTC)" in fifth.message and "15 minutes" in fifth.message
    assert user_row(engine, dana).locked_until == NOW + timedelta(minutes=15)


def test_while_locked_even_the_right_password_is_refused(engine: Engine, dana: str):
    for attempt in range(auth.LOCKOUT_FAILURES):
        login(engine, "dana", f"guess {attempt}")

    during = login(engine, "DANA", PASSWORD, NOW + timedelta(minutes=14, seconds=59))

    assert not during.ok
    assert "locked until 14:20 (UTC)" in during.message
    assert user_row(engine, dana).locked_until == NOW + timedelta(minutes=15), "retrying does not extend the lock"


def test_after_the_lock_runs_out_the_right_password_works_and_the_count_restarts(engine: Engine, dana: str):
    for attempt in range(auth.LOCKOUT_FAILURES):
        login(engine, "dana", f"guess {attempt}")
    later = NOW + timedelta(minutes=15)

    one_more_miss = login(engine, "dana", "still wrong", later)

    assert one_more_miss.message == auth.WRONG_CREDENTIALS, "the next wrong password is a first failure again"
    assert (user_row(engine, dana).failed_logins, user_row(engine, dana).locked_until) == (1, None)
    assert login(engine, "dana", PASSWORD, later).ok


def test_a_successful_sign_in_resets_the_failure_count(engine: Engine, dana: str):
    for attempt in range(auth.LOCKOUT_FAILURES - 1):
        login(engine, "dana", f"guess {attempt}")
    assert login(engine, "dana", PASSWORD).ok
    assert user_row(engine, dana).failed_logins == 0

    for attempt in range(auth.LOCKOUT_FAILURES - 1):
        assert login(engine, "dana", f"guess {attempt}").message == auth.WRONG_CREDENTIALS
    assert user_row(engine, dana).locked_until is None


def test_every_attempt_is_audited_with_its_reason_and_never_the_password(engine: Engine, dana: str):
    login(engine, " Dana ", PASSWORD)
    login(engine, "nobody", "secret-attempt-1")
    for attempt in range(auth.LOCKOUT_FAILURES):
        login(engine, "dana", f"secret-attempt-{attempt + 2}")
    login(engine, "dana", PASSWORD)
    login(engine, "x" * 300, "secret-attempt-9")

    with session_scope(engine) as session:
        events = [e for e in reversed(audit.get_all(session=session)) if e.action.startswith("login.")]
    assert [(e.action, e.actor, e.detail["reason"]) for e in events] == [
        ("login.ok", "Dana", "password accepted"),
        ("login.failed", "nobody", "unknown user"),
        *[("login.failed", "dana", "wrong password")] * 4,
        ("login.locked", "dana", "wrong password"),
        ("login.locked", "dana", "account locked"),
        ("login.failed", "x" * 100, "unknown user"),
    ]
    assert events[0].target_id == dana and events[1].target_id is None
    stored = json.dumps([e.detail for e in events])
    assert "secret-attempt" not in stored and PASSWORD not in stored


def test_active_user_is_none_for_unknown_and_disabled_users(engine: Engine, dana: str):
    with session_scope(engine) as session:
        assert auth.active_user(session=session, username="Dana").id == dana
        assert auth.active_user(session=session, username="nobody") is None
        users.set_disabled(session=session, user_id=dana, disabled=True, actor="admin")
        assert auth.active_user(session=session, username="dana") is None


def test_authenticator_credentials_list_active_users_with_their_hashes(engine: Engine, dana: str):
    with session_scope(engine) as session:
        gone = make_user(session, "former", Role.STAFF)
        users.set_disabled(session=session, user_id=gone.id, disabled=True, actor="admin")
        make_user(session, "viewer1", Role.VIEWER)
        credentials = auth.authenticator_credentials(session=session)

    assert sorted(credentials["usernames"]) == ["dana", "viewer1"]
    entry = credentials["usernames"]["dana"]
    assert {k: v for k, v in entry.items() if k != "password"} == {
        "email": "dana@example.com", "name": "Dana Whitfield", "roles": ["manager"], "failed_login_attempts": 0,
        "logged_in": False}
    assert entry["password"] != PASSWORD and bcrypt.checkpw(PASSWORD.encode(), entry["password"].encode())
    assert credentials["usernames"]["viewer1"]["name"] == "viewer1"
