"""Chunk layout and per-query probe radii for multi-index hashing (MIH).

The 256 bits are split into ``m`` contiguous chunks. Generalised pigeonhole: if
``d(q, h) <= r`` and per-chunk radii ``t_i >= -1`` satisfy ``sum(t_i + 1) == r + 1``,
then some chunk has ``d_i <= t_i`` (otherwise ``sum(d_i) >= r + 1``). Probing every key
within ``t_i`` of the query's chunk in table ``i`` is therefore exact.

Costs are estimated as probes (one directory lookup each) plus expected candidates
(one random 32-byte read each) under uniform bits; the layout and radii minimise that.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

BITS = 256
MIN_CHUNK_BITS = 16
MAX_CHUNK_BITS = 24
# A sequential 32-byte scan step costs about this fraction of a random probe/candidate.
SCAN_COST = 0.08
# Directory memory allowance: the larger of a fixed floor and this many bytes per hash.
DIR_FLOOR_BYTES = 16 * ((1 << 16) + 1) * 4
DIR_BYTES_PER_HASH = 16


@functools.cache
def _ball(nbits: int, radius: int) -> int:
    """Number of keys within ``radius`` of a key of ``nbits`` bits."""
    return sum(math.comb(nbits, k) for k in range(min(radius, nbits) + 1))


def _table_cost(nbits: int, radius: int, n: int) -> float:
    if radius < 0:
        return 0.0
    probes = _ball(nbits, radius)
    return probes * (1.0 + n / float(1 << nbits))


def split(m: int) -> list[int]:
    """Chunk widths for ``m`` chunks, wider chunks first (they get larger radii)."""
    base, extra = divmod(BITS, m)
    return [base + 1] * extra + [base] * (m - extra)


def plan_radii(nbits: tuple[int, ...], n: int, max_distance: int) -> tuple[list[int], float]:
    """Greedy allocation of ``max_distance + 1`` radius units to tables.

    Each table's cost is convex in its radius, so taking the cheapest marginal
    increment each time is optimal for the separable sum.
    """
    radii = [-1] * len(nbits)
    for _ in range(max_distance + 1):
        best, best_gain = -1, math.inf
        for i, b in enumerate(nbits):
            if radii[i] >= b:  # whole chunk already enumerated; more radius is moot
                continue
            gain = _table_cost(b, radii[i] + 1, n) - _table_cost(b, radii[i], n)
            if gain < best_gain:
                best, best_gain = i, gain
        if best < 0:
            break
        radii[best] += 1
    cost = sum(_table_cost(b, r, n) for b, r in zip(nbits, radii, strict=True))
    return radii, cost


@dataclass(frozen=True)
class Layout:
    nbits: tuple[int, ...]

    @property
    def starts(self) -> np.ndarray:
        return np.cumsum((0, *self.nbits[:-1]), dtype=np.int64)

    @property
    def dir_start(self) -> np.ndarray:
        sizes = [(1 << b) + 1 for b in self.nbits]
        return np.cumsum([0, *sizes[:-1]], dtype=np.int64)

    @property
    def dir_total(self) -> int:
        return sum((1 << b) + 1 for b in self.nbits)


def choose_layout(n: int, design_distance: int = 31) -> Layout:
    """Pick the number of chunks minimising the probe cost at ``design_distance``.

    Wider chunks mean fewer candidates per probe but more probes and a directory of
    ``2**b`` offsets per table, so the directory budget caps the width.
    """
    budget = max(DIR_FLOOR_BYTES, DIR_BYTES_PER_HASH * n)
    best: tuple[float, Layout] | None = None
    for m in range(math.ceil(BITS / MAX_CHUNK_BITS), BITS // MIN_CHUNK_BITS + 1):
        layout = Layout(tuple(split(m)))
        if layout.dir_total * 4 > budget:
            continue
        _, cost = plan_radii(layout.nbits, max(n, 1), design_distance)
        cost += 0.5 * m  # per-table fixed work (key extraction, loop overhead)
        if best is None or cost < best[0]:
            best = (cost, layout)
    assert best is not None  # m == 16 always fits the floor budget
    return best[1]


@functools.lru_cache(maxsize=256)
def probe_plan(nbits: tuple[int, ...], n: int, max_distance: int) -> tuple[np.ndarray, bool]:
    """Radii for one search; ``use_scan`` when a linear scan is estimated cheaper."""
    radii, cost = plan_radii(nbits, max(n, 1), max_distance)
    return np.asarray(radii, dtype=np.int64), cost > SCAN_COST * n
