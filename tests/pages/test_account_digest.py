"""My account: viewers, managers and admins opt in to the report email; staff are not offered it."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from db.models import AuditEvent
from tests.pages.conftest import AppDb, open_page

OPT_IN = "Email me the weekly and monthly report"
SAVE = "Save email preference"


def give_email(db: AppDb, username: str, email: str) -> None:
    with db.session() as session:
        user = session.merge(db.user(username))
        user.email = email


def opt_in_box(at):  # noqa: ANN001, ANN201 - an AppTest and its Checkbox
    boxes = [box for box in at.checkbox if box.label == OPT_IN]
    return boxes[0] if boxes else None


def save(at):  # noqa: ANN001, ANN201 - an AppTest
    next(button for button in at.button if button.label == SAVE).click()
    return at.run()


@pytest.mark.parametrize("role", ["viewer", "manager", "admin"])
def test_opting_in_and_out_is_saved_and_audited(app_db: AppDb, signed_in, role: str) -> None:
    username = {"viewer": "vic", "manager": "max", "admin": "ada"}[role]
    give_email(app_db, username, f"{username}@leadops.example")
    at = open_page(signed_in(role), "pages/account.py")

    box = opt_in_box(at)
    assert not at.exception and box is not None and box.value is False and not box.disabled
    address = next(field for field in at.text_input if field.label == "Email address")
    assert address.value == f"{username}@leadops.example"  # the address it goes to

    box.check()
    at = save(at)
    assert [s.value for s in at.success] == ["You will get the report by email."]
    assert app_db.user(username).digest_opt_in is True
    assert opt_in_box(at).value is True

    opt_in_box(at).uncheck()
    at = save(at)
    assert [s.value for s in at.success] == ["You will no longer get the report by email."]
    assert app_db.user(username).digest_opt_in is False
    with app_db.session() as session:
        actions = session.scalars(select(AuditEvent.action).where(AuditEvent.actor == f"user:{username}")
                                  .order_by(AuditEvent.created_at, AuditEvent.id)).all()
    assert actions == ["user.digest_opted_in", "user.digest_opted_out"]


def test_without_an_email_address_opting_in_asks_for_one_and_then_saves_it(app_db: AppDb, signed_in) -> None:
    at = open_page(signed_in("viewer"), "pages/account.py")
    opt_in_box(at).check()
    at = save(at)
    assert [e.value for e in at.error] == ["Digest opt in: needs an email address on the account"]
    assert app_db.user("vic").digest_opt_in is False

    next(field for field in at.text_input if field.label == "Email address").input("not an address")
    at = save(at)
    assert at.error and at.error[0].value.startswith("Email: ")

    next(field for field in at.text_input if field.label == "Email address").input(" Vic@Harbor.Example ")
    opt_in_box(at).check()
    at = save(at)
    assert [s.value for s in at.success] == ["You will get the report by email."]
    vic = app_db.user("vic")
    assert vic.email == "vic@harbor.example" and vic.digest_opt_in is True


def test_staff_are_not_offered_the_report_email(app_db: AppDb, signed_in) -> None:
    give_email(app_db, "sam", "sam@leadops.example")
    at = open_page(signed_in("staff"), "pages/account.py")

    assert not at.exception
    assert opt_in_box(at) is None
    assert "Change password" in [button.label for button in at.button]  # the rest of the page is there
