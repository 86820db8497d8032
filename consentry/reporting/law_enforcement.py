"""Law-enforcement requests: preservation and disclosure.

A request is recorded with who asked (agency, reference), on what legal basis, for what
(one account's evidence) and by when. Recording it places the legal hold it asks for, so
nothing in scope is purged while it is open. A disclosure produces a package: the
account's sealed evidence decrypted into an archive (each item's content and metadata, a
manifest with their SHA-256, and the audit chain's proof: the links from the first item
to a signed checkpoint, verifiable with the public key alone), encrypted with AES-GCM
under a key derived (scrypt) from a passphrase handed to the agency by another channel.
Written whole under a temporary name and moved into place. Every step is a link of the
audit chain; every item opened is an opening recorded with the request's reference.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
from sqlalchemy import func, select

from consentry import audit
from consentry.audit.checkpoints import Signer, public_key_text
from consentry.audit.export import export
from consentry.errors import InvalidRequest, NotFound
from consentry.evidence import Vault
from consentry.store import Database
from consentry.store.models import AuditRecord, LawEnforcementRequest

MAGIC: Final = b"CONSENTRY-DISCLOSURE-1\n"
KINDS: Final = ("preservation", "disclosure")
MIN_PASSPHRASE: Final = 16


class RequestGone(NotFound):
    code = "request_not_found"


@dataclass(frozen=True)
class RequestView:
    id: int
    kind: str
    agency: str
    reference: str
    legal_basis: str
    account_id: str
    deadline: datetime | None
    received_at: datetime
    recorded_by: str
    hold_id: int | None
    status: str
    package_sha256: str | None


def _view(row: LawEnforcementRequest) -> RequestView:
    return RequestView(row.id, row.kind, row.agency, row.reference, row.legal_basis,
                       row.account_id, row.deadline, row.received_at, row.recorded_by,
                       row.hold_id, row.status, row.package_sha256)


class LawEnforcementDesk:
    def __init__(self, db: Database, vault: Vault, signer: Signer, *,
                 clock: Callable[[], datetime] | None = None) -> None:
        self.db = db
        self.vault = vault
        self.signer = signer
        self._clock = clock or (lambda: datetime.now(UTC))

    def record(self, *, kind: str, agency: str, reference: str, legal_basis: str,
               account_id: str, actor: str, deadline: datetime | None = None) -> RequestView:
        """Record a request and place the hold it asks for."""
        if kind not in KINDS:
            raise InvalidRequest("unknown_kind", "a request is a preservation or a "
                                 "disclosure", field="kind")
        for name, value in (("agency", agency), ("reference", reference),
                            ("legal_basis", legal_basis), ("account", account_id)):
            if not value.strip():
                raise InvalidRequest("missing_field", f"give the request's {name}",
                                     field=name)
        account_id = account_id.strip()[:200]
        hold = self.vault.place_hold(account_id=account_id, actor=actor,
                                     reason=f"{kind} request {reference} from {agency}: "
                                            f"{legal_basis}")
        with self.db.transaction() as s:
            row = LawEnforcementRequest(
                kind=kind, agency=agency.strip()[:200], reference=reference.strip()[:200],
                legal_basis=legal_basis.strip(), account_id=account_id,
                deadline=deadline, received_at=self._clock(), recorded_by=actor,
                hold_id=hold, status="open")
            s.add(row)
            s.flush()
            audit.record(s, "law_enforcement.recorded", str(row.id), actor, request_kind=kind,
                         agency=row.agency, reference=row.reference, hold=hold)
            return _view(row)

    def now(self) -> datetime:
        return self._clock()

    def request(self, request_id: int) -> RequestView:
        with self.db.transaction() as s:
            row = s.get(LawEnforcementRequest, request_id)
            if row is None:
                raise RequestGone(f"no request {request_id}")
            return _view(row)

    def requests(self) -> list[RequestView]:
        with self.db.transaction() as s:
            return [_view(r) for r in s.scalars(select(LawEnforcementRequest)
                                                .order_by(LawEnforcementRequest.id))]

    def disclose(self, request_id: int, out: Path, *, passphrase: str, actor: str) -> str:
        """Write the disclosure package of a request to ``out``; its SHA-256. The request
        is marked disclosed once the file is in place."""
        sealed, items = self._seal(request_id, passphrase=passphrase, actor=actor)
        temporary = out.with_name(f".{out.name}.partial")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(sealed)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, out)
        return self._disclosed(request_id, sealed, items, actor=actor)

    def package(self, request_id: int, *, passphrase: str, actor: str) -> tuple[bytes, str]:
        """The disclosure package of a request and its SHA-256, in memory (the console
        hands it straight to the browser); the request is marked disclosed."""
        sealed, items = self._seal(request_id, passphrase=passphrase, actor=actor)
        return sealed, self._disclosed(request_id, sealed, items, actor=actor)

    def _seal(self, request_id: int, *, passphrase: str, actor: str) -> tuple[bytes, int]:
        """The encrypted package of a disclosure request, and how many items it holds."""
        if len(passphrase) < MIN_PASSPHRASE:
            raise InvalidRequest("weak_passphrase", f"use a passphrase of at least "
                                 f"{MIN_PASSPHRASE} characters", field="passphrase")
        with self.db.transaction() as s:
            row = s.get(LawEnforcementRequest, request_id)
            if row is None:
                raise RequestGone(f"no request {request_id}")
            if row.kind != "disclosure":
                raise InvalidRequest("not_a_disclosure", f"request {request_id} asks for "
                                     "preservation, not disclosure", field="request")
            request = _view(row)
        why = f"disclosure to {request.agency} under {request.reference}"
        items = [i for i in self.vault.items(account_id=request.account_id, limit=10_000)
                 if not i.purged]
        archive = io.BytesIO()
        manifest: dict[str, object] = {"request": {"id": request.id, "agency": request.agency,
                                "reference": request.reference,
                                "legal_basis": request.legal_basis,
                                "account": request.account_id},
                    "made_at": self._clock().isoformat(), "made_by": actor}
        listed: list[dict[str, str | None]] = []
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zipped:
            for item in items:
                opened = self.vault.open(item.id, actor=actor, why=why)
                entry = {"id": item.id, "of": f"{item.subject_kind}:{item.subject}",
                         "clause": item.clause, "sealed_at": item.created_at.isoformat(),
                         "metadata": f"items/{item.id}.json",
                         "metadata_sha256": None, "content": None, "content_sha256": None}
                meta = json.dumps(opened.metadata, sort_keys=True, indent=1).encode()
                zipped.writestr(f"items/{item.id}.json", meta)
                entry["metadata_sha256"] = hashlib.sha256(meta).hexdigest()
                if opened.content is not None:
                    zipped.writestr(f"items/{item.id}.bin", opened.content)
                    entry["content"] = f"items/{item.id}.bin"
                    entry["content_sha256"] = hashlib.sha256(opened.content).hexdigest()
                listed.append(entry)
            manifest["items"] = listed
            proof = self._proof()
            zipped.writestr("audit-proof.jsonl", proof)
            manifest["audit_proof"] = {"file": "audit-proof.jsonl",
                                       "public_key": public_key_text(self.signer.public),
                                       "sha256": hashlib.sha256(proof).hexdigest()}
            zipped.writestr("manifest.json", json.dumps(manifest, indent=1))
        return seal_package(archive.getvalue(), passphrase), len(items)

    def _disclosed(self, request_id: int, sealed: bytes, items: int, *, actor: str) -> str:
        """Mark a request disclosed with its package's SHA-256, which it returns."""
        digest = hashlib.sha256(sealed).hexdigest()
        with self.db.transaction() as s:
            row = s.get(LawEnforcementRequest, request_id, with_for_update=True)
            assert row is not None
            row.status, row.package_sha256 = "disclosed", digest
            row.disclosed_at, row.disclosed_by = self._clock(), actor
            audit.record(s, "law_enforcement.disclosed", str(request_id), actor,
                         package_sha256=digest, items=items)
        return digest

    def _proof(self) -> bytes:
        """The chain from the first evidence link to a signed checkpoint, as exported (to
        a private temporary folder, removed at once)."""
        with self.db.transaction() as s:
            first = s.scalar(select(func.min(AuditRecord.seq)).where(
                AuditRecord.kind.like("evidence.%"))) or 1
        with tempfile.TemporaryDirectory(prefix="consentry-proof-") as folder:
            path = Path(folder) / "audit-proof.jsonl"
            export(self.signer, path, first=first)
            return path.read_bytes()


def seal_package(data: bytes, passphrase: str) -> bytes:
    salt, nonce = os.urandom(16), os.urandom(12)
    key = Scrypt(salt=salt, length=32, n=2**15, r=8, p=1).derive(passphrase.encode())
    return MAGIC + salt + nonce + AESGCM(key).encrypt(nonce, data, MAGIC)


def open_package(sealed: bytes, passphrase: str) -> bytes:
    """The archive inside a package (``cryptography.exceptions.InvalidTag`` when the
    passphrase is wrong or the file was changed)."""
    if not sealed.startswith(MAGIC):
        raise InvalidRequest("not_a_package", "this is not a Consentry disclosure package",
                             field="package")
    body = sealed[len(MAGIC):]
    salt, nonce, ciphertext = body[:16], body[16:28], body[28:]
    key = Scrypt(salt=salt, length=32, n=2**15, r=8, p=1).derive(passphrase.encode())
    return AESGCM(key).decrypt(nonce, ciphertext, MAGIC)
