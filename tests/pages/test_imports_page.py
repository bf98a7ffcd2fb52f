"""The Import page as managers use it (upload, mapping, preview, import, undo), and the queue's export buttons."""

from __future__ import annotations

import csv
import io

import pytest
from sqlalchemy import select
from streamlit.testing.v1 import AppTest

from db.models import ImportBatch, Lead, LeadStatus
from tests.pages.conftest import REFUSED, AppDb, by_label, click, open_page, values

PAGE = "pages/imports.py"


def csv_file(rows: list[list[str]]) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows(rows)
    return out.getvalue().encode("utf-8")


CRM = csv_file([
    ["Name", "Email", "Notes", "Converted", "Region"],
    ["Priya Raman", "priya@northwindclinics.example", "Booking app with SMS reminders.", "1", "EMEA"],
    ["<b>Tomás</b> Ortega", "tomas@ortega-logistics.example", "[click](http://evil.test) fleet portal.", "0",
     "Select"],
    ["No Address", "not-an-address", "Something.", "", "APAC"],
])


def upload(at: AppTest, name: str, data: bytes) -> AppTest:
    at.file_uploader[0].set_value((name, data, "text/csv"))
    return at.run()


def stored_leads(db: AppDb) -> dict[str, Lead]:
    with db.session() as session:
        return {lead.email: lead for lead in session.scalars(select(Lead))}


def test_a_manager_uploads_previews_imports_and_undoes_a_file(app_db, signed_in):
    at = open_page(signed_in("manager"), PAGE)
    assert not at.exception and REFUSED not in values(at.error)
    assert "Nothing imported yet." in values(at.info)

    at = upload(at, "crm.csv", CRM)

    assert not at.exception
    mapping, preview = at.dataframe[0].value, at.dataframe[1].value
    assert list(mapping["maps to"]) == ["full_name", "email", "message", "outcome", "custom"]
    assert list(preview["row"]) == [2, 3, 4]
    assert list(preview["status"]) == ["WON", "LOST", "NEW"]
    assert preview["problems"][2].startswith("email: is not a valid email address")
    assert any("1 of the first 3 rows have problems" in w for w in values(at.warning))
    # What the file says is data: shown in tables, never rendered as markdown.
    assert not any("evil.test" in m or "Tomás" in m for m in values(at.markdown) + values(at.caption))

    at = click(at, "Import 3 rows")

    assert not at.exception
    assert {m.label: m.value for m in at.metric} == {"Created": "2", "Updated": "0", "Skipped": "0", "Failed": "1"}
    assert "Download the failed rows (CSV)" in [b.label for b in at.get("download_button")]
    leads = stored_leads(app_db)
    assert set(leads) == {"priya@northwindclinics.example", "tomas@ortega-logistics.example"}
    assert leads["priya@northwindclinics.example"].status == LeadStatus.WON
    assert leads["priya@northwindclinics.example"].custom_attributes == {"Region": "EMEA"}
    assert not any(lead.auto_follow_up for lead in leads.values())
    with app_db.session() as session:
        assert session.scalar(select(ImportBatch.created_by)) == "user:max"

    at = click(at, "Undo this import…")
    assert any("Undo deletes the 2 lead(s) this import created" in w for w in values(at.warning))
    at = click(at, "Yes, undo the import")

    assert not at.exception
    assert any("Import undone: 2 lead(s) deleted, 0 restored." in s for s in values(at.success))
    assert stored_leads(app_db) == {}
    with app_db.session() as session:
        assert session.scalar(select(ImportBatch.status)) == "UNDONE"
    assert not [b for b in at.button if b.label == "Undo this import…"]


def test_cancelling_an_undo_keeps_the_import(app_db, signed_in):
    at = upload(open_page(signed_in("admin"), PAGE), "crm.csv", CRM)
    at = click(at, "Import 3 rows")
    at = click(at, "Undo this import…")
    at = click(at, "Cancel")

    assert not at.exception
    assert len(stored_leads(app_db)) == 2
    assert [b.label for b in at.button if b.label == "Undo this import…"] == ["Undo this import…"]


def test_the_mapping_as_edited_and_the_options_reach_the_import(app_db, signed_in):
    at = upload(open_page(signed_in("manager"), PAGE), "crm.csv", CRM)
    editor = at.dataframe[0]
    # What the browser sends when a person picks "ignore" for the Region row (row 4) of the mapping.
    at.session_state[editor.key] = {"edited_rows": {4: {"maps to": "ignore"}}, "added_rows": [], "deleted_rows": []}
    at.run()
    assert list(at.dataframe[1].value["custom attributes"]) == [0, 0, 0]
    by_label(at.text_input, "Values that mean “missing” (comma-separated)").input("Select, APAC")
    by_label(at.toggle, "Contact these leads with the automatic follow-up sequences").set_value(True)
    at.run()

    at = click(at, "Import 3 rows")

    assert not at.exception
    leads = stored_leads(app_db)
    assert all(lead.auto_follow_up for lead in leads.values())
    assert all(lead.custom_attributes == {} for lead in leads.values())
    with app_db.session() as session:
        options = session.scalar(select(ImportBatch.options))
    assert options["placeholders"] == ["", "Select", "APAC"] and options["follow_up"] is True


def test_a_file_that_cannot_be_read_is_refused_with_the_reason(app_db, signed_in):
    at = upload(open_page(signed_in("manager"), PAGE), "empty.csv", b"")

    assert not at.exception
    assert "File: the file is empty" in values(at.error)
    assert not [b for b in at.button if b.label.startswith("Import ")]


@pytest.mark.parametrize("role", ["staff", "viewer"])
def test_other_roles_are_refused_the_import_page(signed_in, role):
    at = open_page(signed_in(role), PAGE)

    assert not at.exception
    assert REFUSED in values(at.error)
    assert not at.file_uploader


@pytest.mark.parametrize(("role", "buttons"), [("manager", ["Export CSV", "Export Excel"]), ("admin", [
    "Export CSV", "Export Excel"]), ("staff", [])])
def test_the_queue_offers_exports_to_managers_and_admins_only(signed_in, add_lead, role, buttons):
    add_lead()
    at = open_page(signed_in(role), "pages/queue.py")

    assert not at.exception
    assert [b.label for b in at.get("download_button")] == buttons
