"""A ClickHouse server for the tests: ClickHouse's HTTP interface (the wire format
``clickhouse-connect`` speaks to a server or a cluster) in front of chdb, which is
ClickHouse itself, embedded. No ClickHouse server can be installed here (Debian's is from
2018, and PyPI has none), so this is how ``ServerClickHouse`` is run end to end: the real
client library, its real requests (Native bodies, compression, settings, errors), and
ClickHouse's own answers.

Run as its own process (chdb serves one data path per process):
``python tests/clickhouse_server.py PORT PATH``; it prints ``ready`` when it listens.
Only what the HTTP interface needs for Consentry's use is spoken: POST and GET queries
(SQL in the ``query`` parameter or the body), INSERT with a body in any input format,
``database`` and ``default_format``, compressed request bodies, ``/ping``, and errors
as ClickHouse sends them (status 500 with ``X-ClickHouse-Exception-Code``)."""

from __future__ import annotations

import gzip
import re
import subprocess
import sys
import tempfile
import threading
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import chdb
import lz4.frame
from live_server import free_port

_FORMAT = re.compile(r"\s+FORMAT\s+(\w+)\s*;?\s*$", re.IGNORECASE)
_INSERT = re.compile(rb"^\s*INSERT\s+INTO\s+(.+?)\s+FORMAT\s+(\w+)[ \t]*\r?\n",
                     re.IGNORECASE | re.DOTALL)
_CODE = re.compile(r"Code:\s*(\d+)")


def _decoded(body: bytes, encoding: str | None) -> bytes:
    if not encoding or encoding == "identity":
        return body
    if encoding == "gzip":
        return gzip.decompress(body)
    if encoding == "deflate":
        return zlib.decompress(body)
    if encoding == "lz4":
        return lz4.frame.decompress(body)
    raise ValueError(f"unsupported Content-Encoding {encoding}")


class ClickHouseHTTP(BaseHTTPRequestHandler):
    engine: object  # the chdb connection, set on the class before serving
    lock = threading.Lock()  # a chdb connection runs one query at a time
    spool: Path

    def log_message(self, format: str, *args: object) -> None:
        return  # quiet: the test's output is what matters

    def do_GET(self) -> None:
        if urlsplit(self.path).path in ("/ping", "/"):
            self._answer(200, b"Ok.\n", "text/plain")
            return
        self._query(b"")

    def do_POST(self) -> None:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = self._chunked()  # how clickhouse-connect streams an insert
        else:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
        try:
            body = _decoded(body, self.headers.get("Content-Encoding"))
        except Exception as exc:  # noqa: BLE001 - told to the client, as a server would
            self._error(f"Code: 354. DB::Exception: cannot decompress the body: {exc}")
            return
        self._query(body)

    def _chunked(self) -> bytes:
        parts = []
        while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
            parts.append(self.rfile.read(size))
            self.rfile.readline()  # the CRLF after each chunk
        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
            pass  # trailers
        return b"".join(parts)

    def _query(self, body: bytes) -> None:
        params = {k: v[-1] for k, v in parse_qs(urlsplit(self.path).query).items()}
        # As ClickHouse reads it: the query parameter, then the body; an INSERT's rows
        # follow its FORMAT clause's line.
        text = (params["query"].encode() + b"\n" + body) if "query" in params else body
        output = params.get("default_format", "TabSeparated")
        answer = b""
        try:
            with self.lock:
                if params.get("database"):
                    self.engine.query(f"USE {params['database']}")  # type: ignore[attr-defined]
                if insert := _INSERT.match(text):
                    self._insert(insert.group(1).decode(), insert.group(2).decode(),
                                 text[insert.end():])
                else:
                    sql = text.decode()
                    if found := _FORMAT.search(sql):
                        output, sql = found.group(1), sql[:found.start()]
                    answer = bytes(self.engine.query(sql, output).bytes())  # type: ignore[attr-defined]
        except Exception as exc:  # noqa: BLE001 - ClickHouse's error, passed on
            self._error(str(exc))
            return
        self._answer(200, answer, "application/octet-stream", {"X-ClickHouse-Format": output})

    def _insert(self, target: str, fmt: str, data: bytes) -> None:
        # chdb takes no request body: the rows go through a file in the input format.
        with tempfile.NamedTemporaryFile(dir=self.spool, suffix=f".{fmt}") as f:
            f.write(data)
            f.flush()
            columns = re.search(r"\(([^)]*)\)\s*$", target)
            names = columns.group(1) if columns else "*"
            self.engine.query(  # type: ignore[attr-defined]
                f"INSERT INTO {target} SELECT {names} FROM file('{f.name}', '{fmt}')")

    def _error(self, message: str) -> None:
        code = _CODE.search(message)
        self._answer(500, message.encode(), "text/plain",
                     {"X-ClickHouse-Exception-Code": code.group(1) if code else "1000"})

    def _answer(self, status: int, body: bytes, content_type: str,
                headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-ClickHouse-Server-Display-Name", "consentry-test")
        self.send_header("X-ClickHouse-Timezone", "UTC")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)


@contextmanager
def clickhouse_server(folder: Path) -> Iterator[str]:
    """A server of this module's kind in its own process, storing in ``folder``; yields
    its URL (CONSENTRY_CLICKHOUSE_URL's form)."""
    port = free_port()
    process = subprocess.Popen([sys.executable, __file__, str(port), str(folder)],
                               stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None and process.stdout.readline().strip() == "ready"
        yield f"http://default:@127.0.0.1:{port}"
    finally:
        process.kill()
        process.wait(30)


def main(port: int, path: str) -> None:
    spool = Path(path) / "spool"
    spool.mkdir(parents=True, exist_ok=True)
    ClickHouseHTTP.engine = chdb.connect(str(Path(path) / "data"))
    ClickHouseHTTP.spool = spool
    server = ThreadingHTTPServer(("127.0.0.1", port), ClickHouseHTTP)
    print("ready", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2])
