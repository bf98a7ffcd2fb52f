"""People who sign in: creation, passwords, roles, disabling and the first admin; admin changes are audited."""

from __future__ import annotations

import re
import secrets

import bcrypt
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core import audit, digest, schemas
from core.config import Settings
from core.errors import FieldError, NotFound, ValidationFailed
from db.models import Role, User, utcnow

MIN_PASSWORD = 10
MAX_PASSWORD_BYTES = 72  # bcrypt's limit; bcrypt 5 rejects longer passwords instead of truncating them
_USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")


def hash_password(password: str) -> str:
    """A bcrypt hash of a password that passed `check_password_rules`."""
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt()).decode()


def verify_password(password: str, password_hash: str) -> bool:
    """True when `password` matches the stored hash."""
    data = password.encode()
    if len(data) > MAX_PASSWORD_BYTES:
        return False
    return bcrypt.checkpw(data, password_hash.encode())


def check_password_rules(password: str) -> None:
    """Raises ValidationFailed when a new password is too short, too long for bcrypt or padded with spaces."""
    if password != password.strip():
        # The sign-in widget strips what is typed, so such a password could never be entered again.
        raise ValidationFailed([FieldError("password", "must not start or end with a space")])
    if len(password) < MIN_PASSWORD:
        raise ValidationFailed([FieldError("password", f"must be at least {MIN_PASSWORD} characters")])
    if len(password.encode()) > MAX_PASSWORD_BYTES:
        raise ValidationFailed([FieldError("password", f"must be at most {MAX_PASSWORD_BYTES} bytes")])


def get_by_username(*, session: Session, username: str) -> User | None:
    """The user with this username, or None."""
    return session.scalar(select(User).where(User.username == username.strip().lower()))


def create(*, session: Session, username: str, password: str, role: Role, email: str | None = None,
           name: str | None = None, actor: str = "system") -> User:
    """A new user; raises ValidationFailed for a taken or malformed username or a weak password."""
    username = username.strip().lower()
    if not _USERNAME.match(username):
        raise ValidationFailed([FieldError("username", "2-64 characters: lower-case letters, digits, . _ -")])
    if get_by_username(session=session, username=username) is not None:
        raise ValidationFailed([FieldError("username", f"{username!r} is already taken")])
    check_password_rules(password)
    user = User(username=username, password_hash=hash_password(password), role=role, email=_checked_email(email),
                name=name)
    session.add(user)
    session.flush()
    audit.record(session=session, actor=actor, action="user.created", target_type="user", target_id=user.id,
                 detail={"username": username, "role": Role(role).value})
    return user


def ensure_first_admin(*, session: Session, settings: Settings) -> str | None:
    """Creates the first admin when no user exists; returns the password if one had to be generated."""
    if session.scalar(select(func.count()).select_from(User)):
        return None
    given = settings.leadops_admin_password.get_secret_value() if settings.leadops_admin_password else None
    password = given or secrets.token_urlsafe(12)
    create(session=session, username=settings.leadops_admin_username, password=password, role=Role.ADMIN,
           name="Administrator")
    return None if given else password


def get_all(*, session: Session) -> list[User]:
    """Every user, by username (disabled ones included)."""
    return list(session.scalars(select(User).order_by(User.username)))


def get(*, session: Session, user_id: str) -> User | None:
    """The user with this id, or None."""
    return session.get(User, user_id)


def _get_or_raise(session: Session, user_id: str) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(f"no user with id {user_id}")
    return user


def _keep_an_admin(session: Session, user: User, field: str) -> None:
    """Raises ValidationFailed when `user` is the only active admin left."""
    # The admins' rows are locked (PostgreSQL), so two admins demoting each other at once cannot both succeed.
    active_admins = session.scalars(select(User.id).where(User.role == Role.ADMIN, User.disabled.is_(False))
                                    .with_for_update()).all()
    if list(active_admins) == [user.id]:
        raise ValidationFailed([FieldError(field, "the last active admin must stay an active admin")])


def set_role(*, session: Session, user_id: str, role: Role | str, actor: str) -> User:
    """Gives a user another role; refuses to demote the last active admin."""
    user = _get_or_raise(session, user_id)
    try:
        role = Role(role)
    except ValueError:
        raise ValidationFailed([FieldError("role", f"must be one of {', '.join(r.value for r in Role)}")]) from None
    if role == user.role:
        return user
    if user.role == Role.ADMIN and not user.disabled:
        _keep_an_admin(session, user, "role")
    audit.record(session=session, actor=actor, action="user.role_changed", target_type="user", target_id=user.id,
                 detail={"username": user.username, "from": user.role.value, "to": role.value})
    user.role = role
    session.flush()
    return user


def set_disabled(*, session: Session, user_id: str, disabled: bool, actor: str) -> User:
    """Disables (or re-enables) a user's sign-in; refuses to disable the last active admin."""
    user = _get_or_raise(session, user_id)
    if user.disabled == disabled:
        return user
    if disabled and user.role == Role.ADMIN:
        _keep_an_admin(session, user, "disabled")
    audit.record(session=session, actor=actor, action="user.disabled" if disabled else "user.enabled",
                 target_type="user", target_id=user.id, detail={"username": user.username})
    user.disabled = disabled
    session.flush()
    return user


def reset_password(*, session: Session, user_id: str, actor: str) -> str:
    """Gives a user a new random password and clears any lockout; the password is returned here only."""
    user = _get_or_raise(session, user_id)
    password = secrets.token_urlsafe(15)  # 20 characters, 120 bits
    user.password_hash, user.password_changed_at = hash_password(password), utcnow()
    user.failed_logins, user.locked_until = 0, None
    audit.record(session=session, actor=actor, action="user.password_reset", target_type="user", target_id=user.id,
                 detail={"username": user.username})
    session.flush()
    return password


def change_password(*, session: Session, user_id: str, current: str, new: str) -> None:
    """Replaces a user's own password after checking the current one."""
    user = _get_or_raise(session, user_id)
    if not verify_password(current, user.password_hash):
        raise ValidationFailed([FieldError("current_password", "is not your current password")])
    try:
        check_password_rules(new)
    except ValidationFailed as exc:
        raise ValidationFailed([FieldError("new_password", e.message) for e in exc.errors]) from None
    if new == current:
        raise ValidationFailed([FieldError("new_password", "must differ from the current password")])
    user.password_hash, user.password_changed_at = hash_password(new), utcnow()
    user.failed_logins, user.locked_until = 0, None
    audit.record(session=session, actor=user.username, action="user.password_changed", target_type="user",
                 target_id=user.id, detail={"username": user.username})
    session.flush()


def unlock(*, session: Session, user_id: str, actor: str) -> User:
    """Lifts a sign-in lockout and restarts the failure count."""
    user = _get_or_raise(session, user_id)
    audit.record(session=session, actor=actor, action="user.unlocked", target_type="user", target_id=user.id,
                 detail={"username": user.username, "failed_logins": user.failed_logins,
                         "was_locked": user.locked_until is not None and user.locked_until > utcnow()})
    user.failed_logins, user.locked_until = 0, None
    session.flush()
    return user


def set_digest_opt_in(*, session: Session, user_id: str, opt_in: bool, actor: str) -> User:
    """Turns the founders' digest email on or off for a user; only viewers, managers and admins with an email."""
    user = _get_or_raise(session, user_id)
    if opt_in and not digest.may_receive(user.role):
        raise ValidationFailed([FieldError("digest_opt_in", "the report email is for viewers, managers and admins")])
    if opt_in and not (user.email or "").strip():
        raise ValidationFailed([FieldError("digest_opt_in", "needs an email address on the account")])
    if user.digest_opt_in == opt_in:
        return user
    audit.record(session=session, actor=actor, action="user.digest_opted_in" if opt_in else "user.digest_opted_out",
                 target_type="user", target_id=user.id, detail={"username": user.username})
    user.digest_opt_in = opt_in
    session.flush()
    return user


def set_email(*, session: Session, user_id: str, email: str | None, actor: str) -> User:
    """Sets (or clears) a user's email address, checked and lower-cased; clearing it stops the report email."""
    user = _get_or_raise(session, user_id)
    new = _checked_email(email)
    if new == user.email:
        return user
    user.email = new
    if new is None:
        user.digest_opt_in = False
    audit.record(session=session, actor=actor, action="user.email_changed", target_type="user", target_id=user.id,
                 detail={"username": user.username})
    session.flush()
    return user


def _checked_email(email: str | None) -> str | None:
    """The address checked and normalised as the intake does, None when blank; ValidationFailed names the field."""
    address = (email or "").strip()
    if not address:
        return None
    try:
        return schemas.normalise_email(address)
    except ValueError as exc:
        raise ValidationFailed([FieldError("email", str(exc))]) from None
