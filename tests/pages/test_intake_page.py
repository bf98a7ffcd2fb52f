"""New lead: after a save the form is empty again (a second press saves nothing twice); a refused entry keeps it."""

from __future__ import annotations

from sqlalchemy import func, select
from streamlit.testing.v1 import AppTest

from db.models import Lead
from tests.pages.conftest import AppDb, by_label, click, open_page, values

PAGE = "pages/intake.py"
LABELS = {"full_name": "Full name *", "email": "Email *", "phone": "Phone", "company": "Company", "budget": "Budget"}
MESSAGE = "What do they need? *"
NEW_LEAD = {"full_name": "Priya Raman", "email": "priya@northwindclinics.example", "phone": "+44 20 7946 0958",
            "company": "Northwind Clinics", "budget": "$60k",
            "message": "We need a patient booking web app with SMS reminders and an admin dashboard; launch in Q2."}


def fill(at: AppTest, **fields: str) -> AppTest:
    """Types the fields into the form (nothing is sent yet)."""
    for field, value in fields.items():
        if field == "message":
            by_label(at.text_area, MESSAGE).input(value)
        else:
            by_label(at.text_input, LABELS[field]).input(value)
    return at


def form_values(at: AppTest) -> dict[str, str]:
    """What the form's fields hold now."""
    shown = {field: by_label(at.text_input, label).value for field, label in LABELS.items()}
    return {**shown, "message": by_label(at.text_area, MESSAGE).value}


def lead_count(db: AppDb) -> int:
    with db.session() as session:
        return session.scalar(select(func.count()).select_from(Lead))


def test_after_a_save_the_form_is_empty_and_the_card_shows_the_saved_lead(app_db, signed_in):
    at = click(fill(open_page(signed_in("staff"), PAGE), **NEW_LEAD), "Save and analyse")

    assert not at.exception and not at.error
    assert form_values(at) == dict.fromkeys([*LABELS, "message"], "")
    assert "Lead saved with its analysis." in values(at.success)
    with app_db.session() as session:
        saved = session.scalars(select(Lead)).one()
    assert by_label(at.metric, "Score").value == str(saved.score)
    assert any("Priya Raman of Northwind Clinics" in t for t in values(at.text))  # the saved lead's summary

    # Pressing Save again sends an empty form: refused, and the lead is not saved a second time.
    at = click(at, "Save and analyse")

    assert "Full name is required" in values(at.error)
    assert lead_count(app_db) == 1


def test_a_refused_entry_keeps_what_was_typed(app_db, signed_in):
    typed = {**NEW_LEAD, "full_name": "  ", "email": "priya@"}
    at = click(fill(open_page(signed_in("staff"), PAGE), **typed), "Save and analyse")

    assert not at.exception
    assert "Full name is required" in values(at.error)
    assert form_values(at) == typed
    assert lead_count(app_db) == 0

    # Corrected, the same form saves the lead.
    at = click(fill(at, full_name="Priya Raman", email=NEW_LEAD["email"]), "Save and analyse")

    assert not at.error
    assert "Lead saved with its analysis." in values(at.success)
    assert form_values(at)["full_name"] == "" and lead_count(app_db) == 1
