"""Domain errors that pages and the HTTP API turn into messages for people."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FieldError:
    """One problem with one input field."""

    field: str
    message: str


class LeadOpsError(Exception):
    """Base of every error LeadOps raises on purpose."""


class ValidationFailed(LeadOpsError):
    """Input was rejected; `errors` names each field and what is wrong with it."""

    def __init__(self, errors: list[FieldError]):
        self.errors = errors
        super().__init__("; ".join(f"{e.field}: {e.message}" for e in errors))


class NotFound(LeadOpsError):
    """The thing asked for does not exist."""


class IdempotencyConflict(LeadOpsError):
    """An idempotency key was used again with a different request."""
