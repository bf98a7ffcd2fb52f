"""Possible duplicates as people see them: on the lead page (merge after confirming, or dismiss) and after intake."""

from __future__ import annotations

from sqlalchemy import select
from streamlit.testing.v1 import AppTest

from db.models import Activity, ActivityKind, DuplicateCandidate, Lead
from tests.pages.conftest import AppDb, click, open_page, values

PAGE = "pages/lead.py"
MERGE, DISMISS, CONFIRM = "Merge into this lead", "Not a duplicate", "Yes, merge"
XSS_NAME = "<img src=x onerror=alert(1)><b>bold</b>"


def labels(at: AppTest) -> list[str]:
    return [b.label for b in at.button]


def stored_lead(db: AppDb, lead_id: str) -> Lead | None:
    with db.session() as session:
        return session.get(Lead, lead_id)


def twins(add_lead) -> tuple[dict, dict]:  # noqa: ANN001 - the add_lead fixture
    """Two leads from one person: the second came in later through the web form with the same address."""
    first = add_lead(full_name="Dana Whitfield", phone=None, budget=None)
    second = add_lead(full_name="Dana Whitfield", email=" Dana.Whitfield@HarborlineFreight.example")
    return first, second


def test_the_lead_page_shows_the_duplicate_and_a_manager_merges_after_confirming(app_db, signed_in, add_lead):
    first, second = twins(add_lead)
    at = open_page(signed_in("manager"), PAGE, id=first["id"])

    assert not at.exception
    assert "Possible duplicates" in values(at.subheader)
    texts = values(at.text)
    assert ("98% alike: same email; same company domain (harborlinefreight.example); similar name (100%); "
            "similar company (100%)") in texts
    assert "Dana Whitfield · Harborline Freight · dana.whitfield@harborlinefreight.example" in texts

    at = click(at, MERGE)
    assert any("cannot be undone" in w for w in values(at.warning))
    assert stored_lead(app_db, second["id"]) is not None, "nothing happens before the confirmation"
    assert CONFIRM in labels(at) and MERGE not in labels(at)

    at = click(at, CONFIRM)
    assert not at.exception
    assert stored_lead(app_db, second["id"]) is None
    kept = stored_lead(app_db, first["id"])
    assert kept.phone == "+13125550148" and kept.budget == "$80k-$120k", "empty fields filled from the other lead"
    assert "Possible duplicates" not in values(at.subheader)
    with app_db.session() as session:
        kinds = list(session.scalars(select(Activity.kind).where(Activity.lead_id == first["id"])))
    assert kinds.count(ActivityKind.MERGED) == 2 and kinds.count(ActivityKind.CREATED) == 2
    assert "MERGED" in list(at.dataframe[-1].value["what"]), "the timeline shows the merge"


def test_cancelling_the_confirmation_merges_nothing(app_db, signed_in, add_lead):
    first, second = twins(add_lead)
    at = click(open_page(signed_in("admin"), PAGE, id=second["id"]), MERGE)

    at = click(at, "Cancel")

    assert MERGE in labels(at) and CONFIRM not in labels(at)
    assert stored_lead(app_db, first["id"]) is not None


def test_not_a_duplicate_dismisses_the_pair(app_db, signed_in, add_lead):
    first, second = twins(add_lead)
    at = click(open_page(signed_in("manager"), PAGE, id=second["id"]), DISMISS)

    assert not at.exception
    assert "Possible duplicates" not in values(at.subheader)
    with app_db.session() as session:
        pair = session.scalars(select(DuplicateCandidate)).one()
        assert (pair.status, pair.resolved_by) == ("DISMISSED", "user:max")
    assert stored_lead(app_db, first["id"]) is not None


def test_staff_see_the_duplicate_without_merge_or_dismiss_buttons(app_db, signed_in, add_lead):
    first, _second = twins(add_lead)
    at = open_page(signed_in("staff"), PAGE, id=first["id"])

    assert not at.exception
    assert "Possible duplicates" in values(at.subheader)
    assert MERGE not in labels(at) and DISMISS not in labels(at)


def test_the_other_leads_text_is_shown_as_plain_text(app_db, signed_in, add_lead):
    first = add_lead(full_name=XSS_NAME)
    add_lead(full_name=XSS_NAME, company="Acme <script>x</script>")
    at = open_page(signed_in("manager"), PAGE, id=first["id"])

    assert any(t.startswith(XSS_NAME + " · Acme <script>x</script>") for t in values(at.text))
    assert not any(XSS_NAME in m for m in values(at.markdown))


def test_intake_lists_the_lookalikes_found_for_the_saved_lead(app_db, signed_in, add_lead):
    earlier = add_lead(full_name="Priya Raman", email="priya.raman@gmail.com", phone="+44 20 7946 0958",
                       company="Northwind Clinics")
    at = open_page(signed_in("staff"), "pages/intake.py")
    for label, value in (("Full name *", "Priya Raman"), ("Email *", "p.raman@outlook.com"),
                         ("Phone", "+442079460958"), ("Company", "Northwind Clinics Ltd")):
        next(t for t in at.text_input if t.label == label).input(value)
    next(t for t in at.text_area if t.label == "What do they need? *").input("A patient booking app, please.")
    at = click(at, "Save and analyse")

    assert not at.exception
    assert "1 other lead(s) look like this one: this may be a duplicate. A manager can merge them on the lead's " \
           "page." in values(at.warning)
    [listed] = [t for t in values(at.text) if "% alike (" in t]
    assert "same phone" in listed and listed.endswith("Priya Raman · Northwind Clinics · priya.raman@gmail.com")
    at = click(at, next(label for label in labels(at) if label.startswith("Open the earlier lead from")))
    assert at.query_params.get("id") == earlier["id"]
