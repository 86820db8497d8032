"""Sweep: the content already on the platform that a bank entry matches, so that banking
a hash also takes down the copies that were uploaded before it was banked."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from sqlalchemy import select

from consentry.banks.content import ContentIndex, ContentRecord
from consentry.banks.pdq_index import from_hex
from consentry.banks.registry import BankNotFound, BankRegistry, EntryHashes, EntryInfo
from consentry.signals.hashing import pdq_dihedral_estimates
from consentry.store.models import BankEntryHash

_PAGE = 1000


def entry_pdq_hashes(registry: BankRegistry, entry_id: int) -> list[str]:
    """Every PDQ hash stored for an entry (Meta's ``full`` hash and the crop variants)."""
    with registry.db.transaction() as s:
        return list(s.scalars(select(BankEntryHash.pdq)
                              .where(BankEntryHash.entry_id == entry_id)
                              .order_by(BankEntryHash.id)))


def copies_of(content: ContentIndex, hashes: EntryHashes, *, exact: np.ndarray | None = None,
              include_removed: bool = False) -> list[ContentRecord]:
    """Registered content that is the same image as ``hashes`` (a bank entry, or what a
    takedown names): the same MD5, or a PDQ hash within the match distance of any stored
    hash -- the whole image and its crop variants -- or of what their rotations and
    mirrors would hash to (estimated: hashes carry no pixels). ``exact`` adds query hashes
    made from the pixels when they are at hand. The one copy-finding path: a bank sweep
    and a takedown find the same copies."""
    pdqs = [value for _, value in hashes.indexed()]
    queries = pdq_dihedral_estimates(from_hex(pdqs)) if pdqs else np.empty((0, 32), np.uint8)
    if exact is not None and len(exact):
        queries = np.concatenate([queries, np.asarray(exact, dtype=np.uint8)])
    return content.copies(hashes.md5, queries, include_removed=include_removed)


def sweep_entry(registry: BankRegistry, content: ContentIndex, entry: EntryInfo,
                *, include_removed: bool = False) -> list[ContentRecord]:
    """Registered content that is the same image as ``entry`` (see ``copies_of``)."""
    stored = tuple((f"h{i}", h) for i, h in enumerate(entry_pdq_hashes(registry, entry.id)))
    return copies_of(content, EntryHashes(md5=entry.md5, pdq_variants=stored),
                     include_removed=include_removed)


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
