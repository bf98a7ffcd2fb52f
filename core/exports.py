"""Exports of the lead queue to CSV and Excel, safe to open in a spreadsheet.

Spreadsheets run a cell that starts with `=`, `+`, `-` or `@` (and, in some, a tab or carriage return) as a
formula, so a lead who types `=HYPERLINK(...)` could make a colleague's Excel fetch a URL. Following the OWASP CSV
injection guidance, every text cell starting with one of those characters gets a leading `'` in both formats.
Numbers are written as numbers and never changed.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, Literal

from sqlalchemy.orm import Session

from core import lead_views
from core import leads as lead_service
from core.leads import LeadFilters, Sort
from db.models import Lead

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# What every export starts with; custom attributes of imported leads follow, one column each.
LEAD_COLUMNS = ("leadops_id", "full_name", "email", "phone", "company", "budget", "project_type", "message",
                "source", "status", "priority", "score", "assignee", "created_at", "closed_at", "external_id")
EXCEL_MAX_CELL = 32_767
# Characters XML 1.0 cannot hold (openpyxl refuses them): dropped from Excel cells only.
_XML_ILLEGAL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
Format = Literal["csv", "xlsx"]
MIME = {"csv": "text/csv", "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}


def neutralise(value: Any) -> Any:
    """The value with a leading `'` when it is text a spreadsheet would run as a formula; anything else as it is."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def lead_row(lead: Lead) -> dict[str, Any]:
    """One lead as an export row: its fields, then its custom attributes under their own names."""
    row: dict[str, Any] = {
        "leadops_id": lead.id, "full_name": lead.full_name, "email": lead.email, "phone": lead.phone,
        "company": lead.company, "budget": lead.budget, "project_type": lead.project_type, "message": lead.message,
        "source": lead.source, "status": lead.status.value, "priority": lead.priority.value, "score": lead.score,
        "assignee": lead.assignee.username if lead.assignee else None, "created_at": lead.created_at,
        "closed_at": lead.closed_at, "external_id": lead.external_id,
    }
    for name, value in (lead.custom_attributes or {}).items():
        # A custom column named like a field (e.g. "email") must not overwrite the field.
        row[f"custom: {name}" if name in row else name] = value
    return row


def lead_rows(*, session: Session, filters: LeadFilters, user_id: str, role: str, sort: Sort = "newest",
              page_size: int = lead_service.MAX_PAGE) -> Iterator[dict[str, Any]]:
    """The leads the queue shows for these filters and this user (staff: own and unassigned), page by page."""
    filters = lead_views.visible_filters(filters, user_id=user_id, role=role)
    cursor: str | None = None
    while True:
        page = lead_service.get_all(session=session, filters=filters, limit=page_size, cursor=cursor, sort=sort)
        for lead in page.items:
            yield lead_row(lead)
            # Rows are plain data now: the session need not keep every lead of a large export in memory.
            session.expunge(lead)
        if page.next_cursor is None:
            return
        cursor = page.next_cursor


def _columns(rows: list[dict[str, Any]]) -> list[str]:
    """Every key of `rows`, in the order first seen."""
    seen: dict[str, None] = {}
    for row in rows:
        seen.update(dict.fromkeys(row))
    return list(seen)


def _text(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat(timespec="seconds") if value.tzinfo else value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, (int, float, Decimal)):
        return value
    if isinstance(value, (dict, list)):
        return str(value)
    return neutralise(str(value))


def export_csv(rows: Iterable[dict[str, Any]]) -> bytes:
    """The rows as CSV (UTF-8 with a byte-order mark, so Excel reads accents right), formula cells neutralised."""
    rows = list(rows)
    columns = _columns(rows)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([neutralise(c) for c in columns])
    for row in rows:
        writer.writerow([_text(row.get(c)) for c in columns])
    return out.getvalue().encode("utf-8-sig")


def _cell(value: Any) -> Any:
    if isinstance(value, datetime):
        # Excel has no time zones: times are written in UTC.
        return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value
    if isinstance(value, (date, int, float, Decimal)) or value is None:
        return value
    text = _text(value)
    return _XML_ILLEGAL.sub("", text)[:EXCEL_MAX_CELL] if isinstance(text, str) else text


def export_xlsx(rows: Iterable[dict[str, Any]], *, sheet: str = "Leads") -> bytes:
    """The rows as an Excel workbook of one sheet, formula cells neutralised."""
    from openpyxl import Workbook  # late: only exports need it
    from openpyxl.cell import WriteOnlyCell

    rows = list(rows)
    columns = _columns(rows)
    workbook = Workbook(write_only=True)
    worksheet = workbook.create_sheet(sheet)

    def cells(values: list[Any]) -> list[Any]:
        written = []
        for value in values:
            cell = WriteOnlyCell(worksheet, value=_cell(value))
            if isinstance(cell.value, str):
                cell.data_type = "s"  # text, never a formula, whatever it starts with
            elif isinstance(cell.value, datetime):
                cell.number_format = "yyyy-mm-dd hh:mm:ss"
            written.append(cell)
        return written

    worksheet.append(cells(list(columns)))
    for row in rows:
        worksheet.append(cells([row.get(c) for c in columns]))
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


def export_queue(*, session: Session, filters: LeadFilters, user_id: str, role: str, fmt: Format,
                 sort: Sort = "newest") -> bytes:
    """The queue's leads for these filters and this user as a CSV or Excel file."""
    rows = lead_rows(session=session, filters=filters, user_id=user_id, role=role, sort=sort)
    return export_csv(rows) if fmt == "csv" else export_xlsx(rows)
