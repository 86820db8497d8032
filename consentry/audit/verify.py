"""Checking the chain: in the database (``verify``), in an exported file with the public
key alone (``verify_export``), and optionally against the source rows it describes.

A link is bad when its payload does not hash to its recorded hash, when it does not
point at the previous link's hash, when its number is not the next one (a link removed
or inserted), when the number inside its payload differs from its row's (links
reordered), or when a signed checkpoint disagrees with it. The first bad link is named.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import select

from consentry.audit.chain import GENESIS, TABLES, link_hash, row_digest
from consentry.audit.checkpoints import parse_public_key, verify_signature
from consentry.store import Database
from consentry.store.models import AuditCheckpoint, AuditHead, AuditRecord

BATCH = 20_000


@dataclass(frozen=True)
class Link:
    seq: int
    payload: str
    prev_hash: str
    hash: str


@dataclass
class Report:
    """What a verification found. ``ok`` only when nothing is bad."""

    checked: int = 0
    first: int | None = None
    last: int | None = None
    checkpoints: int = 0
    problem: str | None = None
    bad_seq: int | None = None
    changed_sources: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.problem is None and not self.changed_sources

    def fail(self, seq: int, why: str) -> Report:
        self.bad_seq, self.problem = seq, f"link {seq}: {why}"
        return self

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "checked": self.checked, "first": self.first,
                "last": self.last, "checkpoints_verified": self.checkpoints,
                "problem": self.problem, "bad_seq": self.bad_seq,
                "changed_sources": self.changed_sources}


def check_links(links: Iterable[Link], *, start: int, start_prev: str | None,
                checkpoints: dict[int, tuple[str, str]],
                public: Ed25519PublicKey | None, report: Report) -> Report:
    """Walk ``links`` in order, the first of which must be number ``start``.
    ``start_prev``: the hash it must point at (None: whatever it says, as for an export
    that starts mid-chain). ``checkpoints``: seq -> (hash, signature)."""
    prev, expected = start_prev, start
    for link in links:
        if link.seq != expected:
            what = "missing" if link.seq > expected else "out of order or duplicated"
            return report.fail(expected if link.seq > expected else link.seq,
                               f"expected link {expected} next, found {link.seq}: a link "
                               f"is {what}")
        if report.first is None:
            report.first = link.seq
        try:
            inner = json.loads(link.payload)
        except ValueError:
            return report.fail(link.seq, "its payload is not JSON")
        if inner.get("seq") != link.seq:
            return report.fail(link.seq, f"its payload says it is link {inner.get('seq')}: "
                                         "links were moved")
        if prev is not None and link.prev_hash != prev:
            return report.fail(link.seq, "it does not point at the previous link (a link "
                                         "before it was changed, removed or inserted)")
        if link_hash(link.prev_hash, link.payload) != link.hash:
            return report.fail(link.seq, "its content does not match its hash (edited)")
        signed = checkpoints.get(link.seq)
        if signed is not None:
            digest, signature = signed
            if digest != link.hash:
                return report.fail(link.seq, "a signed checkpoint records another hash here")
            if public is not None:
                if not verify_signature(public, link.seq, digest, signature):
                    return report.fail(link.seq, "the checkpoint's signature does not "
                                                 "verify with the public key")
                report.checkpoints += 1
        prev, expected = link.hash, link.seq + 1
        report.checked += 1
        report.last = link.seq
    return report


def verify(db: Database, *, first: int | None = None, last: int | None = None,
           public: Ed25519PublicKey | None = None, sources: bool = False) -> Report:
    """Check the database's chain from ``first`` to ``last`` (all by default)."""
    report = Report()
    start = max(1, first or 1)
    with db.transaction() as s:
        query = select(AuditCheckpoint.seq, AuditCheckpoint.hash, AuditCheckpoint.signature)
        if last is not None:
            query = query.where(AuditCheckpoint.seq <= last)
        checkpoints = {seq: (h, sig) for seq, h, sig in s.execute(
            query.where(AuditCheckpoint.seq >= start))}
        if start == 1:
            start_prev: str | None = GENESIS
        else:
            start_prev = s.scalar(select(AuditRecord.hash).where(AuditRecord.seq == start - 1))
            if start_prev is None:
                return report.fail(start - 1, "the link before the range is missing")
    check_links(_links(db, start, last), start=start, start_prev=start_prev,
                checkpoints=checkpoints, public=public, report=report)
    if report.problem is None:
        _check_end(db, last, checkpoints, report)
    if report.problem is None and sources:
        report.changed_sources = _changed_sources(db, start, last)
    return report


def _check_end(db: Database, last: int | None, checkpoints: dict[int, tuple[str, str]],
               report: Report) -> None:
    """Links missing at the end: the head, or a checkpoint, names a link not there."""
    end = report.last or 0
    with db.transaction() as s:
        head = s.execute(select(AuditHead.seq, AuditHead.hash)).one()
        last_hash = s.scalar(select(AuditRecord.hash).where(AuditRecord.seq == end))
    beyond = [seq for seq in checkpoints if seq > end]
    if beyond:
        report.fail(end + 1, f"a signed checkpoint covers link {max(beyond)}, which is "
                             "missing")
    elif last is None and (head.seq != end or (end and head.hash != last_hash)):
        report.fail(end + 1 if head.seq > end else end,
                    f"the chain's head is link {head.seq} but the links end at {end}: "
                    "links are missing at the end")


def _links(db: Database, first: int, last: int | None) -> Iterator[Link]:
    """The links in order of their numbers, read in batches by number ranges."""
    at = first
    while True:
        with db.transaction() as s:
            query = (select(AuditRecord.seq, AuditRecord.payload, AuditRecord.prev_hash,
                            AuditRecord.hash).where(AuditRecord.seq >= at)
                     .order_by(AuditRecord.seq).limit(BATCH))
            if last is not None:
                query = query.where(AuditRecord.seq <= last)
            rows = s.execute(query).all()
        for seq, payload, prev_hash, digest in rows:
            yield Link(seq, payload, prev_hash, digest)
        if len(rows) < BATCH:
            return
        at = rows[-1][0] + 1


def _changed_sources(db: Database, first: int, last: int | None) -> list[str]:
    """Audited rows that no longer match the digest of their latest link (edited after
    they were recorded). Rows removed since (retention) are not reported."""
    latest: dict[tuple[str, str], str] = {}
    for link in _links(db, first, last):
        body = json.loads(link.payload).get("body", {})
        table, row = body.get("table"), body.get("row")
        if table in TABLES and row:
            latest[(table, json.dumps(row))] = body.get("row_sha256", "")
    changed: list[str] = []
    with db.transaction() as s:
        for (table, row), digest in latest.items():
            model, shape = TABLES[table]
            found = s.get(model, tuple(json.loads(row)))
            if found is None:
                continue
            values = {c: getattr(found, c) for c in shape.columns}
            if row_digest(values, shape.columns) != digest:
                changed.append(f"{table} {json.loads(row)}")
    return changed


# -- exports ------------------------------------------------------------------------------


def verify_export(path: Path, public_key: str) -> Report:
    """Check an exported file (``consentry audit export``) with the public key alone:
    every link, and that the range ends at a checkpoint signed by that key."""
    public = parse_public_key(public_key)
    report = Report()
    with path.open(encoding="utf-8") as handle:
        header = json.loads(handle.readline())
        if header.get("format") != "consentry-audit-export-v1":
            return report.fail(0, "this is not a Consentry audit export")
        lines = [json.loads(line) for line in handle if line.strip()]
    links = [Link(x["seq"], x["payload"], x["prev_hash"], x["hash"]) for x in lines
             if x.get("type") == "link"]
    checkpoints = {x["seq"]: (x["hash"], x["signature"]) for x in lines
                   if x.get("type") == "checkpoint"}
    if not links:
        return report.fail(int(header.get("first") or 0), "the export holds no links")
    if links[0].seq != header.get("first"):
        return report.fail(int(header["first"]), "the export does not start where its "
                                                 "header says")
    start_prev = GENESIS if links[0].seq == 1 else links[0].prev_hash
    check_links(links, start=links[0].seq, start_prev=start_prev, checkpoints=checkpoints,
                public=public, report=report)
    if report.problem is None and links[-1].seq not in checkpoints:
        report.fail(links[-1].seq, "the export does not end at a signed checkpoint, so its "
                                   "last links are not proven")
    return report
