"""Service credentials: API keys with scopes. Only a SHA-256 of each secret is stored;
the secret is shown once, when the key is created."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from sqlalchemy import select

from consentry import audit
from consentry.store import Database
from consentry.store.models import ApiKey

KEY_PREFIX = "csk_"


class Scope(StrEnum):
    CHECK = "check"  # call the gate: /v1/check/*
    ACCOUNTS_READ = "accounts:read"  # read account standing
    BANKS = "banks"  # administer hash banks: /v1/banks/*
    CASES = "cases"  # work takedown cases: list, remove, reject, reverse
    LIKENESS = "likeness"  # the platform enrols, changes and withdraws people's likeness
    METRICS = "metrics:read"  # scrape GET /metrics (Prometheus)
    ADMIN = "admin"  # everything


@dataclass(frozen=True)
class Principal:
    key_id: str
    name: str
    scopes: frozenset[str]

    def allows(self, scope: Scope) -> bool:
        return Scope.ADMIN.value in self.scopes or scope.value in self.scopes


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_api_key(db: Database, name: str, scopes: list[Scope]) -> tuple[str, str]:
    """Create a key; returns ``(key_id, secret)``. The secret is not stored."""
    if not scopes:
        raise ValueError("an API key needs at least one scope")
    audit.install()  # keys made and revoked are links of the audit chain
    key_id = f"key_{secrets.token_hex(6)}"
    secret = f"{KEY_PREFIX}{secrets.token_urlsafe(32)}"
    with db.transaction() as session:
        session.add(ApiKey(id=key_id, name=name, secret_sha256=_digest(secret),
                           scopes=sorted({s.value for s in scopes}),
                           created_at=datetime.now(UTC)))
    return key_id, secret


def revoke_api_key(db: Database, key_id: str) -> bool:
    with db.transaction() as session:
        key = session.get(ApiKey, key_id)
        if key is None or key.revoked_at is not None:
            return False
        key.revoked_at = datetime.now(UTC)
        return True


def authenticate(db: Database, secret: str) -> Principal | None:
    """The key's principal, or None for an unknown or revoked key."""
    if not secret.startswith(KEY_PREFIX):
        return None
    digest = _digest(secret)
    with db.transaction() as session:
        key = session.scalars(select(ApiKey).where(ApiKey.secret_sha256 == digest)).first()
    if key is None or key.revoked_at is not None:
        return None
    # The lookup is by digest; compare again in constant time for good measure.
    if not hmac.compare_digest(key.secret_sha256, digest):
        return None
    return Principal(key.id, key.name, frozenset(key.scopes))
