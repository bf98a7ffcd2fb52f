"""Managing users on SQLite and PostgreSQL: roles, disabling, passwords, unlocking; always one admin left."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from core import audit, auth, users
from core.errors import NotFound, ValidationFailed
from db.models import Role
from db.session import session_scope
from tests.support.factories import PASSWORD, make_user

pytestmark = pytest.mark.usefixtures("fast_bcrypt")


@pytest.fixture
def team(engine: Engine) -> dict[str, str]:
    """An admin, a manager and a staff member: username -> id."""
    with session_scope(engine) as session:
        return {u.username: u.id for u in (make_user(session, "root", Role.ADMIN),
                                           make_user(session, "maria", Role.MANAGER),
                                           make_user(session, "sam", Role.STAFF))}


def signs_in(engine: Engine, username: str, password: str) -> bool:
    with session_scope(engine) as session:
        return auth.check_login(session=session, username=username, password=password).ok


def field_of(error: pytest.ExceptionInfo[ValidationFailed]) -> list[str]:
    return [e.field for e in error.value.errors]


def audit_trail(engine: Engine) -> list[tuple[str, str, str | None, dict]]:
    with session_scope(engine) as session:
        # The users made by the fixtures are audited too; these tests look at what happened after.
        return [(e.action, e.actor, e.target_id, e.detail) for e in reversed(audit.get_all(session=session))
                if e.action != "user.created" and not e.action.startswith("login.")]


def test_users_are_listed_by_username_and_found_by_id(engine: Engine, team: dict[str, str]):
    with session_scope(engine) as session:
        assert [u.username for u in users.get_all(session=session)] == ["maria", "root", "sam"]
        assert users.get(session=session, user_id=team["sam"]).username == "sam"
        assert users.get(session=session, user_id="nope") is None


def test_a_role_change_takes_effect_and_is_audited(engine: Engine, team: dict[str, str]):
    with session_scope(engine) as session:
        users.set_role(session=session, user_id=team["sam"], role="manager", actor="root")
        users.set_role(session=session, user_id=team["sam"], role=Role.MANAGER, actor="root")  # no change: no entry

    with session_scope(engine) as session:
        assert auth.check_login(session=session, username="sam", password=PASSWORD).role == Role.MANAGER
    assert audit_trail(engine) == [("user.role_changed", "root", team["sam"],
                                    {"username": "sam", "from": "staff", "to": "manager"})]


def test_an_unknown_role_is_refused_naming_the_field(engine: Engine, team: dict[str, str]):
    with session_scope(engine) as session, pytest.raises(ValidationFailed) as error:
        users.set_role(session=session, user_id=team["sam"], role="owner", actor="root")
    assert field_of(error) == ["role"]


def test_the_last_active_admin_can_be_neither_demoted_nor_disabled(engine: Engine, team: dict[str, str]):
    with session_scope(engine) as session, pytest.raises(ValidationFailed) as demoted:
        users.set_role(session=session, user_id=team["root"], role=Role.MANAGER, actor="root")
    with session_scope(engine) as session, pytest.raises(ValidationFailed) as disabled:
        users.set_disabled(session=session, user_id=team["root"], disabled=True, actor="root")

    assert field_of(demoted) == ["role"] and field_of(disabled) == ["disabled"]
    assert "last active admin" in str(demoted.value)
    assert signs_in(engine, "root", PASSWORD)
    assert audit_trail(engine) == []


def test_a_disabled_admin_does_not_count_as_the_admin_that_stays(engine: Engine, team: dict[str, str]):
    with session_scope(engine) as session:
        users.set_role(session=session, user_id=team["maria"], role=Role.ADMIN, actor="root")
        users.set_disabled(session=session, user_id=team["maria"], disabled=True, actor="root")

    with session_scope(engine) as session, pytest.raises(ValidationFailed):
        users.set_role(session=session, user_id=team["root"], role=Role.STAFF, actor="root")


def test_with_a_second_admin_the_first_may_step_down(engine: Engine, team: dict[str, str]):
    with session_scope(engine) as session:
        users.set_role(session=session, user_id=team["maria"], role=Role.ADMIN, actor="root")
        users.set_role(session=session, user_id=team["root"], role=Role.VIEWER, actor="root")

    with session_scope(engine) as session:
        assert users.get(session=session, user_id=team["root"]).role == Role.VIEWER


def test_a_disabled_user_cannot_sign_in_until_enabled_again(engine: Engine, team: dict[str, str]):
    with session_scope(engine) as session:
        users.set_disabled(session=session, user_id=team["sam"], disabled=True, actor="root")
    assert not signs_in(engine, "sam", PASSWORD)

    with session_scope(engine) as session:
        users.set_disabled(session=session, user_id=team["sam"], disabled=False, actor="root")
    assert signs_in(engine, "sam", PASSWORD)
    assert [(a, actor) for a, actor, _, _ in audit_trail(engine)] == [("user.disabled", "root"),
                                                                      ("user.enabled", "root")]


def test_a_reset_password_is_strong_works_at_once_and_lifts_a_lockout(engine: Engine, team: dict[str, str]):
    for attempt in range(auth.LOCKOUT_FAILURES):
        signs_in(engine, "sam", f"guess {attempt}")
    assert not signs_in(engine, "sam", PASSWORD), "locked"

    with session_scope(engine) as session:
        new = users.reset_password(session=session, user_id=team["sam"], actor="root")

    users.check_password_rules(new)
    assert len(new) >= 16
    assert signs_in(engine, "sam", new)
    assert not signs_in(engine, "sam", PASSWORD)
    trail = audit_trail(engine)
    assert [(a, actor, target) for a, actor, target, _ in trail] == [("user.password_reset", "root", team["sam"])]
    assert new not in json.dumps([detail for *_, detail in trail])


@pytest.mark.parametrize("change", ["reset", "own change"])
def test_a_password_change_ends_sessions_signed_in_before_it(engine: Engine, team: dict[str, str], change: str):
    with session_scope(engine) as session:
        before = datetime.now(UTC)
        assert not auth.signed_in_before_password_change(users.get(session=session, user_id=team["sam"]), before)
        if change == "reset":
            users.reset_password(session=session, user_id=team["sam"], actor="root")
        else:
            users.change_password(session=session, user_id=team["sam"], current=PASSWORD, new="a brand new secret")
        sam = users.get(session=session, user_id=team["sam"])
        assert auth.signed_in_before_password_change(sam, before)
        assert auth.signed_in_before_password_change(sam, None)  # a session that cannot say when it began
        assert not auth.signed_in_before_password_change(sam, datetime.now(UTC))


def test_two_resets_give_different_passwords(engine: Engine, team: dict[str, str]):
    with session_scope(engine) as session:
        first = users.reset_password(session=session, user_id=team["sam"], actor="root")
        second = users.reset_password(session=session, user_id=team["sam"], actor="root")
    assert first != second


def test_changing_my_password_needs_the_current_one(engine: Engine, team: dict[str, str]):
    with session_scope(engine) as session, pytest.raises(ValidationFailed) as error:
        users.change_password(session=session, user_id=team["sam"], current="wrong one!", new="a new passphrase")
    assert field_of(error) == ["current_password"]
    assert signs_in(engine, "sam", PASSWORD)


@pytest.mark.parametrize("new", ["short", " padded passphrase", "padded passphrase ", "x" * 73, PASSWORD])
def test_a_new_password_must_follow_the_rules(engine: Engine, team: dict[str, str], new: str):
    with session_scope(engine) as session, pytest.raises(ValidationFailed) as error:
        users.change_password(session=session, user_id=team["sam"], current=PASSWORD, new=new)
    assert field_of(error) == ["new_password"]


def test_a_changed_password_is_the_one_that_signs_in(engine: Engine, team: dict[str, str]):
    with session_scope(engine) as session:
        users.change_password(session=session, user_id=team["sam"], current=PASSWORD, new="a new passphrase")

    assert signs_in(engine, "sam", "a new passphrase")
    assert not signs_in(engine, "sam", PASSWORD)
    trail = audit_trail(engine)
    assert [(a, actor) for a, actor, _, _ in trail] == [("user.password_changed", "sam")]
    assert "passphrase" not in json.dumps(trail[0][3])


def test_passwords_padded_with_spaces_are_refused_because_sign_in_strips_them(engine: Engine):
    with pytest.raises(ValidationFailed, match="space"):
        users.check_password_rules(" leading space here")
    with session_scope(engine) as session, pytest.raises(ValidationFailed) as error:
        make_user(session, "pat", Role.STAFF, password="trailing space here ")
    assert field_of(error) == ["password"]


def test_unlock_lets_a_locked_user_sign_in_at_once(engine: Engine, team: dict[str, str]):
    for attempt in range(auth.LOCKOUT_FAILURES):
        signs_in(engine, "sam", f"guess {attempt}")
    with session_scope(engine) as session:
        locked = users.get(session=session, user_id=team["sam"])
        assert locked.locked_until is not None and locked.locked_until > datetime.now(UTC)

        users.unlock(session=session, user_id=team["sam"], actor="root")

    assert signs_in(engine, "sam", PASSWORD)
    assert audit_trail(engine) == [("user.unlocked", "root", team["sam"],
                                    {"username": "sam", "failed_logins": 5, "was_locked": True})]


@pytest.mark.parametrize("change", [
    lambda s: users.set_role(session=s, user_id="missing", role=Role.STAFF, actor="root"),
    lambda s: users.set_disabled(session=s, user_id="missing", disabled=True, actor="root"),
    lambda s: users.reset_password(session=s, user_id="missing", actor="root"),
    lambda s: users.change_password(session=s, user_id="missing", current=PASSWORD, new="a new passphrase"),
    lambda s: users.unlock(session=s, user_id="missing", actor="root"),
])
def test_changes_to_an_unknown_user_raise_not_found(engine: Engine, change: Callable[[Session], object]):
    with session_scope(engine) as session, pytest.raises(NotFound):
        change(session)
