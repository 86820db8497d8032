"""Exact PDQ range-search index (multi-index hashing + delta segment + change log).

See docs/pdq-index.md for the design and the benchmark figures.
"""

from __future__ import annotations

import itertools
import numbers
import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import numpy as np

from consentry.banks.pdq_index import _kernels as K
from consentry.banks.pdq_index import _storage as S
from consentry.banks.pdq_index._layout import Layout, choose_layout, probe_plan

HASH_BYTES = 32
MAX_DISTANCE = 256
DEFAULT_MAX_DISTANCE = 31
DEFAULT_DELTA_LIMIT = 16384
BUILD_THREADS = max(1, min(4, os.cpu_count() or 1))
_MAX_BASE_ROWS = 2**32 - 1  # rows and CSR offsets are uint32
_NO_BITS = np.zeros(0, dtype=np.uint8)
_NO_BITS.setflags(write=False)

Match = tuple[int, int]


# --- input validation -------------------------------------------------------------


def _check_hashes(hashes: Any, name: str = "hashes") -> np.ndarray:
    if not isinstance(hashes, np.ndarray):
        raise ValueError(
            f"{name} must be a numpy.ndarray of dtype uint8 and shape (n, 32), "
            f"got {type(hashes).__name__}"
        )
    if hashes.dtype != np.uint8:
        raise ValueError(f"{name} must have dtype uint8, got {hashes.dtype}")
    if hashes.ndim != 2 or hashes.shape[1] != HASH_BYTES:
        raise ValueError(f"{name} must have shape (n, 32), got {hashes.shape}")
    return hashes


def _check_ids(ids: Any, name: str = "ids") -> np.ndarray:
    arr = np.asarray(ids)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if arr.size == 0:
        return np.zeros(0, dtype=np.int64)
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{name} must be integers (int64), got dtype {arr.dtype}")
    if arr.dtype == np.uint64 and bool((arr > np.iinfo(np.int64).max).any()):
        raise ValueError(f"{name} must fit in int64, got a value above 2**63 - 1")
    return arr.astype(np.int64, copy=True)


def _check_unique(ids: np.ndarray, name: str = "ids") -> None:
    if ids.size > 1:
        s = np.sort(ids)
        dup = s[1:][s[1:] == s[:-1]]
        if dup.size:
            shown = np.unique(dup)[:10].tolist()
            raise ValueError(f"duplicate {name} within one call: {shown}")


def _check_distance(max_distance: Any) -> int:
    if isinstance(max_distance, bool) or not isinstance(max_distance, numbers.Integral):
        raise ValueError(f"max_distance must be an int in 0..256, got {max_distance!r}")
    md = int(max_distance)
    if not 0 <= md <= MAX_DISTANCE:
        raise ValueError(f"max_distance must be in 0..256, got {md}")
    return md


def from_hex(hex_hashes: Sequence[str]) -> np.ndarray:
    """Convert 64-character PDQ hex strings to the (n, 32) uint8 array the index takes."""
    out = np.empty((len(hex_hashes), HASH_BYTES), dtype=np.uint8)
    for i, h in enumerate(hex_hashes):
        if len(h) != 2 * HASH_BYTES:
            raise ValueError(f"hash {i} must be 64 hex characters, got {len(h)}")
        out[i] = np.frombuffer(bytes.fromhex(h), dtype=np.uint8)
    return out


# --- packed bitmaps (bit r of byte r >> 3, little bit order, as the kernels read) ---


def _bits_get(bits: np.ndarray, idx: np.ndarray) -> np.ndarray:
    return ((bits[idx >> 3] >> (idx & 7).astype(np.uint8)) & 1).astype(bool)


def _bits_set(bits: np.ndarray, idx: np.ndarray) -> None:
    np.bitwise_or.at(bits, idx >> 3, (1 << (idx & 7)).astype(np.uint8))


# --- segments ---------------------------------------------------------------------


class _Base:
    """Immutable base segment: hashes and ids ordered by id, plus MIH tables."""

    __slots__ = (
        "dir_start",
        "hashes",
        "ids",
        "layout",
        "n",
        "nbits",
        "nbits_arr",
        "offsets",
        "rows",
        "starts",
        "words",
    )

    def __init__(
        self,
        hashes: np.ndarray,
        ids: np.ndarray,
        offsets: np.ndarray,
        rows: np.ndarray,
        nbits: Sequence[int],
    ) -> None:
        # Read-only plain ndarrays (not np.memmap) so the kernels see one array type
        # whether the segment was built in memory or mapped from disk.
        self.hashes = self._frozen(hashes)
        self.ids = self._frozen(ids)
        self.offsets = self._frozen(offsets)
        self.rows = self._frozen(rows)
        self.words = self.hashes.view(np.uint64)
        self.n = int(ids.shape[0])
        self.nbits = tuple(int(b) for b in nbits)
        self.layout = Layout(self.nbits)
        self.starts = self.layout.starts
        self.dir_start = self.layout.dir_start
        self.nbits_arr = np.asarray(self.nbits, dtype=np.int64)

    @staticmethod
    def _frozen(a: np.ndarray) -> np.ndarray:
        a = np.asarray(a)
        if a.flags.writeable:
            a.setflags(write=False)
        return a

    @classmethod
    def build(cls, hashes: np.ndarray, ids: np.ndarray) -> _Base | None:
        """Build from unique ids (any order); O(n) per table plus one id sort."""
        n = ids.shape[0]
        if n == 0:
            return None
        if n > _MAX_BASE_ROWS:
            raise ValueError(f"a base segment holds at most {_MAX_BASE_ROWS} hashes")
        order = np.argsort(ids, kind="stable")
        ids = ids[order]
        hashes = np.ascontiguousarray(hashes[order])
        layout = choose_layout(n)
        offsets = np.zeros(layout.dir_total, dtype=np.uint32)
        rows = np.empty((len(layout.nbits), n), dtype=np.uint32)
        words = hashes.view(np.uint64)

        def one(t: int) -> None:
            ds = int(layout.dir_start[t])
            size = (1 << layout.nbits[t]) + 1
            K.build_table(
                words, int(layout.starts[t]), layout.nbits[t], offsets[ds : ds + size], rows[t]
            )

        # Tables are independent and the kernel releases the GIL.
        with ThreadPoolExecutor(max_workers=BUILD_THREADS) as pool:
            list(pool.map(one, range(len(layout.nbits))))
        return cls(hashes, ids, offsets, rows, layout.nbits)

    def arrays(self) -> dict[str, np.ndarray]:
        return {"hashes": self.hashes, "ids": self.ids, "offsets": self.offsets, "rows": self.rows}

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in self.arrays().values())


@dataclass(frozen=True, slots=True)
class _Snapshot:
    """Everything a search reads. Published by a single attribute store, never mutated
    in the visible range afterwards, so readers need no lock (copy-on-write)."""

    base: _Base | None
    tomb: np.ndarray  # packed bitmap of removed base rows (len 0 when none)
    n_dead: int
    d_hashes: np.ndarray  # (capacity, 32) delta buffer; rows [:d_len] are published
    d_ids: np.ndarray
    d_dead: np.ndarray  # packed bitmap over the delta buffer
    d_len: int
    d_live: int

    @property
    def live(self) -> int:
        return (self.base.n if self.base else 0) - self.n_dead + self.d_live


def _fresh_snapshot(base: _Base | None) -> _Snapshot:
    return _Snapshot(
        base=base,
        tomb=_NO_BITS,
        n_dead=0,
        d_hashes=np.zeros((0, HASH_BYTES), dtype=np.uint8),
        d_ids=np.zeros(0, dtype=np.int64),
        d_dead=np.zeros(0, dtype=np.uint8),
        d_len=0,
        d_live=0,
    )


# --- the index --------------------------------------------------------------------


class PDQIndex:
    """Exact Hamming range search over 256-bit PDQ hashes keyed by int64 entry ids.

    * ``search`` returns exactly what a brute-force scan returns, for any
      ``max_distance`` in 0..256 (multi-index hashing, falling back to a scan when
      the radius is so large that probing would be slower).
    * ``add``/``remove`` take effect for the next search without a rebuild: adds go to
      a small brute-force delta segment, removals to a tombstone bitmap. When the delta
      reaches ``delta_limit`` hashes (or a quarter of the base is dead) the index is
      compacted: an O(n) rebuild, amortised over ``delta_limit`` adds.
    * Adding an id that is already present raises ``ValueError`` unless
      ``replace=True``, which swaps the hash atomically. A removed id can be re-added.
    * Thread safety: searches are lock-free over an immutable snapshot and may run in
      parallel threads (the kernels release the GIL); writers serialise on a lock and
      publish a new snapshot, so a search sees a whole write or none of it.
    * Persistence: ``save``/``load`` write and memory-map a compacted copy;
      ``open`` binds the index to a directory and logs every change (fsynced) so a
      restart replays the log instead of rehashing.
    """

    def __init__(self, *, delta_limit: int = DEFAULT_DELTA_LIMIT) -> None:
        if isinstance(delta_limit, bool) or not isinstance(delta_limit, numbers.Integral):
            raise ValueError(f"delta_limit must be a positive int, got {delta_limit!r}")
        if delta_limit < 1:
            raise ValueError(f"delta_limit must be a positive int, got {delta_limit}")
        self._delta_limit: int = int(delta_limit)
        self._lock: threading.RLock = threading.RLock()
        self._snap: _Snapshot = _fresh_snapshot(None)
        # id -> delta row for live delta entries; writer-only state, bounded by delta_limit.
        self._delta_pos: dict[int, int] = {}
        self._root: Path | None = None
        self._generation: int = 0
        self._log: S.LogWriter | None = None
        self._durable: bool = True

    # -- queries ----------------------------------------------------------------

    def __len__(self) -> int:
        return self._snap.live

    def __contains__(self, entry_id: object) -> bool:
        if isinstance(entry_id, bool) or not isinstance(entry_id, numbers.Integral):
            return False
        with self._lock:
            ids = np.asarray([int(entry_id)], dtype=np.int64)
            return bool(self._base_rows(self._snap, ids)[0] >= 0) or int(entry_id) in (
                self._delta_pos
            )

    @property
    def nbytes(self) -> int:
        """Bytes held by the index arrays (base segment, bitmaps, delta buffers)."""
        s = self._snap
        base = s.base.nbytes if s.base else 0
        return base + s.tomb.nbytes + s.d_hashes.nbytes + s.d_ids.nbytes + s.d_dead.nbytes

    def search(
        self,
        hashes: np.ndarray,
        max_distance: int = DEFAULT_MAX_DISTANCE,
        *,
        threads: int = 1,
    ) -> list[list[Match]]:
        """For each query hash, the ``(id, distance)`` pairs with distance <=
        ``max_distance``, sorted by distance then id.

        ``threads > 1`` splits a batch across that many threads (the kernels release
        the GIL); one thread is the default so a server controls its own parallelism.
        """
        queries = _check_hashes(hashes)
        md = _check_distance(max_distance)
        if isinstance(threads, bool) or not isinstance(threads, numbers.Integral) or threads < 1:
            raise ValueError(f"threads must be a positive int, got {threads!r}")
        nq = queries.shape[0]
        snap = self._snap  # one read: the whole search uses one consistent snapshot
        # A private copy so the kernels always see a writable contiguous array.
        qwords = np.array(queries, dtype=np.uint8, order="C", copy=True).view(np.uint64)
        if nq == 0:
            return []
        if threads > 1 and nq >= 2 * threads:
            bounds = np.linspace(0, nq, threads + 1).astype(int).tolist()
            chunks = [qwords[lo:hi] for lo, hi in itertools.pairwise(bounds)]
            with ThreadPoolExecutor(max_workers=threads) as pool:
                done = list(pool.map(lambda q: _search_snapshot(snap, q, md), chunks))
            qi = np.concatenate([d[0] + lo for d, lo in zip(done, bounds, strict=False)])
            ids = np.concatenate([d[1] for d in done])
            dist = np.concatenate([d[2] for d in done])
        else:
            qi, ids, dist = _search_snapshot(snap, qwords, md)
        if qi.size == 0:
            return [[] for _ in range(nq)]
        order = np.lexsort((ids, dist, qi))
        qi = qi[order]
        pairs = list(zip(ids[order].tolist(), dist[order].tolist(), strict=True))
        if nq == 1:
            return [pairs]
        bounds = np.searchsorted(qi, np.arange(nq + 1)).tolist()
        return [pairs[bounds[i] : bounds[i + 1]] for i in range(nq)]

    # -- writes -----------------------------------------------------------------

    def add(
        self, ids: Sequence[int] | np.ndarray, hashes: np.ndarray, *, replace: bool = False
    ) -> None:
        """Add hashes under entry ids. Effective for the next search.

        Raises ValueError (index unchanged) on bad input, on an id repeated within the
        call, or on an id already present unless ``replace=True``.
        """
        hashes = _check_hashes(hashes)
        ids_arr = _check_ids(ids)
        if ids_arr.shape[0] != hashes.shape[0]:
            raise ValueError(
                f"ids and hashes differ in length: {ids_arr.shape[0]} ids, {hashes.shape[0]} hashes"
            )
        _check_unique(ids_arr)
        if ids_arr.size == 0:
            return
        with self._lock:
            if self._snap.d_len + ids_arr.shape[0] >= self._delta_limit:
                # A bulk load would trigger a compaction anyway: build the new base
                # straight from the batch instead of staging it in the delta first.
                self._bulk_add_locked(ids_arr, hashes, replace)
            else:
                self._add_locked(ids_arr, np.array(hashes, dtype=np.uint8, copy=True), replace)
                self._maybe_compact()

    def remove(self, ids: Sequence[int] | np.ndarray, *, missing_ok: bool = False) -> int:
        """Remove entries by id; returns how many were removed. Effective for the next
        search. Unknown ids raise KeyError (index unchanged) unless ``missing_ok``."""
        ids_arr = _check_ids(ids)
        _check_unique(ids_arr)
        if ids_arr.size == 0:
            return 0
        with self._lock:
            removed = self._remove_locked(ids_arr, missing_ok)
            self._maybe_compact()
            return removed

    def compact(self) -> None:
        """Fold the delta and tombstones into a new base segment (and, for an opened
        index, a new on-disk generation). Searches continue on the old snapshot."""
        with self._lock:
            snap = self._snap
            hashes, ids = self._live_arrays(snap)
            base = _Base.build(hashes, ids)
            if self._root is not None:
                base = self._write_generation(base)
            self._snap = _fresh_snapshot(base)
            self._delta_pos = {}

    # -- persistence ------------------------------------------------------------

    def save(self, path: str | Path) -> None:
        """Write a compacted copy to ``path`` (a directory) for ``load``/``open``.
        The index itself is not changed. Saving to the directory this index was
        opened from is a ``compact``."""
        root = Path(path)
        with self._lock:
            if self._root is not None and root.resolve() == self._root.resolve():
                self.compact()
                return
            snap = self._snap
            if snap.base is not None and snap.n_dead == 0 and snap.d_live == 0:
                base: _Base | None = snap.base
            else:
                base = _Base.build(*self._live_arrays(snap))
            manifest = S.read_manifest(root)
            generation = int(manifest["generation"]) + 1 if manifest else 1
            arrays, nbits = _arrays_for_disk(base)
            S.write_generation(root, generation, arrays, nbits)

    @classmethod
    def load(
        cls, path: str | Path, *, mmap: bool = True, delta_limit: int = DEFAULT_DELTA_LIMIT
    ) -> PDQIndex:
        """Load a saved (or opened) directory; base arrays are memory-mapped, so this is
        O(size of the change log), not O(n). Changes to the result are not persisted."""
        index = cls(delta_limit=delta_limit)
        index._load_from(Path(path), mmap=mmap)
        return index

    @classmethod
    def open(
        cls,
        path: str | Path,
        *,
        durable: bool = True,
        delta_limit: int = DEFAULT_DELTA_LIMIT,
    ) -> PDQIndex:
        """Open (creating if needed) a persistent index at directory ``path``.

        Every add/remove is appended to a change log before it becomes visible
        (fsynced when ``durable``); compaction writes a new memory-mapped generation.
        """
        root = Path(path)
        index = cls(delta_limit=delta_limit)
        if S.read_manifest(root) is None:
            arrays, nbits = _arrays_for_disk(None)
            S.write_generation(root, 1, arrays, nbits)
        index._load_from(root, mmap=True)
        index._root = root
        index._durable = durable
        index._log = S.LogWriter(S.log_path(root, index._generation), durable=durable)
        with index._lock:
            index._maybe_compact()
        return index

    def close(self) -> None:
        """Close the change log of an opened index (no-op otherwise)."""
        with self._lock:
            if self._log is not None:
                self._log.close()
                self._log = None
            self._root = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- internals --------------------------------------------------------------

    @staticmethod
    def _base_rows(snap: _Snapshot, ids: np.ndarray) -> np.ndarray:
        """Base row of each live id, -1 where absent or removed."""
        base = snap.base
        if base is None:
            return np.full(ids.shape[0], -1, dtype=np.int64)
        pos = np.minimum(np.searchsorted(base.ids, ids), base.n - 1)
        hit = base.ids[pos] == ids
        if snap.n_dead:
            hit &= ~_bits_get(snap.tomb, pos)
        return np.where(hit, pos, -1)

    def _delta_rows(self, ids: np.ndarray) -> np.ndarray:
        get = self._delta_pos.get
        return np.fromiter((get(i, -1) for i in ids.tolist()), dtype=np.int64, count=len(ids))

    def _add_locked(
        self, ids: np.ndarray, hashes: np.ndarray, replace_existing: bool, log: bool = True
    ) -> None:
        snap = self._snap
        brow = self._base_rows(snap, ids)
        drow = self._delta_rows(ids)
        present = (brow >= 0) | (drow >= 0)
        if present.any() and not replace_existing:
            shown = ids[present][:10].tolist()
            raise ValueError(
                f"{int(present.sum())} ids already in the index (first: {shown}); "
                "remove them first or pass replace=True"
            )
        tomb, n_dead = snap.tomb, snap.n_dead
        b_hit = brow[brow >= 0]
        if b_hit.size:
            assert snap.base is not None  # rows in the base exist only with a base
            tomb = tomb.copy() if tomb.size else np.zeros((snap.base.n + 7) // 8, np.uint8)
            _bits_set(tomb, b_hit)
            n_dead += int(b_hit.size)
        d_hit = drow[drow >= 0]
        d_hashes, d_ids, d_dead = snap.d_hashes, snap.d_ids, snap.d_dead
        start, k = snap.d_len, ids.shape[0]
        if start + k > d_hashes.shape[0]:
            # Grow into fresh buffers; older snapshots keep reading the old ones.
            cap = max(start + k, 2 * d_hashes.shape[0], 1024)
            d_hashes = np.concatenate(
                [d_hashes[:start], np.empty((cap - start, HASH_BYTES), np.uint8)]
            )
            d_ids = np.concatenate([d_ids[:start], np.empty(cap - start, np.int64)])
            grown = np.zeros((cap + 7) // 8, np.uint8)
            grown[: d_dead.shape[0]] = d_dead
            d_dead = grown
        if d_hit.size:
            d_dead = d_dead.copy() if d_dead is snap.d_dead else d_dead
            _bits_set(d_dead, d_hit)
        # Rows past the published d_len are invisible to existing snapshots.
        d_hashes[start : start + k] = hashes
        d_ids[start : start + k] = ids
        if log and self._log is not None:
            flags = S.FLAG_REPLACE if replace_existing else 0
            self._log.append(S.encode_record(S.OP_ADD, flags, ids, hashes))
        self._snap = replace(
            snap,
            tomb=tomb,
            n_dead=n_dead,
            d_hashes=d_hashes,
            d_ids=d_ids,
            d_dead=d_dead,
            d_len=start + k,
            d_live=snap.d_live - int(d_hit.size) + k,
        )
        for i in ids[drow >= 0].tolist():
            del self._delta_pos[i]
        self._delta_pos.update(zip(ids.tolist(), range(start, start + k), strict=True))

    def _bulk_add_locked(self, ids: np.ndarray, hashes: np.ndarray, replace_existing: bool) -> None:
        snap, saved_pos = self._snap, dict(self._delta_pos)
        present = (self._base_rows(snap, ids) >= 0) | (self._delta_rows(ids) >= 0)
        if present.any():
            if not replace_existing:
                shown = ids[present][:10].tolist()
                raise ValueError(
                    f"{int(present.sum())} ids already in the index (first: {shown}); "
                    "remove them first or pass replace=True"
                )
            # Drop the old versions first, in memory only: the compaction below
            # publishes the result as a whole (and, if opened, as a new generation).
            self._remove_locked(ids[present], missing_ok=False, log=False)
        old_hashes, old_ids = self._live_arrays(self._snap)
        try:
            base = _Base.build(np.concatenate([old_hashes, hashes]), np.concatenate([old_ids, ids]))
            if self._root is not None:
                base = self._write_generation(base)
        except BaseException:
            # Undo the replace-removal above: the index is unchanged.
            self._snap, self._delta_pos = snap, saved_pos
            raise
        self._snap = _fresh_snapshot(base)
        self._delta_pos = {}

    def _remove_locked(self, ids: np.ndarray, missing_ok: bool, log: bool = True) -> int:
        snap = self._snap
        brow = self._base_rows(snap, ids)
        drow = self._delta_rows(ids)
        missing = (brow < 0) & (drow < 0)
        if missing.any() and not missing_ok:
            shown = ids[missing][:10].tolist()
            raise KeyError(f"{int(missing.sum())} ids not in the index (first: {shown})")
        gone = ids[~missing]
        if gone.size == 0:
            return 0
        tomb, d_dead = snap.tomb, snap.d_dead
        b_hit, d_hit = brow[brow >= 0], drow[drow >= 0]
        if b_hit.size:
            assert snap.base is not None  # rows in the base exist only with a base
            tomb = tomb.copy() if tomb.size else np.zeros((snap.base.n + 7) // 8, np.uint8)
            _bits_set(tomb, b_hit)
        if d_hit.size:
            d_dead = d_dead.copy()
            _bits_set(d_dead, d_hit)
        if log and self._log is not None:
            self._log.append(S.encode_record(S.OP_REMOVE, 0, gone, None))
        self._snap = replace(
            snap,
            tomb=tomb,
            n_dead=snap.n_dead + int(b_hit.size),
            d_dead=d_dead,
            d_live=snap.d_live - int(d_hit.size),
        )
        for i in ids[drow >= 0].tolist():
            del self._delta_pos[i]
        return int(gone.size)

    def _maybe_compact(self) -> None:
        snap = self._snap
        base_n = snap.base.n if snap.base else 0
        if snap.d_len >= self._delta_limit or (
            snap.n_dead >= self._delta_limit and 4 * snap.n_dead >= base_n
        ):
            self.compact()

    @staticmethod
    def _live_arrays(snap: _Snapshot) -> tuple[np.ndarray, np.ndarray]:
        hs: list[np.ndarray] = []
        ids: list[np.ndarray] = []
        if snap.base is not None:
            if snap.n_dead:
                alive = ~np.unpackbits(snap.tomb, count=snap.base.n, bitorder="little").astype(bool)
                hs.append(snap.base.hashes[alive])
                ids.append(snap.base.ids[alive])
            else:
                hs.append(snap.base.hashes)
                ids.append(snap.base.ids)
        if snap.d_live:
            alive = ~np.unpackbits(snap.d_dead, count=snap.d_len, bitorder="little").astype(bool)
            hs.append(snap.d_hashes[: snap.d_len][alive])
            ids.append(snap.d_ids[: snap.d_len][alive])
        if not hs:
            return np.zeros((0, HASH_BYTES), np.uint8), np.zeros(0, np.int64)
        return np.concatenate(hs), np.concatenate(ids)

    def _write_generation(self, base: _Base | None) -> _Base | None:
        assert self._root is not None
        generation = self._generation + 1
        arrays, nbits = _arrays_for_disk(base)
        if self._log is not None:
            self._log.close()
            self._log = None
        S.write_generation(self._root, generation, arrays, nbits)
        self._generation = generation
        self._log = S.LogWriter(S.log_path(self._root, generation), durable=self._durable)
        # Serve from the mapped files so resident memory is reclaimable page cache.
        return _base_from_disk(self._root, generation, nbits, mmap=True)

    def _load_from(self, root: Path, mmap: bool) -> None:
        manifest = S.read_manifest(root)
        if manifest is None:
            raise FileNotFoundError(f"no PDQ index at {root} (missing {S.MANIFEST})")
        if manifest.get("format") != S.FORMAT:
            raise ValueError(f"unsupported PDQ index format {manifest.get('format')!r}")
        generation = int(manifest["generation"])
        base = _base_from_disk(root, generation, manifest["nbits"], mmap=mmap)
        with self._lock:
            self._snap = _fresh_snapshot(base)
            self._delta_pos = {}
            self._generation = generation
            for op, flags, ids, hashes in S.iter_log(S.log_path(root, generation)):
                if op == S.OP_ADD:
                    assert hashes is not None
                    self._add_locked(ids, hashes, bool(flags & S.FLAG_REPLACE), log=False)
                else:
                    self._remove_locked(ids, missing_ok=True, log=False)


def _search_snapshot(
    snap: _Snapshot, qwords: np.ndarray, md: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(query index, id, distance) of every match in one snapshot, unsorted."""
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    base = snap.base
    if base is not None:
        radii, use_scan = probe_plan(base.nbits, base.n, md)
        tomb = snap.tomb if snap.n_dead else _NO_BITS
        if use_scan:
            qi, rows, dist = _collect(K.search_scan, qwords, base.words, base.n, md, tomb)
        else:
            qi, rows, dist = _collect(
                K.search_mih,
                qwords,
                base.words,
                base.rows,
                base.offsets,
                base.dir_start,
                base.starts,
                base.nbits_arr,
                radii,
                md,
                tomb,
            )
        parts.append((qi, base.ids[rows], dist))
    if snap.d_live:
        dead = snap.d_dead if snap.d_live < snap.d_len else _NO_BITS
        qi, rows, dist = _collect(
            K.search_scan, qwords, snap.d_hashes.view(np.uint64), snap.d_len, md, dead
        )
        parts.append((qi, snap.d_ids[rows], dist))
    if len(parts) == 1:
        return parts[0]
    if not parts:
        empty = np.zeros(0, np.int64)
        return empty, empty, empty
    return (
        np.concatenate([p[0] for p in parts]),
        np.concatenate([p[1] for p in parts]),
        np.concatenate([p[2] for p in parts]),
    )


def _collect(kernel: Any, *args: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Run a search kernel into preallocated buffers, retrying once if they were
    too small (the kernel reports the full count)."""
    cap = 256 + 16 * args[0].shape[0]
    for _ in range(2):
        out = (np.empty(cap, np.int64), np.empty(cap, np.int64), np.empty(cap, np.int64))
        count = kernel(*args, *out)
        if count <= cap:
            return out[0][:count], out[1][:count], out[2][:count]
        cap = count
    raise AssertionError("search kernel returned a growing match count")


def _arrays_for_disk(base: _Base | None) -> tuple[dict[str, np.ndarray], list[int]]:
    if base is None:
        empty: dict[str, np.ndarray] = {
            "hashes": np.zeros((0, HASH_BYTES), np.uint8),
            "ids": np.zeros(0, np.int64),
            "offsets": np.zeros(0, np.uint32),
            "rows": np.zeros((0, 0), np.uint32),
        }
        return empty, []
    return base.arrays(), list(base.nbits)


def _base_from_disk(root: Path, generation: int, nbits: Sequence[int], mmap: bool) -> _Base | None:
    arrays = S.load_generation(root, generation, mmap=mmap)
    if arrays["ids"].shape[0] == 0:
        return None
    return _Base(arrays["hashes"], arrays["ids"], arrays["offsets"], arrays["rows"], nbits)
