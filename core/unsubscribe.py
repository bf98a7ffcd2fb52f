"""Unsubscribe links: signed per lead, so nobody can unsubscribe someone else by guessing an id."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable

from sqlalchemy.orm import Session

from core import app_settings

UNSUBSCRIBE_KEY = "unsubscribe_key"


def _key(session: Session) -> bytes:
    # Generated once at random and kept in the database, like the cookie key: never a fixed default.
    return app_settings.get_or_create_secret(session=session, key=UNSUBSCRIBE_KEY).encode()


def _signature(key: bytes, lead_id: str) -> str:
    digest = hmac.new(key, f"unsubscribe:{lead_id}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:18]).decode()


def token_for(*, session: Session, lead_id: str) -> str:
    """The token of a lead's unsubscribe link."""
    return f"{lead_id}.{_signature(_key(session), lead_id)}"


def url_for(*, session: Session, lead_id: str, base_url: str) -> str:
    """The full unsubscribe link for a lead (`GET` shows a page, `POST` is RFC 8058's one-click)."""
    return f"{base_url.rstrip('/')}/u/{token_for(session=session, lead_id=lead_id)}"


def link_maker(*, session: Session, base_url: str) -> Callable[[str], str]:
    """A function making unsubscribe links, reading the key once (a pass makes many links)."""
    key = _key(session)
    base = base_url.rstrip("/")
    return lambda lead_id: f"{base}/u/{lead_id}.{_signature(key, lead_id)}"


def lead_id_of(*, session: Session, token: str) -> str | None:
    """The lead a token was made for, or None when it was not made here."""
    lead_id, _, signature = token.partition(".")
    if not lead_id or not signature or len(token) > 100:
        return None
    expected = _signature(_key(session), lead_id)
    return lead_id if hmac.compare_digest(expected, signature) else None
