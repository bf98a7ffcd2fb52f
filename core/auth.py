"""Sign-in checks kept in the database: passwords, lockout after repeated failures, and the audit of every attempt.

streamlit-authenticator draws the form and sets the cookie; its own lockout lives in memory and does not hold, so
the decision is made here.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core import audit, users
from db.models import Role, User, utcnow

LOCKOUT_FAILURES = 5
LOCKOUT_MINUTES = 15
WRONG_CREDENTIALS = "Wrong username or password."
MAX_ACTOR = 100


@dataclass(frozen=True)
class LoginResult:
    """The outcome of one sign-in attempt; who it was is filled in only when it succeeded."""

    ok: bool
    user_id: str | None
    username: str | None
    role: Role | None
    locked_until: datetime | None
    message: str


@cache
def _unknown_user_hash() -> str:
    # Checked for unknown and disabled users, so they take as long as a wrong password (no user enumeration).
    return users.hash_password(secrets.token_urlsafe(16))


def _locked_message(until: datetime) -> str:
    return (f"Too many failed sign-ins: this account is locked until {until.astimezone(UTC):%H:%M} (UTC) "
            f"for {LOCKOUT_MINUTES} minutes.")


def _failed(locked_until: datetime | None = None) -> LoginResult:
    message = _locked_message(locked_until) if locked_until else WRONG_CREDENTIALS
    return LoginResult(ok=False, user_id=None, username=None, role=None, locked_until=locked_until, message=message)


def check_login(*, session: Session, username: str, password: str, now: datetime | None = None) -> LoginResult:
    """Checks a username and password, counting failures and locking the account after too many."""
    now = now or utcnow()
    typed = username.strip()[:MAX_ACTOR]
    user = session.scalar(select(User).where(User.username == username.strip().lower()).with_for_update())

    def log(action: str, reason: str, **detail: Any) -> None:
        audit.record(session=session, actor=typed, action=action, target_type="user",
                     target_id=user.id if user else None, detail={"reason": reason, **detail})

    if user is None or user.disabled:
        users.verify_password(password, _unknown_user_hash())
        log("login.failed", "unknown user" if user is None else "user disabled")
        return _failed()
    if user.locked_until is not None:
        if user.locked_until > now:
            log("login.locked", "account locked", locked_until=user.locked_until.isoformat())
            return _failed(user.locked_until)
        # The lock has run out: a fresh series of attempts.
        user.failed_logins, user.locked_until = 0, None
    if users.verify_password(password, user.password_hash):
        user.failed_logins, user.locked_until = 0, None
        log("login.ok", "password accepted")
        session.flush()
        return LoginResult(ok=True, user_id=user.id, username=user.username, role=user.role, locked_until=None,
                           message=f"Signed in as {user.username}.")
    user.failed_logins += 1
    if user.failed_logins >= LOCKOUT_FAILURES:
        user.locked_until = now + timedelta(minutes=LOCKOUT_MINUTES)
        log("login.locked", "wrong password", failed_logins=user.failed_logins,
            locked_until=user.locked_until.isoformat())
    else:
        log("login.failed", "wrong password", failed_logins=user.failed_logins)
    session.flush()
    return _failed(user.locked_until)


def active_user(*, session: Session, username: str) -> User | None:
    """The user with this username if it exists and is not disabled, or None."""
    user = users.get_by_username(session=session, username=username)
    return user if user is not None and not user.disabled else None


def signed_in_before_password_change(user: User, signed_in_at: datetime | None) -> bool:
    """True when this session began before the user's password was last changed or reset: it must end, so a change
    locks out whoever else held the account (another browser, a stolen cookie)."""
    changed = user.password_changed_at
    return changed is not None and (signed_in_at is None or signed_in_at < changed)


def authenticator_credentials(*, session: Session) -> dict[str, Any]:
    """The active users in the shape streamlit-authenticator 0.4.2 takes (password hashes, never passwords)."""
    active = session.scalars(select(User).where(User.disabled.is_(False)).order_by(User.username))
    return {"usernames": {
        user.username: {"email": user.email or "", "name": user.name or user.username, "password": user.password_hash,
                        "roles": [user.role.value], "failed_login_attempts": 0, "logged_in": False}
        for user in active
    }}
