"""The vector index behind the likeness registry: nearest enrolled faces to a query face.

A narrow interface (``FaceIndex``) with one implementation on ``usearch`` (HNSW, with
removal, so a withdrawal leaves the index at once). Distances are Euclidean, as dlib's
threshold is stated; the index itself works in squared L2.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Final, Protocol

import numpy as np

from consentry.signals.likeness import EMBEDDING_DIM

# HNSW parameters: recall@1 against exact search is measured at 1M faces by
# bench/bench_likeness.py (docs/likeness.md has the figures).
CONNECTIVITY: Final = 16
EXPANSION_ADD: Final = 40
EXPANSION_SEARCH: Final = 64


@dataclass(frozen=True)
class Neighbour:
    key: int  # likeness_faces.id
    distance: float  # Euclidean


class FaceIndex(Protocol):
    """What the registry needs from a vector index."""

    def add(self, keys: np.ndarray, vectors: np.ndarray) -> None: ...

    def remove(self, keys: np.ndarray) -> None: ...

    def nearest(self, vector: np.ndarray, count: int) -> list[Neighbour]: ...

    def __len__(self) -> int: ...


class UsearchFaceIndex:
    """``usearch`` HNSW over 128-d float32 vectors. Thread-safe."""

    def __init__(self, *, threads: int = 0) -> None:
        from usearch.index import Index

        self._index = Index(ndim=EMBEDDING_DIM, metric="l2sq", dtype="f32",
                            connectivity=CONNECTIVITY, expansion_add=EXPANSION_ADD,
                            expansion_search=EXPANSION_SEARCH)
        self._threads = threads
        self._lock = threading.RLock()  # usearch allows concurrent search, not with writes

    def add(self, keys: np.ndarray, vectors: np.ndarray) -> None:
        """Add (or replace) vectors under ``keys``."""
        keys = np.asarray(keys, dtype=np.uint64)
        if not len(keys):
            return
        with self._lock:
            present = keys[np.asarray(self._index.contains(keys), dtype=bool)] \
                if len(self._index) else keys[:0]
            if len(present):
                self._index.remove(present)
            self._index.add(keys, np.asarray(vectors, dtype=np.float32),
                            threads=self._threads)

    def remove(self, keys: np.ndarray) -> None:
        """Remove ``keys`` (absent keys are ignored)."""
        keys = np.asarray(keys, dtype=np.uint64)
        if not len(keys):
            return
        with self._lock:
            self._index.remove(keys)

    def nearest(self, vector: np.ndarray, count: int) -> list[Neighbour]:
        """Up to ``count`` nearest faces, closest first."""
        with self._lock:
            if len(self._index) == 0:
                return []
            found = self._index.search(np.asarray(vector, dtype=np.float32), count)
        return [Neighbour(int(k), float(np.sqrt(max(float(d), 0.0))))
                for k, d in zip(found.keys, found.distances, strict=True)]

    def __contains__(self, key: int) -> bool:
        with self._lock:
            return bool(self._index.contains(int(key)))

    def __len__(self) -> int:
        return len(self._index)
