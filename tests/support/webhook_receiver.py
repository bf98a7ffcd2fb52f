"""A real local HTTP server that receives webhooks: it records every request and answers as scripted.

    with WebhookReceiver(500, 500, 500, 200) as receiver:   # answers in turn, then `default`
        ... POST to receiver.url ...
        receiver.requests[0].headers["webhook-id"], receiver.requests[0].body

An answer is a status code or HANG (sleep `hang_s`, longer than the client's timeout, then answer 200).
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.support.local_http import LocalHttpServer, OwnedServer

HANG = "hang"
Answer = int | str


@dataclass(frozen=True)
class Received:
    """One request as it arrived."""

    method: str
    path: str
    headers: dict[str, str]  # names lower-cased
    body: bytes
    at: float  # time.monotonic() on arrival


class _Handler(BaseHTTPRequestHandler):
    server: OwnedServer
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; with Nagle on, each answer would wait ~40 ms for a delayed ACK.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - keep test output quiet
        pass

    def do_POST(self) -> None:  # noqa: N802 - the name http.server calls
        owner = self.server.owner
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        answer = owner._record(Received(self.command, self.path, {k.lower(): v for k, v in self.headers.items()},
                                        body, time.monotonic()))
        if owner.delay_s:
            time.sleep(owner.delay_s)
        if answer == HANG:
            # Waits in small steps so that stopping the server cuts the hang short.
            if owner._stopping.wait(owner.hang_s):
                self.close_connection = True
                return
            answer = 200
        status = int(answer)
        text = b"ok" if status < 300 else f"<html><body>Scripted {status} from the receiver\n</body></html>".encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(text)))
            self.end_headers()
            self.wfile.write(text)
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            self.close_connection = True  # the client gave up waiting

    do_GET = do_PUT = do_PATCH = do_DELETE = do_POST


class WebhookReceiver(LocalHttpServer):
    """Context manager: a receiver on 127.0.0.1 at a free port, answering `answers` in turn, then `default`."""

    handler = _Handler

    def __init__(self, *answers: Answer, default: Answer = 200, hang_s: float = 5.0, delay_s: float = 0.0,
                 path: str = "/hooks/leadops") -> None:
        super().__init__()
        self.default = default
        self.hang_s = hang_s
        self.delay_s = delay_s
        self.path = self.url_path = path
        self._answers: list[Answer] = list(answers)
        self._requests: list[Received] = []

    def script(self, *answers: Answer) -> None:
        """Answers the next requests with these, in order."""
        with self._lock:
            self._answers.extend(answers)

    @property
    def requests(self) -> list[Received]:
        """Every request so far, in arrival order."""
        with self._lock:
            return list(self._requests)

    def clear(self) -> None:
        """Forgets the requests received so far."""
        with self._lock:
            self._requests.clear()

    def count_by_id(self) -> Counter[str]:
        """How many requests arrived per `webhook-id`."""
        return Counter(r.headers.get("webhook-id", "") for r in self.requests)

    def _record(self, received: Received) -> Answer:
        with self._lock:
            self._requests.append(received)
            return self._answers.pop(0) if self._answers else self.default
