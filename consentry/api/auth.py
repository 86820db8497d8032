"""Authentication for the HTTP API: ``Authorization: Bearer <key>`` or ``X-API-Key``."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Final

from fastapi import Depends, HTTPException, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from consentry.access import Principal, Scope, authenticate
from consentry.store import Database

_bearer = HTTPBearer(auto_error=False, description="API key as a bearer token")
_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="API key")

# Keys are looked up at most this often; a revoked key stops working within this time.
_CACHE_TTL_S = 10.0


class _Miss:
    """Not in the cache: the database must be asked."""


MISS: Final = _Miss()


class KeyCache:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._entries: dict[str, tuple[float, Principal | None]] = {}
        self._lock = threading.Lock()

    def cached(self, secret: str) -> Principal | _Miss | None:
        """The key's holder if looked up within the TTL (``MISS`` otherwise): no I/O."""
        digest = hashlib.sha256(secret.encode()).hexdigest()
        with self._lock:
            hit = self._entries.get(digest)
        if hit is not None and time.monotonic() - hit[0] < _CACHE_TTL_S:
            return hit[1]
        return MISS

    def principal(self, secret: str) -> Principal | None:
        if not isinstance(found := self.cached(secret), _Miss):
            return found
        digest = hashlib.sha256(secret.encode()).hexdigest()
        now = time.monotonic()
        found = authenticate(self._db, secret)
        with self._lock:
            if len(self._entries) > 10_000:
                self._entries.clear()
            self._entries[digest] = (now, found)
        return found


def require(scope: Scope) -> Callable[..., Awaitable[Principal]]:
    """A dependency that admits only keys holding ``scope`` (or admin)."""

    # async: a cached key is answered on the event loop, without a thread hop; only a
    # lookup in the database goes to the thread pool.
    async def dependency(
        request: Request,
        bearer: HTTPAuthorizationCredentials | None = Depends(_bearer),  # noqa: B008
        header: str | None = Depends(_header),
    ) -> Principal:
        secret = bearer.credentials if bearer else header
        if not secret:
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, detail={
                "code": "missing_api_key",
                "message": "send an API key as 'Authorization: Bearer <key>' or 'X-API-Key'"},
                headers={"WWW-Authenticate": "Bearer"})
        keys: KeyCache = request.app.state.keys
        principal = keys.cached(secret)
        if isinstance(principal, _Miss):
            principal = await run_in_threadpool(keys.principal, secret)
        if principal is None:
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, detail={
                "code": "invalid_api_key", "message": "the API key is unknown or revoked"},
                headers={"WWW-Authenticate": "Bearer"})
        if not principal.allows(scope):
            raise HTTPException(status.HTTP_403_FORBIDDEN, detail={
                "code": "insufficient_scope",
                "message": f"this API key lacks the '{scope.value}' scope"})
        return principal

    return dependency
