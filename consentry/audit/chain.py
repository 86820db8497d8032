"""The tamper-evident record: every change that matters appends a link to one hash chain,
in the same transaction as the change.

What is recorded, and in which shape, is declared once (``SHAPES``): every verdict
(``checks``), every review event (claims, reveals, decisions), every bank change,
every takedown case event, every removal attempt, and every change to API keys and the
console's people. The existing append-only tables feed the chain through one session
hook, so no caller can forget it; anything without a table calls ``record``.

A link holds the canonical JSON of (seq, time, kind, subject, actor, body) and
``hash = SHA-256(previous hash || payload)``. The body carries the changed row's key, a
few readable fields and ``row_sha256``, the digest of the row's declared columns: the
chain proves the row as it was written without copying personal data into it, and
``verify --sources`` can tell when a source row was edited afterwards.

Links are added when the transaction commits, under the lock of the one-row
``audit_head``, taken last so that no transaction waits for it while holding other locks.
On PostgreSQL one statement a link locks the head, numbers and hashes the link on the
server and moves the head; on SQLite (writers serialised) the numbers are reserved and
the links written from here.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import event, insert, inspect, text, update
from sqlalchemy.orm import Session

from consentry.store.models import (
    ApiKey,
    AuditHead,
    AuditRecord,
    BankEvent,
    CaseEvent,
    CheckRecord,
    LikenessEvent,
    RemovalAttempt,
    ReviewEvent,
    User,
)

GENESIS: Final = "0" * 64
# PostgreSQL: a link appended in one statement. The head row is locked (FOR UPDATE gives
# its latest version once a concurrent writer commits), the link numbered and hashed by
# the server, and the head moved to it.
_APPEND: Final = text(
    "WITH cur AS (SELECT seq, hash FROM audit_head WHERE id = 1 FOR UPDATE), "
    "link AS (SELECT cur.seq + 1 AS seq, cur.hash AS prev, "
    "  :prefix || (cur.seq + 1)::text || :suffix AS payload FROM cur), "
    "ins AS (INSERT INTO audit_records (seq, at, kind, subject, payload, prev_hash, hash) "
    "  SELECT seq, :at, :kind, :subject, payload, prev, "
    "         encode(sha256(convert_to(prev || payload, 'UTF8')), 'hex') FROM link "
    "  RETURNING seq, hash) "
    "UPDATE audit_head SET seq = ins.seq, hash = ins.hash FROM ins WHERE audit_head.id = 1")
_PENDING: Final = "consentry.audit.pending"


@dataclass(frozen=True)
class Shape:
    """How rows of one table become links."""

    name: str  # the kind's prefix: "verdict", "review", ...
    subject: str  # the column naming what the link is about
    columns: tuple[str, ...]  # what ``row_sha256`` covers
    show: tuple[str, ...] = ()  # readable fields copied into the body
    kind_from: str | None = None  # the column whose value completes the kind
    updates: bool = False  # record changes to existing rows too


SHAPES: Final[dict[type, Shape]] = {
    CheckRecord: Shape("verdict", "id", (
        "id", "kind", "account_id", "content_id", "created_at", "decision", "category",
        "clause", "policy_version", "prompt", "prompt_sha256", "image_sha256",
        "request_sha256", "verdict"), show=("kind", "clause", "account_id"),
        kind_from="decision"),
    ReviewEvent: Shape("review", "item_id", (
        "id", "item_id", "kind", "actor_id", "actor", "at", "details"),
        kind_from="kind"),
    BankEvent: Shape("bank", "bank_id", (
        "id", "bank_id", "entry_id", "action", "actor", "at", "details"),
        show=("entry_id",), kind_from="action"),
    CaseEvent: Shape("case", "case_id", (
        "id", "case_id", "kind", "at", "actor", "automated", "details"), kind_from="kind"),
    RemovalAttempt: Shape("removal", "job_id", (
        "id", "job_id", "at", "outcome", "status_code", "detail", "duration_ms"),
        kind_from="outcome"),
    LikenessEvent: Shape("likeness", "enrolment_id", (
        "id", "enrolment_id", "kind", "actor", "at", "details"), kind_from="kind"),
    ApiKey: Shape("api_key", "id", ("id", "name", "scopes", "created_at", "revoked_at"),
                  show=("name", "scopes", "revoked_at"), updates=True),
    User: Shape("person", "id", ("id", "username", "display_name", "roles", "created_at",
                                 "password_changed_at", "disabled_at"),
                show=("username", "roles", "disabled_at"), updates=True),
}
TABLES: Final = {model.__tablename__: (model, shape)  # type: ignore[attr-defined]
                 for model, shape in SHAPES.items()}


def canonical(value: Any) -> str:
    """One JSON spelling for a value: sorted keys, no spaces, times in UTC ISO form."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      default=_scalar)


def _scalar(value: Any) -> Any:
    """What JSON has no spelling for: times in UTC ISO form, anything else as text."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat() if value.tzinfo else value.isoformat()
    return str(value)


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return _scalar(value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def link_hash(prev_hash: str, payload: str) -> str:
    return hashlib.sha256(prev_hash.encode() + payload.encode()).hexdigest()


def row_digest(values: Mapping[str, Any], columns: Sequence[str]) -> str:
    return hashlib.sha256(canonical({c: values.get(c) for c in columns}).encode()).hexdigest()


@dataclass(frozen=True)
class Entry:
    """A link waiting for its transaction to commit."""

    kind: str
    subject: str
    actor: str
    body: dict[str, Any]


def record(session: Session, kind: str, subject: str, actor: str,
           **body: Any) -> None:
    """Add a link for something no audited table holds (an evidence access, a
    configuration change), in ``session``'s transaction."""
    install()
    _pending(session).append(Entry(kind, str(subject)[:200], actor, body))


def record_change(session: Session, instance: Any) -> None:
    """Add a link for a change to an audited row that its table's shape does not record
    by itself (a verdict's prompt sealed after the fact): the row's new digest becomes
    its latest, so ``verify`` holds the row to it."""
    install()
    _pending(session).append(entry_for(instance, SHAPES[type(instance)], "update"))


def _pending(session: Session) -> list[Entry]:
    pending: list[Entry] = session.info.setdefault(_PENDING, [])
    return pending


def entry_for(instance: Any, shape: Shape, op: str) -> Entry:
    values = {c: getattr(instance, c, None) for c in shape.columns}
    kind = shape.name
    if shape.kind_from:
        kind = f"{kind}.{values.get(shape.kind_from) or getattr(instance, shape.kind_from)}"
    elif op != "insert":
        kind = f"{kind}.changed"
    else:
        kind = f"{kind}.created"
    pk = [getattr(instance, c.key) for c in inspect(type(instance)).primary_key]
    body = {"table": instance.__tablename__, "row": pk, "op": op,
            "row_sha256": row_digest(values, shape.columns)}
    body.update({f: values.get(f) for f in shape.show})
    actor = getattr(instance, "actor", None) or ("gate" if shape.name == "verdict" else
                                                "system")
    return Entry(kind, str(values.get(shape.subject))[:200], str(actor), _plain(body))


def _collect(session: Session, _context: Any) -> None:
    """After each flush: the audited rows it wrote, as links to add at commit."""
    pending = None
    for instance in session.new:
        shape = SHAPES.get(type(instance))
        if shape is not None:
            pending = pending if pending is not None else _pending(session)
            pending.append(entry_for(instance, shape, "insert"))
    for instance in session.dirty:
        shape = SHAPES.get(type(instance))
        if shape is None or not shape.updates:
            continue
        state = inspect(instance)
        if any(state.attrs[c].history.has_changes() for c in shape.columns
               if c in state.attrs):
            pending = pending if pending is not None else _pending(session)
            pending.append(entry_for(instance, shape, "update"))


def _append(session: Session) -> None:
    """Before commit: add the transaction's links to the chain, one after another."""
    session.flush()  # rows added since the last flush are collected by it
    if not session.info.get(_PENDING):
        return
    entries: list[Entry] = session.info.pop(_PENDING)
    connection = session.connection()
    now = datetime.now(UTC)
    if connection.dialect.name == "postgresql" and len(entries) == 1:
        # One round trip: the server locks the head, numbers the link, hashes it (sha256
        # of the previous hash and the payload, as ``link_hash``) and moves the head. The
        # payload's only server-made part is its number (``payload_around``).
        for item in entries:
            prefix, suffix = payload_around(now, item)
            connection.execute(_APPEND, {"at": now, "kind": item.kind[:60],
                                         "subject": item.subject, "prefix": prefix,
                                         "suffix": suffix})
        return
    # Several links (a batch of checks), or SQLite: reserve the numbers (the UPDATE locks
    # the head until commit; on PostgreSQL it waits for a concurrent writer and then
    # sees its head), then write the links in one statement: three round trips, not one
    # a link.
    head = connection.execute(update(AuditHead).where(AuditHead.id == 1)
                              .values(seq=AuditHead.seq + len(entries))
                              .returning(AuditHead.seq, AuditHead.hash)).one()
    seq, prev = int(head.seq) - len(entries), str(head.hash)
    rows = []
    for item in entries:
        seq += 1
        payload = canonical({"seq": seq, "at": now, "kind": item.kind,
                             "subject": item.subject, "actor": item.actor,
                             "body": item.body})
        digest = link_hash(prev, payload)
        rows.append({"seq": seq, "at": now, "kind": item.kind[:60],
                     "subject": item.subject, "payload": payload, "prev_hash": prev,
                     "hash": digest})
        prev = digest
    connection.execute(insert(AuditRecord), rows)
    connection.execute(update(AuditHead).where(AuditHead.id == 1).values(hash=prev))


def payload_around(at: datetime, item: Entry) -> tuple[str, str]:
    """The canonical payload of a link split around its number: ``prefix + str(seq) +
    suffix == canonical({seq, at, kind, subject, actor, body})`` (keys sort as actor, at,
    body, kind, seq, subject)."""
    head = canonical({"actor": item.actor, "at": at, "body": item.body, "kind": item.kind})
    return head[:-1] + ',"seq":', ',"subject":' + canonical(item.subject) + "}"


def _forget(session: Session, *_: Any) -> None:
    session.info.pop(_PENDING, None)


_installed = threading.Lock()
_done = False


def install() -> None:
    """Hook the chain into every session (once per process; idempotent). Called by the
    services that write audited tables, so whoever opens the store through them is
    recorded."""
    global _done
    if _done:
        return
    with _installed:
        if _done:
            return
        event.listen(Session, "after_flush", _collect)
        event.listen(Session, "before_commit", _append)
        event.listen(Session, "after_rollback", _forget)
        _done = True
