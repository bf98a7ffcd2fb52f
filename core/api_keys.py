"""Bearer keys for the HTTP API: shown once when created, kept only as a SHA-256 digest."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from core import audit
from core.config import Settings
from core.errors import NotFound
from db.models import ApiKey, utcnow

KEY_PREFIX = "lo_"


@dataclass(frozen=True)
class Caller:
    """Who is calling the API: a stored key's id and name, or the key from the environment."""

    key_id: str
    name: str


def _digest(secret: str) -> str:
    # Keys are 32 random bytes, so a fast hash is enough: there is nothing to brute-force.
    return hashlib.sha256(secret.encode()).hexdigest()


def create(*, session: Session, name: str, created_by: str | None = None) -> tuple[ApiKey, str]:
    """A new key; the secret is returned here once and never stored."""
    prefix = secrets.token_hex(4)
    secret = f"{KEY_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
    key = ApiKey(name=name.strip()[:100] or "unnamed", prefix=prefix, key_hash=_digest(secret), created_by=created_by)
    session.add(key)
    session.flush()
    audit.record(session=session, actor=created_by or "system", action="api_key.created", target_type="api_key",
                 target_id=key.id, detail={"name": key.name, "prefix": prefix})
    return key, secret


def get_all(*, session: Session) -> list[ApiKey]:
    """Every key, newest first (revoked ones included)."""
    return list(session.scalars(select(ApiKey).order_by(ApiKey.created_at.desc())))


def revoke(*, session: Session, key_id: str, actor: str = "system") -> None:
    """Stops a key from working; raises NotFound for a key that does not exist (revoking twice is fine)."""
    key = session.get(ApiKey, key_id)
    if key is None:
        raise NotFound(f"no API key with id {key_id}")
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        audit.record(session=session, actor=actor, action="api_key.revoked", target_type="api_key", target_id=key.id,
                     detail={"name": key.name, "prefix": key.prefix})
        session.flush()


def authenticate(*, session: Session, settings: Settings, secret: str) -> Caller | None:
    """The caller a presented key belongs to, or None when it is unknown or revoked."""
    env_key = settings.leadops_api_key.get_secret_value() if settings.leadops_api_key else None
    if env_key and hmac.compare_digest(secret.encode(), env_key.encode()):
        return Caller(key_id="env", name="LEADOPS_API_KEY")
    parts = secret.split("_")
    if len(parts) < 3 or not secret.startswith(KEY_PREFIX):
        return None
    key = session.scalar(select(ApiKey).where(ApiKey.prefix == parts[1]))
    if key is None or key.revoked_at is not None or not hmac.compare_digest(key.key_hash, _digest(secret)):
        return None
    now = utcnow()
    # Once a minute is precise enough for "last used", and spares every request an UPDATE.
    if key.last_used_at is None or (now - key.last_used_at).total_seconds() > 60:
        key.last_used_at = now
    return Caller(key_id=key.id, name=key.name)
