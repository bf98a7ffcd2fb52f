"""The unsubscribe link of follow-up emails: `GET /u/{token}` asks, `POST /u/{token}` unsubscribes (RFC 8058).

A GET never unsubscribes by itself: mail scanners open links, and a person should not lose mail because of them.
The one-click POST that mail clients send (`List-Unsubscribe=One-Click`) and the page's button do the same thing.
"""

from __future__ import annotations

import secrets

from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from api.form import TEMPLATES
from core import app_settings, followups, unsubscribe
from db.models import Lead
from db.session import run_with_retry, session_scope

_env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(default=True,
                                                                                    default_for_string=True))


class Unsubscribe:
    """The two routes over one engine."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self.template = _env.get_template("unsubscribe.html")

    def routes(self) -> list[Route]:
        return [Route("/u/{token}", self.page, methods=["GET"]), Route("/u/{token}", self.confirm, methods=["POST"])]

    def _answer(self, status: int, title: str, paragraphs: list[str], business_name: str, *,
                ask: bool = False, action: str = "") -> Response:
        nonce = secrets.token_urlsafe(12)
        body = self.template.render(title=title, paragraphs=paragraphs, business_name=business_name, ask=ask,
                                    action=action, nonce=nonce)
        headers = {"Content-Security-Policy": f"default-src 'none'; style-src 'nonce-{nonce}'; form-action 'self'; "
                                              "base-uri 'none'; frame-ancestors 'none'",
                   "Cache-Control": "no-store", "Referrer-Policy": "no-referrer", "X-Content-Type-Options": "nosniff"}
        return HTMLResponse(body, status_code=status, headers=headers)

    def _lookup(self, token: str) -> tuple[str | None, bool, str]:
        """The lead id (None for a bad token), whether it already unsubscribed, and the business name."""
        with session_scope(self.engine) as session:
            name = app_settings.get_profile(session=session).business_name
            lead_id = unsubscribe.lead_id_of(session=session, token=token)
            if lead_id is None:
                return None, False, name
            lead = session.get(Lead, lead_id)
            done = lead is None or followups.is_suppressed(session=session, address=lead.email) is not None
            return lead_id, done, name

    async def page(self, request: Request) -> Response:
        token = request.path_params["token"]
        lead_id, done, name = await run_in_threadpool(self._lookup, token)
        if lead_id is None:
            return self._answer(404, "This link is not valid", [
                "The unsubscribe link may have been cut short by your mail program. Reply to our email with "
                "“unsubscribe” and we will remove you."], name)
        if done:
            return self._answer(200, "You are unsubscribed", [f"{name} will not send you follow-up messages."], name)
        return self._answer(200, f"Unsubscribe from {name}", [
            f"Press the button to stop all follow-up messages from {name}."], name, ask=True,
            action=str(request.url.path))

    async def confirm(self, request: Request) -> Response:
        token = request.path_params["token"]

        def run() -> tuple[bool, str]:
            with session_scope(self.engine) as session:
                name = app_settings.get_profile(session=session).business_name
                lead_id = unsubscribe.lead_id_of(session=session, token=token)
                if lead_id is None:
                    return False, name
                followups.unsubscribe_lead(session=session, lead_id=lead_id, via="unsubscribe link")
                return True, name

        valid, name = await run_in_threadpool(run_with_retry, run, what="unsubscribing")
        if not valid:
            return self._answer(404, "This link is not valid", [
                "Reply to our email with “unsubscribe” and we will remove you."], name)
        return self._answer(200, "You are unsubscribed", [
            f"{name} will not send you any more follow-up messages."], name)


def unsubscribe_routes(engine: Engine) -> list[Route]:
    """GET and POST /u/{token}."""
    return Unsubscribe(engine).routes()
