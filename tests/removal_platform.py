"""A loopback stand-in for a platform's removal endpoint, speaking the callback's real
wire format: it verifies the HMAC signature, honours idempotency keys, and can be told to
fail or to be down. Used by the takedown tests and the takedown benchmark."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from consentry.cases.callback import IDEMPOTENCY_HEADER, SIGNATURE_HEADER, verify

SECRET = "platform-shared-secret-for-tests"


@dataclass
class Received:
    action: str
    content_id: str
    case: str
    idempotency_key: str
    path: str


@dataclass
class RemovalPlatform:
    secret: str = SECRET
    fail_next: int = 0  # answer this many requests with 503
    bad_signatures: int = 0
    received: list[Received] = field(default_factory=list)  # accepted, first time only
    attempts: int = 0
    removed: set[str] = field(default_factory=set)
    _seen: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        platform = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as a real platform would

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                status = platform.handle(self.path, body, self.headers.get(SIGNATURE_HEADER, ""),
                                         self.headers.get(IDEMPOTENCY_HEADER, ""))
                reply = b'{"ok": %s}' % (b"true" if status == 200 else b"false")
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args: object) -> None:
                pass

        class Server(ThreadingHTTPServer):
            request_queue_size = 128  # the service sends several callbacks at once
            daemon_threads = True

        self._server = Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}/content/{{content_id}}/takedown"

    def handle(self, path: str, body: bytes, signature: str, key: str) -> int:
        with self._lock:
            self.attempts += 1
            if not verify(self.secret, signature, body):
                self.bad_signatures += 1
                return 401
            if self.fail_next > 0:
                self.fail_next -= 1
                return 503
            data = json.loads(body)
            if key in self._seen:  # a repeat: already done, say so again
                return 200
            self._seen.add(key)
            self.received.append(Received(data["action"], data["content_id"], data["case"],
                                          key, path))
            if data["action"] == "remove":
                self.removed.add(data["content_id"])
            else:
                self.removed.discard(data["content_id"])
            return 200

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
