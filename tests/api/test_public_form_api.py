"""POST /api/leads/public as a website's contact form (and a bot, and another site) sees it."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Engine, func, select
from starlette.testclient import TestClient

from core import app_settings
from db.models import Activity, Lead, LeadAnalysis
from db.session import session_scope
from tests.conftest import lead_payload

URL = "/api/leads/public"
CLIENT_SITE = "https://client.example"
NOTHING = {"leads": 0, "analyses": 0, "activities": 0}


def counts(engine: Engine) -> dict[str, int]:
    tables = {"leads": Lead, "analyses": LeadAnalysis, "activities": Activity}
    with session_scope(engine) as session:
        return {name: session.scalar(select(func.count()).select_from(model)) for name, model in tables.items()}


def form_payload(**overrides: Any) -> dict[str, Any]:
    """What a contact form sends: no source, and the hidden honeypot field left empty."""
    body = lead_payload(**overrides)
    if "source" not in overrides:
        del body["source"]
    body.setdefault("website", "")
    return body


def allow_origins(engine: Engine, *origins: str) -> None:
    with session_scope(engine) as session:
        app_settings.set_allowed_origins(session=session, origins=list(origins))


def preflight(client: TestClient, origin: str) -> Any:
    return client.options(URL, headers={"Origin": origin, "Access-Control-Request-Method": "POST",
                                        "Access-Control-Request-Headers": "content-type"})


@pytest.fixture
def form(api):
    """A browser-like client: the API's app, no Authorization header."""
    del api.headers["Authorization"]
    return api


def test_form_needs_no_key_and_saves_the_lead_as_from_the_website(form):
    response = form.post(URL, json=form_payload())

    assert response.status_code == 201, response.text
    assert response.json()["status"] == "received"
    with session_scope(form.engine) as session:
        leads = list(session.scalars(select(Lead)))
        assert len(leads) == 1
        assert leads[0].source == "website"
        assert leads[0].email == "dana.whitfield@harborlinefreight.example"
        assert leads[0].analysis is not None, "the lead is analysed like any other"


def test_form_answer_reveals_nothing_about_the_analysis(form):
    response = form.post(URL, json=form_payload())

    body = response.json()
    assert set(body) <= {"status", "message"}
    for secret in ("score", "priority", "analysis", "factors", "id"):
        assert secret not in response.text


def test_honeypot_filled_gets_the_same_answer_and_nothing_is_saved(form):
    genuine = form.post(URL, json=form_payload(email="real@harborline.example"))
    before = counts(form.engine)

    bot = form.post(URL, json=form_payload(website="https://cheap-seo.example"))

    assert bot.status_code == genuine.status_code == 201
    assert bot.json() == genuine.json()
    assert counts(form.engine) == before


def test_origin_that_is_not_allowed_is_403_and_nothing_is_saved(form):
    response = form.post(URL, json=form_payload(), headers={"Origin": "https://evil.example"})

    assert response.status_code == 403
    assert {e["field"] for e in response.json()["errors"]} == {"Origin"}
    assert "Access-Control-Allow-Origin" not in response.headers
    assert counts(form.engine) == NOTHING


def test_allowed_origin_gets_201_with_cors_headers(form):
    allow_origins(form.engine, CLIENT_SITE + "/")

    response = form.post(URL, json=form_payload(), headers={"Origin": CLIENT_SITE})

    assert response.status_code == 201, response.text
    assert response.headers["Access-Control-Allow-Origin"] == CLIENT_SITE
    assert "Origin" in response.headers["Vary"]
    assert counts(form.engine)["leads"] == 1


def test_preflight_from_allowed_origin_is_204_with_cors_headers(form):
    allow_origins(form.engine, CLIENT_SITE)

    response = preflight(form, CLIENT_SITE)

    assert response.status_code == 204
    assert response.headers["Access-Control-Allow-Origin"] == CLIENT_SITE
    assert "POST" in response.headers["Access-Control-Allow-Methods"]
    assert "content-type" in response.headers["Access-Control-Allow-Headers"].lower()
    assert counts(form.engine) == NOTHING


def test_only_the_configured_origins_are_allowed(form):
    allow_origins(form.engine, CLIENT_SITE)

    assert preflight(form, "https://evil.example").status_code == 403
    assert preflight(form, "https://client.example.evil.example").status_code == 403
    posted = form.post(URL, json=form_payload(), headers={"Origin": "http://client.example"})
    assert posted.status_code == 403, "another scheme is another origin"
    assert counts(form.engine) == NOTHING


def test_form_served_by_the_app_itself_needs_no_cors(form):
    response = form.post(URL, json=form_payload(), headers={"Origin": "http://localhost:8501"})

    assert response.status_code == 201
    assert "Access-Control-Allow-Origin" not in response.headers


def test_field_errors_are_422_with_field_names_readable_by_the_page(form):
    allow_origins(form.engine, CLIENT_SITE)

    response = form.post(URL, json=form_payload(full_name="", email="dana@", message="hi" * 6000),
                         headers={"Origin": CLIENT_SITE})

    assert response.status_code == 422
    assert {e["field"] for e in response.json()["errors"]} == {"full_name", "email", "message"}
    assert all(e["message"] for e in response.json()["errors"])
    assert response.headers["Access-Control-Allow-Origin"] == CLIENT_SITE, "the page must be able to read the errors"
    assert counts(form.engine) == NOTHING


@pytest.mark.parametrize(("content", "status"), [
    (b'{"full_name": ', 422),
    (b"\xff\xfe{}", 422),
    (b'{"message": "' + b"x" * (64 * 1024) + b'"}', 413),
])
def test_bad_bodies_are_refused_and_nothing_saved(form, content, status):
    response = form.post(URL, content=content, headers={"Content-Type": "application/json"})

    assert response.status_code == status
    assert {e["field"] for e in response.json()["errors"]} == {"body"}
    assert counts(form.engine) == NOTHING


def test_sixth_quick_post_from_one_address_is_429_with_retry_after(form):
    burst = [form.post(URL, json=form_payload(email=f"visitor{i}@harborline.example")) for i in range(5)]
    assert [r.status_code for r in burst] == [201] * 5

    limited = form.post(URL, json=form_payload(email="visitor6@harborline.example"))

    assert limited.status_code == 429
    assert limited.headers["Retry-After"].isdigit()
    assert int(limited.headers["Retry-After"]) > 0
    assert {e["field"] for e in limited.json()["errors"]} == {"request"}
    assert counts(form.engine)["leads"] == 5

    other_visitor = TestClient(form.app, client=("198.51.100.20", 50000))
    assert other_visitor.post(URL, json=form_payload(email="other@harborline.example")).status_code == 201, \
        "the limit is per client address"
