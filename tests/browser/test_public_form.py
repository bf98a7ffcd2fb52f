"""The public lead form at /form, in headless Chromium against the real web process (`streamlit run app.py`)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from core import leads as lead_service
from core.schemas import LeadPublic
from db.session import make_engine, session_scope
from tests.browser.conftest import WebServer

pytestmark = pytest.mark.browser

DESKTOP = {"width": 1280, "height": 800}
MOBILE = {"width": 375, "height": 740}
BUSINESS = "Our agency"  # the business profile's default name (nothing configured in a fresh database)
FIELDS = ["#full_name", "#email", "#phone", "#company", "#budget", "#project_type", "#message"]
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def saved_leads(server: WebServer) -> list[LeadPublic]:
    """Every lead in the web process's database, as the API would show it (with its analysis)."""
    engine = make_engine(server.database_url)
    try:
        with session_scope(engine) as session:
            page = lead_service.get_all(session=session, filters=lead_service.LeadFilters(),
                                        limit=lead_service.MAX_PAGE)
            return [lead_service.to_public(lead) for lead in page.items]
    finally:
        engine.dispose()


def unique_email(tag: str) -> str:
    return f"{tag}.{uuid.uuid4().hex[:8]}@harborlinefreight.example"


@pytest.fixture
def page(browser: Any, web_server: WebServer) -> Iterator[Any]:
    """A fresh browser context on /form at desktop size; a script error or a CSP violation fails the test."""
    context = browser.new_context(viewport=DESKTOP, base_url=web_server.url)
    page = context.new_page()
    problems: list[str] = []
    # Chromium also logs each 4xx answer as a console error: those are the tests' own doing, not the page's.
    page.on("console", lambda msg: problems.append(msg.text)
            if msg.type == "error" and not msg.text.startswith("Failed to load resource") else None)
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    page.goto("/form")
    page.wait_for_load_state("load")
    yield page
    context.close()
    assert not problems, f"the page logged errors: {problems}"


def fill_lead(page: Any, *, email: str, name: str = "Dana Whitfield") -> None:
    page.get_by_label("Full name").fill(name)
    page.get_by_label("Email").fill(email)
    page.get_by_label("Phone").fill("+1 (312) 555-0148")
    page.get_by_label("Company").fill("Harborline Freight")
    page.get_by_label("Budget").fill("$80k-$120k")
    page.get_by_label("Project type").select_option("Web app")
    page.get_by_label("Message").fill(
        "We need a customer-facing shipment tracking portal with SSO, role-based access, live load status from "
        "our TMS REST API and document uploads. Budget approved; pilot by the end of Q3.")


def test_page_is_public_with_strict_headers(web_server: WebServer) -> None:
    response = httpx.get(f"{web_server.url}/form", timeout=10)

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    csp = response.headers["content-security-policy"]
    for directive in ("script-src 'self'", "style-src 'self'", "connect-src 'self'", "frame-ancestors *"):
        assert directive in csp
    assert "unsafe-inline" not in csp
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "strict-origin-when-cross-origin"
    assert response.headers["cache-control"] == "public, max-age=60"
    assert "x-frame-options" not in response.headers
    assert f"Contact {BUSINESS}" in response.text
    for asset in re.findall(r'(?:src|href)="(/form/form\.(?:js|css)\?v=\w+)"', response.text):
        served = httpx.get(f"{web_server.url}{asset}", timeout=10)
        assert served.status_code == 200 and served.headers["x-content-type-options"] == "nosniff"


def test_lead_submitted_through_the_form_is_saved_with_its_analysis(page: Any, web_server: WebServer,
                                                                    output_dir: Path) -> None:
    email = unique_email("dana")
    fill_lead(page, email=email)

    with page.expect_request("**/api/leads/public") as posted:
        page.get_by_role("button", name="Send enquiry").click()
    page.get_by_role("heading", name=f"Thank you! {BUSINESS} has your enquiry.").wait_for()

    request = posted.value
    assert request.method == "POST"
    assert UUID.match(request.headers["idempotency-key"])
    assert request.headers["content-type"] == "application/json"
    assert request.post_data_json["website"] == ""
    assert page.locator("#lead-form").is_hidden()
    assert page.evaluate("document.activeElement.id") == "thanks-title"
    page.screenshot(path=str(output_dir / "form-thank-you-desktop.png"), full_page=True)
    page.set_viewport_size(MOBILE)
    page.screenshot(path=str(output_dir / "form-thank-you-mobile.png"), full_page=True)

    [lead] = [lead for lead in saved_leads(web_server) if lead.email == email]
    assert lead.full_name == "Dana Whitfield"
    assert lead.source == "website"
    assert lead.project_type == "Web app"
    assert lead.budget == "$80k-$120k"
    assert lead.phone == "+13125550148"
    assert lead.analysis is not None
    assert 0 <= lead.analysis.score <= 100 and lead.analysis.summary


def test_bot_filling_the_honeypot_sees_thanks_but_nothing_is_saved(page: Any, web_server: WebServer) -> None:
    honeypot = page.locator("#website")
    assert honeypot.get_attribute("tabindex") == "-1"
    assert honeypot.get_attribute("autocomplete") == "off"
    assert page.locator(".hp").get_attribute("aria-hidden") == "true"
    box = honeypot.bounding_box()
    assert box is not None and box["x"] + box["width"] <= 0, "the honeypot must be off-screen"

    before = len(saved_leads(web_server))
    email = unique_email("bot")
    fill_lead(page, email=email, name="Totally Real Person")
    page.evaluate("document.getElementById('website').value = 'https://cheap-seo.example'")
    page.get_by_role("button", name="Send enquiry").click()

    page.get_by_role("heading", name=f"Thank you! {BUSINESS} has your enquiry.").wait_for()
    leads = saved_leads(web_server)
    assert len(leads) == before
    assert not [lead for lead in leads if lead.email == email]


def test_server_field_errors_show_next_to_the_field(page: Any, web_server: WebServer, output_dir: Path) -> None:
    before = len(saved_leads(web_server))
    fill_lead(page, email="a@b", name="Pat Invalid-Address")  # type=email lets this pass; the server refuses it

    with page.expect_response("**/api/leads/public") as answered:
        page.get_by_role("button", name="Send enquiry").click()
    assert answered.value.status == 422

    email = page.get_by_label("Email")
    error = page.locator("#email-error")
    error.wait_for()
    assert "Email is not a valid email address" in error.inner_text()
    assert "@-sign" in error.inner_text()  # the server's own words
    assert email.get_attribute("aria-invalid") == "true"
    assert "email-error" in (email.get_attribute("aria-describedby") or "").split()
    assert page.evaluate("document.activeElement.id") == "email"
    assert "correct the highlighted field" in page.locator("#form-status").inner_text()
    assert page.get_by_label("Full name").get_attribute("aria-invalid") is None
    assert page.get_by_role("button", name="Send enquiry").is_enabled()
    assert page.locator("#thanks").is_hidden()
    assert len(saved_leads(web_server)) == before
    page.screenshot(path=str(output_dir / "form-server-error-desktop.png"), full_page=True)

    email.fill("pat@harborlinefreight.example")  # typing clears the field's error
    assert email.get_attribute("aria-invalid") is None
    assert error.inner_text() == ""


def test_network_error_and_429_keep_one_idempotency_key_until_it_goes_through(page: Any,
                                                                             web_server: WebServer) -> None:
    email = unique_email("retry")
    fill_lead(page, email=email, name="Robin Retry")
    keys: list[str] = []
    answers = iter(["abort", "429"])

    def flaky(route: Any) -> None:
        keys.append(route.request.headers["idempotency-key"])
        answer = next(answers, "server")
        if answer == "abort":
            route.abort("internetdisconnected")
        elif answer == "429":
            route.fulfill(status=429, headers={"Retry-After": "1"}, content_type="application/json",
                          body='{"errors": [{"field": "request", "message": "too many requests from this address '
                               '(at most 5 requests at once, then 10 a minute); try again in 1 s"}]}')
        else:
            route.continue_()
    page.route("**/api/leads/public", flaky)
    button = page.get_by_role("button", name="Send enquiry")
    status = page.locator("#form-status")

    button.click()
    page.get_by_text("We could not reach the server").wait_for()
    assert button.is_enabled()

    button.click()
    page.get_by_text("Please try again in 1 second.").wait_for()
    assert button.is_disabled()
    page.get_by_text("You can send the form again now.").wait_for()
    assert button.is_enabled()
    assert "1 second" not in status.inner_text()

    button.click()
    page.get_by_role("heading", name=f"Thank you! {BUSINESS} has your enquiry.").wait_for()
    assert len(keys) == 3 and len(set(keys)) == 1 and UUID.match(keys[0]), keys
    assert len([lead for lead in saved_leads(web_server) if lead.email == email]) == 1


def test_mobile_layout_has_no_horizontal_overflow(browser: Any, web_server: WebServer, output_dir: Path) -> None:
    page = browser.new_page(viewport=MOBILE, base_url=web_server.url)
    try:
        page.goto("/form")
        page.wait_for_load_state("load")
        assert page.evaluate("document.documentElement.scrollWidth") <= MOBILE["width"]
        for selector in [*FIELDS, "button[type=submit]"]:
            element = page.locator(selector)
            element.scroll_into_view_if_needed()
            assert element.is_visible(), selector
            box = element.bounding_box()
            assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= MOBILE["width"], selector
        page.evaluate("window.scrollTo(0, 0)")
        page.screenshot(path=str(output_dir / "form-mobile.png"), full_page=True)

        # The browser's first check (nothing is sent): required fields get their messages inline, still no overflow.
        page.get_by_role("button", name="Send enquiry").click()
        assert page.get_by_label("Full name").get_attribute("aria-invalid") == "true"
        assert page.locator("#message-error").inner_text() == "Message is required."
        assert page.evaluate("document.activeElement.id") == "full_name"
        assert page.evaluate("document.documentElement.scrollWidth") <= MOBILE["width"]
        page.screenshot(path=str(output_dir / "form-mobile-errors.png"), full_page=True)
    finally:
        page.close()

    desktop = browser.new_page(viewport=DESKTOP, base_url=web_server.url)
    try:
        desktop.goto("/form")
        desktop.wait_for_load_state("load")
        assert desktop.evaluate("document.documentElement.scrollWidth") <= DESKTOP["width"]
        desktop.screenshot(path=str(output_dir / "form-desktop.png"), full_page=True)
    finally:
        desktop.close()
