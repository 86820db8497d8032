"""Exporting a range of the chain for an outside party: the links, the checkpoints among
them and the public key's id, as JSON lines. The range is extended to the next signed
checkpoint (one is signed if none exists yet), so every link in it is proven by a
signature. Written under a temporary name and moved into place: a half-written export
never replaces a good one."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from consentry.audit.checkpoints import Signer, public_key_text
from consentry.errors import InvalidRequest
from consentry.store.models import AuditCheckpoint, AuditHead, AuditRecord

FORMAT = "consentry-audit-export-v1"


def export(signer: Signer, path: Path, *, first: int = 1,
           last: int | None = None) -> dict[str, Any]:
    """Write links ``first``..``last`` (extended to a checkpoint) to ``path``; returns the
    header written."""
    db = signer.db
    with db.transaction() as s:
        head = int(s.scalar(select(AuditHead.seq)) or 0)
    if head == 0:
        raise InvalidRequest("empty_chain", "the audit chain has no links yet", field="from")
    last = head if last is None else last
    if not 1 <= first <= last <= head:
        raise InvalidRequest("bad_range", f"choose 1 <= from <= to <= {head}", field="from")
    with db.transaction() as s:
        end = s.scalar(select(func.min(AuditCheckpoint.seq)).where(AuditCheckpoint.seq >= last))
    if end is None:
        signer.checkpoint(force=True)
        with db.transaction() as s:
            end = s.scalar(select(func.min(AuditCheckpoint.seq))
                           .where(AuditCheckpoint.seq >= last))
    assert end is not None
    header = {"format": FORMAT, "first": first, "last": int(end), "key_id": signer.key_id,
              "public_key": public_key_text(signer.public)}
    temporary = path.with_name(f".{path.name}.partial")
    with temporary.open("w", encoding="utf-8") as out:
        out.write(json.dumps(header) + "\n")
        at = first
        while at <= end:
            with db.transaction() as s:
                rows = s.execute(select(AuditRecord.seq, AuditRecord.payload,
                                        AuditRecord.prev_hash, AuditRecord.hash)
                                 .where(AuditRecord.seq >= at, AuditRecord.seq <= end)
                                 .order_by(AuditRecord.seq).limit(20_000)).all()
            if not rows:
                break
            for seq, payload, prev_hash, digest in rows:
                out.write(json.dumps({"type": "link", "seq": seq, "payload": payload,
                                      "prev_hash": prev_hash, "hash": digest}) + "\n")
            at = rows[-1][0] + 1
        with db.transaction() as s:
            for row in s.scalars(select(AuditCheckpoint).where(
                    AuditCheckpoint.seq >= first, AuditCheckpoint.seq <= end)
                    .order_by(AuditCheckpoint.seq)):
                out.write(json.dumps({"type": "checkpoint", "seq": row.seq,
                                      "at": row.at.isoformat(), "hash": row.hash,
                                      "key_id": row.key_id,
                                      "signature": row.signature}) + "\n")
        out.flush()
        os.fsync(out.fileno())
    os.replace(temporary, path)
    return header
