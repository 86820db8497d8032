"""Matching images against every enabled bank: MD5 exactly, PDQ through the index.

The matcher holds one ``PDQIndex`` of every active entry's hashes and keeps it current by
replaying the bank event log before each match: a change committed by any process is
effective for the very next query. With an ``index_dir`` the index is saved (memory-mapped
on load) with the id of the last event it reflects, so a restart replays only newer
events instead of rehashing or reloading every entry.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import func, select

from consentry.banks.pdq_index import PDQIndex, from_hex
from consentry.banks.saved_index import load_saved, save
from consentry.store import Database
from consentry.store.feed import IdGaps
from consentry.store.models import Bank, BankEntry, BankEntryHash, BankEvent

log = logging.getLogger(__name__)

PDQ_MATCH_DISTANCE = 31
_SAVE_EVERY_EVENTS = 5000
_WATERMARK_KEY = "event"  # the last bank_events.id the saved index reflects
_EVENT_PAGE = 10_000


@dataclass(frozen=True)
class BankMatch:
    bank: str
    bank_kind: str  # block | allow
    category: str
    clause: str
    entry_id: int
    signal: str  # md5 | pdq
    distance: int  # 0 for an MD5 match
    takedown_case: str | None = None

    def to_dict(self) -> dict[str, object]:
        return {"bank": self.bank, "entry": self.entry_id, "signal": self.signal,
                "distance": self.distance, "category": self.category, "clause": self.clause}


class BankMatcher:
    """Answers "is this image banked?" for the gate, the CLI and the HMA-compatible API."""

    def __init__(self, db: Database, *, index_dir: Path | None = None) -> None:
        self.db = db
        self._dir = index_dir
        self._lock = threading.Lock()
        self._index = PDQIndex()
        self._watermark = 0
        self._gaps = IdGaps()  # events committed after a later one (store/feed.py)
        self._since_save = 0
        self._load_or_build()

    # -- matching ---------------------------------------------------------------------

    def match(self, md5: str | None, pdq_queries: np.ndarray | None,
              max_distance: int = PDQ_MATCH_DISTANCE) -> list[BankMatch]:
        """Matches in enabled banks, closest first. Block matches that an allow bank
        explains at least as closely are dropped (a known benign collision)."""
        self.sync()
        distances: dict[int, tuple[str, int]] = {}  # entry id -> (signal, distance)
        if pdq_queries is not None and len(pdq_queries):
            rows = self._index.search(pdq_queries, max_distance)
            best: dict[int, int] = {}
            for hits in rows:
                for row_id, distance in hits:
                    if distance < best.get(row_id, 257):
                        best[row_id] = distance
            if best:
                with self.db.transaction() as s:
                    for row_id, entry_id in s.execute(select(
                            BankEntryHash.id, BankEntryHash.entry_id).where(
                            BankEntryHash.id.in_(list(best)))):
                        d = best[row_id]
                        if entry_id not in distances or d < distances[entry_id][1]:
                            distances[entry_id] = ("pdq", d)
        with self.db.transaction() as s:
            if md5:
                for entry_id in s.scalars(select(BankEntry.id).where(BankEntry.md5 == md5)):
                    distances[entry_id] = ("md5", 0)
            if not distances:
                return []
            found = s.execute(
                select(BankEntry, Bank).join(Bank, Bank.id == BankEntry.bank_id).where(
                    BankEntry.id.in_(list(distances)), BankEntry.removed_at.is_(None),
                    BankEntry.disabled_at.is_(None), Bank.disabled_at.is_(None))).all()
            matches = [BankMatch(bank.name, bank.kind, bank.category,
                                 entry.clause or bank.clause, entry.id,
                                 *distances[entry.id], takedown_case=entry.takedown_case)
                       for entry, bank in found]
        return _suppress_benign(sorted(matches, key=lambda m: (m.distance, m.entry_id)))

    # -- keeping the index current ----------------------------------------------------

    def sync(self) -> int:
        """Apply bank events committed since the last sync; returns how many."""
        with self._lock:
            applied = 0
            columns = (BankEvent.id, BankEvent.action, BankEvent.bank_id, BankEvent.entry_id)
            late: list[Any] = []
            if awaited := self._gaps.awaited():
                with self.db.transaction() as s:
                    late = list(s.execute(select(*columns).where(BankEvent.id.in_(awaited))))
                self._gaps.found(e.id for e in late)
            while True:
                with self.db.transaction() as s:
                    events = list(late) + list(s.execute(
                        select(*columns).where(BankEvent.id > self._watermark)
                        .order_by(BankEvent.id).limit(_EVENT_PAGE)))
                late = []
                if not events:
                    break
                self._gaps.saw(self._watermark, [e.id for e in events
                                                 if e.id > self._watermark])
                entries = {e.entry_id for e in events if e.entry_id is not None}
                banks = {e.bank_id for e in events
                         if e.action in {"bank_enabled", "bank_disabled"}}
                self._refresh(entries, banks)
                self._watermark = max(self._watermark, events[-1].id)
                applied += len(events)
            self._since_save += applied
            if self._dir is not None and self._since_save >= _SAVE_EVERY_EVENTS:
                self._save()
            return applied

    def close(self) -> None:
        with self._lock:
            if self._dir is not None and self._since_save:
                self._save()

    @property
    def size(self) -> int:
        return len(self._index)

    @property
    def watermark(self) -> int:
        """The highest bank_events.id this process has applied (staleness: the newest one less
        this)."""
        return self._watermark

    def _refresh(self, entry_ids: Iterable[int], bank_ids: Iterable[int]) -> None:
        """Make the index hold exactly the active hashes of these entries and banks:
        recomputing the desired state (not replaying deltas) keeps replays idempotent."""
        entry_ids, bank_ids = list(entry_ids), list(bank_ids)
        with self.db.transaction() as s:
            query = (select(BankEntryHash.id, BankEntryHash.pdq, BankEntry.removed_at,
                            BankEntry.disabled_at, Bank.disabled_at)
                     .join(BankEntry, BankEntry.id == BankEntryHash.entry_id)
                     .join(Bank, Bank.id == BankEntry.bank_id))
            rows: list[Any] = []
            if entry_ids:
                rows += s.execute(query.where(BankEntryHash.entry_id.in_(entry_ids))).all()
            if bank_ids:
                rows += s.execute(query.where(BankEntry.bank_id.in_(bank_ids))).all()
        live = {r[0]: r[1] for r in rows if r[2] is None and r[3] is None and r[4] is None}
        dead = [r[0] for r in rows if r[0] not in live]
        if dead:
            self._index.remove(np.unique(np.asarray(dead, dtype=np.int64)), missing_ok=True)
        if live:
            ids = np.fromiter(live, dtype=np.int64, count=len(live))
            self._index.add(ids, from_hex(list(live.values())), replace=True)

    def _load_or_build(self) -> None:
        saved = load_saved(self._dir, _WATERMARK_KEY) if self._dir is not None else None
        if saved is not None:
            self._index, self._watermark = saved
            try:
                self.sync()
                return
            except (OSError, ValueError, KeyError) as exc:  # a damaged saved index
                log.warning("bank index at %s unusable (%s); rebuilding", self._dir, exc)
                self._index, self._watermark = PDQIndex(), 0
        with self.db.transaction() as s:
            # The high-water mark is read first: events after it are replayed afterwards.
            top = s.scalar(select(func.max(BankEvent.id))) or 0
            rows = s.execute(
                select(BankEntryHash.id, BankEntryHash.pdq)
                .join(BankEntry, BankEntry.id == BankEntryHash.entry_id)
                .join(Bank, Bank.id == BankEntry.bank_id)
                .where(BankEntry.removed_at.is_(None), BankEntry.disabled_at.is_(None),
                       Bank.disabled_at.is_(None))).all()
        if rows:
            ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
            self._index.add(ids, from_hex([r[1] for r in rows]))
        self._watermark = top
        if self._dir is not None:
            self._save()
        self.sync()

    def _save(self) -> None:
        assert self._dir is not None
        save(self._dir, self._index, _WATERMARK_KEY, self._watermark)
        self._since_save = 0


def _suppress_benign(matches: list[BankMatch]) -> list[BankMatch]:
    allow = [m for m in matches if m.bank_kind == "allow"]
    if not allow:
        return matches
    closest_allow = min(m.distance for m in allow)
    # An exact MD5 match in a block bank is the banked file itself: never suppressed.
    return [m for m in matches if m.bank_kind == "allow" or m.signal == "md5"
            or m.distance < closest_allow]
