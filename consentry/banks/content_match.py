"""Where the content index looks for copies: the registered items whose MD5 is a given
one or whose PDQ hashes lie within a distance of query hashes. Two backends answer the
same question exactly, so the sweep finds the same copies with either:

* ``MemoryContentMatch`` (the embedded default): an in-process ``PDQIndex`` over every
  content hash row, MD5 by the database's index. About 100 B per hash in memory.
* ``ClickHouseContentMatch``: the hashes and MD5s copied into ClickHouse (embedded
  ``chdb`` or a cluster) and scanned there by an exact Hamming distance (four UInt64
  columns, ``bitCount(bitXor(..))``), so the index is bounded by the engine's disks and
  nodes, not by this process's memory.

The database stays the record: both backends catch up from its ``content_hashes`` and
``content_items`` rows by id (rows are only ever added; removal is a timestamp the
database filters afterwards).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from sqlalchemy import func, select

from consentry.banks.pdq_index import PDQIndex, from_hex
from consentry.banks.saved_index import load_saved, save
from consentry.store import Database
from consentry.store.clickhouse import ClickHouse
from consentry.store.feed import IdGaps
from consentry.store.models import ContentHash, ContentItem

log = logging.getLogger(__name__)

_PAGE = 200_000
_SAVE_EVERY_ROWS = 100_000  # a restart re-reads at most this many rows
_WATERMARK_KEY = "content_hash"  # the highest content_hashes.id the saved index holds
_QUERIES_PER_SCAN = 64  # query hashes compared in one pass over the table


class ContentMatch(Protocol):
    """Finds registered items by hash; ``find`` answers what ``sync`` has loaded."""

    def sync(self) -> int:
        """Load rows registered since the last sync (by any process); how many."""

    def find(self, md5: str | None, queries: np.ndarray | None,
             max_distance: int) -> dict[int, int]:
        """Content item id -> the smallest distance of any of its hashes to any query
        (0 for an identical MD5), for every item within ``max_distance``."""

    @property
    def size(self) -> int:
        """PDQ hash rows held."""

    @property
    def watermark(self) -> int:
        """The highest content_hashes.id loaded (staleness: the newest one less this)."""

    def close(self) -> None:
        """Save or release what the backend holds."""


def _hash_rows(db: Database, after: int, limit: int) -> list[tuple[int, int, str]]:
    with db.transaction() as s:
        return [(int(i), int(item), str(pdq)) for i, item, pdq in s.execute(
            select(ContentHash.id, ContentHash.item_id, ContentHash.pdq)
            .where(ContentHash.id > after).order_by(ContentHash.id).limit(limit)).all()]


def _late_hash_rows(db: Database, gaps: IdGaps) -> list[tuple[int, int, str]]:
    """Rows below the watermark that committed after it moved past them."""
    awaited = gaps.awaited()
    if not awaited:
        return []
    with db.transaction() as s:
        rows = [(int(i), int(item), str(pdq)) for i, item, pdq in s.execute(
            select(ContentHash.id, ContentHash.item_id, ContentHash.pdq)
            .where(ContentHash.id.in_(awaited))).all()]
    gaps.found(r[0] for r in rows)
    return rows


class MemoryContentMatch:
    """The in-process index (see the module docstring). With an ``index_dir`` it is saved
    with the id of the last hash row it holds, so a restart maps the saved index and reads
    only the rows added since."""

    def __init__(self, db: Database, *, index_dir: Path | None = None) -> None:
        self.db = db
        self._dir = index_dir
        self._index = PDQIndex()
        self._watermark = 0  # highest content_hashes.id held
        self._gaps = IdGaps()  # rows committed after a later one (store/feed.py)
        self._since_save = 0
        self._lock = threading.Lock()
        self._load_saved()

    def sync(self) -> int:
        with self._lock:
            # Read every page first and add once: each add of a large batch rebuilds the
            # index, so page-by-page adds would cost quadratic time at server start.
            id_pages, hash_pages = [], []
            after = self._watermark
            if late := _late_hash_rows(self.db, self._gaps):
                id_pages.append(np.fromiter((r[0] for r in late), dtype=np.int64,
                                            count=len(late)))
                hash_pages.append(from_hex([r[2] for r in late]))
            while rows := _hash_rows(self.db, after, _PAGE):
                self._gaps.saw(after, [r[0] for r in rows])
                id_pages.append(np.fromiter((r[0] for r in rows), dtype=np.int64,
                                            count=len(rows)))
                hash_pages.append(from_hex([r[2] for r in rows]))
                after = int(rows[-1][0])
            if not id_pages:
                return 0
            ids = np.concatenate(id_pages)
            self._index.add(ids, np.concatenate(hash_pages))
            self._watermark = after
            self._since_save += len(ids)
            if self._dir is not None and self._since_save >= _SAVE_EVERY_ROWS:
                self._save()
            return len(ids)

    def find(self, md5: str | None, queries: np.ndarray | None,
             max_distance: int) -> dict[int, int]:
        best: dict[int, int] = {}
        if queries is not None and len(queries):
            rows: dict[int, int] = {}
            for found in self._index.search(queries, max_distance):
                for row_id, distance in found:
                    rows[row_id] = min(distance, rows.get(row_id, 257))
            if rows:
                with self.db.transaction() as s:
                    for chunk in chunks(list(rows), 20_000):
                        for row_id, item_id in s.execute(select(
                                ContentHash.id, ContentHash.item_id).where(
                                ContentHash.id.in_(chunk))):
                            best[item_id] = min(rows[row_id], best.get(item_id, 257))
        if md5:
            with self.db.transaction() as s:
                for item_id in s.scalars(select(ContentItem.id).where(ContentItem.md5 == md5)):
                    best[item_id] = 0
        return best

    @property
    def size(self) -> int:
        return len(self._index)

    @property
    def watermark(self) -> int:
        return self._watermark

    def close(self) -> None:
        with self._lock:
            if self._dir is not None and self._since_save:
                self._save()

    def _load_saved(self) -> None:
        saved = load_saved(self._dir, _WATERMARK_KEY) if self._dir is not None else None
        if saved is None:
            return
        with self.db.transaction() as s:
            top = s.scalar(select(func.max(ContentHash.id))) or 0
        if top < saved[1]:  # saved for another (or a restored) database
            log.warning("content index at %s is ahead of the database; rebuilding", self._dir)
            return
        self._index, self._watermark = saved

    def _save(self) -> None:
        assert self._dir is not None
        save(self._dir, self._index, _WATERMARK_KEY, self._watermark)
        self._since_save = 0


# -- ClickHouse ----------------------------------------------------------------------------

HASHES_TABLE = "content_hashes"
MD5_TABLE = "content_md5"


def pdq_words(hashes: np.ndarray) -> np.ndarray:
    """(n, 32) uint8 PDQ hashes as (n, 4) uint64 words (big-endian: byte 0 is the top
    byte of word 0). Any fixed split keeps Hamming distances; this one keeps hex order."""
    return np.ascontiguousarray(hashes, dtype=np.uint8).view(">u8").astype(np.uint64)


def distance_sql(query: np.ndarray) -> str:
    """The Hamming distance of the row's hash (``h0``..``h3``) to one query hash."""
    return " + ".join(f"bitCount(bitXor(h{i}, toUInt64({int(w)})))"
                      for i, w in enumerate(pdq_words(query.reshape(1, 32))[0]))


def hamming_scan_sql(table: str, queries: np.ndarray, max_distance: int) -> str:
    """Exact range search: every row within ``max_distance`` of any query, with the
    smallest distance, per ``item_id``."""
    distances = [distance_sql(q) for q in queries]
    nearest = distances[0] if len(distances) == 1 else f"least({', '.join(distances)})"
    # A new bank entry's hashes are new conditions: the condition cache (which granules
    # matched a WHERE before) would only fill up, and would flatter repeated benchmarks.
    return (f"SELECT item_id, min(d) FROM (SELECT item_id, {nearest} AS d FROM {table} "
            f"WHERE d <= {int(max_distance)}) GROUP BY item_id "
            "SETTINGS use_query_condition_cache = 0")


class ClickHouseContentMatch:
    """The hashes in ClickHouse (see the module docstring). Tables are
    ``ReplacingMergeTree`` on the row id: two replicas copying the same rows, or a copy
    retried after a crash, leave one row once merged, and every answer is grouped by item
    with its smallest distance, so a duplicate never changes one."""

    def __init__(self, db: Database, engine: ClickHouse) -> None:
        self.db = db
        self.engine = engine
        self._lock = threading.Lock()
        self._hash_gaps, self._item_gaps = IdGaps(), IdGaps()  # see store/feed.py
        name = engine.database
        self._hashes = f"{name}.{HASHES_TABLE}"
        self._md5 = f"{name}.{MD5_TABLE}"
        engine.command(f"CREATE TABLE IF NOT EXISTS {self._hashes} (row_id UInt64, "
                       "item_id UInt64, h0 UInt64, h1 UInt64, h2 UInt64, h3 UInt64) "
                       "ENGINE = ReplacingMergeTree ORDER BY row_id")
        engine.command(f"CREATE TABLE IF NOT EXISTS {self._md5} (md5 String, item_id UInt64) "
                       "ENGINE = ReplacingMergeTree ORDER BY (md5, item_id)")
        self._hash_watermark = self._top(f"SELECT max(row_id) FROM {self._hashes}")
        self._item_watermark = self._top(f"SELECT max(item_id) FROM {self._md5}")

    def _top(self, sql: str) -> int:
        [(value,)] = self.engine.rows(sql)
        return int(value or 0)

    def sync(self) -> int:
        with self._lock:
            late = _late_hash_rows(self.db, self._hash_gaps)
            copied = self._copy_hashes(late)
            while rows := _hash_rows(self.db, self._hash_watermark, _PAGE):
                self._hash_gaps.saw(self._hash_watermark, [r[0] for r in rows])
                copied += self._copy_hashes(rows)
                self._hash_watermark = rows[-1][0]
            if awaited := self._item_gaps.awaited():
                with self.db.transaction() as s:
                    items = s.execute(select(ContentItem.id, ContentItem.md5)
                                      .where(ContentItem.id.in_(awaited))).all()
                self._item_gaps.found(int(i) for i, _ in items)
                self._copy_items(items)
            while True:
                with self.db.transaction() as s:
                    items = s.execute(select(ContentItem.id, ContentItem.md5)
                                      .where(ContentItem.id > self._item_watermark)
                                      .order_by(ContentItem.id).limit(_PAGE)).all()
                if not items:
                    break
                self._item_gaps.saw(self._item_watermark, [int(i) for i, _ in items])
                self._copy_items(items)
                self._item_watermark = int(items[-1][0])
            return copied

    def _copy_hashes(self, rows: list[tuple[int, int, str]]) -> int:
        if rows:
            words = pdq_words(from_hex([r[2] for r in rows]))
            self.engine.insert(HASHES_TABLE, {
                "row_id": np.fromiter((r[0] for r in rows), np.uint64, len(rows)),
                "item_id": np.fromiter((r[1] for r in rows), np.uint64, len(rows)),
                **{f"h{i}": words[:, i] for i in range(4)}})
        return len(rows)

    def _copy_items(self, items: Sequence[Any]) -> None:
        if items:
            self.engine.insert(MD5_TABLE, {
                "md5": [str(m or "") for _, m in items],
                "item_id": np.fromiter((i for i, _ in items), np.uint64, len(items))})

    def find(self, md5: str | None, queries: np.ndarray | None,
             max_distance: int) -> dict[int, int]:
        best: dict[int, int] = {}
        if queries is not None and len(queries):
            queries = np.asarray(queries, dtype=np.uint8).reshape(-1, 32)
            for start in range(0, len(queries), _QUERIES_PER_SCAN):
                sql = hamming_scan_sql(self._hashes, queries[start:start + _QUERIES_PER_SCAN],
                                       max_distance)
                for item_id, distance in self.engine.rows(sql):
                    best[int(item_id)] = min(int(distance), best.get(int(item_id), 257))
        if md5:
            literal = md5.replace("\\", "\\\\").replace("'", "\\'")
            for (item_id,) in self.engine.rows(
                    f"SELECT DISTINCT item_id FROM {self._md5} WHERE md5 = '{literal}'"):
                best[int(item_id)] = 0
        return best

    @property
    def size(self) -> int:
        return self._top(f"SELECT uniqExact(row_id) FROM {self._hashes}")

    @property
    def watermark(self) -> int:
        return self._hash_watermark

    def close(self) -> None:
        self.engine.close()


def chunks(values: list[int], size: int) -> list[list[int]]:
    """``values`` in slices of at most ``size`` (an ``IN`` list the database takes)."""
    return [values[i:i + size] for i in range(0, len(values), size)]
