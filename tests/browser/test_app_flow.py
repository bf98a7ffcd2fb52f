"""The signed-in app in headless Chromium against the real web process (`streamlit run app.py`).

One staff member's whole path: sign in, type a lead in, see its analysis, find it in the queue, open it and move it
to CONTACTED (checked in the database too), with a screenshot of each step in test-output/app-flow/. Then a
1280x800 screenshot of every page an admin sees, and of the empty states of a fresh database, in test-output/pages/
(a `-full` copy as well when the page is taller than the window).
"""

from __future__ import annotations

import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from core import users
from db.models import Lead, Priority, Role
from db.session import make_engine, session_scope
from tests.browser.conftest import OUTPUT, WebServer
from tests.support.factories import make_lead

pytestmark = pytest.mark.browser

DESKTOP = {"width": 1280, "height": 800}
PASSWORD = "correct horse battery"
FLOW = OUTPUT / "app-flow"
PAGES = OUTPUT / "pages"
# The app root says whether a script run is under way; lazily loaded widgets show a skeleton until they arrive.
IDLE = "[data-testid='stApp'][data-test-script-state='notRunning']"
NO_SKELETON = "!document.querySelector(\"[data-testid='stSkeleton']\")"
# st.dataframe is a canvas grid (glide-data-grid): its rows are drawn, and mirrored in a hidden accessible table.
HEADER_PX = ROW_PX = 35
ROW_MARKER_X = 16  # the selection checkbox column, left of the first data column
SIGN_IN_TIMEOUT_MS = 8_000
ADMIN_TABS = ["Users", "API keys", "Business profile", "Scoring", "Public form", "Integrations", "Webhooks"]
FOLLOW_UP_TABS = ["Due today", "Scheduled", "Sent", "Failed", "Calls to make", "Sequences"]


# --- setup in the server's own database ---------------------------------------------------------------------------

def tag() -> str:
    """Eight letters, so names made with them are unique per run and still pass the name rules."""
    return "".join(chr(ord("a") + int(c, 16)) for c in uuid.uuid4().hex[:8])


def add_user(server: WebServer, role: Role) -> str:
    """A new user of `role` in the web process's database (sign-in re-reads users on every rerun); its username."""
    username = f"{role.value}.{tag()}"
    engine = make_engine(server.database_url)
    try:
        with session_scope(engine) as session:
            users.create(session=session, username=username, password=PASSWORD, role=role,
                         name=f"{role.value.title()} {username[-4:].title()}")
    finally:
        engine.dispose()
    return username


def lead_by_email(server: WebServer, email: str) -> Lead:
    engine = make_engine(server.database_url)
    try:
        with session_scope(engine) as session:
            lead = session.scalar(select(Lead).where(Lead.email == email))
            assert lead is not None, f"no lead with {email} in the database"
            session.expunge(lead)
            return lead
    finally:
        engine.dispose()


# --- driving Streamlit --------------------------------------------------------------------------------------------

@pytest.fixture
def new_page(browser: Any) -> Iterator[Any]:
    """Opens fresh 1280x800 pages on a server; a script error fails the test (resources that cannot load do not:
    the favicon comes from fonts.gstatic.com, which a sandbox without internet cannot reach)."""
    contexts: list[Any] = []
    problems: list[str] = []

    def open_page(server: WebServer) -> Any:
        context = browser.new_context(viewport=DESKTOP, base_url=server.url)
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(20_000)
        page.on("console", lambda msg: problems.append(msg.text)
                if msg.type == "error" and not msg.text.startswith("Failed to load resource") else None)
        page.on("pageerror", lambda exc: problems.append(str(exc)))
        page.goto("/")
        page.get_by_label("Username").wait_for()
        return page

    yield open_page
    for context in contexts:
        context.close()
    assert not problems, f"the page logged errors: {problems}"


def settle(page: Any) -> None:
    """Waits until Streamlit has finished the rerun an action started and every lazily loaded widget is drawn."""
    page.wait_for_timeout(150)  # the rerun request goes out over the websocket first
    page.wait_for_selector(IDLE)
    page.wait_for_function(NO_SKELETON)
    assert page.locator("[data-testid='stException']").count() == 0, page.locator(
        "[data-testid='stException']").first.inner_text()


def type_into(page: Any, label: str, value: str) -> None:
    """Streamlit text inputs send their value when they lose focus."""
    page.get_by_label(label, exact=True).fill(value)
    page.keyboard.press("Tab")


def sign_in(page: Any, username: str, *, screenshot: Path | None = None) -> None:
    """Signs in through the form; a first press that the app drops (see below) is repeated once, with a warning."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout  # late: conftest skips when it is missing

    # Staff land on What needs doing, the other roles on the Dashboard. .first: while a rerun replaces the page,
    # Streamlit can briefly hold the old and the new heading.
    home = page.get_by_role("heading", name="What needs doing").or_(
        page.get_by_role("heading", name="Dashboard", exact=True)).first
    for attempt in (1, 2):
        page.get_by_text("Sign in to LeadOps").wait_for()
        settle(page)
        type_into(page, "Username", username)
        type_into(page, "Password", PASSWORD)
        if screenshot and attempt == 1:
            page.screenshot(path=str(screenshot))
        page.get_by_role("button", name="Sign in").click()
        try:
            home.wait_for(timeout=SIGN_IN_TIMEOUT_MS)
            break
        except PlaywrightTimeout:
            if attempt == 2 or page.get_by_test_id("stAlert").count():
                raise
            # The cookie component of streamlit-authenticator sometimes sends its value again right after the press,
            # and the rerun that starts interrupts the one carrying the press (asleep in the widget's pre-login
            # pause), so the form comes back empty without a word. Mostly the first sign-in on a fresh server.
            warnings.warn("the first 'Sign in' press was dropped without a message; pressed again", stacklevel=2)
    settle(page)
    # The sign-in form of the run before stays drawn until the signed-in run has finished: wait for it to go.
    page.get_by_text("Sign in to LeadOps").wait_for(state="hidden")


def open_from_sidebar(page: Any, link: str, heading: str) -> None:
    """Opens a page from the menu; a click that lands while a rerun is still finishing is repeated."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout  # late: conftest skips when it is missing

    target = page.get_by_role("heading", name=heading, exact=True).first
    for attempt in (1, 2, 3):
        settle(page)
        page.get_by_test_id("stSidebarNav").get_by_role("link", name=link, exact=True).click()
        try:
            target.wait_for(timeout=8_000)
            break
        except PlaywrightTimeout:
            if attempt == 3:
                raise
    settle(page)


def choose(page: Any, scope: Any, label: str, option: str) -> None:
    """Picks `option` in a selectbox; the first click sometimes only focuses the box, so it is repeated."""
    box = scope.get_by_label(label, exact=True)
    listbox = page.get_by_role("listbox")
    for _ in range(3):
        box.click()
        try:
            listbox.wait_for(timeout=2_000)
            break
        except Exception:  # noqa: BLE001 - Playwright's TimeoutError: click again
            continue
    listbox.get_by_role("option", name=option, exact=True).click()


def grid_rows(grid: Any) -> list[list[str]]:
    """The rows of an st.dataframe, read from the grid's accessible table (the drawing itself is a canvas)."""
    return grid.evaluate("""el => [...el.querySelectorAll("tbody tr[role='row']")].map(
        tr => [...tr.querySelectorAll("td[role='gridcell']")].map(td => td.innerText))""")


def wait_for_grid_text(page: Any, grid: Any, text: str) -> None:
    grid.wait_for()
    page.wait_for_function("([el, text]) => [...el.querySelectorAll(\"td[role='gridcell']\")].some("
                           "td => td.innerText.includes(text))", arg=[grid.element_handle(), text])


def select_row(grid: Any, index: int) -> None:
    """Ticks a row's selection box: a click at the row's first cell, where the grid draws the checkbox."""
    grid.click(position={"x": ROW_MARKER_X, "y": HEADER_PX + index * ROW_PX + ROW_PX // 2})


def find_in_queue(page: Any, text: str) -> Any:
    """Searches the queue for `text` and returns the grid once it shows exactly that one lead."""
    type_into(page, "Search name, email or company", text)
    page.keyboard.press("Enter")
    page.get_by_text("Leads 1–1 of 1").wait_for()
    settle(page)
    grid = page.get_by_test_id("stDataFrame").first
    wait_for_grid_text(page, grid, text)
    return grid


def open_the_selected_lead(page: Any, full_name: str) -> None:
    """Opens the ticked lead and waits for the lead page: with the lead, or saying that none was chosen."""
    page.get_by_role("button", name="Open the selected lead").click()
    lead_shown = page.get_by_test_id("stText").filter(has_text=full_name)
    nothing_chosen = page.get_by_text("Choose a lead in the Lead queue to open it here.")
    lead_shown.or_(nothing_chosen).first.wait_for()
    settle(page)


def page_height(page: Any) -> int:
    return int(page.evaluate("document.querySelector(\"[data-testid='stMain']\").scrollHeight"))


def scroll_main(page: Any, *, to_bottom: bool = False) -> None:
    """Scrolls the app's main area (it scrolls, not the document) to its top or bottom."""
    page.evaluate("bottom => { const main = document.querySelector(\"[data-testid='stMain']\");"
                  " main.scrollTo(0, bottom ? main.scrollHeight : 0); }", to_bottom)
    page.wait_for_timeout(200)  # the canvas grids draw what came into view


def shoot(page: Any, name: str) -> None:
    """test-output/pages/<name>.png as seen at 1280x800, and <name>-full.png when the page scrolls."""
    PAGES.mkdir(parents=True, exist_ok=True)
    scroll_main(page)
    page.screenshot(path=str(PAGES / f"{name}.png"))
    height = page_height(page)
    if height > DESKTOP["height"]:
        page.set_viewport_size({"width": DESKTOP["width"], "height": height})
        page.wait_for_timeout(300)  # the canvas grids redraw for the new size
        page.screenshot(path=str(PAGES / f"{name}-full.png"))
        page.set_viewport_size(DESKTOP)
        page.wait_for_timeout(150)


# --- the tests ----------------------------------------------------------------------------------------------------

def test_staff_member_takes_a_new_lead_from_intake_to_contacted(new_page: Any, web_server: WebServer) -> None:
    FLOW.mkdir(parents=True, exist_ok=True)
    username = add_user(web_server, Role.STAFF)
    suffix = tag()
    full_name = f"Quentin {suffix.title()}"
    email = f"quentin.{suffix}@flowtestfreight.example"
    page = new_page(web_server)

    sign_in(page, username, screenshot=FLOW / "01-signin.png")
    assert page.get_by_text(f"({Role.STAFF.value})").is_visible()
    page.screenshot(path=str(FLOW / "02-home.png"))

    open_from_sidebar(page, "New lead", "New lead")
    type_into(page, "Full name *", full_name)
    type_into(page, "Email *", email)
    type_into(page, "Phone", "+1 (312) 555-0199")
    type_into(page, "Company", "Flowtest Freight")
    type_into(page, "Budget", "$60k-$80k")
    choose(page, page, "Project type", "Web app")
    type_into(page, "What do they need? *",
              "A customer portal with SSO, role-based access and live shipment tracking from our TMS REST API. "
              "Budget approved; we want a pilot by the end of Q3.")
    page.screenshot(path=str(FLOW / "03-new-lead.png"))
    page.get_by_role("button", name="Save and analyse").click()
    page.get_by_text("Why this score").wait_for()
    settle(page)
    assert page.get_by_text("Lead saved with its analysis.").is_visible()
    page.get_by_text("Why this score").scroll_into_view_if_needed()
    page.screenshot(path=str(FLOW / "04-analysis.png"))

    open_from_sidebar(page, "Lead queue", "Lead queue")
    grid = find_in_queue(page, full_name)
    [row] = grid_rows(grid)
    assert full_name in row and "NEW" in row and "Flowtest Freight" in row, row
    page.screenshot(path=str(FLOW / "05-queue-search.png"))

    select_row(grid, 0)
    page.get_by_role("button", name="Open the selected lead").wait_for()
    settle(page)
    page.screenshot(path=str(FLOW / "06-queue-selected.png"))

    open_the_selected_lead(page, full_name)
    page.screenshot(path=str(FLOW / "07-lead.png"))
    assert page.get_by_role("heading", name="Lead", exact=True).first.is_visible(), (
        "the lead page opened without the lead's id (st.switch_page clears the query string unless given one)")
    assert page.get_by_text("Why this score").is_visible()

    status_form = page.get_by_test_id("stForm").filter(has=page.get_by_role("button", name="Change status"))
    choose(page, status_form, "Status", "CONTACTED")
    status_form.get_by_role("button", name="Change status").click()
    settle(page)
    timeline = page.get_by_test_id("stDataFrame").last
    wait_for_grid_text(page, timeline, "Status NEW → CONTACTED")
    settle(page)
    # The status change, and the automatic sequence stopping because of it.
    newest = sorted(row[1:] for row in grid_rows(timeline)[:2])
    assert newest[1] == ["STATUS_CHANGED", f"user:{username}", "Status NEW → CONTACTED"], newest
    assert newest[0][:2] == ["FOLLOW_UP", f"user:{username}"], newest
    assert newest[0][2].endswith("pending follow-up(s) stopped: the lead moved to CONTACTED"), newest
    scroll_main(page, to_bottom=True)  # the timeline, under the Status form that now says CONTACTED
    page.screenshot(path=str(FLOW / "08-status-changed.png"))

    assert lead_by_email(web_server, email).status.value == "CONTACTED"


def test_a_lead_sent_through_the_public_form_is_in_the_queue_with_its_analysis(new_page: Any,
                                                                             web_server: WebServer) -> None:
    username = add_user(web_server, Role.STAFF)
    suffix = tag()
    full_name = f"Ines {suffix.title()}"
    page = new_page(web_server)

    # A visitor on the website: no sign-in, the plain HTML form.
    page.goto("/form")
    page.get_by_label("Full name").fill(full_name)
    page.get_by_label("Email").fill(f"ines.{suffix}@harborlinefreight.example")
    page.get_by_label("Company").fill("Harborline Freight")
    page.get_by_label("Budget").fill("$80k-$120k")
    page.get_by_label("Message").fill(
        "We need a shipment tracking portal with SSO, role-based access, live load status from our TMS REST API and "
        "document uploads. Budget approved; pilot by the end of Q3.")
    page.get_by_role("button", name="Send enquiry").click()
    page.get_by_role("heading", name="Thank you!").or_(page.get_by_text("Thank you!")).first.wait_for()

    # A staff member in the app finds it in the queue, scored, and opens it with its analysis.
    page.goto("/")
    sign_in(page, username)
    open_from_sidebar(page, "Lead queue", "Lead queue")
    grid = find_in_queue(page, full_name)
    [row] = grid_rows(grid)
    assert full_name in row and "NEW" in row and "HIGH" in row, row
    select_row(grid, 0)
    page.get_by_role("button", name="Open the selected lead").wait_for()
    settle(page)
    open_the_selected_lead(page, full_name)
    assert page.get_by_text("Why this score").is_visible()
    # Project type · source · received, under the contact data.
    assert page.get_by_test_id("stText").filter(has_text=" · website · ").first.is_visible()
    page.screenshot(path=str(FLOW / "09-form-lead-opened.png"))


def test_every_page_an_admin_sees(new_page: Any, web_server: WebServer) -> None:
    username = add_user(web_server, Role.ADMIN)
    full_name = f"Adaeze {tag().title()}"
    engine = make_engine(web_server.database_url)
    try:
        with session_scope(engine) as session:
            make_lead(session, full_name=full_name, email=f"adaeze.{tag()}@okonkwo-logistics.example",
                      company="Okonkwo Logistics", score=88, priority=Priority.HIGH)
    finally:
        engine.dispose()
    page = new_page(web_server)
    sign_in(page, username)
    assert page.get_by_text(f"({Role.ADMIN.value})").is_visible()
    assert page.get_by_role("heading", name="Dashboard", exact=True).first.is_visible()
    shoot(page, "dashboard")

    open_from_sidebar(page, "To do", "What needs doing")
    shoot(page, "home")

    open_from_sidebar(page, "New lead", "New lead")
    shoot(page, "new-lead")

    open_from_sidebar(page, "Lead queue", "Lead queue")
    shoot(page, "queue")
    grid = find_in_queue(page, full_name)
    select_row(grid, 0)
    page.get_by_role("button", name="Open the selected lead").wait_for()
    settle(page)
    shoot(page, "queue-selected")
    open_the_selected_lead(page, full_name)
    assert page.get_by_role("heading", name="Lead", exact=True).first.is_visible()
    shoot(page, "lead")

    open_from_sidebar(page, "Follow-ups", "Follow-ups")
    for tab in FOLLOW_UP_TABS:
        page.get_by_role("tab", name=tab, exact=True).click()
        settle(page)
        shoot(page, f"followups-{tab.lower().replace(' ', '-')}")

    for link, heading, name in (("Import", "Import leads", "import"), ("Learned score", "Learned score", "learned"),
                                ("Insights", "Insights", "insights"), ("AI usage", "AI usage", "ai-usage")):
        open_from_sidebar(page, link, heading)
        shoot(page, name)

    open_from_sidebar(page, "Admin", "Admin")
    for tab in ADMIN_TABS:
        page.get_by_role("tab", name=tab, exact=True).click()
        settle(page)
        shoot(page, f"admin-{tab.lower().replace(' ', '-')}")

    open_from_sidebar(page, "My account", "My account")
    shoot(page, "account")


def test_empty_database_shows_its_empty_states(new_page: Any, empty_web_server: WebServer) -> None:
    username = add_user(empty_web_server, Role.ADMIN)
    page = new_page(empty_web_server)
    sign_in(page, username)
    assert page.get_by_text("No leads yet.").first.is_visible()
    shoot(page, "empty-dashboard")
    open_from_sidebar(page, "To do", "What needs doing")
    assert page.get_by_text("Every HIGH lead has been contacted.").is_visible()
    assert page.get_by_text("Nothing waits for a person's review.").is_visible()
    shoot(page, "empty-home")

    open_from_sidebar(page, "Lead queue", "Lead queue")
    assert page.get_by_text("No leads to show yet. Add one under New lead.").is_visible()
    shoot(page, "empty-queue")
