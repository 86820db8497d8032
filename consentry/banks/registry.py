"""Bank administration: banks, their entries and the append-only event log.

Every change is one transaction that writes the change and its event together, so the
event log (which the matcher replays) can never disagree with the entries.
"""

from __future__ import annotations

import builtins
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from consentry import audit
from consentry.banks.exchanges import Exchange, HashUpdate, UpdateBatch
from consentry.errors import Conflict, ConsentryError, NotFound
from consentry.store import Database
from consentry.store.models import Bank, BankEntry, BankEntryHash, BankEvent, ExchangeCheckpoint

NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
_HEX = re.compile(r"^[0-9a-f]+$")


class BankKind(StrEnum):
    BLOCK = "block"
    ALLOW = "allow"


class BankCategory(StrEnum):
    """What a bank holds; the category decides the clause a match is judged under."""

    CSAM = "csam"  # NCMEC and other known child sexual abuse lists -> KM-1
    NCII = "ncii"  # StopNCII, victim takedown requests -> II-3
    OWN_REFUSALS = "own_refusals"  # images this gate refused -> the clause they were refused under
    BENIGN = "benign"  # allow banks: known images that collide with banked ones
    OTHER = "other"


CATEGORY_CLAUSE: Mapping[BankCategory, str] = {
    BankCategory.CSAM: "KM-1",
    BankCategory.NCII: "II-3",
    BankCategory.OWN_REFUSALS: "II-3",
    BankCategory.BENIGN: "OK-1",
    BankCategory.OTHER: "II-3",
}


class BankError(ConsentryError, ValueError):
    """A bank operation that cannot be done as asked; nothing was changed."""

    code = "invalid_bank_request"


class BankNotFound(BankError, NotFound):
    code = "not_found"


class BankExists(BankError, Conflict):
    code = "bank_exists"


class DuplicateEntry(BankError, Conflict):
    """The bank already holds this image (or this external id): ``entry_id`` names it."""

    code = "duplicate_entry"

    def __init__(self, message: str, entry_id: int) -> None:
        super().__init__(message, details={"entry": entry_id})
        self.entry_id = entry_id


@dataclass(frozen=True)
class EntryHashes:
    """The hashes that stand for one banked image or one imported hash."""

    md5: str | None = None
    sha256: str | None = None
    pdq: str | None = None  # primary PDQ, 64 hex characters
    pdq_quality: int | None = None
    # (variant, hex) pairs to index; the primary hash is indexed as variant "full".
    pdq_variants: tuple[tuple[str, str], ...] = ()

    def validated(self) -> EntryHashes:
        for name, value, length in (("md5", self.md5, 32), ("sha256", self.sha256, 64),
                                    ("pdq", self.pdq, 64)):
            if value is not None and (len(value) != length or not _HEX.match(value)):
                raise BankError(f"{name} must be {length} lowercase hex characters, got "
                                f"{value[:80]!r}")
        for variant, value in self.pdq_variants:
            if len(value) != 64 or not _HEX.match(value):
                raise BankError(f"PDQ variant {variant!r} must be 64 lowercase hex characters")
        if self.md5 is None and self.pdq is None:
            raise BankError("an entry needs at least an MD5 or a PDQ hash")
        return self

    def indexed(self) -> list[tuple[str, str]]:
        rows = list(self.pdq_variants)
        if self.pdq is not None and ("full", self.pdq) not in rows:
            rows.insert(0, ("full", self.pdq))
        return rows


@dataclass(frozen=True)
class BankInfo:
    id: int
    name: str
    kind: BankKind
    category: BankCategory
    clause: str
    description: str
    created_at: datetime
    enabled: bool
    active_entries: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "kind": self.kind.value,
                "category": self.category.value, "clause": self.clause,
                "description": self.description, "created_at": self.created_at.isoformat(),
                "enabled": self.enabled, "active_entries": self.active_entries}


@dataclass(frozen=True)
class EntryInfo:
    id: int
    bank: str
    source: str
    external_id: str | None
    md5: str | None
    pdq: str | None
    pdq_quality: int | None
    clause: str
    added_at: datetime
    status: str  # active | disabled | removed
    takedown_case: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "bank": self.bank, "source": self.source,
                "external_id": self.external_id, "md5": self.md5, "pdq": self.pdq,
                "quality": self.pdq_quality, "clause": self.clause,
                "added_at": self.added_at.isoformat(), "status": self.status,
                "takedown_case": self.takedown_case, "details": dict(self.details)}


def _entry_status(entry: BankEntry) -> str:
    if entry.removed_at is not None:
        return "removed"
    return "disabled" if entry.disabled_at is not None else "active"


def _bank_info(bank: Bank, active: int = 0) -> BankInfo:
    return BankInfo(bank.id, bank.name, BankKind(bank.kind), BankCategory(bank.category),
                    bank.clause, bank.description, bank.created_at, bank.disabled_at is None,
                    active)


def _entry_info(entry: BankEntry, bank: Bank) -> EntryInfo:
    return EntryInfo(entry.id, bank.name, entry.source, entry.external_id, entry.md5, entry.pdq,
                     entry.pdq_quality, entry.clause or bank.clause, entry.added_at,
                     _entry_status(entry), entry.takedown_case, entry.details or {})


class BankRegistry:
    """Creates banks and changes their entries, one transaction and one event per change."""

    def __init__(self, db: Database, *, clock: Callable[[], datetime] | None = None) -> None:
        self.db = db
        self._clock = clock or (lambda: datetime.now(UTC))
        audit.install()  # every bank change is a link of the audit chain

    # -- banks ------------------------------------------------------------------------

    def create(self, name: str, kind: BankKind | str, category: BankCategory | str,
               *, description: str = "", actor: str = "system") -> BankInfo:
        if not NAME_PATTERN.match(name):
            raise BankError(f"bank name {name!r} must be 1-64 characters of a-z, 0-9, '_', "
                            "'-' or '.', starting with a letter or digit")
        try:
            kind, category = BankKind(kind), BankCategory(category)
        except ValueError as exc:
            raise BankError(str(exc)) from exc
        if (kind is BankKind.ALLOW) != (category is BankCategory.BENIGN):
            raise BankError("allow banks hold benign images (category 'benign'); block banks "
                            "hold abuse (csam, ncii, own_refusals, other)")
        now = self._clock()
        try:
            with self.db.transaction() as s:
                if s.scalars(select(Bank.id).where(Bank.name == name)).first() is not None:
                    raise BankExists(f"bank {name!r} already exists")
                bank = Bank(name=name, kind=kind.value, category=category.value,
                            clause=CATEGORY_CLAUSE[category], description=description,
                            created_at=now)
                s.add(bank)
                s.flush()
                s.add(BankEvent(bank_id=bank.id, action="bank_created", actor=actor, at=now,
                                details={"kind": kind.value, "category": category.value}))
                return _bank_info(bank)
        except IntegrityError as exc:  # a concurrent create of the same name won
            raise BankExists(f"bank {name!r} already exists") from exc

    def get(self, name: str) -> BankInfo:
        with self.db.transaction() as s:
            bank = self._bank(s, name)
            return _bank_info(bank, self._active_count(s, bank.id))

    def list(self) -> list[BankInfo]:
        with self.db.transaction() as s:
            counts = dict(s.execute(
                select(BankEntry.bank_id, func.count()).where(
                    BankEntry.removed_at.is_(None), BankEntry.disabled_at.is_(None))
                .group_by(BankEntry.bank_id)).all())
            return [_bank_info(b, counts.get(b.id, 0))
                    for b in s.scalars(select(Bank).order_by(Bank.name))]

    def set_enabled(self, name: str, enabled: bool, *, actor: str = "system") -> BankInfo:
        now = self._clock()
        with self.db.transaction() as s:
            bank = self._bank(s, name)
            if (bank.disabled_at is None) != enabled:
                bank.disabled_at = None if enabled else now
                s.add(BankEvent(bank_id=bank.id, action="bank_enabled" if enabled
                                else "bank_disabled", actor=actor, at=now))
            return _bank_info(bank, self._active_count(s, bank.id))

    # -- entries ----------------------------------------------------------------------

    def add_entry(
        self,
        bank_name: str,
        hashes: EntryHashes,
        *,
        source: str = "manual",
        external_id: str | None = None,
        clause: str | None = None,
        takedown_case: str | None = None,
        details: Mapping[str, Any] | None = None,
        actor: str = "system",
    ) -> EntryInfo:
        """Bank one image or hash. A second active entry with the same MD5 or primary PDQ
        in the same bank is refused (``DuplicateEntry`` names the existing one)."""
        hashes = hashes.validated()
        try:
            with self.db.transaction() as s:
                bank = self._bank(s, bank_name)
                entry = self._add(s, bank, hashes, source=source, external_id=external_id,
                                  clause=clause, takedown_case=takedown_case,
                                  details=details or {}, actor=actor, now=self._clock())
                return _entry_info(entry, bank)
        except IntegrityError:
            if external_id is None:
                raise
            # A concurrent add with the same external id won: name its entry.
            with self.db.transaction() as s:
                named = s.scalar(select(BankEntry.id).join(Bank).where(
                    Bank.name == bank_name, BankEntry.source == source,
                    BankEntry.external_id == external_id))
            if named is None:
                raise
            raise DuplicateEntry(f"bank {bank_name!r} already has an entry from {source!r} "
                                 f"with external id {external_id!r}: entry {named}",
                                 named) from None

    def entry(self, entry_id: int) -> EntryInfo:
        with self.db.transaction() as s:
            entry = self._entry(s, entry_id)
            return _entry_info(entry, s.get_one(Bank, entry.bank_id))

    def history(self, entry_id: int, *, limit: int = 50) -> builtins.list[dict[str, Any]]:
        """An entry's events, newest first: who changed it, when, and why."""
        with self.db.transaction() as s:
            rows = s.scalars(select(BankEvent).where(BankEvent.entry_id == entry_id)
                             .order_by(BankEvent.id.desc()).limit(limit))
            return [{"action": e.action, "actor": e.actor, "at": e.at, "details": e.details}
                    for e in rows]

    def entries(self, bank_name: str, *, limit: int = 100, after_id: int = 0,
                include_removed: bool = True) -> builtins.list[EntryInfo]:
        with self.db.transaction() as s:
            bank = self._bank(s, bank_name)
            query = select(BankEntry).where(BankEntry.bank_id == bank.id,
                                            BankEntry.id > after_id)
            if not include_removed:
                query = query.where(BankEntry.removed_at.is_(None))
            rows = s.scalars(query.order_by(BankEntry.id).limit(limit))
            return [_entry_info(e, bank) for e in rows]

    def set_entry_enabled(self, entry_id: int, enabled: bool, *,
                          actor: str = "system", reason: str = "") -> EntryInfo:
        now = self._clock()
        with self.db.transaction() as s:
            entry = self._entry(s, entry_id)
            if entry.removed_at is not None:
                raise BankError(f"entry {entry_id} was removed and cannot be changed")
            if (entry.disabled_at is None) != enabled:
                entry.disabled_at = None if enabled else now
                s.add(BankEvent(bank_id=entry.bank_id, entry_id=entry.id, at=now, actor=actor,
                                action="entry_enabled" if enabled else "entry_disabled",
                                details={"reason": reason} if reason else {}))
            return _entry_info(entry, s.get_one(Bank, entry.bank_id))

    def remove_entry(self, entry_id: int, *, actor: str = "system", reason: str = "") -> EntryInfo:
        now = self._clock()
        with self.db.transaction() as s:
            entry = self._entry(s, entry_id)
            self._remove(s, entry, actor=actor, now=now, reason=reason)
            return _entry_info(entry, s.get_one(Bank, entry.bank_id))

    # -- shared steps -----------------------------------------------------------------

    def _add(self, s: Session, bank: Bank, hashes: EntryHashes, *, source: str,
             external_id: str | None, clause: str | None, takedown_case: str | None,
             details: Mapping[str, Any], actor: str, now: datetime) -> BankEntry:
        if external_id is not None:
            # An exchange's id names one entry per bank and source, removed or not.
            named = s.scalar(select(BankEntry.id).where(
                BankEntry.bank_id == bank.id, BankEntry.source == source,
                BankEntry.external_id == external_id))
            if named is not None:
                raise DuplicateEntry(f"bank {bank.name!r} already has an entry from {source!r} "
                                     f"with external id {external_id!r}: entry {named}", named)
        same = [c for c in (BankEntry.md5 == hashes.md5 if hashes.md5 else None,
                            BankEntry.pdq == hashes.pdq if hashes.pdq else None) if c is not None]
        existing = s.scalars(select(BankEntry).where(
            BankEntry.bank_id == bank.id, BankEntry.removed_at.is_(None), or_(*same))).first()
        if existing is not None:
            raise DuplicateEntry(f"bank {bank.name!r} already holds this image as entry "
                                 f"{existing.id}", existing.id)
        entry = BankEntry(bank_id=bank.id, source=source, external_id=external_id,
                          md5=hashes.md5, sha256=hashes.sha256, pdq=hashes.pdq,
                          pdq_quality=hashes.pdq_quality, clause=clause, details=dict(details),
                          takedown_case=takedown_case, added_at=now)
        s.add(entry)
        s.flush()
        s.add_all(BankEntryHash(entry_id=entry.id, pdq=value, variant=variant)
                  for variant, value in hashes.indexed())
        s.add(BankEvent(bank_id=bank.id, entry_id=entry.id, action="entry_added", actor=actor,
                        at=now, details={"source": source}))
        return entry

    def _remove(self, s: Session, entry: BankEntry, *, actor: str, now: datetime,
                reason: str) -> None:
        if entry.removed_at is not None:
            return
        entry.removed_at = now
        s.add(BankEvent(bank_id=entry.bank_id, entry_id=entry.id, action="entry_removed",
                        actor=actor, at=now, details={"reason": reason} if reason else {}))

    @staticmethod
    def _bank(s: Session, name: str) -> Bank:
        bank = s.scalars(select(Bank).where(Bank.name == name)).first()
        if bank is None:
            raise BankNotFound(f"no bank named {name!r}")
        return bank

    @staticmethod
    def _entry(s: Session, entry_id: int) -> BankEntry:
        entry = s.get(BankEntry, entry_id)
        if entry is None:
            raise BankNotFound(f"no bank entry {entry_id}")
        return entry

    @staticmethod
    def _active_count(s: Session, bank_id: int) -> int:
        return s.scalar(select(func.count()).select_from(BankEntry).where(
            BankEntry.bank_id == bank_id, BankEntry.removed_at.is_(None),
            BankEntry.disabled_at.is_(None))) or 0



@dataclass
class ImportCounts:
    added: int = 0
    merged: int = 0  # a second signal (MD5 beside PDQ) for a record already held
    restored: int = 0  # re-activated upstream after a withdrawal
    removed: int = 0
    duplicates: int = 0  # already banked here from another source
    unknown_removals: int = 0  # a remove for a record this bank never held
    skipped: int = 0  # records the exchange could not use (see its report)
    batches: int = 0

    def add(self, other: ImportCounts) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def to_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}

    def set_to(self, other: ImportCounts) -> None:
        """Take ``other``'s counts: a running total kept for the report of a failure."""
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(other, name))


class ExchangeImport:
    """Applies an exchange's batches to a bank: each batch and its checkpoint in one
    transaction, so an interrupted import resumes after the last whole batch."""

    def __init__(self, registry: BankRegistry) -> None:
        self.registry = registry

    def checkpoint(self, bank_name: str, exchange: str) -> str | None:
        with self.registry.db.transaction() as s:
            bank = BankRegistry._bank(s, bank_name)
            row = s.get(ExchangeCheckpoint, (bank.id, exchange))
            return row.checkpoint if row else None

    def run(self, bank_name: str, exchange: Exchange, *, actor: str = "system",
            progress: Callable[[ImportCounts], None] | None = None) -> ImportCounts:
        """Fetch from the last stored checkpoint to the end. An ``ExchangeError``
        mid-way leaves every earlier batch applied and the checkpoint after it."""
        self.registry.get(bank_name)  # fail fast on an unknown bank
        total = ImportCounts()
        for batch in exchange.fetch(self.checkpoint(bank_name, exchange.name)):
            total.add(self.apply(bank_name, exchange.name, batch, actor=actor))
            if progress is not None:
                progress(total)
        return total

    def apply(self, bank_name: str, exchange: str, batch: UpdateBatch, *,
              actor: str = "system") -> ImportCounts:
        counts = ImportCounts(batches=1, skipped=len(batch.skipped))
        now = self.registry._clock()
        with self.registry.db.transaction() as s:
            bank = BankRegistry._bank(s, bank_name)
            for update in batch.updates:
                self._apply_one(s, bank, exchange, update, counts, actor, now)
            row = s.get(ExchangeCheckpoint, (bank.id, exchange))
            if row is None:
                s.add(ExchangeCheckpoint(bank_id=bank.id, exchange=exchange,
                                         checkpoint=batch.checkpoint, updated_at=now))
            else:
                row.checkpoint, row.updated_at = batch.checkpoint, now
            s.add(BankEvent(bank_id=bank.id, action="import_batch", actor=actor, at=now,
                            details={"exchange": exchange, **counts.to_dict()}))
        return counts

    def _apply_one(self, s: Session, bank: Bank, exchange: str, update: HashUpdate,
                   counts: ImportCounts, actor: str, now: datetime) -> None:
        entry = s.scalars(select(BankEntry).where(
            BankEntry.bank_id == bank.id, BankEntry.source == exchange,
            BankEntry.external_id == update.external_id)).first()
        if update.op == "remove":
            if entry is None or entry.removed_at is not None:
                counts.unknown_removals += entry is None
                return
            self.registry._remove(s, entry, actor=actor, now=now,
                                  reason=f"{exchange}: withdrawn upstream")
            counts.removed += 1
            return
        details = {"exchange": exchange, **dict(update.metadata)}
        if entry is None:
            hashes = EntryHashes(md5=update.value if update.signal == "md5" else None,
                                 pdq=update.value if update.signal == "pdq" else None)
            try:
                self.registry._add(s, bank, hashes, source=exchange,
                                   external_id=update.external_id, clause=None,
                                   takedown_case=None, details=details, actor=actor, now=now)
            except DuplicateEntry:
                counts.duplicates += 1
                return
            counts.added += 1
            return
        if entry.removed_at is not None:
            entry.removed_at = None
            s.add(BankEvent(bank_id=bank.id, entry_id=entry.id, action="entry_restored",
                            actor=actor, at=now, details={"exchange": exchange}))
            counts.restored += 1
        if update.signal == "md5" and entry.md5 is None:
            entry.md5 = update.value
            counts.merged += 1
        elif update.signal == "pdq" and entry.pdq is None:
            entry.pdq = update.value
            s.add(BankEntryHash(entry_id=entry.id, pdq=update.value, variant="full"))
            s.add(BankEvent(bank_id=bank.id, entry_id=entry.id, action="entry_updated",
                            actor=actor, at=now, details={"exchange": exchange}))
            counts.merged += 1
