"""The contract between hash-list exchanges and bank storage.

An exchange turns a remote hash list (StopNCII, NCMEC, an HMA/ThreatExchange CSV file)
into ordered ``UpdateBatch``es. Storage applies one batch and stores its checkpoint in one
transaction; passing that checkpoint back to ``fetch()`` resumes right after the batch.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal, Protocol, get_args
from urllib.parse import urlsplit, urlunsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

Signal = Literal["pdq", "md5"]
Op = Literal["add", "remove"]
ErrorKind = Literal[
    "config",  # missing or invalid configuration
    "auth",  # the remote refused our credentials (HTTP 401/403)
    "timeout",  # the remote did not answer within the configured timeout
    "unavailable",  # could not connect (DNS, refused, TLS, reset)
    "http",  # any other HTTP error status
    "protocol",  # the body is not what the service's wire format says
    "checkpoint",  # the checkpoint passed to fetch() is not one we wrote
    "data",  # a file's content is malformed (CSV import)
]

HASH_LENGTHS: Mapping[str, int] = MappingProxyType({"pdq": 64, "md5": 32})
_HEX = re.compile(r"[0-9a-f]+")


def normalise_hash(signal: str, value: object) -> str | None:
    """The canonical form (lowercase hex, exact length) of a hash, or None if malformed."""
    if not isinstance(value, str) or signal not in HASH_LENGTHS:
        return None
    value = value.strip().lower()
    if len(value) != HASH_LENGTHS[signal] or not _HEX.fullmatch(value):
        return None
    return value


@dataclass(frozen=True)
class HashUpdate:
    """One change to a bank: start (``add``) or stop (``remove``) matching a hash.

    ``value`` is always canonical (lowercase hex of the signal's length). A ``remove`` may
    carry ``value == ""`` when the remote names only the record (NCMEC tombstones carry
    no fingerprints): storage then stops matching every hash of that signal it holds
    under ``external_id``. Several updates may share an ``external_id`` (an NCMEC image
    entry has a PDQ and an MD5); they describe the same remote record.
    """

    signal: Signal
    value: str
    external_id: str
    op: Op
    metadata: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Validated here so that no client can hand storage a hash that never matches.
        if self.signal not in get_args(Signal):
            raise ValueError(f"unknown signal {self.signal!r}")
        if self.op not in get_args(Op):
            raise ValueError(f"unknown op {self.op!r}")
        if not self.external_id:
            raise ValueError("external_id must not be empty")
        bare_remove = self.op == "remove" and self.value == ""
        if not bare_remove and normalise_hash(self.signal, self.value) != self.value:
            raise ValueError(
                f"{self.signal} value must be {HASH_LENGTHS[self.signal]} lowercase hex "
                f"characters, got {self.value!r}"
            )
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in self.metadata.items()):
            raise ValueError("metadata keys and values must be strings")
        # A read-only copy: a batch may be retried, and must not change under storage.
        object.__setattr__(self, "metadata", MappingProxyType(dict(self.metadata)))


@dataclass(frozen=True)
class SkippedRecord:
    """A remote record that produced no update, and why (storage may count or alert)."""

    external_id: str
    reason: str


@dataclass(frozen=True)
class UpdateBatch:
    """Updates to apply in order, then store ``checkpoint`` in the same transaction."""

    updates: tuple[HashUpdate, ...]
    checkpoint: str  # opaque JSON; fetch(checkpoint) resumes right after this batch
    more: bool  # further pages remain now
    # Records that were skipped (unsupported signal type, malformed hash from a remote
    # feed, unknown status). Not part of the lead's original contract; defaults to ().
    skipped: tuple[SkippedRecord, ...] = ()


class ExchangeError(Exception):
    """A sync failed. The message is precise and never contains a credential."""

    def __init__(
        self, message: str, *, exchange: str, kind: ErrorKind, status: int | None = None
    ) -> None:
        super().__init__(f"{exchange}: {message}")
        self.exchange = exchange
        self.kind = kind
        self.status = status  # the HTTP status, when there was one

    @property
    def transient(self) -> bool:
        """Whether retrying later, unchanged, may succeed."""
        if self.kind in ("timeout", "unavailable"):
            return True
        return self.kind == "http" and self.status is not None and self.status >= 500


class Exchange(Protocol):
    """A source of hash-list updates."""

    name: str

    def fetch(self, checkpoint: str | None) -> Iterator[UpdateBatch]:
        """Batches after ``checkpoint`` (None: from the beginning), oldest first."""
        ...


@dataclass(frozen=True)
class HttpSettings:
    """Network behaviour shared by the HTTP exchanges."""

    timeout_s: float = 30.0  # connect timeout, and the longest wait for each read
    retries: int = 2  # on connect failures and 429/5xx; never on read timeouts
    backoff_s: float = 0.5  # urllib3 backoff factor between retries

    def adapter(self) -> HTTPAdapter:
        """A requests adapter that always applies these settings."""
        return _TimeoutAdapter(
            self.timeout_s,
            max_retries=Retry(
                total=self.retries,
                connect=self.retries,
                # A read timeout is a hang: retrying would multiply the wait.
                read=False,
                status=self.retries,
                status_forcelist=(429, 500, 502, 503, 504),
                allowed_methods=frozenset({"GET", "HEAD"}),
                backoff_factor=self.backoff_s,
                # Hand back the last response so raise_for_status() names the status.
                raise_on_status=False,
                # A hostile or confused Retry-After could park a sync for hours.
                respect_retry_after_header=False,
            ),
        )


class _TimeoutAdapter(HTTPAdapter):
    """requests has no session-wide timeout; without one a hung server hangs the sync."""

    def __init__(self, timeout_s: float, **kwargs: object) -> None:
        self._timeout_s = timeout_s
        super().__init__(**kwargs)  # type: ignore[arg-type]

    def send(self, request: requests.PreparedRequest,  # type: ignore[override]
             **kwargs: Any) -> requests.Response:
        # Keyword-only pass-through: whatever requests passes, the timeout is ours.
        kwargs["timeout"] = (self._timeout_s, self._timeout_s)
        return super().send(request, **kwargs)


def redact(text: str, secrets: Sequence[str]) -> str:
    """``text`` with every secret and any URL user-info replaced by ``***``."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return re.sub(r"(?<=://)[^/@\s]+@", "***@", text)


def describe_url(url: str | None) -> str:
    """scheme://host/path of a URL: queries carry cursors, user-info carries secrets."""
    if not url:
        return "?"
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def request_error(
    exc: requests.RequestException,
    *,
    exchange: str,
    what: str,
    timeout_s: float,
    secrets: Sequence[str],
) -> ExchangeError:
    """Translate a requests failure into an ExchangeError with a precise, safe message."""
    url = describe_url(getattr(exc.request, "url", None) if exc.request is not None else None)
    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        response = exc.response
        url = describe_url(response.url)
        status = response.status_code
        if status in (401, 403):
            return ExchangeError(
                f"{what}: credentials rejected (HTTP {status}) by {url}",
                exchange=exchange,
                kind="auth",
                status=status,
            )
        # The start of the body usually says what went wrong; keep it short and clean.
        snippet = " ".join(response.text[:200].split())
        detail = f": {redact(snippet, secrets)}" if snippet else ""
        return ExchangeError(
            f"{what}: HTTP {status} {response.reason or ''} from {url}{detail}".replace("  ", " "),
            exchange=exchange,
            kind="http",
            status=status,
        )
    inner = exc.args[0] if exc.args else None
    if isinstance(exc, requests.Timeout) or isinstance(
        getattr(inner, "reason", None), urllib3.exceptions.ReadTimeoutError
    ):
        return ExchangeError(
            f"{what}: no answer from {url} within {timeout_s:g} s",
            exchange=exchange,
            kind="timeout",
        )
    if isinstance(exc, requests.ConnectionError):
        return ExchangeError(
            f"{what}: cannot connect to {url} ({_connection_reason(exc, secrets)})",
            exchange=exchange,
            kind="unavailable",
        )
    return ExchangeError(
        f"{what}: request to {url} failed: {redact(str(exc), secrets)}",
        exchange=exchange,
        kind="unavailable",
    )


def _connection_reason(exc: requests.ConnectionError, secrets: Sequence[str]) -> str:
    # requests wraps urllib3's MaxRetryError, whose .reason is the socket-level failure.
    inner = exc.args[0] if exc.args else exc
    text = str(getattr(inner, "reason", None) or inner)
    if "object at 0x" in text and ": " in text:
        text = text.split(": ", 1)[1]  # drop "<HTTPConnection object at 0x...>: "
    return redact(text, secrets)


def env_number(env: Mapping[str, str], key: str, default: float, *, exchange: str) -> float:
    """A positive number from the environment, or ``default`` when unset."""
    raw = env.get(key)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ExchangeError(f"{key} must be a number", exchange=exchange, kind="config") from None
    if value <= 0:
        raise ExchangeError(f"{key} must be positive", exchange=exchange, kind="config")
    return value
