"""The lifecycle the fake HTTP servers share: serve a handler on 127.0.0.1 at a free port in a thread, stop cleanly.

A subclass sets `handler` (whose requests reach the subclass as `self.server.owner`) and, optionally, `url_path`.
Handlers that wait (a scripted hang or delay) wait on `owner._stopping`, so that stopping cuts the wait short.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar, Self


class OwnedServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    owner: Any  # the LocalHttpServer serving through it


class LocalHttpServer:
    """Context manager: `handler` served on 127.0.0.1 at a free port; `url` is its address (plus `url_path`)."""

    handler: ClassVar[type[BaseHTTPRequestHandler]]
    url_path: str = ""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd: OwnedServer | None = None
        self._thread: threading.Thread | None = None
        self.url: str = ""

    def start(self) -> Self:
        """Starts serving in a thread (once: a second call changes nothing)."""
        if self._httpd is not None:
            return self
        self._stopping.clear()
        httpd = OwnedServer(("127.0.0.1", 0), self.handler)
        httpd.owner = self
        self._httpd = httpd
        port = httpd.server_address[1]
        self.url = f"http://127.0.0.1:{port}{self.url_path}"
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"{type(self).__name__}:{port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stops serving and ends any wait in a handler at once."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        self._stopping.set()
        httpd.shutdown()
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
