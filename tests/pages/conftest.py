"""Fixtures for the page tests: an app database with a user of every role, signed-in AppTests, leads via intake."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
import streamlit as st
from sqlalchemy.orm import Session
from streamlit.testing.v1 import AppTest

from core import intake, schemas, users
from core import leads as lead_service
from core.config import get_settings
from db.models import Role, User
from db.session import get_engine, session_scope
from tests.conftest import PROJECT, lead_payload

# One user per role, plus a second staff member to assign leads to; every password is at least 10 characters.
ACCOUNTS: dict[str, tuple[Role, str]] = {
    "ada": (Role.ADMIN, "ada-admin-password"),
    "max": (Role.MANAGER, "max-manager-password"),
    "sam": (Role.STAFF, "sam-staff-password"),
    "sue": (Role.STAFF, "sue-staff-password"),
    "vic": (Role.VIEWER, "vic-viewer-password"),
}
# The user each role signs in as.
BY_ROLE = {"admin": "ada", "manager": "max", "staff": "sam", "viewer": "vic"}
REFUSED = "Your role does not give access to this page."


def password_of(username: str) -> str:
    return ACCOUNTS[username][1]


@dataclass
class AppDb:
    """The database the app under test uses (the DATABASE_URL of this test)."""

    url: str

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session committed when the block ends."""
        with session_scope(get_engine(get_settings().database_url)) as session:
            yield session

    def user(self, username: str) -> User:
        """The user as stored now (detached)."""
        with self.session() as session:
            user = users.get_by_username(session=session, username=username)
            assert user is not None, username
            return user


@pytest.fixture
def app_db(monkeypatch: pytest.MonkeyPatch, sqlite_url: str, fast_bcrypt: None) -> Iterator[AppDb]:
    """A fresh migrated SQLite database that the app reads, with the users in ACCOUNTS."""
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    get_settings.cache_clear()
    get_engine.cache_clear()
    st.cache_data.clear()  # cached page reads must not carry another test's database
    db = AppDb(url=sqlite_url)
    with db.session() as session:
        for username, (role, password) in ACCOUNTS.items():
            users.create(session=session, username=username, password=password, role=role,
                         name=username.capitalize())
    yield db
    st.cache_data.clear()
    get_settings.cache_clear()
    get_engine.cache_clear()


def new_app() -> AppTest:
    """The app as a fresh browser session sees it: the sign-in form."""
    return AppTest.from_file(str(PROJECT / "Home.py"), default_timeout=20).run()


def submit_sign_in(at: AppTest, username: str, password: str) -> AppTest:
    """Fills the sign-in form and presses "Sign in"."""
    _field(at, "Username").input(username)
    _field(at, "Password").input(password)
    next(b for b in at.button if b.label == "Sign in").click()
    return at.run()


def _field(at: AppTest, label: str):  # noqa: ANN202 - an AppTest TextInput
    matches = [t for t in at.text_input if t.label == label]
    assert len(matches) == 1, f"no single {label!r} field: {[t.label for t in at.text_input]}"
    return matches[0]


def shows_sign_in_form(at: AppTest) -> bool:
    return any(b.label == "Sign in" for b in at.button) and {"Username", "Password"} <= {t.label for t in at.text_input}


def signed_in_as(at: AppTest) -> str | None:
    """The username the sidebar says is signed in, or None."""
    for text in at.sidebar.text:
        if text.value.startswith("Signed in as "):
            return next(name for name in ACCOUNTS if f"Signed in as {name.capitalize()} (" in text.value)
    return None


def open_page(at: AppTest, page: str, **query: str) -> AppTest:
    """Asks for `page` (e.g. "pages/queue.py") the way a typed-in URL does."""
    at.query_params.clear()
    at.query_params.update(query)
    at.switch_page(page)
    return at.run()


@pytest.fixture
def signed_in(app_db: AppDb) -> Callable[..., AppTest]:
    """signed_in("staff") (or a username such as "sue"): an AppTest that signed in through the form."""
    def sign_in(who: str) -> AppTest:
        username = BY_ROLE.get(who, who)
        at = submit_sign_in(new_app(), username, password_of(username))
        assert not at.exception, at.exception
        assert signed_in_as(at) == username, [e.value for e in at.error]
        # In a browser the cookie component's answer reruns the app at once, which removes the sign-in form that the
        # signing-in run drew; AppTest runs no components, so that rerun is made here. After it AppTest also serves
        # every file in pages/ by its path, so a page that the menu does not list can still be asked for and must
        # refuse by itself.
        at.run()
        assert not shows_sign_in_form(at)
        return at
    return sign_in


@pytest.fixture
def add_lead(app_db: AppDb) -> Callable[..., dict[str, Any]]:
    """add_lead(**fields): a lead (API shape, as a dict) saved through core.intake.submit with the rules engine."""
    def add(*, assignee: str | None = None, **fields: Any) -> dict[str, Any]:
        outcome = intake.submit(engine=get_engine(get_settings().database_url), settings=get_settings(),
                                lead_in=schemas.parse_lead(lead_payload(**fields)), actor="test",
                                default_source="api")
        lead = outcome.lead
        if assignee is not None:
            assign(app_db, lead["id"], assignee)
            lead = {**lead, "assignee": assignee}
        return lead
    return add


def assign(db: AppDb, lead_id: str, username: str | None) -> None:
    """Assigns a lead as PATCH /api/leads/{id} does (core.leads.update)."""
    with db.session() as session:
        lead = lead_service.get_or_raise(session=session, lead_id=lead_id)
        lead_service.update(session=session, lead=lead, changes=schemas.parse_update({"assignee": username}),
                            actor="test")


# --- reading and driving an AppTest page ----------------------------------------------------------------------------

def values(elements) -> list[str]:  # noqa: ANN001 - an AppTest element list
    """What the elements show, as text."""
    return [str(e.value) for e in elements]


def by_label(elements, label: str):  # noqa: ANN001, ANN201 - an AppTest element list and one of its widgets
    """The one widget with this label (fails, listing the labels there are, when there is none or several)."""
    matches = [e for e in elements if e.label == label]
    assert len(matches) == 1, f"{len(matches)} widgets labelled {label!r}: {[e.label for e in elements]}"
    return matches[0]


def queue_names(at: AppTest) -> list[str]:
    """The names in the queue table, top to bottom."""
    if not at.dataframe:
        return []
    return list(at.dataframe[0].value["name"])


def select_rows(at: AppTest, rows: list[int]) -> AppTest:
    """Ticks rows of the queue table as a click in the browser does."""
    at.session_state[at.dataframe[0].key] = {"selection": {"rows": rows, "columns": [], "cells": []}}
    return at.run()


def click(at: AppTest, label: str) -> AppTest:
    """Presses the one button with this label and runs the script again."""
    by_label(at.button, label).click()
    return at.run()
