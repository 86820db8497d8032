"""A loopback HTTP server thread for exchange tests, with failure modes.

Subclasses answer ``handle(method, path, query, headers)`` with (status, content type,
body). ``fail`` switches the next requests to a failure: "hang", "garbage", or an HTTP
status; ``fail_times`` limits how many requests fail (None: all).
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


class FakeService:
    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str], dict[str, str]]] = []
        self.fail: str | int | None = None
        self.fail_times: int | None = None
        self._release = threading.Event()
        service = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                service._dispatch(self)

            def log_message(self, format: str, *args: object) -> None:
                pass  # keep test output clean

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()

    @property
    def origin(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def close(self) -> None:
        self._release.set()  # let hanging handlers finish
        self._server.shutdown()
        self._server.server_close()

    def handle(
        self, path: str, query: dict[str, str], headers: dict[str, str]
    ) -> tuple[int, str, bytes]:
        raise NotImplementedError

    def _dispatch(self, handler: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(handler.path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        headers = {k.lower(): v for k, v in handler.headers.items()}
        self.requests.append((parts.path, query, headers))
        failure = self.fail
        if failure is not None and self.fail_times is not None:
            self.fail_times -= 1
            if self.fail_times <= 0:
                self.fail, self.fail_times = None, None
        if failure == "hang":
            self._release.wait(10)
            return
        if failure == "garbage":
            status, content_type, body = 200, "text/html", b"<html><body>oops</bo"
        elif isinstance(failure, int):
            status, content_type, body = failure, "text/plain", b"upstream failure"
        else:
            status, content_type, body = self.handle(parts.path, query, headers)
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)
