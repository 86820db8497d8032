"""A loopback stand-in for the EU DSA Transparency Database's statement API, speaking its
documented wire format (docs/statements-of-reasons.md): ``POST /api/v1/statements`` with
a Bearer token and ``{"statements": [...]}`` (1-100), answered ``201`` with each statement's
``uuid``, or ``401``, or ``422`` with per-statement field errors (``statement_<i>``) or with
``existing_puids``, in which cases none of the batch is created. It validates required
fields and the documented values on its own (spelled out here, not imported, so that a
typo in the builder fails), can answer 503 a number of times, and can act on a batch and
then hang up (a lost answer)."""

from __future__ import annotations

import json
import re
import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

TOKEN = "X|ybqkCFX7ZkIFoLxtI0VAk1JBzMR9jVk4c4EU-test"

_ONE_OF = {
    "decision_ground": {"DECISION_GROUND_ILLEGAL_CONTENT",
                        "DECISION_GROUND_INCOMPATIBLE_CONTENT"},
    "decision_account": {"DECISION_ACCOUNT_SUSPENDED", "DECISION_ACCOUNT_TERMINATED"},
    "source_type": {"SOURCE_ARTICLE_16", "SOURCE_TRUSTED_FLAGGER",
                    "SOURCE_TYPE_OTHER_NOTIFICATION", "SOURCE_VOLUNTARY"},
    "automated_detection": {"Yes", "No"},
    "automated_decision": {"AUTOMATED_DECISION_FULLY", "AUTOMATED_DECISION_PARTIALLY",
                           "AUTOMATED_DECISION_NOT_AUTOMATED"},
    "category": {"STATEMENT_CATEGORY_CYBER_VIOLENCE", "STATEMENT_CATEGORY_PROTECTION_OF_MINORS",
                 "STATEMENT_CATEGORY_OTHER_VIOLATION_TC",
                 "STATEMENT_CATEGORY_CYBER_VIOLENCE_AGAINST_WOMEN"},
}
_ARRAYS = {
    "decision_visibility": {"DECISION_VISIBILITY_CONTENT_REMOVED",
                            "DECISION_VISIBILITY_CONTENT_DISABLED",
                            "DECISION_VISIBILITY_CONTENT_DEMOTED", "DECISION_VISIBILITY_OTHER"},
    "content_type": {"CONTENT_TYPE_APP", "CONTENT_TYPE_AUDIO", "CONTENT_TYPE_IMAGE",
                     "CONTENT_TYPE_PRODUCT", "CONTENT_TYPE_SYNTHETIC_MEDIA", "CONTENT_TYPE_TEXT",
                     "CONTENT_TYPE_VIDEO", "CONTENT_TYPE_OTHER"},
    "category_specification": {"KEYWORD_CHILD_SEXUAL_ABUSE_MATERIAL",
                               "KEYWORD_CHILD_SEXUAL_ABUSE_MATERIAL_DEEPFAKE",
                               "KEYWORD_NON_CONSENSUAL_IMAGE_SHARING",
                               "KEYWORD_NON_CONSENSUAL_MATERIAL_DEEPFAKE",
                               "KEYWORD_ADULT_SEXUAL_MATERIAL", "KEYWORD_NUDITY"},
    "territorial_scope": {"AT", "BE", "BG", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FR",
                          "GR", "HR", "HU", "IE", "IT", "LT", "LU", "LV", "MT", "NL", "PL",
                          "PT", "RO", "SE", "SI", "SK", "IS", "LI", "NO"},
}
_REQUIRED = ("decision_ground", "content_type", "category", "territorial_scope",
             "content_date", "application_date", "decision_facts", "source_type",
             "automated_detection", "automated_decision", "puid")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_PUID = re.compile(r"^[A-Za-z0-9_-]{1,500}$")


@dataclass
class DsaDatabase:
    token: str = TOKEN
    fail_next: int = 0  # answer this many batches 503 before acting on them
    lose_next: int = 0  # act on this many batches, then hang up without answering
    statements: dict[str, dict[str, Any]] = field(default_factory=dict)  # puid -> stored
    calls: list[tuple[int, int]] = field(default_factory=list)  # (batch size, status)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                status, reply, hang_up = server.handle(
                    self.path, self.headers.get("Authorization", ""), body)
                if hang_up:
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                data = json.dumps(reply).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

        self._server = Server(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def handle(self, path: str, authorization: str, body: bytes
               ) -> tuple[int, dict[str, Any], bool]:
        with self._lock:
            status, reply, hang_up = self._handle(path, authorization, body)
            try:
                size = len(json.loads(body).get("statements") or [])
            except (ValueError, AttributeError):
                size = 0
            self.calls.append((size, status))
            return status, reply, hang_up

    def _handle(self, path: str, authorization: str, body: bytes
                ) -> tuple[int, dict[str, Any], bool]:
        if path != "/api/v1/statements":
            return 404, {"message": "Not Found"}, False
        if authorization != f"Bearer {self.token}":
            return 401, {"message": "Unauthenticated."}, False
        if self.fail_next > 0:
            self.fail_next -= 1
            return 503, {"message": "Service Unavailable"}, False
        try:
            statements = json.loads(body)["statements"]
        except (ValueError, KeyError, TypeError):
            statements = None
        if not isinstance(statements, list) or not 1 <= len(statements) <= 100:
            message = "The statements field must have between 1 and 100 items."
            return 422, {"message": message, "errors": {"statements": [message]}}, False
        errors = {f"statement_{i}": e for i, s in enumerate(statements)
                  if (e := _field_errors(s))}
        if errors:
            return 422, {"errors": errors}, False
        puids = [s["puid"] for s in statements]
        repeated = sorted({p for p in puids if p in self.statements or puids.count(p) > 1})
        if repeated:
            message = "The platform identifier(s) are not all unique within this call."
            return 422, {"message": message, "errors": {"puid": [message],
                                                        "existing_puids": repeated}}, False
        created = []
        for s in statements:
            stored = {**s, "uuid": str(uuid.uuid4()), "created_at": "2026-11-27 10:00:00",
                      "platform_name": "Consentry test platform"}
            self.statements[s["puid"]] = stored
            created.append(stored)
        if self.lose_next > 0:
            self.lose_next -= 1
            return 201, {}, True
        return 201, {"statements": created}, False


def _field_errors(s: Any) -> dict[str, list[str]]:
    if not isinstance(s, dict):
        return {"statement": ["The statement must be an object."]}
    errors: dict[str, list[str]] = {}
    for name in _REQUIRED:
        if s.get(name) in (None, "", []):
            errors[name] = [f"The {name.replace('_', ' ')} field is required."]
    if not any(s.get(k) for k in ("decision_visibility", "decision_monetary",
                                  "decision_provision", "decision_account")):
        errors["decision_visibility"] = ["The decision visibility field is required when "
                                         "none of decision monetary / decision provision / "
                                         "decision account are present."]
    for name, allowed in _ONE_OF.items():
        if name in s and s[name] not in allowed:
            errors[name] = [f"The selected {name.replace('_', ' ')} is invalid."]
    for name, allowed in _ARRAYS.items():
        value = s.get(name)
        if value is not None and (not isinstance(value, list)
                                  or not set(value) <= allowed):
            errors[name] = [f"The selected {name.replace('_', ' ')} is invalid."]
    for name in ("content_date", "application_date", "end_date_account_restriction"):
        if name in s and not _DATE.match(str(s[name])):
            errors[name] = [f"The {name.replace('_', ' ')} does not match the format Y-m-d."]
    if "puid" in s and not _PUID.match(str(s["puid"])):
        errors["puid"] = ["The puid format is invalid."]
    ground = s.get("decision_ground")
    needs = (("illegal_content_legal_ground", "illegal_content_explanation")
             if ground == "DECISION_GROUND_ILLEGAL_CONTENT" else
             ("incompatible_content_ground", "incompatible_content_explanation"))
    for name in needs:
        if not s.get(name):
            errors[name] = [f"The {name.replace('_', ' ')} field is required."]
    return errors


__all__ = ["TOKEN", "DsaDatabase"]
