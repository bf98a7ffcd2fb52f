"""Claiming rows of work (follow-ups, webhook deliveries) so that two passes never handle the same row.

A claim is a token and an expiry written onto the row in one statement. PostgreSQL picks the rows with
`FOR UPDATE SKIP LOCKED`, so concurrent passes take different rows without waiting for each other; SQLite has one
writer at a time, so the conditional UPDATE alone is enough there. A pass that dies leaves its claims to run out:
a row whose `claimed_until` has passed is free again.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, or_, select, update
from sqlalchemy.orm import Session

from db.session import run_with_retry, session_scope


def is_free(model: Any, now: datetime) -> ColumnElement[bool]:
    """The row is not claimed, or its claim has run out."""
    return or_(model.claimed_until.is_(None), model.claimed_until < now)


def claim(*, session: Session, model: Any, ready: ColumnElement[bool], order_by: Sequence[Any], limit: int,
          now: datetime, lease: timedelta) -> tuple[str, list[str]]:
    """Claims up to `limit` ready, unclaimed rows of `model` in one statement; returns the token and their ids."""
    token = secrets.token_hex(16)
    pick = select(model.id).where(ready, is_free(model, now)).order_by(*order_by).limit(limit)
    if session.get_bind().dialect.name == "postgresql":
        pick = pick.with_for_update(skip_locked=True)
    # The free condition is repeated on the UPDATE itself: on SQLite that re-check is what makes the claim exclusive.
    stmt = (update(model).where(model.id.in_(pick.scalar_subquery()), is_free(model, now))
            .values(claim_token=token, claimed_until=now + lease).returning(model.id)
            .execution_options(synchronize_session=False))
    return token, list(session.scalars(stmt))


def claim_batch(*, engine: Any, model: Any, ready: ColumnElement[bool], order_by: Sequence[Any], limit: int,
                now: datetime, lease: timedelta) -> tuple[str, list[str]]:
    """`claim` in its own short transaction (committed at once, retried when the database is busy)."""
    def run() -> tuple[str, list[str]]:
        with session_scope(engine) as session:
            return claim(session=session, model=model, ready=ready, order_by=order_by, limit=limit, now=now,
                         lease=lease)
    return run_with_retry(run, what=f"claiming {model.__tablename__}")


def release(*, session: Session, model: Any, row_id: str, token: str) -> bool:
    """Clears this pass's claim on one row; False when the claim ran out and another pass owns the row now."""
    stmt = (update(model).where(model.id == row_id, model.claim_token == token)
            .values(claim_token=None, claimed_until=None).execution_options(synchronize_session=False))
    return bool(session.execute(stmt).rowcount)
