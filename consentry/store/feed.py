"""Catching up on an append-only table by id, as every replica does (bank events,
registered content), when ids may commit out of order.

On PostgreSQL a sequence hands an id out when a row is inserted, not when it commits: a
transaction that commits after a later one makes a lower id appear after a reader has
moved past it. A reader that only asks for ids above its high-water mark would miss that
row for ever (a bank entry that never reaches one replica's index). ``IdGaps`` remembers
the ids skipped over and has them asked for again until they appear, or until they are
old enough to be ids of rolled-back inserts (sequences never give an id back).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Final

log = logging.getLogger(__name__)

PATIENCE_S: Final = 120.0  # longer than any transaction that inserts into these tables
MAX_WAITING: Final = 10_000  # a wider hole is a bulk rollback, not transactions in flight


class IdGaps:
    def __init__(self, *, patience_s: float = PATIENCE_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.patience_s = patience_s
        self._clock = clock
        self._waiting: dict[int, float] = {}  # id -> when it was first skipped

    def saw(self, watermark: int, ids: Sequence[int]) -> None:
        """Rows with ``ids`` (ascending, all above ``watermark``) were read: every id in
        between that was not among them is awaited."""
        now, expected = self._clock(), watermark + 1
        for row_id in ids:
            hole = row_id - expected
            if 0 < hole <= MAX_WAITING - len(self._waiting):
                for missing in range(expected, row_id):
                    self._waiting.setdefault(missing, now)
            elif hole > 0:
                log.warning("ids %d to %d are missing; not awaiting so many", expected,
                            row_id - 1)
            expected = max(expected, row_id + 1)

    def awaited(self) -> list[int]:
        """The ids still worth asking for (those skipped too long ago are let go)."""
        cutoff = self._clock() - self.patience_s
        for row_id in [i for i, at in self._waiting.items() if at < cutoff]:
            del self._waiting[row_id]
        return sorted(self._waiting)

    def found(self, ids: Iterable[int]) -> None:
        for row_id in ids:
            self._waiting.pop(row_id, None)
