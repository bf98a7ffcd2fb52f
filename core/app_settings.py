"""Settings kept in the database: the business profile, scoring, allowed form origins, the cookie key."""

from __future__ import annotations

import secrets
import time
from typing import Any
from urllib.parse import SplitResult, urlsplit

from pydantic import BaseModel
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core import audit
from core.errors import FieldError, ValidationFailed
from core.profile import BusinessProfile, ScoringConfig
from db.models import AppSetting
from db.session import session_scope

PROFILE = "business_profile"
SCORING = "scoring"
ALLOWED_ORIGINS = "allowed_origins"
COOKIE_KEY = "cookie_key"
SCORING_INPUTS_TTL_S = 5.0

# Per-process copy of the profile and scoring, read for every lead: (engine url) -> (read at, profile, scoring).
_scoring_inputs: dict[str, tuple[float, BusinessProfile, ScoringConfig]] = {}


def get_value(*, session: Session, key: str) -> dict[str, Any] | None:
    """The stored value under `key`, or None."""
    row = session.get(AppSetting, key)
    return row.value if row else None


def set_value(*, session: Session, key: str, value: dict[str, Any], actor: str = "system") -> None:
    """Stores `value` under `key`, replacing what was there, with an audit entry (the value itself is not copied)."""
    row = session.get(AppSetting, key)
    if row is None:
        session.add(AppSetting(key=key, value=value))
    else:
        row.value = value
    audit.record(session=session, actor=actor, action="settings.changed", target_type="setting", target_id=key)
    session.flush()


def scoring_inputs(*, engine: Engine) -> tuple[BusinessProfile, ScoringConfig]:
    """The business profile and scoring, re-read at most every few seconds (edits here take effect at once)."""
    key = engine.url.render_as_string(hide_password=False)
    cached = _scoring_inputs.get(key)
    if cached and time.monotonic() - cached[0] < SCORING_INPUTS_TTL_S:
        return cached[1], cached[2]
    with session_scope(engine) as session:
        profile, scoring = get_profile(session=session), get_scoring(session=session)
    _scoring_inputs[key] = (time.monotonic(), profile, scoring)
    return profile, scoring


def get_profile(*, session: Session) -> BusinessProfile:
    """The business profile (defaults until an admin edits it)."""
    return BusinessProfile.model_validate(get_value(session=session, key=PROFILE) or {})


def set_profile(*, session: Session, profile: BusinessProfile, actor: str = "system") -> None:
    """Saves the business profile."""
    set_value(session=session, key=PROFILE, value=profile.model_dump(), actor=actor)
    _scoring_inputs.clear()


def get_scoring(*, session: Session) -> ScoringConfig:
    """The score bands and factor weights (defaults until a manager tunes them)."""
    return ScoringConfig.model_validate(get_value(session=session, key=SCORING) or {})


def set_scoring(*, session: Session, scoring: ScoringConfig, actor: str = "system") -> None:
    """Saves the score bands and factor weights."""
    set_value(session=session, key=SCORING, value=scoring.model_dump(), actor=actor)
    _scoring_inputs.clear()


class AllowedOrigins(BaseModel):
    origins: list[str] = []


def get_allowed_origins(*, session: Session) -> list[str]:
    """Web origins whose pages may post to the public lead form endpoint."""
    return AllowedOrigins.model_validate(get_value(session=session, key=ALLOWED_ORIGINS) or {}).origins


def set_allowed_origins(*, session: Session, origins: list[str], actor: str = "system") -> None:
    """Saves the allowed origins for the public form; raises ValidationFailed naming each line that is no origin."""
    checked, problems = set(), []
    for number, typed in enumerate(origins, start=1):
        try:
            checked.add(normalise_origin(typed))
        except ValueError as exc:
            problems.append(FieldError("origins", f"line {number}: {exc}"))
    if problems:
        raise ValidationFailed(problems)
    set_value(session=session, key=ALLOWED_ORIGINS, value={"origins": sorted(checked)}, actor=actor)


def normalise_origin(typed: str) -> str:
    """`scheme://host[:port]` as a browser sends it in its Origin header (lower case, no default port), or
    ValueError saying what is wrong: a browser never sends a path, so "www.x.com" or "https://x.com/contact" would
    silently never match."""
    # U+2060 comes along when a suggestion is copied out of an error message (core.display.plain puts it there).
    text = typed.replace("\u2060", "").strip()
    shown = text if len(text) <= 60 else text[:57] + "..."
    parts = urlsplit(text if "://" in text else f"//{text}")
    host = parts.hostname or ""
    shown_host = f"[{host}]" if ":" in host else host  # an IPv6 address keeps its brackets
    if parts.scheme.lower() not in ("http", "https") or not host:
        raise ValueError(f"{shown!r} is not a web origin: write it as https://{shown_host or 'www.example.com'}")
    if parts.username or parts.password or parts.query or parts.fragment or parts.path not in ("", "/"):
        raise ValueError(f"{shown!r} has more than an origin: keep only {parts.scheme.lower()}://{shown_host}"
                         + (f":{parts.port}" if _port(parts) else ""))
    port = _port(parts)
    if port is None:
        raise ValueError(f"{shown!r} has a port that is not a number from 1 to 65535")
    scheme = parts.scheme.lower()
    return f"{scheme}://{shown_host}" + (f":{port}" if port and port != {"http": 80, "https": 443}[scheme] else "")


def _port(parts: SplitResult) -> int | None:
    """The URL's port, 0 when it names none, None when it is not a valid port."""
    try:
        return parts.port or 0
    except ValueError:
        return None


def get_or_create_secret(*, session: Session, key: str) -> str:
    """A random secret kept under `key`: generated once, never a fixed default; the same for concurrent callers."""
    stored = get_value(session=session, key=key)
    if stored:
        return str(stored["key"])
    candidate = secrets.token_urlsafe(32)
    try:
        # In a savepoint: when another process stores its secret first, ours is dropped and theirs is read.
        with session.begin_nested():
            session.add(AppSetting(key=key, value={"key": candidate}))
    except IntegrityError:
        row = session.get(AppSetting, key, populate_existing=True)
        assert row is not None
        return str(row.value["key"])
    audit.record(session=session, actor="system", action="settings.changed", target_type="setting", target_id=key)
    return candidate


def get_or_create_cookie_key(*, session: Session) -> str:
    """The login cookie's signing key: generated once at random and kept, never a fixed default."""
    return get_or_create_secret(session=session, key=COOKIE_KEY)
