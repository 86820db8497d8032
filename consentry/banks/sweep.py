"""Sweep: the content already on the platform that a bank entry matches, so that banking
a hash also takes down the copies that were uploaded before it was banked."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from sqlalchemy import select

from consentry.banks.content import ContentIndex, ContentRecord
from consentry.banks.pdq_index import from_hex
from consentry.banks.registry import BankNotFound, BankRegistry, EntryInfo
from consentry.signals.hashing import pdq_dihedral_estimates
from consentry.store.models import BankEntryHash

_PAGE = 1000


def entry_pdq_hashes(registry: BankRegistry, entry_id: int) -> list[str]:
    """Every PDQ hash stored for an entry (Meta's ``full`` hash and the crop variants)."""
    with registry.db.transaction() as s:
        return list(s.scalars(select(BankEntryHash.pdq)
                              .where(BankEntryHash.entry_id == entry_id)
                              .order_by(BankEntryHash.id)))


def sweep_entry(registry: BankRegistry, content: ContentIndex, entry: EntryInfo,
                *, include_removed: bool = False) -> list[ContentRecord]:
    """Registered content that is the same image as ``entry``: the same MD5, or a PDQ
    hash within the match distance of any hash stored for the entry or of what its
    rotations and mirrors would hash to (estimated: a bank entry keeps no pixels)."""
    hashes = entry_pdq_hashes(registry, entry.id)
    queries = (pdq_dihedral_estimates(from_hex(hashes)) if hashes
               else np.empty((0, 32), np.uint8))
    return content.copies(entry.md5, queries, include_removed=include_removed)


def entry_in_bank(registry: BankRegistry, bank: str, entry_id: int) -> EntryInfo:
    """The entry, or ``BankNotFound`` when it does not exist or is in another bank."""
    entry = registry.entry(entry_id)
    if entry.bank != bank:
        raise BankNotFound(f"bank {bank!r} has no entry {entry_id}")
    return entry


def active_entries(registry: BankRegistry, bank: str) -> Iterator[EntryInfo]:
    """Every active entry of a bank, paged so that huge banks stream."""
    after = 0
    while True:
        page = registry.entries(bank, limit=_PAGE, after_id=after)
        if not page:
            return
        yield from (e for e in page if e.status == "active")
        after = page[-1].id
