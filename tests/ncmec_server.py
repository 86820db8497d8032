"""A loopback stand-in for NCMEC's CyberTipline Reporting API, speaking its documented wire
format (docs/cybertipline.md): Basic authentication, ``<report>`` and ``<fileDetails>``
bodies validated against the same element-order schema the client uses, report ids it
assigns, ``<reportResponse>``/``<reportDoneResponse>`` answers with the documented response
codes, and the order of every call. It can be told to answer 503 a number of times, or to
act on a request and then drop the connection without answering (a lost answer)."""

from __future__ import annotations

import base64
import hashlib
import itertools
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from xml.sax.saxutils import escape

from consentry.errors import InvalidRequest
from consentry.reporting.cybertipline import validate

USERNAME = "esp-consentry-test"
PASSWORD = "correct horse battery staple"


@dataclass
class ReceivedFile:
    file_id: str
    file_name: str
    data: bytes
    details: bytes | None = None  # the <fileDetails> accepted for it


@dataclass
class ReceivedReport:
    report_id: str
    xml: bytes
    files: list[ReceivedFile] = field(default_factory=list)
    finished: bool = False
    retracted: bool = False

    def file(self, file_id: str) -> ReceivedFile | None:
        return next((f for f in self.files if f.file_id == file_id), None)


@dataclass
class NcmecServer:
    username: str = USERNAME
    password: str = PASSWORD
    fail_next: int = 0  # answer this many requests with 503 before acting on them
    lose_answer_to: set[str] = field(default_factory=set)  # act on these paths once, then hang up
    calls: list[tuple[str, str | None]] = field(default_factory=list)  # (endpoint, report id)
    reports: dict[str, ReceivedReport] = field(default_factory=dict)
    auth_failures: int = 0
    upload_hook: Callable[[], None] | None = None  # runs before an upload is handled
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(4564654))
    _files: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                self._serve(b"")

            def do_POST(self) -> None:
                self._serve(self.rfile.read(int(self.headers.get("Content-Length", "0"))))

            def _serve(self, body: bytes) -> None:
                endpoint = self.path.removeprefix("/ispws")
                outcome = server.handle(self.command, endpoint, dict(self.headers.items()), body)
                if outcome is None:  # a lost answer: acted on, then the connection drops
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                status, reply = outcome
                self.send_response(status)
                self.send_header("Content-Type", "application/xml; charset=utf-8")
                self.send_header("Content-Length", str(len(reply)))
                if status == 401:
                    self.send_header("WWW-Authenticate", 'Basic realm="ispws"')
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args: object) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

        self._server = Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}/ispws"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    # ------------------------------------------------------------ what a test reads

    def endpoints(self, report_id: str | None = None) -> list[str]:
        """The endpoints called, in order (those naming ``report_id`` only, if given)."""
        return [e for e, r in self.calls if report_id is None or r == report_id]

    def finished_reports(self) -> list[ReceivedReport]:
        return [r for r in self.reports.values() if r.finished]

    # ------------------------------------------------------------ the API

    def handle(self, method: str, endpoint: str, headers: dict[str, str],
               body: bytes) -> tuple[int, bytes] | None:
        if endpoint == "/upload" and (hook := self.upload_hook) is not None:
            hook()  # outside the lock: a slow upload holds up nobody else
        with self._lock:
            if not self._authorised(headers.get("Authorization", "")):
                self.auth_failures += 1
                return 401, _response(2000, "Authentication required")
            if self.fail_next > 0:
                self.fail_next -= 1
                return 503, b"Service Unavailable"
            lose = endpoint in self.lose_answer_to
            self.lose_answer_to.discard(endpoint)
            route = {("GET", "/status"): self._status, ("POST", "/submit"): self._submit,
                     ("POST", "/upload"): self._upload, ("POST", "/fileinfo"): self._fileinfo,
                     ("POST", "/finish"): self._finish,
                     ("POST", "/retract"): self._retract}.get((method, endpoint))
            if route is None:
                return 404, _response(4100, f"No such endpoint: {method} {endpoint}")
            status, reply = route(headers, body)
            return None if lose else (status, reply)

    def _authorised(self, header: str) -> bool:
        if not header.startswith("Basic "):
            return False
        try:
            given = base64.b64decode(header[6:], validate=True).decode()
        except ValueError:
            return False
        return given == f"{self.username}:{self.password}"

    def _status(self, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
        self.calls.append(("status", None))
        return 200, _response(0, f"Remote User : {self.username}, Remote Ip : 127.0.0.1")

    def _submit(self, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
        self.calls.append(("submit", None))
        if not headers.get("Content-Type", "").startswith("text/xml"):
            return 200, _response(4100, "Content-Type must be text/xml")
        try:
            validate(body, "report")
        except InvalidRequest as exc:
            return 200, _response(4100, f"Validation failed: {exc}")
        report_id = str(next(self._ids))
        self.reports[report_id] = ReceivedReport(report_id, body)
        self.calls[-1] = ("submit", report_id)
        return 200, _response(0, "Success", reportId=report_id)

    def _upload(self, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
        form = _multipart(headers.get("Content-Type", ""), body)
        report_id = form.get("id", (None, b""))[1].decode()
        self.calls.append(("upload", report_id or None))
        report, refusal = self._open_report(report_id)
        if report is None:
            return 200, refusal
        if "file" not in form:
            return 200, _response(4100, "Validation failed: no file")
        name, data = form["file"]
        file_id = f"{next(self._files):08x}"
        report.files.append(ReceivedFile(file_id, name or "", data))
        return 200, _response(0, "Success", reportId=report_id, fileId=file_id,
                              hash=hashlib.md5(data, usedforsecurity=False).hexdigest())

    def _fileinfo(self, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
        try:
            tree = validate(body, "fileDetails")
        except InvalidRequest as exc:
            self.calls.append(("fileinfo", None))
            return 200, _response(4100, f"Validation failed: {exc}")
        report_id, file_id = tree.findtext("reportId") or "", tree.findtext("fileId") or ""
        self.calls.append(("fileinfo", report_id))
        report, refusal = self._open_report(report_id)
        if report is None:
            return 200, refusal
        received = report.file(file_id)
        if received is None:
            return 200, _response(4100, f"Validation failed: file {file_id} is not in report "
                                  f"{report_id}")
        received.details = body
        return 200, _response(0, "Success", reportId=report_id)

    def _finish(self, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
        report_id = _multipart(headers.get("Content-Type", ""), body).get(
            "id", (None, b""))[1].decode()
        self.calls.append(("finish", report_id or None))
        report, refusal = self._open_report(report_id)
        if report is None:
            return 200, refusal
        report.finished = True
        files = "".join(f"<fileId>{f.file_id}</fileId>" for f in report.files)
        return 200, (f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
                     f"<reportDoneResponse><responseCode>0</responseCode>"
                     f"<reportId>{report_id}</reportId><files>{files}</files>"
                     f"</reportDoneResponse>").encode()

    def _retract(self, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
        report_id = _multipart(headers.get("Content-Type", ""), body).get(
            "id", (None, b""))[1].decode()
        self.calls.append(("retract", report_id or None))
        report, refusal = self._open_report(report_id)
        if report is None:
            return 200, refusal
        report.retracted = True
        return 200, _response(0, "Success", reportId=report_id)

    def _open_report(self, report_id: str) -> tuple[ReceivedReport | None, bytes]:
        report = self.reports.get(report_id)
        if report is None:
            return None, _response(5001, "Report does not exist")
        if report.retracted:
            return None, _response(5101, "Report already retracted")
        if report.finished:
            return None, _response(5102, "Report already finished")
        return report, b""

    def expire(self, report_id: str) -> None:
        """NCMEC deletes an unfinished report 1 hour after its last change."""
        with self._lock:
            self.reports.pop(report_id, None)


def _response(code: int, description: str, **values: str) -> bytes:
    extra = "".join(f"<{k}>{escape(v)}</{k}>" for k, v in values.items())
    return (f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?><reportResponse>'
            f"<responseCode>{code}</responseCode>"
            f"<responseDescription>{escape(description)}</responseDescription>{extra}"
            f"</reportResponse>").encode()


def _multipart(content_type: str, body: bytes) -> dict[str, tuple[str | None, bytes]]:
    """The parts of a multipart/form-data body: name -> (file name, bytes)."""
    if not content_type.startswith("multipart/form-data"):
        return {}
    message = BytesParser(policy=HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body)
    parts: dict[str, tuple[str | None, bytes]] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        if isinstance(name, str) and isinstance(payload, bytes):
            parts[name] = (part.get_filename(), payload)
    return parts

__all__ = ["PASSWORD", "USERNAME", "NcmecServer", "ReceivedReport"]
