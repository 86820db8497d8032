"""The content index on ClickHouse (embedded chdb) finds exactly the copies the in-memory
index finds: the same items at the same distances, the edge of the match distance (31 in,
32 out) and identical MD5s included, for real photos and their copies."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import numpy as np
import pytest
from platform_content import variants

from consentry.banks.content import ContentIndex
from consentry.banks.content_match import ClickHouseContentMatch, MemoryContentMatch, pdq_words
from consentry.banks.pdq_index import from_hex
from consentry.banks.registry import BankRegistry, EntryHashes
from consentry.banks.services import BankServices, entry_hashes
from consentry.banks.sweep import copies_of, sweep_entry
from consentry.config import Settings
from consentry.errors import ConfigurationError
from consentry.signals.hashing import fingerprint
from consentry.store.clickhouse import ClickHouse, connect_clickhouse

pytest.importorskip("chdb")

RNG = np.random.default_rng(13)


@pytest.fixture
def engine(clickhouse_url: str) -> Iterator[ClickHouse]:
    handle = connect_clickhouse(clickhouse_url, f"t_{uuid.uuid4().hex[:12]}")
    yield handle
    handle.command(f"DROP DATABASE IF EXISTS {handle.database}")
    handle.close()


def at_distance(hex_hash: str, bits: int) -> str:
    raw = np.unpackbits(np.frombuffer(bytes.fromhex(hex_hash), dtype=np.uint8))
    raw[RNG.choice(256, bits, replace=False)] ^= 1
    return np.packbits(raw).tobytes().hex()


def found(content: ContentIndex, md5: str | None, queries: np.ndarray | None,
          **kw: object) -> list[tuple[str, int | None]]:
    return [(r.content_id, r.distance) for r in content.copies(md5, queries, **kw)]  # type: ignore[arg-type]


def test_both_backends_find_the_same_copies_edges_and_md5s_included(db, engine, photos):
    memory = ContentIndex(db)
    clickhouse = ContentIndex(db, match=ClickHouseContentMatch(db, engine))
    original = fingerprint(photos["hopper"])
    memory.register("hopper", "upload", entry_hashes(original), account_id="u1")
    for name, copy in variants(photos["hopper"]).items():
        memory.register(f"hopper-{name}", "upload", entry_hashes(fingerprint(copy)))
    for name in ("astronaut", "coffee", "china", "flower"):
        memory.register(name, "upload", entry_hashes(fingerprint(photos[name])))
    anchor = original.hashes.pdq.hex if original.hashes.pdq else ""
    for bits in (0, 1, 30, 31, 32, 33, 64):
        memory.register(f"at-{bits}", "output", EntryHashes(md5=f"{bits:032x}",
                                                            pdq=at_distance(anchor, bits)))
    memory.register("same-bytes", "upload", EntryHashes(md5=original.hashes.md5))
    memory.register("same-bytes-other-hash", "upload",
                    EntryHashes(md5=original.hashes.md5, pdq=at_distance(anchor, 100)))
    memory.mark_removed(["hopper-resized"])

    assert clickhouse.sync() == memory.sync() > 40
    assert clickhouse.size == memory.size > 40  # the items' crops and variants
    queries = from_hex([anchor])
    exact = found(memory, None, queries)
    assert ("at-31", 31) in exact and "at-32" not in dict(exact)
    assert found(clickhouse, None, queries) == exact
    for max_distance in (0, 31, 32, 64):
        assert (found(clickhouse, original.hashes.md5, queries, max_distance=max_distance)
                == found(memory, original.hashes.md5, queries, max_distance=max_distance))
    with_md5 = dict(found(memory, original.hashes.md5, None))
    assert with_md5 == {"hopper": 0, "same-bytes": 0, "same-bytes-other-hash": 0}
    assert dict(found(clickhouse, original.hashes.md5, None)) == with_md5

    # The sweep of a bank entry (the stored hashes, their estimated rotations and mirrors)
    registry = BankRegistry(db)
    registry.create("victims", "block", "ncii")
    entry = registry.add_entry("victims", entry_hashes(original))
    swept = sweep_entry(registry, memory, entry, include_removed=True)
    assert {r.content_id for r in swept} >= {"hopper", "hopper-reencoded", "hopper-resized",
                                             "hopper-mirrored", "same-bytes", "at-31"}
    assert sweep_entry(registry, clickhouse, entry, include_removed=True) == swept
    assert sweep_entry(registry, clickhouse, entry) == sweep_entry(registry, memory, entry)
    other = entry_hashes(fingerprint(photos["coffee"]))
    assert copies_of(clickhouse, other) == copies_of(memory, other)


def test_random_hashes_agree_at_every_distance(db, engine):
    """Many hashes at known distances of a few queries, scanned in one batch."""
    memory = ContentIndex(db, match=MemoryContentMatch(db))
    centres = [RNG.integers(0, 256, 32, dtype=np.uint8).tobytes().hex() for _ in range(3)]
    for i in range(300):
        memory.register(f"c{i}", "upload", EntryHashes(
            md5=f"{i % 7:032x}", pdq=at_distance(centres[i % 3], int(RNG.integers(0, 48)))))
    clickhouse = ContentIndex(db, match=ClickHouseContentMatch(db, engine))
    queries = from_hex(centres)
    for max_distance in (31, 40):
        expected = found(memory, f"{3:032x}", queries, max_distance=max_distance)
        assert len(expected) > 50
        assert found(clickhouse, f"{3:032x}", queries, max_distance=max_distance) == expected


def test_two_replicas_copying_the_same_rows_change_no_answer(db, engine):
    content = ContentIndex(db)
    h = RNG.integers(0, 256, 32, dtype=np.uint8).tobytes().hex()
    content.register("a", "upload", EntryHashes(md5="a" * 32, pdq=h))
    first = ClickHouseContentMatch(db, engine)
    second = ClickHouseContentMatch(db, engine)  # started before either copied
    assert first.sync() == 1 and second.sync() == 1  # both copy row 1
    assert first.find("a" * 32, from_hex([h]), 31) == {1: 0}
    assert first.size == 1
    content.register("b", "upload", EntryHashes(md5="b" * 32, pdq=at_distance(h, 5)))
    assert second.find(None, from_hex([h]), 31) == {1: 0}  # not synced yet
    assert second.sync() == 1 and second.find(None, from_hex([h]), 31) == {1: 0, 2: 5}
    restarted = ClickHouseContentMatch(db, engine)  # resumes from what the engine holds
    assert restarted.sync() == 0 and restarted.size == 2


def test_words_keep_hamming_distances():
    a, b = RNG.integers(0, 256, (2, 32), dtype=np.uint8)
    bits = int(np.unpackbits(a ^ b).sum())
    words = pdq_words(np.stack([a, b]))
    assert sum(bin(int(x) ^ int(y)).count("1") for x, y in zip(*words, strict=True)) == bits


def test_the_backend_is_chosen_by_configuration(db, chdb_path, monkeypatch):
    monkeypatch.setenv("CONSENTRY_CONTENT_INDEX", "clickhouse")
    monkeypatch.delenv("CONSENTRY_CLICKHOUSE_URL", raising=False)
    with pytest.raises(ConfigurationError, match="CONSENTRY_CLICKHOUSE_URL"):
        Settings.from_env()
    monkeypatch.setenv("CONSENTRY_CONTENT_INDEX", "redis")
    with pytest.raises(ConfigurationError, match="memory or clickhouse"):
        Settings.from_env()
    database = f"t_{uuid.uuid4().hex[:12]}"
    monkeypatch.setenv("CONSENTRY_CONTENT_INDEX", "clickhouse")
    monkeypatch.setenv("CONSENTRY_CLICKHOUSE_URL", f"chdb://{chdb_path}")
    monkeypatch.setenv("CONSENTRY_CLICKHOUSE_DATABASE", database)
    banks = BankServices.open(db, settings=Settings.from_env())
    try:
        assert isinstance(banks.content.match, ClickHouseContentMatch)
        assert banks.content.match.engine.database == database
    finally:
        banks.content.match.engine.command(f"DROP DATABASE {database}")
        banks.close()
    assert isinstance(BankServices.open(db).content.match, MemoryContentMatch)
