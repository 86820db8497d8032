"""The evidence vault: what the law says must be kept (18 USC 2258A as extended by the
REPORT Act: one year for apparent child sexual abuse material), kept so that the database
alone reveals nothing.

Each item's content and metadata are encrypted with AES-GCM under a data key of its own;
the data key is stored wrapped (AES-GCM) by a key-encryption key from configuration
(``evidence.keys``). Rotating the key-encryption key re-wraps data keys and leaves the
content as it is. Every item is kept until ``retain_until`` and then purged (ciphertext
and wrapped key dropped: without the data key nothing can be recovered), unless a legal
hold covers it. Sealing, opening, holds, dropping content and purging are links of the
audit chain, with who and why.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import and_, exists, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import InstrumentedAttribute, Session

from consentry import audit
from consentry.errors import ConfigurationError, Conflict, InvalidRequest, NotFound
from consentry.evidence.fields import (
    Column,
    SealedFields,
    key_id_of,
    seals,
    without_quotes,
)
from consentry.evidence.keys import Keyring
from consentry.store import Database
from consentry.store.models import (
    Appeal,
    CheckMedia,
    CheckRecord,
    EvidenceHold,
    EvidenceItem,
    EvidenceKey,
    MaintenanceRun,
    Notification,
    TakedownCase,
    ThreadTurn,
)

NONCE: Final = 12
CANARY: Final = b"consentry evidence key canary"
MIN_WHY_WORDS: Final = 3

# Where sealed fields live: (primary key, column, what it is bound to).
_FIELDS: Final[tuple[tuple[InstrumentedAttribute[Any], InstrumentedAttribute[Any], Column],
                     ...]] = (
    (Notification.id, Notification.recipient, Column.NOTICE_RECIPIENT),
    (Notification.id, Notification.body, Column.NOTICE_BODY),
    (Notification.id, Notification.detail, Column.NOTICE_DETAIL),
    (Appeal.id, Appeal.contact, Column.APPEAL_CONTACT),
    (Appeal.id, Appeal.reason, Column.APPEAL_REASON),
    (CheckRecord.id, CheckRecord.prompt, Column.CHECK_PROMPT),
    (ThreadTurn.id, ThreadTurn.prompt, Column.TURN_PROMPT),
)


def _held() -> Any:
    """An item a hold in force covers (the item itself, or its account)."""
    return or_(exists().where(EvidenceHold.item_id == EvidenceItem.id,
                              EvidenceHold.lifted_at.is_(None)),
               exists().where(and_(EvidenceHold.account_id.is_not(None),
                                   EvidenceHold.account_id == EvidenceItem.account_id,
                                   EvidenceHold.lifted_at.is_(None))))


class EvidenceGone(NotFound):
    code = "evidence_not_found"


class EvidencePurged(Conflict):
    code = "evidence_purged"


@dataclass(frozen=True)
class Opened:
    id: str
    content: bytes | None
    metadata: dict[str, Any]


@dataclass(frozen=True)
class ItemInfo:
    """What may be listed about an item without opening it."""

    id: str
    subject_kind: str
    subject: str
    position: int
    clause: str | None
    account_id: str | None
    created_at: datetime
    retain_until: datetime
    content_sha256: str | None
    held: bool
    has_content: bool
    purged: bool


def _seal(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    nonce = os.urandom(NONCE)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def _unseal(key: bytes, blob: bytes, aad: bytes) -> bytes:
    return AESGCM(key).decrypt(blob[:NONCE], blob[NONCE:], aad)


class Vault:
    def __init__(self, db: Database, keyring: Keyring, *,
                 retention: timedelta = timedelta(days=365),
                 clock: Callable[[], datetime] | None = None) -> None:
        self.db = db
        self.keyring = keyring
        self.retention = retention
        self._clock = clock or (lambda: datetime.now(UTC))
        self.fields = SealedFields(keyring)
        audit.install()

    # -- keys -------------------------------------------------------------------------

    def check_keys(self) -> None:
        """At start: every key that still wraps evidence must be configured, and every
        configured key the vault has used must be the same key (its canary opens); the
        active key gets its canary. Fails loudly otherwise."""
        with self.db.transaction() as s:
            known = {k.key_id: k.canary for k in s.scalars(select(EvidenceKey))}
            in_use = {k for k in s.scalars(select(EvidenceItem.key_id).where(
                EvidenceItem.key_id.is_not(None)).distinct()) if k}
            for key_id in in_use:
                self.keyring.key(key_id)  # still wraps evidence: must be configured
            self._open_canaries(known)
            if self.keyring.active not in known:
                s.add(EvidenceKey(key_id=self.keyring.active, created_at=self._clock(),
                                  canary=_seal(self.keyring.key(self.keyring.active), CANARY,
                                               self.keyring.active.encode())))

    def keys_still_open(self) -> None:
        """What a running replica re-checks cheaply (readiness): the configured keys'
        canaries still open and the active key is registered, so a replica left with old
        keys after a rotation elsewhere stops taking traffic. Raises ConfigurationError."""
        with self.db.transaction() as s:
            known = {k.key_id: k.canary for k in s.scalars(select(EvidenceKey))}
        self._open_canaries(known)
        if self.keyring.active not in known:
            raise ConfigurationError(f"the active evidence key {self.keyring.active!r} is "
                                     "not registered in the vault")

    def _open_canaries(self, known: dict[str, bytes]) -> None:
        for key_id, canary in known.items():
            if key_id not in self.keyring.keys:
                continue  # retired by a rotation
            try:
                _unseal(self.keyring.key(key_id), canary, key_id.encode())
            except InvalidTag:
                raise ConfigurationError(
                    f"the evidence key configured as {key_id!r} is not the key the vault "
                    "used under that id: sealed evidence could not be opened") from None

    def rotate(self, *, actor: str) -> dict[str, int]:
        """Re-wrap every data key under the active key-encryption key (content is not
        re-encrypted) and re-seal sealed fields under it; how many of each."""
        self.check_keys()
        active = self.keyring.active
        count = 0
        while True:
            with self.db.transaction() as s:
                rows = list(s.scalars(select(EvidenceItem).where(
                    EvidenceItem.key_id.is_not(None), EvidenceItem.key_id != active)
                    .limit(500).with_for_update()))
                for row in rows:
                    assert row.key_id is not None and row.wrapped_key is not None
                    data_key = self._unwrap(row)
                    row.wrapped_key = _seal(self.keyring.key(active), data_key,
                                            f"{row.id}|{active}".encode())
                    row.key_id = active
                count += len(rows)
                if rows:
                    audit.record(s, "evidence.rewrapped", active, actor, items=len(rows))
            if not rows:
                return {"rewrapped": count, "fields_resealed": self.reseal_fields(actor=actor)}

    def reseal_fields(self, *, actor: str) -> int:
        """Seal every sealed-field value that is in the clear or under a key other than
        the active one (after a rotation, or rows an older version wrote); how many."""
        active = self.keyring.active
        count = 0
        for pk, attr, column in _FIELDS:
            model: Any = pk.class_
            after: Any = None
            while True:
                with self.db.transaction() as s:
                    query = select(model).where(attr.is_not(None)).order_by(pk).limit(500)
                    if after is not None:
                        query = query.where(pk > after)
                    rows = list(s.scalars(query))
                    if not rows:
                        break
                    after = getattr(rows[-1], pk.key)
                    stale = [r for r in rows if seals(column, getattr(r, attr.key))
                             and key_id_of(getattr(r, attr.key)) != active]
                    for row in stale:
                        setattr(row, attr.key, self.fields.reseal(getattr(row, attr.key),
                                                                  column))
                        if model is CheckRecord:  # its digest in the chain moves with it
                            audit.record_change(s, row)
                    if stale:
                        audit.record(s, "evidence.fields_sealed", column.value, actor,
                                     values=len(stale), key=active)
                    count += len(stale)
        return count

    def drop_verdict_quotes(self) -> int:
        """Drop the words verdicts written before sealing quote from their prompts (the
        offsets stay; the prompt is sealed); how many verdicts changed."""
        count, after = 0, ""
        while True:
            with self.db.transaction() as s:
                rows = list(s.scalars(select(CheckRecord).where(CheckRecord.id > after)
                                      .order_by(CheckRecord.id).limit(500)))
                if not rows:
                    return count
                after = rows[-1].id
                for row in rows:
                    stored = without_quotes(row.verdict)
                    if stored != row.verdict:
                        row.verdict = stored
                        audit.record_change(s, row)
                        count += 1

    def seal_plaintext(self) -> dict[str, int]:
        """At start, where the keys are: seal what versions before the vault kept in the
        clear. Images each start (an indexed look); takedown requests and sealed fields
        once (a full pass), recorded in ``maintenance_runs`` when done."""
        counts = {"check_media": self.seal_plaintext_media()}
        for name, job in (("seal_takedown_requests", self.seal_plaintext_requests),
                          ("seal_fields", lambda: self.reseal_fields(actor="system")),
                          ("verdicts_without_quotes", self.drop_verdict_quotes)):
            with self.db.transaction() as s:
                if s.get(MaintenanceRun, name) is not None:
                    continue
            counts[name] = job()
            try:
                with self.db.transaction() as s:
                    s.add(MaintenanceRun(name=name, done_at=self._clock(),
                                         count=counts[name]))
            except IntegrityError:
                pass  # another replica finished the same pass first
        return counts

    # -- sealing ----------------------------------------------------------------------

    def seal(self, s: Session, *, subject_kind: str, subject: str, content: bytes | None,
             metadata: dict[str, Any], clause: str | None = None,
             account_id: str | None = None, position: int = 0,
             content_sha256: str | None = None, actor: str = "system",
             retain_until: datetime | None = None) -> str:
        """Seal one item in the caller's transaction; its id. ``retain_until``: keep it
        until then rather than for the vault's retention (what is kept for as long as its
        owner wants, such as a likeness enrolment, until ``erase``)."""
        item_id = f"ev_{secrets.token_hex(12)}"
        now = self._clock()
        data_key = AESGCM.generate_key(bit_length=256)
        active = self.keyring.active
        s.add(EvidenceItem(
            id=item_id, subject_kind=subject_kind, subject=subject, position=position,
            clause=clause, account_id=account_id, created_at=now,
            retain_until=retain_until or now + self.retention, content_sha256=content_sha256,
            key_id=active,
            wrapped_key=_seal(self.keyring.key(active), data_key, f"{item_id}|{active}".encode()),
            content=None if content is None else _seal(data_key, content,
                                                        f"{item_id}|content".encode()),
            sealed_metadata=_seal(data_key, json.dumps(metadata, default=str).encode(),
                                  f"{item_id}|metadata".encode())))
        s.flush()  # rows that refer to the item may follow in the same transaction
        audit.record(s, "evidence.sealed", item_id, actor, of=f"{subject_kind}:{subject}",
                     clause=clause, content_sha256=content_sha256)
        return item_id

    def erase(self, s: Session, item_ids: list[str], *, actor: str, reason: str) -> int:
        """Delete items outright in the caller's transaction (the right to erasure: a
        withdrawn likeness enrolment leaves nothing behind); how many."""
        if not item_ids:
            return 0
        rows = list(s.scalars(select(EvidenceItem).where(EvidenceItem.id.in_(item_ids))))
        for row in rows:
            s.delete(row)
            audit.record(s, "evidence.erased", row.id, actor, reason=reason)
        return len(rows)

    # -- reading ----------------------------------------------------------------------

    def contents(self, s: Session, item_ids: list[str]) -> dict[str, bytes]:
        """The content of items, for the service's own use (a replica loading the likeness
        index): nobody sees it, so it is not a recorded opening. Purged or empty items
        are left out."""
        if not item_ids:
            return {}
        out = {}
        for row in s.scalars(select(EvidenceItem).where(EvidenceItem.id.in_(item_ids))):
            if row.wrapped_key is not None and row.content is not None:
                out[row.id] = _unseal(self._unwrap(row), row.content,
                                      f"{row.id}|content".encode())
        return out

    def open(self, item_id: str, *, actor: str, why: str,
             session: Session | None = None) -> Opened:
        """Decrypt one item. Every opening is a link of the audit chain with who and why.
        ``session``: open it inside the caller's transaction."""
        why = " ".join((why or "").split())
        if len(why.split()) < MIN_WHY_WORDS:
            raise InvalidRequest("reason_required", "say why the evidence is opened (at "
                                 "least three words): it is recorded", field="why")
        if session is not None:
            return self._open(session, item_id, actor, why)
        with self.db.transaction() as s:
            return self._open(s, item_id, actor, why)

    def _open(self, s: Session, item_id: str, actor: str, why: str) -> Opened:
        row = self._row(s, item_id)
        if row.purged_at is not None or row.wrapped_key is None:
            raise EvidencePurged(f"evidence {item_id} was purged on "
                                 f"{row.purged_at:%Y-%m-%d}" if row.purged_at else
                                 f"evidence {item_id} holds nothing")
        data_key = self._unwrap(row)
        content = (None if row.content is None else
                   _unseal(data_key, row.content, f"{row.id}|content".encode()))
        metadata = json.loads(_unseal(data_key, row.sealed_metadata or b"",
                                      f"{row.id}|metadata".encode()))
        audit.record(s, "evidence.opened", item_id, actor, why=why)
        return Opened(item_id, content, metadata)

    def open_field(self, s: Session, value: str | None, column: Column, *, actor: str,
                   subject: str) -> str | None:
        """A sealed field opened for a person to read, recorded in the audit chain (in
        the caller's transaction) with who and what."""
        if value is None or key_id_of(value) is None:
            return value
        audit.record(s, "evidence.field_opened", subject, actor, column=column.value)
        return self.fields.open(value, column)

    def media(self, check_id: str, position: int, *, actor: str, why: str) -> bytes | None:
        """The bytes of one image of a check, as kept for its reviewers (opened from the
        vault, recorded); None when none is kept."""
        with self.db.transaction() as s:
            row = s.get(CheckMedia, (check_id, position))
            if row is None:
                return None
            legacy, sealed = row.content, row.evidence_id
        if legacy is not None:  # written before the vault; sealed at the next start
            return legacy
        return self.open(sealed, actor=actor, why=why).content if sealed else None

    def seal_plaintext_media(self) -> int:
        """Seal the image bytes that rows written before the vault still hold, and empty
        them (run at start, where the keys are); how many were sealed."""
        count = 0
        while True:
            with self.db.transaction() as s:
                rows = list(s.scalars(select(CheckMedia).where(CheckMedia.content.is_not(None))
                                      .limit(200).with_for_update()))
                for row in rows:
                    assert row.content is not None
                    row.evidence_id = self.seal(
                        s, subject_kind="check_media", subject=row.check_id,
                        content=row.content, position=row.position, content_sha256=row.sha256,
                        metadata={"check": row.check_id, "position": row.position,
                                  "sealed_after_the_fact": True})
                    row.content = None
                count += len(rows)
            if not rows:
                return count

    def seal_plaintext_requests(self) -> int:
        """Seal the takedown requests that cases recorded before the vault still hold in
        the clear (run at start, where the keys are); how many were sealed."""
        count, after = 0, 0
        while True:
            with self.db.transaction() as s:
                rows = list(s.scalars(select(TakedownCase).where(TakedownCase.id > after)
                                      .order_by(TakedownCase.id).limit(200)
                                      .with_for_update()))
                if not rows:
                    return count
                after = rows[-1].id
                for row in rows:
                    if not row.submission or "sealed" in row.submission:
                        continue
                    sealed = self.seal(s, subject_kind="takedown_request", subject=row.number,
                                       content=None, metadata=dict(row.submission),
                                       actor="system")
                    row.submission = {"sealed": sealed}
                    count += 1

    def items(self, *, subject_kind: str | None = None, subject: str | None = None,
              account_id: str | None = None, limit: int = 100) -> list[ItemInfo]:
        with self.db.transaction() as s:
            query = select(EvidenceItem).order_by(EvidenceItem.created_at, EvidenceItem.id)
            if subject_kind:
                query = query.where(EvidenceItem.subject_kind == subject_kind)
            if subject:
                query = query.where(EvidenceItem.subject == subject)
            if account_id:
                query = query.where(EvidenceItem.account_id == account_id)
            rows = list(s.scalars(query.limit(limit)))
            held = {r.id for r in rows if self._held(s, r)}
        return [ItemInfo(r.id, r.subject_kind, r.subject, r.position, r.clause, r.account_id,
                         r.created_at, r.retain_until, r.content_sha256, r.id in held,
                         r.content is not None, r.purged_at is not None) for r in rows]

    def holds(self, subject_kind: str, subject: str) -> bool:
        """Whether the vault holds (unpurged) evidence of this subject."""
        with self.db.transaction() as s:
            return s.scalar(select(exists().where(
                EvidenceItem.subject_kind == subject_kind, EvidenceItem.subject == subject,
                EvidenceItem.purged_at.is_(None)))) or False

    # -- holds, dropping and purging --------------------------------------------------

    def place_hold(self, *, reason: str, actor: str, item_id: str | None = None,
                   account_id: str | None = None) -> int:
        """Keep an item, or everything of an account, past retention until lifted."""
        if (item_id is None) == (account_id is None):
            raise InvalidRequest("hold_target", "hold one item or one account's evidence",
                                 field="item")
        reason = self._reason(reason)
        with self.db.transaction() as s:
            if item_id is not None:
                self._row(s, item_id)
            hold = EvidenceHold(item_id=item_id, account_id=account_id, reason=reason,
                                placed_by=actor, placed_at=self._clock())
            s.add(hold)
            s.flush()
            audit.record(s, "evidence.hold_placed", item_id or f"account:{account_id}",
                         actor, hold=hold.id, reason=reason)
            return hold.id

    def lift_hold(self, hold_id: int, *, reason: str, actor: str) -> None:
        reason = self._reason(reason)
        with self.db.transaction() as s:
            hold = s.get(EvidenceHold, hold_id, with_for_update=True)
            if hold is None or hold.lifted_at is not None:
                raise EvidenceGone(f"no hold {hold_id} in force")
            hold.lifted_at, hold.lifted_by, hold.lift_reason = self._clock(), actor, reason
            audit.record(s, "evidence.hold_lifted", hold.item_id or
                         f"account:{hold.account_id}", actor, hold=hold_id, reason=reason)

    def drop_content(self, subject_kind: str, subject: str, *, actor: str, reason: str) -> int:
        """Delete the content (image bytes) of a subject's items, keeping their hashes and
        metadata: what NCII evidence keeps once its case is decided. Held items keep
        theirs."""
        now = self._clock()
        with self.db.transaction() as s:
            rows = [r for r in s.scalars(select(EvidenceItem).where(
                EvidenceItem.subject_kind == subject_kind, EvidenceItem.subject == subject,
                EvidenceItem.content.is_not(None)).with_for_update()) if not self._held(s, r)]
            for row in rows:
                row.content, row.content_dropped_at = None, now
                audit.record(s, "evidence.content_dropped", row.id, actor, reason=reason)
            return len(rows)

    def with_content(self, subject_kind: str, clauses: frozenset[str], before: datetime,
                     limit: int = 500) -> list[str]:
        """Subjects of a kind whose unheld items under these clauses, sealed before
        ``before``, still hold content (what ``drop_content`` would act on)."""
        with self.db.transaction() as s:
            return list(s.scalars(select(EvidenceItem.subject).where(
                EvidenceItem.subject_kind == subject_kind, EvidenceItem.clause.in_(clauses),
                EvidenceItem.content.is_not(None), EvidenceItem.created_at <= before,
                ~_held()).distinct().limit(limit)))

    def purge_expired(self) -> int:
        """Purge every item past its retention that no hold covers; how many."""
        now = self._clock()
        purged = 0
        with self.db.transaction() as s:
            rows = list(s.scalars(select(EvidenceItem).where(
                EvidenceItem.purged_at.is_(None), EvidenceItem.retain_until <= now,
                ~_held()).limit(1000).with_for_update()))
            for row in rows:
                row.content = row.sealed_metadata = row.wrapped_key = None
                row.purged_at = now
                audit.record(s, "evidence.purged", row.id, "system",
                             retained_until=row.retain_until)
                purged += 1
        return purged

    # -- inside -----------------------------------------------------------------------

    def _unwrap(self, row: EvidenceItem) -> bytes:
        assert row.key_id is not None and row.wrapped_key is not None
        try:
            return _unseal(self.keyring.key(row.key_id), row.wrapped_key,
                           f"{row.id}|{row.key_id}".encode())
        except InvalidTag:
            raise ConfigurationError(f"evidence {row.id} cannot be unwrapped with the key "
                                     f"configured as {row.key_id!r}") from None

    @staticmethod
    def _row(s: Session, item_id: str) -> EvidenceItem:
        row = s.get(EvidenceItem, item_id)
        if row is None:
            raise EvidenceGone(f"no evidence {item_id}")
        return row

    @staticmethod
    def _held(s: Session, row: EvidenceItem) -> bool:
        conditions = [EvidenceHold.item_id == row.id]
        if row.account_id:
            conditions.append(EvidenceHold.account_id == row.account_id)
        return bool(s.scalar(select(exists().where(or_(*conditions),
                                                   EvidenceHold.lifted_at.is_(None)))))

    @staticmethod
    def _reason(reason: str) -> str:
        reason = " ".join((reason or "").split())
        if len(reason.split()) < MIN_WHY_WORDS:
            raise InvalidRequest("reason_required", "give the reason (at least three "
                                 "words): it is recorded", field="reason")
        return reason[:2000]
