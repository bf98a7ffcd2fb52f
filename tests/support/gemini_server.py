"""A real local HTTP server that speaks the Gemini REST ``generateContent`` protocol.

Point the real ``google-genai`` client at it::

    with GeminiServer() as server:
        server.queue(GeminiServer.json_reply({"ok": True}))
        client = genai.Client(
            api_key="test-key",
            http_options=types.HttpOptions(base_url=server.url, timeout=5_000),
        )
        client.models.generate_content(model="gemini-2.5-flash", contents="hi")

Facts about google-genai 3.4.0 (verified by tests/support/test_gemini_server.py):

- Request: ``POST {base_url}/{api_version}/models/{model}:generateContent``
  (api_version is ``v1`` by default with a custom base_url, ``v1beta`` when
  ``HttpOptions(api_version="v1beta")``; both are accepted). The API key is sent
  in the ``x-goog-api-key`` header; ``HttpOptions.timeout`` is in milliseconds.
- The default HTTP backend is ``httpx2`` (``httpx`` is the fallback, or set
  ``GOOGLE_GENAI_HTTP_CLIENT=httpx``). Exceptions are NOT wrapped by google-genai:
  * client timeout      -> ``httpx2.ReadTimeout`` (subclass of ``httpx2.TimeoutException``;
    NOT an ``httpx.TimeoutException`` -- httpx2 is a separate namespace)
  * connection refused  -> ``httpx2.ConnectError`` (subclass of ``httpx2.TransportError``)
  * HTTP 429 / 4xx      -> ``google.genai.errors.ClientError`` (``.code == 429``,
    ``.status == "RESOURCE_EXHAUSTED"``)
  * HTTP 500 / 5xx      -> ``google.genai.errors.ServerError`` (``.code == 500``)
  * 200 with a non-JSON body (``Reply(raw_body=b"<html>")``) -> ``json.JSONDecodeError``
  * 5xx with a non-JSON body -> ``ServerError`` (``.code == 502`` etc.)
  The async client (``client.aio.models.generate_content``) raises the same types
  (aiohttp is not installed, so it uses httpx2 too).
- Without ``HttpOptions(retry_options=...)`` the client does not retry, so one
  call consumes exactly one queued reply.
- ``promptFeedback.blockReason`` -> ``response.prompt_feedback.block_reason``
  (``types.BlockedReason.SAFETY``), ``response.candidates`` is None and
  ``response.text`` is None.
- ``finishReason: MAX_TOKENS`` -> ``response.candidates[0].finish_reason ==
  types.FinishReason.MAX_TOKENS``; ``response.text`` is the (truncated) text.
- ``config.system_instruction`` is sent as ``systemInstruction`` (``{"parts": [{"text": ...}],
  "role": "user"}``); ``response_mime_type`` as ``generationConfig.responseMimeType``.
- ``response_schema=PydanticModel`` is sent as ``generationConfig.responseSchema`` (OpenAPI
  style: ``"type": "OBJECT"``, ``"properties"``, ``"required"``) and ``response.parsed`` is a
  model instance; ``response_json_schema=<dict>`` is sent as
  ``generationConfig.responseJsonSchema`` (verbatim JSON Schema) and ``response.parsed`` is
  the decoded JSON (a dict). If the text is not valid JSON, ``response.parsed`` is None
  (no raise) and ``response.text`` is the raw text.
- Error bodies are ``{"error": {"code": 429, "message": ..., "status": "RESOURCE_EXHAUSTED"}}``.
- ``HttpOptions.timeout`` limits each read, not the whole call: an answer whose body arrives in
  pieces less than the timeout apart (``Reply(drip_s=8)``) takes as long as the dripping does.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.support.local_http import LocalHttpServer, OwnedServer

__all__ = ["Reply", "GeminiServer", "STATUS_NAMES"]

STATUS_NAMES: dict[int, str] = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    408: "DEADLINE_EXCEEDED",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "NOT_IMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


@dataclass
class Reply:
    """One scripted answer."""

    status: int = 200
    text: str | None = None  # candidates[0].content.parts[0].text
    finish_reason: str = "STOP"  # e.g. "MAX_TOKENS", "SAFETY"
    block_reason: str | None = None  # promptFeedback.blockReason, no candidates
    delay_s: float = 0.0  # sleep before answering (to trigger client timeouts)
    raw_body: bytes | None = None  # sent verbatim instead (e.g. non-JSON)
    prompt_tokens: int = 120
    output_tokens: int = 60
    model_version: str = "gemini-test-001"
    error_message: str | None = None  # message for error bodies (status >= 400)
    drip_s: float = 0.0  # send the body in `drip_pieces` pieces, one every drip_s / drip_pieces seconds
    drip_pieces: int = 8


def _error_body(status: int, message: str | None = None) -> dict[str, Any]:
    name = STATUS_NAMES.get(status, "INTERNAL" if status >= 500 else "FAILED_PRECONDITION")
    return {
        "error": {
            "code": status,
            "message": message or f"Scripted error {status} ({name}) from GeminiServer.",
            "status": name,
        }
    }


def _success_body(reply: Reply) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if reply.block_reason:
        body["promptFeedback"] = {"blockReason": reply.block_reason}
        body["usageMetadata"] = {
            "promptTokenCount": reply.prompt_tokens,
            "totalTokenCount": reply.prompt_tokens,
        }
    else:
        content: dict[str, Any] = {"role": "model"}
        if reply.text is not None:
            content["parts"] = [{"text": reply.text}]
        body["candidates"] = [
            {"content": content, "finishReason": reply.finish_reason, "index": 0}
        ]
        body["usageMetadata"] = {
            "promptTokenCount": reply.prompt_tokens,
            "candidatesTokenCount": reply.output_tokens,
            "totalTokenCount": reply.prompt_tokens + reply.output_tokens,
        }
    body["modelVersion"] = reply.model_version
    body["responseId"] = "gemini-server-response"
    return body


class _Handler(BaseHTTPRequestHandler):
    server: OwnedServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - silence stderr
        pass

    def _read_json(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            return raw.decode("utf-8", "replace")

    def _send(self, status: int, body: bytes, content_type: str = "application/json; charset=UTF-8", *,
              drip_s: float = 0.0, pieces: int = 1) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.flush()
            size = max(1, -(-len(body) // max(1, pieces)))
            for start in range(0, len(body), size):
                # A dripped body: the headers at once, then each piece after a pause (cut short by stop()).
                if drip_s > 0 and self.server.owner._stopping.wait(drip_s / pieces):
                    self.close_connection = True
                    return
                self.wfile.write(body[start:start + size])
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            # The client gave up (e.g. it timed out during a delayed reply).
            self.close_connection = True

    def _handle(self) -> None:
        owner = self.server.owner
        payload = self._read_json()
        owner._record(
            {
                "method": self.command,
                "path": self.path,
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "json": payload,
            }
        )
        path = self.path.split("?", 1)[0]
        if self.command != "POST" or not _is_generate_content(path):
            self._send(404, json.dumps(_error_body(404, f"GeminiServer: unsupported {self.command} {path}")).encode())
            return

        reply = owner._next_reply()
        if reply is None:
            body = _error_body(500, "GeminiServer: no reply queued and no default set.")
            self._send(500, json.dumps(body).encode())
            return
        if reply.delay_s > 0:
            # Sleep in small steps so a stopping server can cut it short.
            deadline = time.monotonic() + reply.delay_s
            while not owner._stopping.is_set():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                owner._stopping.wait(min(remaining, 0.05))
            if owner._stopping.is_set():
                self.close_connection = True
                return
        drip: dict[str, Any] = {"drip_s": reply.drip_s, "pieces": reply.drip_pieces} if reply.drip_s > 0 else {}
        if reply.raw_body is not None:
            content_type = "application/json; charset=UTF-8" if reply.status < 400 else "text/plain; charset=UTF-8"
            self._send(reply.status, reply.raw_body, content_type, **drip)
        elif reply.status >= 400:
            self._send(reply.status, json.dumps(_error_body(reply.status, reply.error_message)).encode(), **drip)
        else:
            self._send(reply.status, json.dumps(_success_body(reply)).encode(), **drip)

    do_POST = _handle
    do_GET = _handle
    do_PUT = _handle
    do_DELETE = _handle
    do_PATCH = _handle


def _is_generate_content(path: str) -> bool:
    # /{v1|v1beta|...}/models/{model}:generateContent  (a base_url path prefix is tolerated)
    if not path.endswith(":generateContent"):
        return False
    return "/models/" in path


class GeminiServer(LocalHttpServer):
    """Context manager: serves on 127.0.0.1 with a free port, stops cleanly.

    Attributes:
        url: "http://127.0.0.1:PORT" -- use as ``HttpOptions(base_url=...)``.
        requests: every request received, as
            ``{"method", "path", "headers" (lower-cased keys), "json" (parsed body)}``.
        default: reply used when the queue is empty; None -> 500 error body.
    """

    handler = _Handler

    def __init__(self, default: Reply | None = None) -> None:
        super().__init__()
        self.default: Reply | None = default
        self.requests: list[dict[str, Any]] = []
        self._queue: list[Reply] = []

    # -- scripting -----------------------------------------------------------
    def queue(self, *replies: Reply) -> None:
        """Answer the next requests with these replies, in order."""
        with self._lock:
            self._queue.extend(replies)

    @staticmethod
    def json_reply(obj: Any, **kw: Any) -> Reply:
        """A Reply whose text is ``json.dumps(obj)``."""
        return Reply(text=json.dumps(obj), **kw)

    @property
    def pending(self) -> int:
        """Number of queued replies not yet consumed."""
        with self._lock:
            return len(self._queue)

    def _next_reply(self) -> Reply | None:
        with self._lock:
            if self._queue:
                return self._queue.pop(0)
            return self.default

    def _record(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self.requests.append(entry)
