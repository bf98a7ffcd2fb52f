"""Imports on SQLite and PostgreSQL: files read, columns mapped, rows created, updated, skipped or failed, undone."""

from __future__ import annotations

import csv
import io
import json
import time
from pathlib import Path

import pytest
from openpyxl import Workbook
from sqlalchemy import Engine, func, select

from core import audit, exports, imports, schemas
from core import leads as lead_service
from core.config import Settings
from core.errors import ValidationFailed
from core.leads import LeadFilters
from db.models import (
    Activity,
    ActivityKind,
    AuditEvent,
    FollowUp,
    ImportBatch,
    ImportRow,
    Lead,
    LeadStatus,
    Role,
)
from db.session import session_scope
from tests.conftest import PROJECT, shared_path
from tests.support.factories import make_lead, make_user

pytestmark = pytest.mark.usefixtures("fast_bcrypt")

MAPPING_FILE = PROJECT / "bench" / "x_education_mapping.json"
HEADER = ["Name", "E-mail", "Phone", "Company", "Budget", "Notes", "Converted", "Region", "Visits", "CRM ID"]
ROWS = [
    ["Priya Raman", "Priya@NorthwindClinics.example", "+44 20 7946 0958", "Northwind Clinics", "$60k",
     "Patient booking web app with SMS reminders and an admin dashboard; launch in Q2.", "1", "EMEA", "12", "c-1"],
    ["Tomás Ortega", "tomas@ortega-logistics.example", "", "Ortega Logistics", "", "Fleet tracking portal.", "0",
     "Select", "3", "c-2"],
    ["Mei Chen", "mei.chen@lanternfoods.example", "N/A", "Lantern Foods", "€20k-€30k",
     "Online ordering for 14 restaurants.", "", "APAC", "", "c-3"],
]


def csv_bytes(header: list[str], rows: list[list[str]], *, sep: str = ",", encoding: str = "utf-8") -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, delimiter=sep, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue().encode(encoding)


def xlsx_bytes(header: list[str], rows: list[list[object]]) -> bytes:
    workbook = Workbook()
    sheet = workbook.active
    sheet.append(header)
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


def do_import(engine: Engine, settings: Settings, data: bytes, filename: str = "leads.csv",
              mapping: dict[str, str] | None = None, **options: object) -> ImportBatch:
    table = imports.read_table(data, filename)
    return imports.run(engine=engine, settings=settings, df=table, mapping=mapping or imports.suggest_mapping(
        table.columns), options=options, filename=filename, actor="user:max")


def leads_by_email(engine: Engine) -> dict[str, Lead]:
    with session_scope(engine) as session:
        return {lead.email: lead for lead in session.scalars(select(Lead))}


def count(engine: Engine, model: type, *where: object) -> int:
    with session_scope(engine) as session:
        return session.scalar(select(func.count()).select_from(model).where(*where)) or 0


def import_rows(engine: Engine, batch_id: str) -> dict[int, ImportRow]:
    with session_scope(engine) as session:
        return {r.row_number: r for r in session.scalars(select(ImportRow).where(ImportRow.batch_id == batch_id))}


def exported(engine: Engine, fmt: str) -> list[dict[str, str]]:
    """The queue export of a manager, read back the way an import reads a file."""
    with session_scope(engine) as session:
        manager = make_user(session, "max", Role.MANAGER)
        data = exports.export_queue(session=session, filters=LeadFilters(), user_id=manager.id, role="manager",
                                    fmt=fmt)  # type: ignore[arg-type]
    table = imports.read_table(data, f"export.{fmt}")
    return table.to_dict("records")


# --- reading files ----------------------------------------------------------------------------------------------------


def test_the_suggested_mapping_reads_headers_whatever_their_case_spacing_and_punctuation():
    mapping = imports.suggest_mapping(["Full Name", "E-MAIL", " phone number ", "Company_Name", "Lead Source",
                                       "Converted", "Prospect ID", "Date Created", "Favourite colour", "Email"])

    assert mapping == {"Full Name": "full_name", "E-MAIL": "email", " phone number ": "phone",
                       "Company_Name": "company", "Lead Source": "source", "Converted": "outcome",
                       "Prospect ID": "external_id", "Date Created": "created_at", "Favourite colour": "custom",
                       "Email": "custom"}  # a second email column is kept as it is, not a second email


def test_csv_files_in_latin_1_with_semicolons_and_with_a_byte_order_mark_are_read():
    latin = csv_bytes(["Name", "Email", "City"], [["José Núñez", "jose@example.com", "Málaga"]], sep=";",
                      encoding="latin-1")
    bom = b"\xef\xbb\xbf" + csv_bytes(["Name", "Email"], [["Zoë", "zoe@example.com"]])

    assert imports.read_table(latin, "spain.csv").to_dict("records") == [
        {"Name": "José Núñez", "Email": "jose@example.com", "City": "Málaga"}]
    assert list(imports.read_table(bom, "bom.csv").columns) == ["Name", "Email"]


def test_the_trailing_empty_column_of_x_education_style_files_is_dropped_and_blank_rows_skipped():
    data = b"Prospect ID,Converted,\r\nabc,1,\r\n,,\r\ndef,0,\r\n"

    table = imports.read_table(data, "Leads.csv")

    assert list(table.columns) == ["Prospect ID", "Converted"]
    assert table.to_dict("records") == [{"Prospect ID": "abc", "Converted": "1"},
                                        {"Prospect ID": "def", "Converted": "0"}]


@pytest.mark.parametrize(("data", "filename", "problem"), [
    (b"", "empty.csv", "the file is empty"),
    (b"  \r\n", "blank.csv", "the file is empty"),
    (b"Name,Email\r\n", "header-only.csv", "no rows of data"),
    (b"%PDF-1.7", "quote.pdf", ".pdf cannot be imported: upload a CSV (.csv) or Excel (.xlsx) file"),
    (b"\xd0\xcf\x11\xe0", "old.xls", "old Excel files (.xls) cannot be read"),
    (b"not a zip at all", "broken.xlsx", "not an Excel workbook that can be read"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00", "photo.csv", "not a text file"),
])
def test_unreadable_files_are_refused_with_the_problem_named(data, filename, problem):
    with pytest.raises(ValidationFailed) as caught:
        imports.read_table(data, filename)

    assert caught.value.errors[0].field == "file"
    assert problem in caught.value.errors[0].message


def test_the_preview_shows_the_first_rows_as_they_would_be_imported_with_field_named_problems():
    table = imports.read_table(csv_bytes(HEADER, [*ROWS, ["", "not-an-address", "", "", "", "", "maybe", "", "",
                                                          "c-4"]]), "leads.csv")

    shown = imports.preview(table, imports.suggest_mapping(table.columns), {"key": "external_id"}, n=20)

    assert [row["row"] for row in shown] == [2, 3, 4, 5]
    assert shown[0]["email"] == "priya@northwindclinics.example" and shown[0]["status"] == "WON"
    assert shown[0]["problems"] == "" and shown[2]["phone"] is None  # "N/A" is missing, not a phone number
    assert shown[3]["problems"].startswith("email: is not a valid email address")
    assert "outcome: 'maybe' is not one of the outcome values" in shown[3]["problems"]


def test_a_mapping_that_cannot_work_is_refused_before_anything_is_written(engine, settings):
    table = imports.read_table(csv_bytes(HEADER, ROWS), "leads.csv")
    mapping = {**imports.suggest_mapping(table.columns), "Company": "email", "Region": "colour"}

    with pytest.raises(ValidationFailed) as caught:
        imports.run(engine=engine, settings=settings, df=table, mapping=mapping, options={"key": "external_id"},
                    filename="leads.csv", actor="user:max")

    messages = [f"{e.field}: {e.message}" for e in caught.value.errors]
    assert "mapping: both 'E-mail' and 'Company' map to email; map one of them to custom or ignore" in messages
    assert any("'colour' is not a target" in m for m in messages)
    assert count(engine, ImportBatch) == 0 and count(engine, Lead) == 0


# --- round trips ------------------------------------------------------------------------------------------------------


def test_a_csv_round_trips_mapped_fields_custom_attributes_and_outcomes(engine, settings):
    batch = do_import(engine, settings, csv_bytes(HEADER, ROWS), key="external_id")

    assert (batch.status, batch.created, batch.updated, batch.skipped, batch.failed) == ("DONE", 3, 0, 0, 0)
    leads = leads_by_email(engine)
    priya = leads["priya@northwindclinics.example"]
    assert (priya.full_name, priya.phone, priya.company, priya.budget) == (
        "Priya Raman", "+442079460958", "Northwind Clinics", "$60k")
    assert priya.message.startswith("Patient booking web app") and priya.external_id == "c-1"
    assert priya.custom_attributes == {"Region": "EMEA", "Visits": 12}  # a column of numbers keeps numbers
    assert priya.status == LeadStatus.WON and priya.closed_at is not None
    assert priya.budget_usd is not None and priya.source == "import" and priya.import_batch_id == batch.id
    tomas = leads["tomas@ortega-logistics.example"]
    assert tomas.status == LeadStatus.LOST and tomas.custom_attributes == {"Visits": 3}  # "Select" is missing
    mei = leads["mei.chen@lanternfoods.example"]
    assert mei.status == LeadStatus.NEW and mei.closed_at is None and mei.phone is None
    assert mei.budget_currency == "EUR"
    # Imported leads are not contacted unless the import asks, and each has its import on its timeline.
    assert not any(lead.auto_follow_up for lead in leads.values())
    assert count(engine, FollowUp) == 0
    with session_scope(engine) as session:
        entries = list(session.scalars(select(Activity).where(Activity.lead_id == priya.id)))
        assert [e.kind for e in entries] == [ActivityKind.IMPORTED]
        assert entries[0].body.startswith("Imported from leads.csv (row 2); scored ")
        assert audit.get_all(session=session, action="import.run")[0].detail["created"] == 3

    back = {row["email"]: row for row in exported(engine, "csv")}

    assert set(back) == set(leads)
    row = back["priya@northwindclinics.example"]
    assert (row["full_name"], row["phone"], row["company"], row["budget"], row["external_id"]) == (
        "Priya Raman", "'+442079460958", "Northwind Clinics", "$60k", "c-1")  # + neutralised, see test_exports
    assert (row["status"], row["Region"], row["Visits"]) == ("WON", "EMEA", "12")
    assert back["tomas@ortega-logistics.example"]["Region"] == ""

    again = do_import(engine, settings, exports.export_csv(
        exports.lead_row(lead) for lead in leads.values()), "again.csv", key="external_id")
    assert (again.created, again.skipped) == (0, 3)  # the export maps straight back onto the same leads


def test_an_excel_file_round_trips(engine, settings):
    data = xlsx_bytes(["Full name", "Email", "Budget", "Converted", "Employees", "Signed up"], [
        ["Ada Lovelace", "ada@analytical.example", "$45,000", "won", 120, "2024-05-31"],
        ["Charles Babbage", "charles@difference.example", None, "lost", 8, None],
    ])

    batch = do_import(engine, settings, data, "crm.xlsx")

    assert (batch.created, batch.failed) == (2, 0)
    ada = leads_by_email(engine)["ada@analytical.example"]
    assert ada.status == LeadStatus.WON and ada.budget == "$45,000"
    assert ada.custom_attributes == {"Employees": 120, "Signed up": "2024-05-31"}
    assert leads_by_email(engine)["charles@difference.example"].status == LeadStatus.LOST

    back = {row["email"]: row for row in exported(engine, "xlsx")}

    assert back["ada@analytical.example"]["full_name"] == "Ada Lovelace"
    assert back["ada@analytical.example"]["Employees"] == "120"
    assert back["ada@analytical.example"]["status"] == "WON"
    assert back["charles@difference.example"]["Signed up"] == ""


def test_a_file_without_name_email_or_message_gets_a_placeholder_address_a_label_and_a_message(engine, settings):
    data = csv_bytes(["Lead Number", "Prospect ID", "Converted", "City"], [["660737", "7927b2df", "1", "Mumbai"],
                                                                          ["660728", "2a272436", "0", "Select"]])

    batch = do_import(engine, settings, data, "Leads.csv", key="external_id", label_column="Lead Number",
                      follow_up=True)

    assert batch.created == 2
    lead = leads_by_email(engine)["lead-660737@import.invalid"]
    assert lead.full_name == "Lead 660737" and lead.external_id == "7927b2df"
    assert lead.message == ("Imported from Leads.csv, row 2. The file has no message for this lead; its 2 other "
                            "column(s) are kept as custom attributes.")
    assert lead.custom_attributes == {"Lead Number": 660737, "City": "Mumbai"}
    # Asked for follow-ups, but an address that can never receive mail is never contacted.
    assert not lead.auto_follow_up and count(engine, FollowUp) == 0


def test_follow_ups_are_planned_only_when_the_import_asks(engine, settings):
    header = ["Name", "Email", "Notes"]
    rows = [["Dana Whitfield", "dana@harborlinefreight.example", "Tracking portal with SSO; budget approved."]]

    do_import(engine, settings, csv_bytes(header, rows), "quiet.csv")
    assert count(engine, FollowUp) == 0

    do_import(engine, settings, csv_bytes(header, [["Sam Okafor", "sam@okafor.example", "A booking app."]]),
              "loud.csv", follow_up=True)
    sam = leads_by_email(engine)["sam@okafor.example"]
    assert sam.auto_follow_up
    assert count(engine, FollowUp, FollowUp.lead_id == sam.id) > 0


# --- bad rows, keys and placeholders ----------------------------------------------------------------------------------


def test_bad_rows_are_reported_with_their_reason_and_the_rest_is_imported(engine, settings):
    rows = [
        ROWS[0],
        ["Bad Email", "bad@", "", "", "", "x", "1", "", "", "b-1"],
        ["N" * 201, "long@name.example", "", "", "", "x", "1", "", "", "b-2"],
        ["Odd Outcome", "odd@outcome.example", "", "", "", "x", "maybe", "", "", "b-3"],
        ["=HYPERLINK(\"http://evil.test\")", "formula@cell.example", "", "", "", "x", "0", "", "", "b-4"],
        ROWS[1],
    ]

    batch = do_import(engine, settings, csv_bytes(HEADER, rows), key="external_id")

    assert (batch.created, batch.failed, batch.status) == (3, 3, "DONE")
    recorded = import_rows(engine, batch.id)
    assert [recorded[n].action for n in range(2, 8)] == ["created", "failed", "failed", "failed", "created",
                                                         "created"]
    assert recorded[3].error.startswith("email: is not a valid email address")
    assert recorded[4].error == "full_name: must be at most 200 characters (got 201)"
    assert recorded[5].error.startswith("outcome: 'maybe' is not one of the outcome values")
    assert recorded[3].raw["E-mail"] == "bad@"
    with session_scope(engine) as session:
        failed = imports.failed_rows(session=session, batch_id=batch.id)
        download = imports.failed_rows_csv(session=session, batch_id=batch.id)
    assert [r["import row"] for r in failed] == [3, 4, 5]
    table = imports.read_table(download, "failed.csv")
    assert list(table.columns)[:3] == ["import row", "import problem", "Name"]
    assert list(table["E-mail"]) == ["bad@", "long@name.example", "odd@outcome.example"]
    assert imports.suggest_mapping(table.columns)["import problem"] == "ignore"


def test_a_row_with_an_unreadable_phone_fails_on_its_phone_and_a_formula_is_downloaded_neutralised(engine, settings):
    rows = [["=HYPERLINK(\"http://evil.test\")", "formula@cell.example", "call me", "", "", "x", "0", "", "", "b-4"]]

    batch = do_import(engine, settings, csv_bytes(HEADER, rows), key="external_id")

    assert batch.failed == 1
    with session_scope(engine) as session:
        download = imports.failed_rows_csv(session=session, batch_id=batch.id).decode("utf-8-sig")
    [row] = list(csv.DictReader(io.StringIO(download)))
    assert row["import problem"].startswith("phone: is not a phone number")
    assert row["Name"] == "'=HYPERLINK(\"http://evil.test\")"


def test_rows_update_or_skip_the_lead_their_key_finds(engine, settings):
    with session_scope(engine) as session:
        existing = make_lead(session, email="priya@northwindclinics.example", full_name="Priya R.", phone=None)
        existing_id = existing.id
    rows = [ROWS[0]]

    skipped = do_import(engine, settings, csv_bytes(HEADER, rows), on_existing="skip")
    assert (skipped.created, skipped.skipped) == (0, 1)
    assert leads_by_email(engine)["priya@northwindclinics.example"].full_name == "Priya R."

    updated = do_import(engine, settings, csv_bytes(HEADER, rows), on_existing="update")

    assert (updated.created, updated.updated) == (0, 1)
    with session_scope(engine) as session:
        lead = session.get(Lead, existing_id)
        assert (lead.full_name, lead.phone, lead.status) == ("Priya Raman", "+442079460958", LeadStatus.WON)
        assert lead.custom_attributes == {"Region": "EMEA", "Visits": 12} and lead.external_id == "c-1"
        assert lead.analysis.summary and lead.closed_at is not None
        before = session.scalar(select(ImportRow).where(ImportRow.batch_id == updated.id)).previous
        assert before["lead"]["full_name"] == "Priya R." and before["lead"]["status"] == "NEW"
        kinds = [a.kind for a in session.scalars(select(Activity).where(Activity.lead_id == existing_id))]
        assert kinds.count(ActivityKind.IMPORTED) == 1

    same_again = do_import(engine, settings, csv_bytes(HEADER, rows), on_existing="update")
    assert (same_again.updated, same_again.skipped) == (0, 1)  # nothing new: left alone

    created = do_import(engine, settings, csv_bytes(HEADER, rows), on_existing="create")
    assert created.created == 1
    assert count(engine, Lead, Lead.email == "priya@northwindclinics.example") == 2


def test_an_update_never_blanks_a_field_the_row_leaves_empty(engine, settings):
    with session_scope(engine) as session:
        make_lead(session, email="mei.chen@lanternfoods.example", phone="+1 (312) 555-0148", company="Lantern")

    do_import(engine, settings, csv_bytes(["Email", "Phone", "Company"], [["mei.chen@lanternfoods.example", "Select",
                                                                          "Lantern Foods"]]), on_existing="update")

    lead = leads_by_email(engine)["mei.chen@lanternfoods.example"]
    assert (lead.phone, lead.company) == ("+13125550148", "Lantern Foods")


def test_a_key_repeated_in_the_file_is_imported_once(engine, settings):
    rows = [ROWS[0], [*ROWS[2][:9], "c-1"]]

    skip = do_import(engine, settings, csv_bytes(HEADER, rows), key="external_id", on_existing="skip")
    assert (skip.created, skip.skipped) == (1, 1)
    assert import_rows(engine, skip.id)[3].error == "external_id: same 'c-1' as row 2 of this file"

    update = do_import(engine, settings, csv_bytes(HEADER, [[*ROWS[1][:9], "c-9"], [*ROWS[2][:9], "c-9"]]),
                       key="external_id", on_existing="update")
    assert (update.created, update.failed) == (1, 1)


def test_custom_placeholders_count_as_missing(engine, settings):
    data = csv_bytes(["Email", "Phone", "Region"], [["a@b.example", "unknown", "--"], ["c@d.example", "-", "North"]])

    do_import(engine, settings, data, placeholders=["unknown", "--", "-"])

    leads = leads_by_email(engine)
    assert leads["a@b.example"].phone is None and leads["a@b.example"].custom_attributes == {}
    assert leads["c@d.example"].custom_attributes == {"Region": "North"}


# --- undo -------------------------------------------------------------------------------------------------------------


def test_undo_deletes_created_leads_restores_updated_ones_and_keeps_leads_worked_on_since(engine, settings):
    with session_scope(engine) as session:
        existing = make_lead(session, email="priya@northwindclinics.example", full_name="Priya R.")
        existing_id = existing.id
        score_before = existing.score
    batch = do_import(engine, settings, csv_bytes(HEADER, ROWS), on_existing="update")
    assert (batch.created, batch.updated) == (2, 1)
    leads = leads_by_email(engine)
    worked_id = leads["tomas@ortega-logistics.example"].id
    with session_scope(engine) as session:
        lead_service.update(session=session, lead=session.get(Lead, worked_id),
                            changes=schemas.parse_update({"note": "Called: wants a quote"}), actor="sam")

    with session_scope(engine) as session:
        outcome = imports.undo(session=session, batch_id=batch.id, actor="user:max")

    assert (outcome.deleted, outcome.restored, outcome.kept) == (1, 1, 1)
    leads = leads_by_email(engine)
    assert "mei.chen@lanternfoods.example" not in leads
    assert leads["tomas@ortega-logistics.example"].id == worked_id
    priya = leads["priya@northwindclinics.example"]
    assert (priya.id, priya.full_name, priya.status, priya.closed_at) == (existing_id, "Priya R.", LeadStatus.NEW,
                                                                         None)
    assert priya.custom_attributes == {} and priya.score == score_before
    with session_scope(engine) as session:
        assert session.get(ImportBatch, batch.id).status == "UNDONE"
        event = session.scalar(select(AuditEvent).where(AuditEvent.action == "import.undone"))
        assert event.target_id == batch.id and event.detail == {"deleted": 1, "restored": 1, "kept": 1}
        with pytest.raises(ValidationFailed, match="undone already"):
            imports.undo(session=session, batch_id=batch.id, actor="user:max")


# --- the real data ----------------------------------------------------------------------------------------------------


def test_the_x_education_file_imports_cleanly_with_its_mapping_file(engine, settings, record_property):
    """About 10 s per database: kept in the suite, as it is the one test of the import at its real size."""
    path = shared_path("datasets", "x-education", "Leads.csv")
    mapping, options = imports.load_mapping(MAPPING_FILE)
    table = imports.read_table(path.read_bytes(), path.name)
    seen: list[tuple[int, int]] = []

    started = time.monotonic()
    batch = imports.run(engine=engine, settings=settings, df=table, mapping=mapping, options=options,
                        filename=path.name, actor="bench", progress=lambda done, total: seen.append((done, total)))
    seconds = time.monotonic() - started

    record_property("x_education_import_seconds", round(seconds, 1))
    assert (batch.total_rows, batch.created, batch.failed, batch.status) == (9240, 9240, 0, "DONE")
    assert seen[-1] == (9240, 9240) and len(seen) == 19
    with session_scope(engine) as session:
        outcomes = dict(session.execute(select(Lead.status, func.count()).group_by(Lead.status)).all())
        sample = session.scalar(select(Lead).where(Lead.external_id == "7927b2df-8bba-4d29-b9a2-b6e0beafe620"))
        assert sample.email == "lead-660737@import.invalid" and sample.full_name == "Lead 660737"
        assert sample.custom_attributes["Lead Origin"] == "API" and sample.custom_attributes["TotalVisits"] == 0
        assert "Specialization" not in sample.custom_attributes  # "Select": not answered
    assert outcomes == {LeadStatus.WON: 3561, LeadStatus.LOST: 5679}
    assert seconds < 30, f"the 9,240 rows took {seconds:.1f} s"


def test_the_mapping_file_is_valid_json_naming_every_column_of_the_x_education_file():
    content = json.loads(Path(MAPPING_FILE).read_text(encoding="utf-8"))
    header = shared_path("datasets", "x-education", "Leads.csv").read_text(encoding="utf-8").splitlines()[0]

    assert set(content["mapping"]) == {c for c in header.split(",") if c}
    assert content["options"]["key"] == "external_id" and content["mapping"]["Prospect ID"] == "external_id"
    assert content["mapping"]["Converted"] == "outcome"
