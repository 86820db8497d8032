"""The platform callback that removes (or restores) one content item: an HTTPS POST per
content id, signed with HMAC-SHA256 and carrying an idempotency key, so the platform can
trust it and ignore repeats. Retries are scheduled by the caller (``retry_delay``).

Signature, as documented for platforms in docs/takedowns.md::

    X-Consentry-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Final
from urllib.parse import quote

import httpx

SIGNATURE_HEADER: Final = "X-Consentry-Signature"
IDEMPOTENCY_HEADER: Final = "Idempotency-Key"
SIGNATURE_TOLERANCE_S: Final = 300

MAX_ATTEMPTS: Final = 12
_FIRST_RETRY: Final = timedelta(seconds=5)
_LONGEST_WAIT: Final = timedelta(minutes=30)  # 12 attempts span ~3.5 hours, well in 48


@dataclass(frozen=True)
class RemovalRequest:
    action: str  # remove | restore
    content_id: str
    case_number: str
    regime: str
    clause: str
    idempotency_key: str
    reason: str = ""

    def body(self) -> bytes:
        return json.dumps({
            "action": self.action, "content_id": self.content_id, "case": self.case_number,
            "regime": self.regime, "clause": self.clause, "reason": self.reason,
            "idempotency_key": self.idempotency_key,
        }, sort_keys=True, separators=(",", ":")).encode()


@dataclass(frozen=True)
class AttemptResult:
    outcome: str  # ok | gone | http_error | unreachable
    status_code: int | None
    detail: str
    duration_ms: int

    @property
    def succeeded(self) -> bool:
        # 404/410: the platform no longer has the item, which is what removal wants.
        return self.outcome in {"ok", "gone"}


def sign(secret: str, body: bytes, timestamp: int) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify(secret: str, header: str, body: bytes, *, now: float | None = None,
           tolerance_s: int = SIGNATURE_TOLERANCE_S) -> bool:
    """What a platform runs on receipt: the signature is right and recent (a replayed
    old request fails)."""
    try:
        parts = dict(p.split("=", 1) for p in header.split(","))
        timestamp = int(parts["t"])
    except (ValueError, KeyError):
        return False
    if abs((now if now is not None else time.time()) - timestamp) > tolerance_s:
        return False
    expected = sign(secret, body, timestamp).split("v1=", 1)[1]
    return hmac.compare_digest(expected, parts.get("v1", ""))


def retry_delay(attempts: int) -> timedelta | None:
    """Wait before the next attempt after ``attempts`` failures (None: give up)."""
    if attempts >= MAX_ATTEMPTS:
        return None
    return min(_FIRST_RETRY * (2 ** (attempts - 1)), _LONGEST_WAIT)


class PlatformCallback:
    """Posts removal requests to the platform. ``url`` may contain ``{content_id}``."""

    def __init__(self, url: str, secret: str, *, timeout_s: float = 10.0) -> None:
        if not url.startswith(("https://", "http://")):
            raise ValueError(f"the removal callback must be an http(s) URL, got {url!r}")
        if len(secret) < 16:
            raise ValueError("the removal callback secret must be at least 16 characters")
        self.url = url
        self._secret = secret
        self._client = httpx.Client(timeout=timeout_s, follow_redirects=False)

    def target(self, content_id: str) -> str:
        return self.url.replace("{content_id}", quote(content_id, safe=""))

    def send(self, request: RemovalRequest) -> AttemptResult:
        body = request.body()
        headers = {"Content-Type": "application/json",
                   SIGNATURE_HEADER: sign(self._secret, body, int(time.time())),
                   IDEMPOTENCY_HEADER: request.idempotency_key}
        started = time.perf_counter()
        try:
            response = self._client.post(self.target(request.content_id), content=body,
                                         headers=headers)
        except Exception as exc:  # noqa: BLE001 - every attempt is recorded, whatever failed
            return AttemptResult("unreachable", None, f"{type(exc).__name__}: {exc}"[:500],
                                 _ms(started))
        code = response.status_code
        if 200 <= code < 300:
            return AttemptResult("ok", code, "", _ms(started))
        if code in {404, 410} and request.action == "remove":
            return AttemptResult("gone", code, "the platform no longer has the item",
                                 _ms(started))
        return AttemptResult("http_error", code, response.text[:500], _ms(started))

    def close(self) -> None:
        self._client.close()


def _ms(started: float) -> int:
    return int((time.perf_counter() - started) * 1000)

