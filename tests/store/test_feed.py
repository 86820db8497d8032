"""Catching up by id when ids commit out of order: a bank entry (or a registered image)
whose transaction began first but committed after a later one still reaches every
replica's index; ids of rolled-back inserts are let go after a while."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest
from postgres_schema import POSTGRES_URL

from consentry.banks.content_match import MemoryContentMatch
from consentry.banks.matcher import BankMatcher
from consentry.banks.pdq_index import from_hex
from consentry.banks.registry import BankRegistry, EntryHashes
from consentry.store.feed import IdGaps
from consentry.store.models import ContentHash, ContentItem


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_skipped_ids_are_awaited_until_found_or_too_old():
    clock = Clock()
    gaps = IdGaps(patience_s=60, clock=clock)
    gaps.saw(10, [11, 14, 15, 18])
    assert gaps.awaited() == [12, 13, 16, 17]
    gaps.found([13, 16])
    assert gaps.awaited() == [12, 17]
    clock.now = 61  # a rolled-back insert's id never appears: let go
    assert gaps.awaited() == []
    gaps.saw(18, [19, 20])  # no hole: nothing awaited
    assert gaps.awaited() == []


# Out-of-order commits need concurrent writers, which SQLite serialises.
pytestmark_pg = pytest.mark.skipif(
    not POSTGRES_URL, reason="ids commit out of order on PostgreSQL: set "
    "CONSENTRY_TEST_POSTGRES_URL")


def _hash(seed: int) -> str:
    return np.random.default_rng(seed).integers(0, 256, 32, dtype=np.uint8).tobytes().hex()


@pytestmark_pg
def test_a_bank_entry_committed_after_a_later_one_still_reaches_the_index(pg):
    registry = BankRegistry(pg)
    registry.create("victims", "block", "ncii")
    matcher = BankMatcher(pg)
    slow_hash, fast_hash = _hash(1), _hash(2)
    with pg.transaction() as s:  # begins first, takes the lower event id ...
        registry._add(s, registry._bank(s, "victims"), EntryHashes(pdq=slow_hash).validated(),
                      source="manual", external_id=None, clause=None, takedown_case=None,
                      details={}, actor="test", now=registry._clock())
        s.flush()
        registry.add_entry("victims", EntryHashes(pdq=fast_hash))  # ... commits second
        assert matcher.match(None, from_hex([fast_hash]))  # the replica moves past it
        assert matcher.match(None, from_hex([slow_hash])) == []  # not committed yet
    # Committed now, below the replica's watermark: found all the same.
    [match] = matcher.match(None, from_hex([slow_hash]))
    assert match.distance == 0


@pytestmark_pg
def test_a_registered_image_committed_late_is_still_found_by_the_content_index(pg):
    index = MemoryContentMatch(pg)

    def register(s, seed: int) -> str:
        item = ContentItem(content_id=f"post-{seed}", kind="upload", account_id="u1",
                           md5=f"{seed:032x}", sha256=f"{seed:064x}",
                           registered_at=datetime.now(UTC))
        s.add(item)
        s.flush()
        s.add(ContentHash(item_id=item.id, pdq=_hash(seed), variant="original"))
        s.flush()
        return _hash(seed)

    with pg.transaction() as slow:
        slow_hash = register(slow, 10)
        with pg.transaction() as fast:
            fast_hash = register(fast, 11)
        index.sync()
        assert index.find(None, from_hex([fast_hash]), 0)
    index.sync()
    assert index.find(None, from_hex([slow_hash]), 0)
