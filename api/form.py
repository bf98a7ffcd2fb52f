"""The public lead form at /form: a small HTML page with no sign-in that posts to POST /api/leads/public.

The page, its script and its style sheet are served by the web process itself, so the Content-Security-Policy
can allow scripts, styles and requests from this origin only; any site may embed the page in a frame.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from core import app_settings
from core.profile import BusinessProfile
from core.schemas import MAX_BUDGET, MAX_COMPANY, MAX_EMAIL, MAX_MESSAGE, MAX_NAME, MAX_PHONE
from db.session import session_scope

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"

FORM_PATH = "/form"
SUBMIT_URL = "/api/leads/public"
PROJECT_TYPES = ("Web app", "Mobile app", "E-commerce", "AI integration", "Maintenance", "Other")
LIMITS = {"full_name": MAX_NAME, "email": MAX_EMAIL, "phone": MAX_PHONE, "company": MAX_COMPANY,
          "budget": MAX_BUDGET, "message": MAX_MESSAGE}

# Scripts, styles and requests from this origin only; no inline code, no other site's resources.
# `frame-ancestors *`: the form is public, and websites embed it in a frame.
CSP = "; ".join([
    "default-src 'none'", "script-src 'self'", "style-src 'self'", "connect-src 'self'", "img-src 'self' data:",
    "form-action 'self'", "base-uri 'none'", "frame-ancestors *",
])
PAGE_CACHE = "public, max-age=60"
ASSET_CACHE = "public, max-age=86400"  # the page names each asset with a hash of its content

_env = Environment(loader=FileSystemLoader(TEMPLATES), trim_blocks=True, lstrip_blocks=True,
                   autoescape=select_autoescape(default=True, default_for_string=True))


class _Asset:
    """A static file read once, with its content type and a short hash for the page to name it by."""

    def __init__(self, path: Path, media_type: str):
        self.body = path.read_bytes()
        self.media_type = media_type
        self.version = hashlib.sha256(self.body).hexdigest()[:12]


def _security_headers() -> dict[str, str]:
    return {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "strict-origin-when-cross-origin"}


class LeadForm:
    """GET /form and its two assets, over the engine whose settings name the business."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self.script = _Asset(STATIC / "form.js", "text/javascript; charset=utf-8")
        self.style = _Asset(STATIC / "form.css", "text/css; charset=utf-8")
        self.template = _env.get_template("lead_form.html")

    def routes(self) -> list[Route]:
        return [
            Route(FORM_PATH, self.page, methods=["GET"]),
            Route(f"{FORM_PATH}/form.js", self._serve(self.script), methods=["GET"]),
            Route(f"{FORM_PATH}/form.css", self._serve(self.style), methods=["GET"]),
        ]

    def business_name(self) -> str:
        """The name from the business profile; the default name when the database cannot be read."""
        try:
            with session_scope(self.engine) as session:
                return app_settings.get_profile(session=session).business_name
        except SQLAlchemyError as exc:
            # The page still renders; the submission itself will report the database trouble.
            log.warning("public form: business profile unreadable (%s); using the default name", type(exc).__name__)
            return BusinessProfile().business_name

    def render(self, business_name: str) -> str:
        return self.template.render(
            business_name=business_name, limits=LIMITS, project_types=PROJECT_TYPES, submit_url=SUBMIT_URL,
            script_url=f"{FORM_PATH}/form.js?v={self.script.version}",
            style_url=f"{FORM_PATH}/form.css?v={self.style.version}",
        )

    async def page(self, request: Request) -> Response:
        name = await run_in_threadpool(self.business_name)
        return HTMLResponse(self.render(name), headers={**_security_headers(), "Cache-Control": PAGE_CACHE})

    @staticmethod
    def _serve(asset: _Asset) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            return Response(asset.body, media_type=asset.media_type,
                            headers={**_security_headers(), "Cache-Control": ASSET_CACHE})
        return endpoint


def form_routes(engine: Engine) -> list[Route]:
    """The public form's routes (the page, its script, its style sheet)."""
    return LeadForm(engine).routes()
