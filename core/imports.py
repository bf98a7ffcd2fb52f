"""Imports of leads from CSV and Excel files: read, map columns, preview, import in batches, undo.

A file rarely has everything a lead needs. An import fills the gaps so every row can still become a lead:
- no email: `lead-<label>@import.invalid`, where the label is the row's `label_column` value (e.g. the X Education
  `Lead Number`), else its external id, else the batch and row number. The `.invalid` domain can never receive
  mail (RFC 2606), and such leads are never contacted automatically, even when the import asks for follow-ups.
- no name: first and last name when mapped, else "Lead <label>".
- no message: one composed from the file name, the row number and the mapped company, project type and budget.
Columns mapped to nothing are kept on the lead as custom attributes (numbers as numbers when the whole column
holds numbers); values such as `Select` or `N/A` (the placeholders) count as missing.

Imported leads are scored by the rules engine (an AI call per row would cost money and hours), get no automatic
follow-ups unless the import asks, and emit no webhook events (a 9,000-row file would send 18,000). New leads are
checked for possible duplicates as at intake, except those with a made-up address and no phone or company (nothing
to recognise them by). Each batch of rows is its own transaction; a row that fails is recorded with its reason and
the import goes on.
"""

from __future__ import annotations

import io
import json
import logging
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import pandas as pd
from pydantic import ValidationError
from sqlalchemy import Engine, delete, insert, or_, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from core import app_settings, audit, day_stats, duplicates, exports, followups, webhooks
from core.analysis.base import AnalysisResult, LeadFacts
from core.analysis.rules import RulesEngine
from core.config import Settings
from core.errors import FieldError, NotFound, ValidationFailed
from core.leads import analysis_values, budget_columns
from core.profile import BusinessProfile, ScoringConfig
from core.schemas import MAX_MESSAGE, LeadCreate, field_errors, normalise_email
from db.models import (
    Activity,
    ActivityKind,
    ImportBatch,
    ImportRow,
    Lead,
    LeadAnalysis,
    LeadStatus,
    Priority,
    new_id,
    utcnow,
)
from db.session import run_with_retry, session_scope

log = logging.getLogger(__name__)

BATCH_ROWS = 500
MAX_ROWS = 100_000
MAX_EXTERNAL_ID = 100
PLACEHOLDER_DOMAIN = "import.invalid"
DEFAULT_PLACEHOLDERS = ("Select", "", "NA", "N/A", "n/a", "-", "null", "None")
DEFAULT_OUTCOMES = {"won": "WON", "lost": "LOST", "1": "WON", "0": "LOST", "yes": "WON", "no": "LOST",
                    "true": "WON", "false": "LOST", "converted": "WON"}
FIELD_TARGETS = ("full_name", "first_name", "last_name", "email", "phone", "company", "budget", "project_type",
                 "message", "source", "status", "outcome", "created_at", "external_id")
TARGETS = (*FIELD_TARGETS, "custom", "ignore")
Key = Literal["email", "external_id"]
OnExisting = Literal["create", "update", "skip"]
Progress = Callable[[int, int], None]

# Header words (lower case, letters and digits only) that suggest a field.
_SYNONYMS = {
    "full_name": ("name", "fullname", "contactname", "leadname", "customername", "clientname", "contact", "person"),
    "first_name": ("firstname", "first", "givenname", "forename"),
    "last_name": ("lastname", "last", "surname", "familyname"),
    "email": ("email", "emailaddress", "mail", "emailid", "contactemail", "workemail"),
    "phone": ("phone", "phonenumber", "mobile", "mobilenumber", "telephone", "tel", "cell", "cellphone",
              "contactnumber", "whatsapp"),
    "company": ("company", "companyname", "organisation", "organization", "organisationname",
                "organizationname", "business", "businessname", "account", "accountname", "employer"),
    "budget": ("budget", "dealvalue", "dealsize", "amount", "value", "expectedrevenue", "estimatedbudget"),
    "project_type": ("projecttype", "type", "service", "servicetype", "product", "interest", "category",
                     "projectcategory"),
    "message": ("message", "notes", "note", "comments", "comment", "description", "inquiry", "enquiry", "details",
                "requirements", "request"),
    "source": ("source", "leadsource", "utmsource", "channel"),
    "status": ("status", "leadstatus", "stage", "dealstage", "pipelinestage"),
    "outcome": ("outcome", "converted", "won", "result", "conversion", "iswon", "closedwon"),
    "created_at": ("createdat", "created", "createddate", "datecreated", "createdon", "date", "submitted",
                   "submittedat", "submittedon", "timestamp"),
    "external_id": ("externalid", "id", "leadid", "prospectid", "recordid", "crmid", "contactid", "uuid"),
}
_BY_SYNONYM = {word: target for target, words in _SYNONYMS.items() for word in words}
# Our own export's id (a new database makes its own) and the columns a download of failed rows adds.
_IGNORED_HEADERS = {"leadopsid", "importrow", "importproblem"}
_HEADER_WORD = re.compile(r"[^a-z0-9]+")
_UNNAMED = re.compile(r"^(Unnamed: \d+|)$")
_NUMBER = re.compile(r"^-?(0|[1-9]\d*)(\.\d+)?$")
_LABEL_CHARS = re.compile(r"[^a-z0-9._-]+")
_SOURCE_NOT_ALLOWED = re.compile(r"[^\w .:/-]+")
# The lead columns an import may change; an update keeps their earlier values for the undo.
_SNAPSHOT = ("full_name", "email", "phone", "company", "budget", "budget_min", "budget_max", "budget_currency",
             "budget_period", "budget_usd", "project_type", "message", "source", "status", "closed_at",
             "external_id", "custom_attributes", "score", "priority", "needs_review")
_ANALYSIS_SNAPSHOT = ("score", "priority", "budget_category", "summary", "recommendation", "engine", "model",
                      "factors", "injection_suspected", "review_reason", "fallback_reason")
_ANALYSED_FIELDS = ("full_name", "email", "phone", "company", "budget", "project_type", "message", "source")
_STATUS_NAMES = {s.value: s for s in LeadStatus} | {s.value.replace("_", " "): s for s in LeadStatus}


# --- reading a file ---------------------------------------------------------------------------------------------

def _unreadable(message: str) -> ValidationFailed:
    return ValidationFailed([FieldError("file", message)])


def read_table(data: bytes, filename: str) -> pd.DataFrame:
    """The file's rows as text cells under its header row; ValidationFailed (field "file") when it cannot be read."""
    suffix = Path(filename or "").suffix.lower()
    if suffix in (".csv", ".tsv", ".txt"):
        frame = _read_csv(data)
    elif suffix in (".xlsx", ".xlsm"):
        frame = _read_excel(data)
    elif suffix == ".xls":
        raise _unreadable("old Excel files (.xls) cannot be read: save it as .xlsx or CSV and upload that")
    else:
        shown = suffix or "files without an extension"
        raise _unreadable(f"{shown} cannot be imported: upload a CSV (.csv) or Excel (.xlsx) file")
    frame.columns = [str(c).strip() for c in frame.columns]
    # X Education's lines all end in a comma: an unnamed column of nothing at the end.
    empty = [c for c in frame.columns if _UNNAMED.match(c) and not frame[c].str.strip().astype(bool).any()]
    frame = frame.drop(columns=empty)
    if len(frame) and len(frame.columns):
        frame = frame[frame.apply(lambda column: column.str.strip() != "").any(axis=1)]
    if not len(frame.columns):
        raise _unreadable("the file has no columns")
    if not len(frame):
        raise _unreadable("the file has a header row but no rows of data under it")
    if len(frame) > MAX_ROWS:
        raise _unreadable(f"the file has {len(frame):,} rows; import at most {MAX_ROWS:,} at a time")
    return frame.reset_index(drop=True)


def _decode(data: bytes) -> str:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16")
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    return data.decode("latin-1")  # every byte is a latin-1 character: never fails


def _read_csv(data: bytes) -> pd.DataFrame:
    text = _decode(data)
    if not text.strip():
        raise _unreadable("the file is empty")
    if "\x00" in text:
        raise _unreadable("this is not a text file: save the sheet as CSV (.csv) or Excel (.xlsx)")
    header = text.lstrip().splitlines()[0]
    # The separator is the candidate the header row holds most of (headers rarely contain one).
    sep = max((",", ";", "\t", "|"), key=header.count)
    try:
        return pd.read_csv(io.StringIO(text), sep=sep, dtype=str, keep_default_na=False, na_filter=False,
                           skip_blank_lines=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as exc:
        raise _unreadable(f"this is not a CSV file that can be read ({str(exc).strip()[:200]})") from None


def _read_excel(data: bytes) -> pd.DataFrame:
    if not data:
        raise _unreadable("the file is empty")
    try:
        frame = pd.read_excel(io.BytesIO(data), sheet_name=0, dtype=object, engine="openpyxl")
    except Exception as exc:  # noqa: BLE001 - openpyxl raises many kinds for a damaged or foreign file
        raise _unreadable(f"this is not an Excel workbook that can be read ({type(exc).__name__}: "
                          f"{str(exc)[:200]})") from None
    return frame.map(_cell_text).astype(str) if len(frame.columns) else frame


def _cell_text(value: Any) -> str:
    """An Excel cell as the text a person sees in it (whole numbers without ".0", dates in ISO form)."""
    if value is None or value is pd.NaT or (isinstance(value, float) and value != value):
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime):
        return value.isoformat(sep=" ").removesuffix(" 00:00:00")
    return str(value)


# --- mapping ------------------------------------------------------------------------------------------------------

def suggest_mapping(columns: Iterable[str]) -> dict[str, str]:
    """A target for each column from its header: a lead field when a synonym matches, otherwise "custom"."""
    mapping: dict[str, str] = {}
    taken: set[str] = set()
    for column in columns:
        word = _HEADER_WORD.sub("", str(column).lower())
        target = "ignore" if word in _IGNORED_HEADERS else _BY_SYNONYM.get(word, "custom")
        if target in FIELD_TARGETS and target in taken:
            target = "custom"  # one column per field: the first one wins, the rest are kept as they are
        taken.add(target)
        mapping[str(column)] = target
    return mapping


def default_key(mapping: Mapping[str, str]) -> Key:
    """The row key to suggest for a mapping: the external id when a column maps to it, else the email."""
    return "external_id" if "external_id" in mapping.values() else "email"


@dataclass(frozen=True)
class ImportOptions:
    """How an import treats the rows: which column finds an existing lead, and what to do then."""

    key: Key = "email"
    on_existing: OnExisting = "skip"
    placeholders: tuple[str, ...] = DEFAULT_PLACEHOLDERS
    outcome_values: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_OUTCOMES))
    follow_up: bool = False
    source: str = "import"
    label_column: str | None = None

    @classmethod
    def of(cls, value: ImportOptions | Mapping[str, Any] | None) -> ImportOptions:
        """Options from a dict (a mapping file, the page) or as they are; ValidationFailed names a bad option."""
        if isinstance(value, ImportOptions):
            return value
        given = dict(value or {})
        problems = [FieldError(name, "is not an import option") for name in given
                    if name not in cls.__dataclass_fields__]
        if given.get("key", "email") not in ("email", "external_id"):
            problems.append(FieldError("key", "must be email or external_id"))
        if given.get("on_existing", "skip") not in ("create", "update", "skip"):
            problems.append(FieldError("on_existing", "must be create, update or skip"))
        outcomes = given.get("outcome_values")
        if outcomes is not None and (not isinstance(outcomes, dict) or any(
                str(v).upper() not in ("WON", "LOST") for v in outcomes.values())):
            problems.append(FieldError("outcome_values", "must map each value to WON or LOST"))
        source = str(given.get("source") or "import").strip().lower()
        if not re.fullmatch(r"[\w .:/-]{1,50}", source):
            problems.append(FieldError("source", "may hold only letters, digits, spaces and . : / _ - (50 at most)"))
        if problems:
            raise ValidationFailed(problems)
        if "placeholders" in given:
            given["placeholders"] = tuple(str(p) for p in given["placeholders"] or ())
        if outcomes is not None:
            given["outcome_values"] = {str(k): str(v).upper() for k, v in outcomes.items()}
        given["source"] = source
        given["follow_up"] = bool(given.get("follow_up", False))
        return cls(**given)

    def as_dict(self) -> dict[str, Any]:
        """The options as JSON-ready data (kept on the import batch)."""
        data = asdict(self)
        data["placeholders"] = list(self.placeholders)
        return data


def load_mapping(path: str | Path) -> tuple[dict[str, str], ImportOptions]:
    """The column mapping and options of a mapping file ({"mapping": {...}, "options": {...}}, see bench/)."""
    try:
        content = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ValidationFailed([FieldError("mapping", f"the mapping file cannot be read ({exc})")]) from None
    if not isinstance(content, dict) or not isinstance(content.get("mapping"), dict):
        raise ValidationFailed([FieldError("mapping", 'the mapping file needs a "mapping" object: column → target')])
    return {str(k): str(v) for k, v in content["mapping"].items()}, ImportOptions.of(content.get("options"))


@dataclass(frozen=True)
class _Plan:
    """A mapping checked against the file: which column feeds which field, and how cells are read."""

    fields: dict[str, str]  # target -> column
    custom: tuple[str, ...]
    numeric: frozenset[str]  # custom columns that hold only numbers
    placeholders: frozenset[str]
    outcomes: dict[str, LeadStatus]
    options: ImportOptions
    filename: str
    batch_label: str


def _plan(frame: pd.DataFrame, mapping: Mapping[str, str], options: ImportOptions, filename: str,
          batch_label: str = "preview") -> _Plan:
    """The mapping checked against the file's columns; ValidationFailed names each problem."""
    problems: list[FieldError] = []
    columns = list(frame.columns)
    for column, target in mapping.items():
        if column not in columns:
            problems.append(FieldError("mapping", f"{column!r} is not a column of the file"))
        if target not in TARGETS:
            problems.append(FieldError("mapping", f"{column!r}: {target!r} is not a target ({', '.join(TARGETS)})"))
    fields: dict[str, str] = {}
    custom: list[str] = []
    for column in columns:
        target = mapping.get(column, "custom")
        if target == "custom":
            custom.append(column)
        elif target in FIELD_TARGETS:
            if target in fields:
                problems.append(FieldError("mapping", f"both {fields[target]!r} and {column!r} map to {target}; "
                                                      "map one of them to custom or ignore"))
            fields.setdefault(target, column)
    if options.on_existing != "create" and options.key not in fields:
        problems.append(FieldError("key", f"no column maps to {options.key}, so existing leads cannot be found; "
                                          "map one, choose the other key, or create every row"))
    if options.label_column and options.label_column not in columns:
        problems.append(FieldError("label_column", f"{options.label_column!r} is not a column of the file"))
    if problems:
        raise ValidationFailed(problems)
    placeholders = frozenset(p.strip().casefold() for p in options.placeholders)
    numeric = frozenset(c for c in custom if _all_numbers(frame[c], placeholders))
    outcomes = {k.strip().casefold(): LeadStatus(v) for k, v in options.outcome_values.items()}
    return _Plan(fields=fields, custom=tuple(custom), numeric=numeric, placeholders=placeholders,
                 outcomes=outcomes, options=options, filename=filename, batch_label=batch_label)


def _all_numbers(column: pd.Series, placeholders: frozenset[str]) -> bool:
    values = column.str.strip()
    values = values[(values != "") & ~values.str.casefold().isin(placeholders)]
    return bool(len(values)) and bool(values.str.fullmatch(_NUMBER.pattern).all())


# --- one row ------------------------------------------------------------------------------------------------------

class _ImportedLead(LeadCreate):
    """LeadCreate's rules for every field but the email, which an import checks itself (it may have to make one)."""

    email: str = ""


@dataclass
class _Row:
    """One row of the file, read, checked and completed."""

    number: int
    raw: dict[str, str]
    errors: list[FieldError] = field(default_factory=list)
    values: dict[str, Any] = field(default_factory=dict)  # lead columns
    given: set[str] = field(default_factory=set)  # the fields the file itself filled in
    custom: dict[str, Any] = field(default_factory=dict)
    status: LeadStatus | None = None
    created_at: datetime | None = None
    placeholder_email: bool = False

    def key_for(self, key: Key) -> str | None:
        return self.values.get(key) if key in self.given else None


def _cell(plan: _Plan, raw: Mapping[str, str], column: str | None) -> str | None:
    """A cell's text, or None when it is empty or a placeholder."""
    if column is None:
        return None
    value = str(raw.get(column) or "").strip()
    # Our own exports put a ' before cells a spreadsheet would run as formulas: read back, it goes again.
    if value.startswith("'") and value[1:].startswith(exports.FORMULA_STARTS):
        value = value[1:]
    return None if not value or value.casefold() in plan.placeholders else value


def _prepare(plan: _Plan, number: int, raw: dict[str, str]) -> _Row:
    """The row as lead values, with every problem named by field."""
    row = _Row(number=number, raw=raw)
    cells = {target: _cell(plan, raw, column) for target, column in plan.fields.items()}
    for name in plan.custom:
        value = _cell(plan, raw, name)
        if value is not None:
            row.custom[name] = _number(value) if name in plan.numeric else value
    label = _label(plan, raw, cells, number)
    name = cells.get("full_name") or " ".join(p for p in (cells.get("first_name"), cells.get("last_name")) if p)
    text = {
        "full_name": name or f"Lead {label}", "message": cells.get("message") or _message(plan, row, cells),
        "phone": cells.get("phone"), "company": cells.get("company"), "budget": cells.get("budget"),
        "project_type": cells.get("project_type"),
        "source": _source_text(cells.get("source")) or plan.options.source,
    }
    row.given = {f for f in ("phone", "company", "budget", "project_type", "message", "source") if cells.get(f)}
    if name:
        row.given.add("full_name")
    try:
        checked = _ImportedLead.model_validate(text)
        row.values.update(checked.model_dump(exclude={"email"}))
    except ValidationError as exc:
        row.errors.extend(field_errors(exc))
    email = cells.get("email")
    if email:
        try:
            row.values["email"] = normalise_email(email)
            row.given.add("email")
        except ValueError as exc:
            row.errors.append(FieldError("email", str(exc)))
    else:
        row.values["email"] = f"lead-{_LABEL_CHARS.sub('-', label.lower()).strip('-.')[:50] or number}" \
                              f"@{PLACEHOLDER_DOMAIN}"
        row.placeholder_email = True
    external_id = cells.get("external_id")
    if external_id:
        if len(external_id) > MAX_EXTERNAL_ID:
            row.errors.append(FieldError("external_id", f"must be at most {MAX_EXTERNAL_ID} characters"))
        row.values["external_id"] = external_id
        row.given.add("external_id")
    _read_status(plan, row, cells)
    _read_created_at(row, cells.get("created_at"))
    return row


def _number(text: str) -> int | float:
    return int(text) if re.fullmatch(r"-?\d+", text) else float(text)


def _label(plan: _Plan, raw: Mapping[str, str], cells: dict[str, str | None], number: int) -> str:
    """What names a row that has no name or email: its label column, its external id, or batch and row number."""
    chosen = _cell(plan, raw, plan.options.label_column) if plan.options.label_column else None
    return chosen or cells.get("external_id") or f"{plan.batch_label}-row{number}"


def _source_text(value: str | None) -> str | None:
    # Sources are short labels: other characters become spaces rather than failing the row.
    if not value:
        return None
    return " ".join(_SOURCE_NOT_ALLOWED.sub(" ", value).split())[:50] or None


def _message(plan: _Plan, row: _Row, cells: dict[str, str | None]) -> str:
    """A message for a row without one: where it came from and what else it holds.

    The other columns are counted, not copied: they stay structured as custom attributes, and thirty lines of
    "Lead Origin: API" would only give the rules engine words to misread (and take it ten times longer).
    """
    lines = [f"Imported from {plan.filename}, row {row.number}. The file has no message for this lead"
             + (f"; its {len(row.custom)} other column(s) are kept as custom attributes." if row.custom else ".")]
    for target in ("company", "project_type", "budget"):
        if cells.get(target):
            lines.append(f"{target.replace('_', ' ').capitalize()}: {cells[target]}")
    return "\n".join(lines)[:MAX_MESSAGE]


def _read_status(plan: _Plan, row: _Row, cells: dict[str, str | None]) -> None:
    outcome, status = cells.get("outcome"), cells.get("status")
    if outcome:
        row.status = plan.outcomes.get(outcome.casefold())
        if row.status is None:
            known = ", ".join(repr(k) for k in plan.options.outcome_values) or "none"
            row.errors.append(FieldError("outcome", f"{outcome!r} is not one of the outcome values ({known}); "
                                                    "add it to the outcome values or to the placeholders"))
    elif status:
        row.status = _STATUS_NAMES.get(status.upper().replace("-", " ").strip())
        if row.status is None:
            names = ", ".join(s.value for s in LeadStatus)
            row.errors.append(FieldError("status", f"{status!r} is not one of {names}"))


def _read_created_at(row: _Row, text: str | None) -> None:
    if not text:
        return
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        try:
            moment = pd.to_datetime(text, format="mixed").to_pydatetime()
        except (ValueError, TypeError, OverflowError):
            row.errors.append(FieldError("created_at", f"{text!r} is not a date (write it as 2024-05-31 or "
                                                       "2024-05-31 14:05)"))
            return
    row.created_at = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _rows(frame: pd.DataFrame, start: int = 0, stop: int | None = None) -> Iterable[tuple[int, dict[str, str]]]:
    """(row number as a spreadsheet shows it, cells) for each row: the first row under the header is row 2."""
    columns = list(frame.columns)
    for offset, values in enumerate(frame.iloc[start:stop].itertuples(index=False, name=None)):
        yield start + offset + 2, dict(zip(columns, values, strict=True))


def preview(df: pd.DataFrame, mapping: Mapping[str, str], options: ImportOptions | Mapping[str, Any] | None,
            n: int = 20, filename: str = "the file") -> list[dict[str, Any]]:
    """The first `n` rows as they would be imported, each with its problems named by field ("" when none)."""
    plan = _plan(df, mapping, ImportOptions.of(options), filename)
    shown = []
    for number, raw in _rows(df, 0, n):
        row = _prepare(plan, number, raw)
        values = row.values
        shown.append({
            "row": number, "problems": "; ".join(f"{e.field}: {e.message}" for e in row.errors),
            "full_name": values.get("full_name"), "email": values.get("email"), "phone": values.get("phone"),
            "company": values.get("company"), "budget": values.get("budget"),
            "project_type": values.get("project_type"), "source": values.get("source"),
            "status": (row.status or LeadStatus.NEW).value, "external_id": values.get("external_id"),
            "created_at": row.created_at, "custom attributes": len(row.custom), "message": values.get("message"),
        })
    return shown


# --- the import ---------------------------------------------------------------------------------------------------

@dataclass
class _Tally:
    created: int = 0
    updated: int = 0
    skipped: int = 0
    failed: int = 0

    def add(self, other: _Tally) -> None:
        for name in ("created", "updated", "skipped", "failed"):
            setattr(self, name, getattr(self, name) + getattr(other, name))


@dataclass
class _Context:
    """What every batch of one import shares."""

    plan: _Plan
    batch_id: str
    actor: str
    profile: BusinessProfile
    scoring: ScoringConfig
    engine: RulesEngine
    seen: dict[str, int]  # row key -> the row of this file that had it first
    tally: _Tally


def run(*, engine: Engine, settings: Settings, df: pd.DataFrame, mapping: Mapping[str, str],
        options: ImportOptions | Mapping[str, Any] | None, filename: str, actor: str,
        progress: Progress | None = None) -> ImportBatch:
    """Imports the rows in batches of BATCH_ROWS (one transaction each) and returns the finished import batch."""
    del settings  # imports always use the rules engine: see the module's docstring
    options = ImportOptions.of(options)
    batch_id = new_id()
    plan = _plan(df, mapping, options, filename, batch_label=batch_id[-6:].lower())
    with session_scope(engine) as session:
        session.add(ImportBatch(id=batch_id, filename=filename[:300], created_by=actor[:100], status="RUNNING",
                                mapping=dict(mapping), options=options.as_dict(), total_rows=len(df)))
    profile, scoring = app_settings.scoring_inputs(engine=engine)
    context = _Context(plan=plan, batch_id=batch_id, actor=actor, profile=profile, scoring=scoring,
                       engine=RulesEngine(), seen={}, tally=_Tally())
    started = time.monotonic()
    status = "FAILED"
    try:
        for start in range(0, len(df), BATCH_ROWS):
            rows = [_prepare(plan, number, raw) for number, raw in _rows(df, start, start + BATCH_ROWS)]
            _import_batch(engine, context, rows)
            if progress:
                progress(min(start + BATCH_ROWS, len(df)), len(df))
        status = "DONE"
    finally:
        batch = _finish(engine, context, status)
        log.info("import %s of %s: %d created, %d updated, %d skipped, %d failed in %.1fs (%s)", batch_id, filename,
                 batch.created, batch.updated, batch.skipped, batch.failed, time.monotonic() - started, status)
    return batch


def _finish(engine: Engine, context: _Context, status: str) -> ImportBatch:
    tally = context.tally
    with session_scope(engine) as session:
        batch = session.get(ImportBatch, context.batch_id)
        assert batch is not None
        batch.status, batch.finished_at = status, utcnow()
        batch.created, batch.updated, batch.skipped, batch.failed = (tally.created, tally.updated, tally.skipped,
                                                                     tally.failed)
        audit.record(session=session, actor=context.actor, action="import.run", target_type="import_batch",
                     target_id=batch.id, detail={"status": status, "rows": batch.total_rows,
                                                 "created": tally.created, "updated": tally.updated,
                                                 "skipped": tally.skipped, "failed": tally.failed})
    return batch


@dataclass
class _Decision:
    row: _Row
    action: str  # created, updated, skipped, failed
    lead_id: str | None = None
    error: str | None = None


def _import_batch(engine: Engine, context: _Context, rows: list[_Row]) -> None:
    """Decides what each row does, then writes the batch in one transaction (row by row if that fails)."""
    decisions = run_with_retry(lambda: _decide(engine, context, rows), what="finding existing leads")
    try:
        counts = run_with_retry(lambda: _write(engine, context, decisions), what="writing an import batch")
    except DBAPIError:
        # One bad row must not cost the others: each row in its own transaction, the failing ones recorded.
        log.warning("import %s: a batch failed as a whole; writing its rows one at a time", context.batch_id,
                    exc_info=True)
        counts = _Tally()
        for decision in decisions:
            try:
                one = run_with_retry(lambda d=decision: _write(engine, context, [d]), what="writing an import row")
            except DBAPIError as exc:
                failed = _Decision(decision.row, "failed", error=f"the database refused the row: {exc.orig}"[:1000])
                one = _write(engine, context, [failed])
            counts.add(one)
    context.tally.add(counts)


def _decide(engine: Engine, context: _Context, rows: list[_Row]) -> list[_Decision]:
    """Created, updated, skipped or failed, for each row (existing leads looked up by the row key)."""
    options = context.plan.options
    keys = {row.key_for(options.key) for row in rows if not row.errors} - {None}
    existing: dict[str, list[str]] = {}
    if keys and options.on_existing != "create":
        column = Lead.external_id if options.key == "external_id" else Lead.email
        with session_scope(engine) as session:
            for lead_id, key in session.execute(select(Lead.id, column).where(column.in_(keys))
                                                .order_by(Lead.created_at)):
                existing.setdefault(key, []).append(lead_id)
    decisions = []
    for row in rows:
        key = row.key_for(options.key)
        if row.errors:
            decisions.append(_Decision(row, "failed", error="; ".join(f"{e.field}: {e.message}" for e in row.errors)))
        elif key is None or options.on_existing == "create":
            decisions.append(_Decision(row, "created"))
        elif key in context.seen:
            # The row that came first in the file made the lead; a repeat is skipped, or fails when it would update.
            repeat = f"{options.key}: same {key!r} as row {context.seen[key]} of this file"
            decisions.append(_Decision(row, "skipped" if options.on_existing == "skip" else "failed", error=repeat))
        elif key not in existing:
            decisions.append(_Decision(row, "created"))
        elif options.on_existing == "skip":
            decisions.append(_Decision(row, "skipped", lead_id=existing[key][0], error="a lead with this "
                                                                                       f"{options.key} exists"))
        elif len(existing[key]) > 1:
            decisions.append(_Decision(row, "failed", error=f"{options.key}: {len(existing[key])} leads have "
                                                            f"{key!r}; merge them first"))
        else:
            decisions.append(_Decision(row, "updated", lead_id=existing[key][0]))
        if key is not None and not row.errors:
            context.seen.setdefault(key, row.number)
    return decisions


def _write(engine: Engine, context: _Context, decisions: list[_Decision]) -> _Tally:
    """One transaction: new leads by multi-row inserts, updates through the ORM, an ImportRow for every row."""
    counts = _Tally()
    now = utcnow()
    with session_scope(engine) as session:
        created = [d for d in decisions if d.action == "created"]
        leads, analyses, events, matchable = [], [], [], []
        for decision in created:
            lead, analysis, event = _new_lead(context, decision.row, now)
            decision.lead_id = lead["id"]
            leads.append(lead)
            analyses.append(analysis)
            events.append(event)
            # A made-up address with no phone or company has nothing a duplicate could be recognised by.
            if not decision.row.placeholder_email or lead["phone"] or lead["company"]:
                matchable.append(lead["id"])
        if leads:
            # Table-level (Core) inserts, as core.demo does: the ORM would take a round trip per lead.
            session.execute(insert(Lead.__table__), leads)
            session.execute(insert(LeadAnalysis.__table__), analyses)
            session.execute(insert(Activity.__table__), events)
            if context.plan.options.follow_up:
                # followups.plan itself leaves out leads already past NEW (won, lost...).
                _plan_follow_ups(session, [lead["id"] for lead in leads if lead["auto_follow_up"]], now)
            _detect_duplicates(session, matchable)
        previous = _update_leads(session, context, [d for d in decisions if d.action == "updated"], now)
        records = []
        for decision in decisions:
            records.append(dict(id=new_id(), batch_id=context.batch_id, row_number=decision.row.number,
                                action=decision.action, lead_id=decision.lead_id,
                                previous=previous.get(decision.row.number), error=decision.error,
                                raw=decision.row.raw if decision.action == "failed" else None))
            setattr(counts, decision.action, getattr(counts, decision.action) + 1)
        session.execute(insert(ImportRow.__table__), records)
    return counts


def _facts(values: Mapping[str, Any]) -> LeadFacts:
    return LeadFacts.of(full_name=values["full_name"], email=values["email"], message=values["message"],
                        phone=values.get("phone"), company=values.get("company"), budget=values.get("budget"),
                        project_type=values.get("project_type"), source=values.get("source"))


def _new_lead(context: _Context, row: _Row, now: datetime) -> tuple[dict, dict, dict]:
    """The lead, analysis and IMPORTED timeline rows of a new lead."""
    values = row.values
    result = context.engine.analyze(_facts(values), profile=context.profile, scoring=context.scoring)
    lead_id = new_id()
    created = row.created_at or now
    status = row.status or LeadStatus.NEW
    lead = dict(
        id=lead_id, full_name=values["full_name"], email=values["email"], phone=values.get("phone"),
        company=values.get("company"), budget=values.get("budget"), **budget_columns(values.get("budget")),
        project_type=values.get("project_type"), message=values["message"], source=values["source"],
        status=status, assignee_id=None, score=result.score, priority=result.priority,
        needs_review=result.needs_review, reanalyze_requested_at=None, reanalyze_attempts=0,
        # Placeholder addresses can never receive mail: such leads are never contacted, whatever the import asked.
        auto_follow_up=context.plan.options.follow_up and not row.placeholder_email,
        first_contacted_at=None, closed_at=created if status in (LeadStatus.WON, LeadStatus.LOST) else None,
        custom_attributes=row.custom, external_id=values.get("external_id"), import_batch_id=context.batch_id,
        created_at=created, updated_at=now)
    analysis = dict(id=new_id(), lead_id=lead_id, **analysis_values(result), created_at=now, updated_at=now)
    event = dict(id=new_id(), lead_id=lead_id, kind=ActivityKind.IMPORTED, actor=context.actor[:100],
                 body=f"Imported from {context.plan.filename} (row {row.number}); scored {result.score} "
                      f"({result.priority.value}) by the rules engine"
                      + (f"; status {status.value}" if status != LeadStatus.NEW else "")
                      + (f"; flagged for review: {result.review_reason}" if result.review_reason else ""),
                 data={"batch": context.batch_id, "row": row.number, "score": result.score,
                       "priority": result.priority.value, "engine": result.engine},
                 created_at=now)
    return lead, analysis, event


def _plan_follow_ups(session: Session, lead_ids: list[str], now: datetime) -> None:
    """The sequences of new leads whose import asked for follow-ups, spaced from now (not from a past date)."""
    for lead in session.scalars(select(Lead).where(Lead.id.in_(lead_ids))):
        followups.plan(session=session, lead=lead, not_before=now)


def _detect_duplicates(session: Session, lead_ids: list[str]) -> None:
    """Possible duplicates of the new leads (of leads already here and of each other), as intake stores them."""
    if not lead_ids:
        return
    for lead in list(session.scalars(select(Lead).where(Lead.id.in_(lead_ids)))):
        duplicates.detect(session=session, lead=lead)


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (LeadStatus, Priority)):
        return value.value
    return value


def _update_leads(session: Session, context: _Context, decisions: list[_Decision],
                  now: datetime) -> dict[int, dict[str, Any]]:
    """Applies the given fields of each row to its lead; returns the values before, by row number."""
    if not decisions:
        return {}
    leads = {lead.id: lead for lead in session.scalars(select(Lead).where(
        Lead.id.in_([d.lead_id for d in decisions])))}
    previous: dict[int, dict[str, Any]] = {}
    for decision in decisions:
        lead = leads.get(decision.lead_id or "")
        if lead is None:
            decision.action, decision.lead_id = "failed", None
            decision.error = "the lead this row updates was deleted meanwhile"
            continue
        before = {"lead": {c: _jsonable(getattr(lead, c)) for c in _SNAPSHOT},
                  "analysis": ({c: _jsonable(getattr(lead.analysis, c)) for c in _ANALYSIS_SNAPSHOT}
                               if lead.analysis else None)}
        changed = _apply_row(session, context, lead, decision.row, now)
        if not changed:
            decision.action, decision.error = "skipped", "already up to date"
            continue
        previous[decision.row.number] = before
    session.flush()
    return previous


def _apply_row(session: Session, context: _Context, lead: Lead, row: _Row, now: datetime) -> list[str]:
    """Sets the fields the row gives (never blanks over data), re-scores if needed; returns what changed."""
    changed = [f for f in sorted(row.given) if f in _ANALYSED_FIELDS + ("external_id",)
               and getattr(lead, f) != row.values[f]]
    for name in changed:
        setattr(lead, name, row.values[name])
    if "budget" in changed:
        for name, value in budget_columns(lead.budget).items():
            setattr(lead, name, value)
    merged = {**(lead.custom_attributes or {}), **row.custom}
    if merged != (lead.custom_attributes or {}):
        lead.custom_attributes = merged
        changed.append("custom attributes")
    notes = []
    if row.status is not None and row.status != lead.status:
        notes.append(f"status {lead.status.value} → {row.status.value}")
        lead.status = row.status
        lead.closed_at = now if row.status in (LeadStatus.WON, LeadStatus.LOST) else None
        followups.on_status_change(session=session, lead=lead, new_status=row.status)
        changed.append("status")
    if any(f in _ANALYSED_FIELDS for f in changed):
        old_priority = lead.priority
        result = context.engine.analyze(_facts({f: getattr(lead, f) for f in _ANALYSED_FIELDS}),
                                        profile=context.profile, scoring=context.scoring)
        _store_analysis(session, lead, result, now)
        notes.append(f"re-scored {result.score} ({result.priority.value}) by the rules engine")
        if old_priority != result.priority and lead.auto_follow_up:
            followups.replan(session=session, lead=lead, now=now)
    if not changed:
        return []
    lead.updated_at = now
    fields = [c.replace("_", " ") for c in changed if c != "status"]
    session.add(Activity(lead_id=lead.id, kind=ActivityKind.IMPORTED, actor=context.actor[:100], created_at=now,
                         body=f"Updated by the import of {context.plan.filename} (row {row.number})"
                              + (f": {', '.join(fields)}" if fields else "") + "".join(f"; {n}" for n in notes),
                         data={"batch": context.batch_id, "row": row.number, "changed": changed}))
    return changed


def _store_analysis(session: Session, lead: Lead, result: AnalysisResult, now: datetime) -> None:
    values = analysis_values(result)
    if lead.analysis is None:
        lead.analysis = LeadAnalysis(lead_id=lead.id, **values)
        session.add(lead.analysis)
    else:
        for name, value in values.items():
            setattr(lead.analysis, name, value)
        lead.analysis.updated_at = now
    lead.score, lead.priority, lead.needs_review = result.score, result.priority, result.needs_review


# --- after the import ---------------------------------------------------------------------------------------------

def get_batches(*, session: Session, limit: int = 50) -> list[ImportBatch]:
    """The latest imports, newest first."""
    stmt = select(ImportBatch).order_by(ImportBatch.created_at.desc(), ImportBatch.id.desc()).limit(limit)
    return list(session.scalars(stmt))


def get_batch(*, session: Session, batch_id: str) -> ImportBatch:
    """One import; raises NotFound."""
    batch = session.get(ImportBatch, batch_id)
    if batch is None:
        raise NotFound(f"no import with id {batch_id}")
    return batch


def failed_rows(*, session: Session, batch_id: str, limit: int | None = None) -> list[dict[str, Any]]:
    """The rows an import could not take: row number, the problem, then the row's cells as they came.

    The first two columns are named so that a fixed file imported again ignores them.
    """
    get_batch(session=session, batch_id=batch_id)
    stmt = (select(ImportRow.row_number, ImportRow.error, ImportRow.raw)
            .where(ImportRow.batch_id == batch_id, ImportRow.action == "failed").order_by(ImportRow.row_number))
    return [{"import row": number, "import problem": error, **(raw or {})}
            for number, error, raw in session.execute(stmt.limit(limit))]


def failed_rows_csv(*, session: Session, batch_id: str) -> bytes:
    """The failed rows as a CSV file to fix and import again (cells a spreadsheet would run are neutralised)."""
    return exports.export_csv(failed_rows(session=session, batch_id=batch_id))


@dataclass(frozen=True)
class UndoOutcome:
    """What an undo did: leads deleted, leads given back their earlier values, and leads left as they are."""

    deleted: int
    restored: int
    kept: int


def _chunks(ids: list[str], size: int = 1000) -> Iterable[list[str]]:
    for start in range(0, len(ids), size):
        yield ids[start:start + size]


def _worked_on(session: Session, lead_ids: list[str], since: datetime, *, created: bool) -> set[str]:
    """The leads with timeline entries since the import (for created leads: anything but the import's own entry)."""
    worked: set[str] = set()
    for chunk in _chunks(lead_ids):
        after = Activity.created_at > since
        condition = or_(after, Activity.kind != ActivityKind.IMPORTED) if created else after
        worked.update(session.scalars(select(Activity.lead_id).where(Activity.lead_id.in_(chunk), condition)
                                      .distinct()))
    return worked


def undo(*, session: Session, batch_id: str, actor: str) -> UndoOutcome:
    """Deletes the leads an import created and restores the ones it updated, except leads worked on since."""
    batch = get_batch(session=session, batch_id=batch_id)
    if batch.status == "UNDONE":
        raise ValidationFailed([FieldError("import", "was undone already")])
    if batch.status == "RUNNING":
        raise ValidationFailed([FieldError("import", "is still running; undo it once it has finished")])
    since = batch.finished_at or utcnow()
    rows = session.execute(select(ImportRow.action, ImportRow.lead_id, ImportRow.previous).where(
        ImportRow.batch_id == batch_id, ImportRow.action.in_(("created", "updated")),
        ImportRow.lead_id.is_not(None))).all()
    created = [lead_id for action, lead_id, _ in rows if action == "created"]
    updated = {lead_id: previous for action, lead_id, previous in rows if action == "updated" and previous}
    # A lead someone has worked on since (a note, a call, a status change, a merge, a later import) stays as it is:
    # deleting or rewinding it would throw that work away.
    kept = _worked_on(session, created, since, created=True) | _worked_on(session, list(updated), since,
                                                                          created=False)
    doomed = [lead_id for lead_id in created if lead_id not in kept]
    day_stats.mark(session, doomed)
    for chunk in _chunks(doomed):
        # The foreign keys remove analyses, timelines and follow-ups with the leads; webhook events name them only.
        webhooks.delete_for_leads(session=session, lead_ids=chunk)
        session.execute(delete(Lead).where(Lead.id.in_(chunk)).execution_options(synchronize_session=False))
    restored = 0
    for lead in session.scalars(select(Lead).where(Lead.id.in_([i for i in updated if i not in kept]))):
        _restore(session, lead, updated[lead.id], batch, actor)
        restored += 1
    batch.status, batch.undone_at = "UNDONE", utcnow()
    outcome = UndoOutcome(deleted=len(doomed), restored=restored, kept=len(kept))
    audit.record(session=session, actor=actor, action="import.undone", target_type="import_batch",
                 target_id=batch.id, detail=asdict(outcome))
    session.flush()
    return outcome


def _restore(session: Session, lead: Lead, previous: dict[str, Any], batch: ImportBatch, actor: str) -> None:
    values = previous.get("lead") or {}
    for name, value in values.items():
        setattr(lead, name, _column_value(name, value))
    if previous.get("analysis") and lead.analysis is not None:
        for name, value in previous["analysis"].items():
            setattr(lead.analysis, name, Priority(value) if name == "priority" else value)
    lead.updated_at = utcnow()
    session.add(Activity(lead_id=lead.id, kind=ActivityKind.IMPORTED, actor=actor[:100],
                         body=f"The import of {batch.filename} was undone: the values before it are back",
                         data={"batch": batch.id, "undone": True}))


def _column_value(name: str, value: Any) -> Any:
    if value is None:
        return None
    if name == "status":
        return LeadStatus(value)
    if name == "priority":
        return Priority(value)
    if name == "closed_at":
        return datetime.fromisoformat(value)
    if name in ("budget_min", "budget_max", "budget_usd"):
        return Decimal(value)
    return value
