"""A real local HTTP server that speaks Twilio's Messages API (``POST /2010-04-01/Accounts/{sid}/Messages.json``).

    with TwilioServer(account_sid="AC" + "1" * 32, auth_token="secret") as server:
        server.queue(Reply(status=400, code=21211))
        ... POST form fields To, From, Body to server.url with HTTP basic auth sid:token ...
        server.requests[0]["form"]["To"]

Facts about the real API this follows (https://www.twilio.com/docs/messaging/api/message-resource):

- The request is form-encoded (To, From, Body); auth is HTTP basic with the account SID and auth token.
- Success is 201 with the message resource as JSON: ``sid`` ("SM" + 32 hex), ``status`` "queued", ...
- Errors are JSON ``{"code": 21211, "message": ..., "more_info": "https://www.twilio.com/docs/errors/21211",
  "status": 400}``; a wrong SID or token is 401 with code 20003, another account's SID 404 with code 20404,
  too many requests 429 with code 20429.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import json
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs

from tests.support.local_http import LocalHttpServer, OwnedServer

__all__ = ["Reply", "TwilioServer"]

ERROR_TEXT: dict[int, str] = {
    20003: "Authenticate",
    20404: "The requested resource was not found",
    20429: "Too Many Requests",
    20500: "An internal server error has occurred",
    21211: "The 'To' number is not a valid phone number.",
    21408: "Permission to send an SMS has not been enabled for the region indicated by the 'To' number.",
    21610: "Attempt to send to unsubscribed recipient",
    21614: "'To' number is not a valid mobile number",
}


@dataclass
class Reply:
    """One scripted answer; the default is the 201 of an accepted message."""

    status: int = 201
    code: int | None = None  # Twilio's error code, for error replies
    message: str | None = None  # Twilio's error message; a stock one for known codes otherwise
    delay_s: float = 0.0  # sleep before answering (to trigger client timeouts)
    raw_body: bytes | None = None  # sent verbatim instead (e.g. an HTML error page)
    headers: dict[str, str] | None = None  # extra response headers, e.g. Retry-After


class _Handler(BaseHTTPRequestHandler):
    server: OwnedServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - silence stderr
        pass

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None,
              content_type: str = "application/json; charset=utf-8") -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            # The client gave up (e.g. it timed out during a delayed reply).
            self.close_connection = True

    def _error(self, status: int, code: int, message: str | None = None, headers: dict[str, str] | None = None) -> None:
        body = {"code": code, "message": message or ERROR_TEXT.get(code, f"Scripted error {code}"),
                "more_info": f"https://www.twilio.com/docs/errors/{code}", "status": status}
        self._send(status, json.dumps(body).encode(), headers)

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        owner = self.server.owner
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        form = {key: values[-1] for key, values in parse_qs(raw.decode("utf-8", "replace")).items()}
        authorized = self._credentials() == (owner.account_sid, owner.auth_token)
        owner._record({"method": "POST", "path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()},
                       "form": form, "authorized": authorized})
        if not authorized:
            self._error(401, 20003)
            return
        if self.path.split("?", 1)[0] != f"/2010-04-01/Accounts/{owner.account_sid}/Messages.json":
            self._error(404, 20404)
            return
        reply = owner._next_reply()
        if reply.delay_s > 0 and owner._stopping.wait(reply.delay_s):
            self.close_connection = True
            return
        if reply.raw_body is not None:
            self._send(reply.status, reply.raw_body, reply.headers, "text/html; charset=utf-8")
        elif reply.status >= 400:
            self._error(reply.status, reply.code or {401: 20003, 404: 20404, 429: 20429}.get(reply.status, 20500),
                        reply.message, reply.headers)
        else:
            self._send(reply.status, json.dumps(owner._message_resource(form)).encode(), reply.headers)

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._error(405, 20004, "Method not allowed")

    def _credentials(self) -> tuple[str, str] | None:
        scheme, _, encoded = (self.headers.get("Authorization") or "").partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            user, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return user, password


class TwilioServer(LocalHttpServer):
    """Context manager: serves on 127.0.0.1 with a free port, stops cleanly.

    Attributes:
        url: "http://127.0.0.1:PORT" -- use as TWILIO_BASE_URL.
        requests: every request received, as ``{"method", "path", "headers" (lower-cased keys), "form" (one value
            per field), "authorized" (the basic-auth credentials matched)}``.
        sids: the message SIDs handed out, in order.
        default: reply used when the queue is empty (201, accepted).
    """

    handler = _Handler

    def __init__(self, *, account_sid: str = "AC" + "0" * 32, auth_token: str = "test-auth-token",
                 default: Reply | None = None) -> None:
        super().__init__()
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.default = default or Reply()
        self.requests: list[dict[str, Any]] = []
        self.sids: list[str] = []
        self._queue: list[Reply] = []
        self._numbers = itertools.count(1)

    # -- scripting -----------------------------------------------------------
    def queue(self, *replies: Reply) -> None:
        """Answer the next authorized requests with these replies, in order."""
        with self._lock:
            self._queue.extend(replies)

    def _next_reply(self) -> Reply:
        with self._lock:
            return self._queue.pop(0) if self._queue else self.default

    def _record(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self.requests.append(entry)

    def _message_resource(self, form: dict[str, str]) -> dict[str, Any]:
        with self._lock:
            sid = f"SM{next(self._numbers):032x}"
            self.sids.append(sid)
        now = time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime())
        return {
            "account_sid": self.account_sid, "api_version": "2010-04-01", "body": form.get("Body", ""),
            "date_created": now, "date_sent": None, "date_updated": now, "direction": "outbound-api",
            "error_code": None, "error_message": None, "from": form.get("From"), "messaging_service_sid": None,
            "num_media": "0", "num_segments": "1", "price": None, "price_unit": "USD", "sid": sid,
            "status": "queued", "to": form.get("To"),
            "uri": f"/2010-04-01/Accounts/{self.account_sid}/Messages/{sid}.json",
        }
