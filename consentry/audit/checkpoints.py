"""Signed checkpoints: an Ed25519 signature over the chain's hash at a sequence number.
Anyone holding the public key can check that nothing up to that point was changed,
without access to the database or the service's secrets.

The signing key comes from configuration: it is derived from the service's secret key
(``CONSENTRY_SECRET_KEY``) for the purpose "audit-signing", so every replica signs with
the same key and nothing new has to be kept. ``consentry audit public-key`` prints the
public half to give to an auditor.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sqlalchemy import func, select

from consentry.config import Settings
from consentry.secret_key import derive_key, service_secret_key
from consentry.store import Database
from consentry.store.models import AuditCheckpoint, AuditHead

PURPOSE: Final = "audit-signing"
EVERY_RECORDS: Final = 1000
EVERY: Final = timedelta(minutes=10)


def message(seq: int, digest: str) -> bytes:
    """What a checkpoint signs."""
    return f"consentry-audit-v1|{seq}|{digest}".encode()


def key_id(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def public_key_text(public: Ed25519PublicKey) -> str:
    """The public key as auditors receive it: base64 of the 32 raw bytes."""
    return base64.b64encode(public.public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()


def parse_public_key(text: str) -> Ed25519PublicKey:
    try:
        raw = base64.b64decode(text.strip(), validate=True)
        return Ed25519PublicKey.from_public_bytes(raw)
    except ValueError as exc:
        raise ValueError("the public key is not 32 bytes of base64 (as `consentry audit "
                         "public-key` prints it)") from exc


def verify_signature(public: Ed25519PublicKey, seq: int, digest: str, signature: str) -> bool:
    try:
        public.verify(bytes.fromhex(signature), message(seq, digest))
    except (InvalidSignature, ValueError):
        return False
    return True


@dataclass(frozen=True)
class Checkpoint:
    seq: int
    at: datetime
    hash: str
    key_id: str
    signature: str


class Signer:
    """Signs checkpoints of one database's chain."""

    def __init__(self, db: Database, signing_key: bytes, *,
                 clock: Callable[[], datetime] | None = None,
                 every_records: int = EVERY_RECORDS, every: timedelta = EVERY) -> None:
        if len(signing_key) != 32:
            raise ValueError("an audit signing key is 32 bytes")
        self.db = db
        self._key = Ed25519PrivateKey.from_private_bytes(signing_key)
        self.public = self._key.public_key()
        self.key_id = key_id(self.public)
        self._clock = clock or (lambda: datetime.now(UTC))
        self.every_records = every_records
        self.every = every

    def checkpoint(self, *, force: bool = False) -> Checkpoint | None:
        """Sign the chain's head if ``every_records`` links or ``every`` time have passed
        since the last checkpoint (or if ``force``); None when nothing is due."""
        now = self._clock()
        with self.db.transaction() as s:
            head = s.execute(select(AuditHead.seq, AuditHead.hash)
                             .where(AuditHead.id == 1)).one()
            last_seq = s.scalar(select(func.max(AuditCheckpoint.seq))) or 0
            if head.seq == 0 or head.seq == last_seq:
                return None
            last = s.get(AuditCheckpoint, last_seq) if last_seq else None
            due = (force or head.seq - last_seq >= self.every_records
                   or last is None or now - last.at >= self.every)
            if not due:
                return None
            signature = self._key.sign(message(head.seq, head.hash)).hex()
            row = AuditCheckpoint(seq=head.seq, at=now, hash=head.hash, key_id=self.key_id,
                                  signature=signature)
            s.add(row)
            return Checkpoint(row.seq, now, row.hash, row.key_id, signature)


def signer_for(db: Database, settings: Settings) -> Signer:
    """The signer configuration gives: its key derived from the service's secret key."""
    return Signer(db, derive_key(service_secret_key(settings), PURPOSE))
