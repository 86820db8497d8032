"""The vector index behind the likeness registry: nearest enrolled faces to a query face.

A narrow interface (``FaceIndex``) with one implementation on ``faiss``, chosen by
measurement (bench/bench_likeness.py; docs/likeness.md): exact search (a flat L2 index)
while the registry is small, then an inverted-file index (IVF-Flat) whose cells are
trained on the faces enrolled. At 1M faces on 2 cores IVF-Flat built in 31 s and found
the enrolled face for every probe (recall@1 1.0 at ``NPROBE`` 32, p99 0.6 ms); usearch's
HNSW took 485 s to build and found 46% (p99 2.4 ms). Both faiss indexes delete removed
vectors outright (HNSW only marks them), so a withdrawal leaves no embedding in memory.
Distances are Euclidean, as dlib's threshold is stated; faiss works in squared L2.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Final, Protocol

import numpy as np

from consentry.signals.likeness import EMBEDDING_DIM

# Up to this many faces the search is exact (about 1 ms a query at 50k on one core).
EXACT_UP_TO: Final = 50_000
# IVF cells searched per query: recall@1 1.0 at 1M (8 cells: 0.997), p99 0.6 ms.
NPROBE: Final = 32
# The cells are trained again once the registry has grown this much since they were.
RETRAIN_GROWTH: Final = 4


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


class FaissFaceIndex:
    """Exact while small, IVF-Flat beyond ``EXACT_UP_TO`` faces. Thread-safe."""

    def __init__(self, *, exact_up_to: int = EXACT_UP_TO) -> None:
        import faiss

        self._faiss = faiss
        self._exact_up_to = exact_up_to
        self._index = faiss.IndexIDMap2(faiss.IndexFlatL2(EMBEDDING_DIM))
        self._trained_on = 0  # faces the IVF cells were trained on; 0: exact
        self._keys: set[int] = set()  # present keys: removal touches only these
        self._lock = threading.RLock()

    def add(self, keys: np.ndarray, vectors: np.ndarray) -> None:
        """Add (or replace) vectors under ``keys``."""
        keys = np.asarray(keys, dtype=np.int64)
        if not len(keys):
            return
        vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1, EMBEDDING_DIM)
        with self._lock:
            self._remove_present(keys)
            self._index.add_with_ids(vectors, keys)
            self._keys.update(int(k) for k in keys)
            size = len(self._keys)
            if (size > self._exact_up_to and not self._trained_on) or (
                    self._trained_on and size > RETRAIN_GROWTH * self._trained_on):
                self._train()

    def remove(self, keys: np.ndarray) -> None:
        """Remove ``keys``, their vectors deleted (absent keys are ignored)."""
        with self._lock:
            self._remove_present(np.asarray(keys, dtype=np.int64))

    def nearest(self, vector: np.ndarray, count: int) -> list[Neighbour]:
        """Up to ``count`` nearest faces, closest first."""
        query = np.ascontiguousarray(vector, dtype=np.float32).reshape(1, EMBEDDING_DIM)
        with self._lock:
            if not self._keys:
                return []
            distances, keys = self._index.search(query, count)
        return [Neighbour(int(k), math.sqrt(max(float(d), 0.0)))
                for k, d in zip(keys[0], distances[0], strict=True) if k >= 0]

    def __contains__(self, key: int) -> bool:
        with self._lock:
            return int(key) in self._keys

    def __len__(self) -> int:
        return len(self._keys)

    @property
    def exact(self) -> bool:
        """Whether searches are exhaustive (no IVF cells trained yet)."""
        return not self._trained_on

    def _remove_present(self, keys: np.ndarray) -> None:
        present = np.array([k for k in keys.tolist() if k in self._keys], dtype=np.int64)
        if len(present):
            self._index.remove_ids(present)  # type: ignore[arg-type]  # the wrapper takes ids
            self._keys.difference_update(present.tolist())

    def _train(self) -> None:
        """Move every vector into an IVF-Flat index with cells trained on them."""
        faiss = self._faiss
        keys, vectors = self._everything()
        size = len(keys)
        cells = max(64, 1 << round(math.log2(4 * math.sqrt(size))))  # ~4 sqrt(n)
        ivf = faiss.IndexIVFFlat(faiss.IndexFlatL2(EMBEDDING_DIM), EMBEDDING_DIM, cells)
        # Keys looked up in a hash table: removal by key, and vectors back for a retrain.
        ivf.set_direct_map_type(faiss.DirectMap.Hashtable)
        sample = np.random.default_rng(size).choice(size, min(size, 40 * cells),
                                                     replace=False)
        ivf.train(vectors[sample])
        ivf.nprobe = NPROBE
        ivf.add_with_ids(vectors, keys)
        self._index, self._trained_on = ivf, size

    def _everything(self) -> tuple[np.ndarray, np.ndarray]:
        """Every key and its vector, as the index holds them."""
        faiss = self._faiss
        if self.exact:
            keys = faiss.vector_to_array(self._index.id_map).astype(np.int64)
            flat = faiss.downcast_index(self._index.index)
            codes = faiss.vector_to_array(flat.codes)
            return keys, codes.view(np.float32).reshape(-1, EMBEDDING_DIM)
        keys = np.fromiter(self._keys, dtype=np.int64, count=len(self._keys))
        return keys, self._index.reconstruct_batch(keys)
