"""The shapes of leads going in and coming out, with their validation rules."""

from __future__ import annotations

import re
import unicodedata
from datetime import datetime
from typing import Annotated, Any

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    StrictStr,
    ValidationError,
)

from core.errors import FieldError, ValidationFailed
from db.models import LeadStatus

MAX_NAME = 200
MAX_EMAIL = 254
MAX_PHONE = 40
MAX_COMPANY = 200
MAX_BUDGET = 200
MAX_PROJECT_TYPE = 100
MAX_SOURCE = 50
MAX_MESSAGE = 10_000
MAX_NOTE = 5_000

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# JSON may escape half of a UTF-16 pair ("\ud800"): such a string cannot be encoded, so no database can store it.
_SURROGATE = re.compile(r"[\ud800-\udfff]")
_PHONE_CHARS = re.compile(r"^[0-9+()\-./\s]+(\s*(ext\.?|x|#)\s*\d{1,6})?$", re.IGNORECASE)
_SOURCE_CHARS = re.compile(r"^[\w .:/-]+$")


def _clean(value: str) -> str:
    # NUL and other control characters break databases and terminals; tabs and newlines are kept.
    if _CONTROL.search(value):
        raise ValueError("must not contain control characters")
    if _SURROGATE.search(value):
        raise ValueError("must be valid Unicode text (it holds an unpaired surrogate)")
    return unicodedata.normalize("NFC", value).strip()


def _required(value: str) -> str:
    if not value:
        raise ValueError("is required")
    return value


def _blank_to_none(value: Any) -> Any:
    return None if isinstance(value, str) and not value.strip() else value


def normalise_email(value: str) -> str:
    """The address in its checked, lower-case form; raises ValueError when it is not an address."""
    try:
        # Deliverability (DNS) is not checked: intake must not wait on the network.
        checked = validate_email(value, check_deliverability=False, test_environment=True)
    except EmailNotValidError as exc:
        raise ValueError(f"is not a valid email address ({exc})") from exc
    return checked.normalized.lower()


def normalise_phone(value: str) -> str:
    """E.164 when the number can be read (international form), otherwise the number as typed."""
    if not _PHONE_CHARS.match(value) or not re.search(r"\d", value):
        raise ValueError("is not a phone number (digits, spaces, + ( ) - . only)")
    try:
        parsed = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException:
        return value
    if phonenumbers.is_valid_number(parsed):
        return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    return value


def _max(limit: int) -> Any:
    def check(value: str) -> str:
        if len(value) > limit:
            raise ValueError(f"must be at most {limit} characters (got {len(value)})")
        return value
    return check


def _optional(fn: Any) -> Any:
    return lambda value: None if value is None else (fn(value) or None)


def _required_text(limit: int, *extra: Any) -> Any:
    return Annotated[StrictStr, AfterValidator(_clean), AfterValidator(_required), AfterValidator(_max(limit)), *extra]


def _optional_text(limit: int, *extra: Any) -> Any:
    return Annotated[StrictStr | None, BeforeValidator(_blank_to_none), AfterValidator(_optional(_clean)),
                     AfterValidator(_optional(_max(limit))), *(AfterValidator(_optional(f)) for f in extra)]


def _source(value: str) -> str:
    if not _SOURCE_CHARS.match(value):
        raise ValueError("may hold only letters, digits, spaces and . : / _ -")
    return value.lower()


class LeadCreate(BaseModel):
    """A lead as a form, another system or a person submits it."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=False)

    full_name: _required_text(MAX_NAME)  # type: ignore[valid-type]
    email: _required_text(MAX_EMAIL, AfterValidator(normalise_email))  # type: ignore[valid-type]
    message: _required_text(MAX_MESSAGE)  # type: ignore[valid-type]
    phone: _optional_text(MAX_PHONE, normalise_phone) = None  # type: ignore[valid-type]
    company: _optional_text(MAX_COMPANY) = None  # type: ignore[valid-type]
    budget: _optional_text(MAX_BUDGET) = None  # type: ignore[valid-type]
    project_type: _optional_text(MAX_PROJECT_TYPE) = None  # type: ignore[valid-type]
    source: _optional_text(MAX_SOURCE, _source) = None  # type: ignore[valid-type]


class LeadUpdate(BaseModel):
    """A change to a lead's status, assignee or a note to add to its timeline."""

    model_config = ConfigDict(extra="forbid")

    status: LeadStatus | None = None
    assignee: _optional_text(64) = None  # type: ignore[valid-type]
    note: _optional_text(MAX_NOTE) = None  # type: ignore[valid-type]


class FactorPublic(BaseModel):
    name: str
    impact: int
    detail: str


class AnalysisPublic(BaseModel):
    score: int
    priority: str
    budget_category: str
    summary: str
    recommendation: str
    engine: str
    model: str | None
    factors: list[FactorPublic]
    needs_review: bool
    review_reason: str | None
    fallback_reason: str | None
    analyzed_at: datetime


class LeadPublic(BaseModel):
    """A lead as the HTTP API returns it."""

    id: str
    full_name: str
    email: str
    phone: str | None
    company: str | None
    budget: str | None
    budget_amount: dict[str, Any] | None
    project_type: str | None
    message: str
    source: str
    status: str
    assignee: str | None
    created_at: datetime
    updated_at: datetime
    analysis: AnalysisPublic | None


def field_errors(exc: ValidationError) -> list[FieldError]:
    """Pydantic's errors as one plain message per field."""
    errors: list[FieldError] = []
    for err in exc.errors(include_url=False):
        loc = [str(p) for p in err["loc"] if not isinstance(p, int) and not str(p).startswith(("function-", "str"))]
        field = loc[0] if loc else "body"
        errors.append(FieldError(field=field, message=_message(err)))
    return errors


def _message(err: Any) -> str:
    kind = err["type"]
    if kind == "missing":
        return "is required"
    if kind in ("string_type", "string_unicode"):
        return "must be a string"
    if kind == "extra_forbidden":
        return "is not a field that can be changed"
    if kind == "enum":
        expected = err.get("ctx", {}).get("expected", "")
        return f"must be one of {expected}"
    if kind == "value_error":
        return str(err["ctx"]["error"])
    return err["msg"]


def parse_lead(payload: Any) -> LeadCreate:
    """A validated LeadCreate from decoded JSON, or ValidationFailed naming each bad field."""
    if not isinstance(payload, dict):
        raise ValidationFailed([FieldError("body", "must be a JSON object")])
    try:
        return LeadCreate.model_validate(payload)
    except ValidationError as exc:
        raise ValidationFailed(field_errors(exc)) from None


def parse_update(payload: Any) -> LeadUpdate:
    """A validated LeadUpdate from decoded JSON, or ValidationFailed naming each bad field."""
    if not isinstance(payload, dict):
        raise ValidationFailed([FieldError("body", "must be a JSON object")])
    try:
        update = LeadUpdate.model_validate(payload)
    except ValidationError as exc:
        raise ValidationFailed(field_errors(exc)) from None
    if not update.model_fields_set:
        raise ValidationFailed([FieldError("body", "give at least one of status, assignee, note")])
    return update
