"""The Transparency Database's batch endpoint: ``POST /api/v1/statements`` with
``{"statements": [...]}`` (1 to 100), ``Authorization: Bearer <token>``, JSON both ways.

Answers, as documented (api-documentation, "Creating Multiple Statements", "Errors"):

- ``201`` ``{"statements": [{..., "uuid", "puid"}]}``: every statement was created;
- ``422`` ``{"errors": {"statement_<i>": {field: [messages]}}}``: statement i is invalid,
  and NONE of the batch was created;
- ``422`` ``{"message", "errors": {"puid": [...], "existing_puids": [...]}}``: those puids
  are already in the database (or twice in the batch); none was created;
- ``401``: the token is wrong; other 4xx: the request is wrong; 5xx: try again later.

Connection failures, timeouts, 429 and 5xx are tried again here with exponential backoff
(``Retry-After`` honoured, capped). The token lives only in this client's headers and is
never logged.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import urlsplit

import httpx

from consentry.errors import ConfigurationError
from consentry.reporting.cybertipline.client import loopback_host, retry_after

log = logging.getLogger(__name__)

BATCH_MAX: Final = 100
STATEMENTS_PATH: Final = "/api/v1/statements"


@dataclass(frozen=True)
class DatabaseSettings:
    """Where to send statements and with which token. ``base_url`` is the database's
    address (``https://transparency.dsa.ec.europa.eu`` or the sandbox's); https unless
    loopback (tests)."""

    base_url: str
    token: str = field(repr=False)
    timeout_s: float = 30.0
    max_attempts: int = 4
    first_backoff_s: float = 1.0
    longest_backoff_s: float = 30.0

    def __post_init__(self) -> None:
        parts = urlsplit(self.base_url)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise ConfigurationError("CONSENTRY_DSA_URL must be an https URL such as "
                                     f"https://transparency.dsa.ec.europa.eu, got "
                                     f"{self.base_url!r}")
        if parts.scheme == "http" and not loopback_host(parts.hostname):
            raise ConfigurationError("CONSENTRY_DSA_URL must use https: the token never "
                                     "travels in the clear")
        if not self.token.strip():
            raise ConfigurationError("CONSENTRY_DSA_TOKEN is empty")
        if self.timeout_s <= 0 or self.max_attempts < 1 or self.first_backoff_s < 0:
            raise ConfigurationError("DSA submission timeout must be positive and attempts "
                                     "at least 1")


@dataclass(frozen=True)
class BatchAnswer:
    """What the database made of one batch."""

    created: dict[str, str] = field(default_factory=dict)  # puid -> the database's uuid
    existing: tuple[str, ...] = ()  # puids it already holds
    invalid: dict[int, Any] = field(default_factory=dict)  # position -> field errors
    error: str | None = None  # why nothing was taken, when the above do not say
    status_code: int | None = None


class TransparencyDatabase:
    """Sends batches of statements. Not shared between threads."""

    def __init__(self, settings: DatabaseSettings, *,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.settings = settings
        self._sleep = sleep
        self._url = settings.base_url.rstrip("/") + STATEMENTS_PATH
        self._http = httpx.Client(
            timeout=settings.timeout_s, follow_redirects=False,
            headers={"Authorization": f"Bearer {settings.token}",
                     "Accept": "application/json", "Content-Type": "application/json"})

    def post(self, statements: Sequence[dict[str, Any]]) -> BatchAnswer:
        """One batch (1 to ``BATCH_MAX``), retried while the database is unavailable."""
        if not 1 <= len(statements) <= BATCH_MAX:
            raise ValueError(f"a batch holds 1 to {BATCH_MAX} statements, not "
                             f"{len(statements)}")
        body = {"statements": list(statements)}
        last = BatchAnswer(error="not sent")
        for attempt in range(1, self.settings.max_attempts + 1):
            try:
                response = self._http.post(self._url, json=body)
            except httpx.HTTPError as exc:  # connection refused, reset, timed out
                last = BatchAnswer(error=f"unreachable: {type(exc).__name__}")
                wait = None
            else:
                code = response.status_code
                if code != 429 and code < 500:
                    return _answer(response)
                last = BatchAnswer(error=f"HTTP {code}: {response.text[:200]}",
                                   status_code=code)
                wait = retry_after(response)
            log.info("DSA batch attempt %d of %d failed: %s", attempt,
                     self.settings.max_attempts, last.error)
            if attempt < self.settings.max_attempts:
                self._sleep(min(wait if wait is not None else
                                self.settings.first_backoff_s * 2 ** (attempt - 1),
                                self.settings.longest_backoff_s))
        return last

    def close(self) -> None:
        self._http.close()


def _answer(response: httpx.Response) -> BatchAnswer:
    code = response.status_code
    try:
        payload = response.json()
    except ValueError:
        payload = None
    if code == 201 and isinstance(payload, dict):
        created = {str(s.get("puid")): str(s.get("uuid")) for s in
                   payload.get("statements") or [] if isinstance(s, dict)}
        return BatchAnswer(created=created, status_code=code)
    if code == 422 and isinstance(payload, dict) and isinstance(payload.get("errors"), dict):
        errors: dict[str, Any] = payload["errors"]
        existing = tuple(str(p) for p in errors.get("existing_puids") or [])
        invalid = {int(k.removeprefix("statement_")): v for k, v in errors.items()
                   if k.startswith("statement_") and k.removeprefix("statement_").isdigit()}
        if existing or invalid:
            return BatchAnswer(existing=existing, invalid=invalid, status_code=code)
        return BatchAnswer(error=f"HTTP 422: {str(payload.get('message') or errors)[:300]}",
                           status_code=code)
    if code in (401, 403):
        return BatchAnswer(error=f"HTTP {code}: the database refused the token "
                                 "(CONSENTRY_DSA_TOKEN)", status_code=code)
    return BatchAnswer(error=f"HTTP {code}: {response.text[:300]}", status_code=code)

