"""Banks, entries, events, matching and imports on every configured database backend."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import select

from consentry.banks.content import ContentIndex
from consentry.banks.exchanges import HashUpdate, UpdateBatch
from consentry.banks.matcher import BankMatcher
from consentry.banks.pdq_index import from_hex
from consentry.banks.registry import (
    BankError,
    BankNotFound,
    BankRegistry,
    DuplicateEntry,
    EntryHashes,
    ExchangeImport,
)
from consentry.store.models import BankEvent

RNG = np.random.default_rng(7)


def random_pdq() -> str:
    return RNG.integers(0, 256, 32, dtype=np.uint8).tobytes().hex()


def flip(hex_hash: str, bits: int) -> str:
    raw = np.frombuffer(bytes.fromhex(hex_hash), dtype=np.uint8).copy()
    bitarray = np.unpackbits(raw)
    bitarray[RNG.choice(256, bits, replace=False)] ^= 1
    return np.packbits(bitarray).tobytes().hex()


def q(*hexes: str) -> np.ndarray:
    return from_hex(list(hexes))


@pytest.fixture
def registry(db) -> BankRegistry:
    return BankRegistry(db)


def test_bank_names_kinds_and_categories_are_validated(registry):
    registry.create("stopncii", "block", "ncii")
    with pytest.raises(BankError, match="already exists"):
        registry.create("stopncii", "block", "ncii")
    with pytest.raises(BankError, match="bank name"):
        registry.create("Bad Name!", "block", "ncii")
    with pytest.raises(BankError, match="allow banks hold benign"):
        registry.create("benign", "allow", "csam")
    with pytest.raises(BankError):
        registry.create("x", "block", "cats")
    assert [b.name for b in registry.list()] == ["stopncii"]
    assert registry.get("stopncii").clause == "II-3"
    with pytest.raises(BankNotFound):
        registry.get("nope")


def test_malformed_hashes_are_refused_and_change_nothing(registry):
    registry.create("b", "block", "ncii")
    for bad in (EntryHashes(pdq="abc"), EntryHashes(md5="Z" * 32), EntryHashes()):
        with pytest.raises(BankError):
            registry.add_entry("b", bad)
    assert registry.get("b").active_entries == 0


def test_duplicate_entries_name_the_existing_one(registry):
    registry.create("b", "block", "ncii")
    first = registry.add_entry("b", EntryHashes(md5="a" * 32, pdq=random_pdq()))
    with pytest.raises(DuplicateEntry) as err:
        registry.add_entry("b", EntryHashes(md5="a" * 32))
    assert err.value.entry_id == first.id


def test_a_banked_hash_matches_at_once_and_stops_when_removed(registry, db):
    registry.create("victims", "block", "ncii")
    matcher = BankMatcher(db)
    h = random_pdq()
    entry = registry.add_entry("victims", EntryHashes(pdq=h))
    near = flip(h, 20)
    [match] = matcher.match(None, q(near))
    assert (match.bank, match.entry_id, match.signal, match.distance, match.clause) == \
        ("victims", entry.id, "pdq", 20, "II-3")
    assert matcher.match(None, q(flip(h, 40))) == []
    registry.set_entry_enabled(entry.id, False)
    assert matcher.match(None, q(near)) == []
    registry.set_entry_enabled(entry.id, True)
    assert matcher.match(None, q(near))
    registry.remove_entry(entry.id)
    assert matcher.match(None, q(near)) == []
    with pytest.raises(BankError, match="removed"):
        registry.set_entry_enabled(entry.id, True)


def test_disabling_a_bank_disables_its_entries_in_every_matcher(registry, db):
    registry.create("csam", "block", "csam")
    h = random_pdq()
    registry.add_entry("csam", EntryHashes(pdq=h, md5="b" * 32))
    one, two = BankMatcher(db), BankMatcher(db)  # two processes' worth of matchers
    assert one.match("b" * 32, None)[0].clause == "KM-1"
    registry.set_enabled("csam", False)
    assert one.match("b" * 32, q(h)) == [] and two.match("b" * 32, q(h)) == []
    registry.set_enabled("csam", True)
    assert len(two.match(None, q(h))) == 1


def test_allow_bank_suppresses_a_colliding_block_match(registry, db):
    registry.create("own", "block", "own_refusals")
    registry.create("benign", "allow", "benign")
    abuse, meme = random_pdq(), random_pdq()
    registry.add_entry("own", EntryHashes(pdq=abuse))
    registry.add_entry("benign", EntryHashes(pdq=meme))
    matcher = BankMatcher(db)
    # A query that is the benign image itself but also within 31 of the banked one:
    collider = flip(meme, 0)
    registry.add_entry("own", EntryHashes(pdq=flip(meme, 25)))
    kinds = [m.bank_kind for m in matcher.match(None, q(collider))]
    assert kinds == ["allow"]
    # The banked image itself is still blocked.
    assert [m.bank for m in matcher.match(None, q(abuse))] == ["own"]


def test_every_change_is_an_event(registry, db):
    registry.create("b", "block", "ncii", actor="alice")
    e = registry.add_entry("b", EntryHashes(pdq=random_pdq()), actor="alice")
    registry.set_entry_enabled(e.id, False, actor="bob")
    registry.remove_entry(e.id, actor="bob", reason="false positive")
    with db.transaction() as s:
        events = s.execute(select(BankEvent.action, BankEvent.actor)
                           .order_by(BankEvent.id)).all()
    assert events == [("bank_created", "alice"), ("entry_added", "alice"),
                      ("entry_disabled", "bob"), ("entry_removed", "bob")]


def test_matcher_index_persists_and_replays_only_newer_events(registry, db, tmp_path):
    registry.create("b", "block", "ncii")
    hashes = [random_pdq() for _ in range(50)]
    for h in hashes:
        registry.add_entry("b", EntryHashes(pdq=h))
    first = BankMatcher(db, index_dir=tmp_path / "idx")
    first.close()
    gone = registry.entries("b", limit=1)[0]
    registry.remove_entry(gone.id)
    added = registry.add_entry("b", EntryHashes(pdq=random_pdq()))
    restarted = BankMatcher(db, index_dir=tmp_path / "idx")
    assert restarted.size == 50  # 50 - 1 removed + 1 added
    assert restarted.match(None, q(hashes[0])) == []
    assert restarted.match(None, q(added.pdq))[0].entry_id == added.id


class ListExchange:
    """An exchange whose pages are given up front; fails after ``fail_after`` batches."""

    name = "stopncii"

    def __init__(self, pages: list[list[HashUpdate]], fail_after: int | None = None) -> None:
        self.pages, self.fail_after = pages, fail_after

    def fetch(self, checkpoint):
        start = int(checkpoint) if checkpoint else 0
        for n in range(start, len(self.pages)):
            if self.fail_after is not None and n >= self.fail_after:
                from consentry.banks.exchanges import ExchangeError
                raise ExchangeError("connection reset", exchange=self.name, kind="unavailable")
            yield UpdateBatch(tuple(self.pages[n]), str(n + 1), n + 1 < len(self.pages))


def test_import_resumes_from_its_checkpoint_after_a_failure(registry, db):
    from consentry.banks.exchanges import ExchangeError

    registry.create("stopncii", "block", "ncii")
    hashes = [random_pdq() for _ in range(6)]
    pages = [[HashUpdate("pdq", h, f"ImagePDQ:{h}", "add") for h in hashes[i:i + 2]]
             for i in range(0, 6, 2)]
    importer = ExchangeImport(registry)
    with pytest.raises(ExchangeError):
        importer.run("stopncii", ListExchange(pages, fail_after=2))
    assert registry.get("stopncii").active_entries == 4  # two whole batches, nothing half
    assert importer.checkpoint("stopncii", "stopncii") == "2"
    counts = importer.run("stopncii", ListExchange(pages))
    assert (counts.added, counts.batches) == (2, 1)
    assert registry.get("stopncii").active_entries == 6


def test_ncmec_style_records_merge_and_tombstones_remove(registry, db):
    registry.create("ncmec", "block", "csam")
    h = random_pdq()
    importer = ExchangeImport(registry)

    class Ncmec(ListExchange):
        name = "ncmec"

    importer.run("ncmec", Ncmec([[HashUpdate("pdq", h, "m-1", "add"),
                                  HashUpdate("md5", "c" * 32, "m-1", "add")]]))
    [entry] = registry.entries("ncmec")
    assert (entry.pdq, entry.md5, entry.clause) == (h, "c" * 32, "KM-1")
    importer.run("ncmec", Ncmec([[], [HashUpdate("pdq", "", "m-1", "remove")]]))
    assert BankMatcher(db).match("c" * 32, q(h)) == []


def test_content_index_finds_copies_and_sweeps(registry, db):
    content = ContentIndex(db)
    original = random_pdq()
    for n, (cid, h, md5) in enumerate([("c1", original, "1" * 32),
                                       ("c2", flip(original, 12), "2" * 32),
                                       ("c3", random_pdq(), "3" * 32),
                                       ("c4", random_pdq(), "1" * 32)]):
        content.register(cid, "upload", EntryHashes(md5=md5, pdq=h), account_id=f"u{n}")
    found = {r.content_id: r.distance for r in content.copies("1" * 32, q(original))}
    assert found == {"c1": 0, "c2": 12, "c4": 0}
    with pytest.raises(BankError, match="different bytes"):
        content.register("c1", "upload", EntryHashes(md5="9" * 32, pdq=original))
    assert content.mark_removed(["c1", "c2"]) == 2
    assert [r.content_id for r in content.copies(None, q(original))] == []


def test_sweep_finds_a_mirrored_copy_from_the_banked_hashes_alone(registry, db, photos):
    import io

    from PIL import Image, ImageOps

    from consentry.banks.services import entry_hashes
    from consentry.banks.sweep import sweep_entry
    from consentry.signals.hashing import fingerprint

    img = Image.open(io.BytesIO(photos["hopper"])).convert("RGB")
    buf = io.BytesIO()
    ImageOps.mirror(img).save(buf, "JPEG", quality=80)
    content = ContentIndex(db)
    content.register("mirrored", "upload", entry_hashes(fingerprint(buf.getvalue())))
    content.register("other", "upload", entry_hashes(fingerprint(photos["coffee"])))
    registry.create("victims", "block", "ncii")
    entry = registry.add_entry("victims", entry_hashes(fingerprint(photos["hopper"])))
    assert [r.content_id for r in sweep_entry(registry, content, entry)] == ["mirrored"]


def test_content_index_is_saved_and_a_restart_reads_only_newer_rows(db, tmp_path):
    where = tmp_path / "content-index"
    first = ContentIndex(db, index_dir=where)
    hashes = [random_pdq() for _ in range(3)]
    for n, h in enumerate(hashes):
        first.register(f"c{n}", "upload", EntryHashes(md5=f"{n}" * 32, pdq=h))
    assert first.sync() == 3
    first.close()
    assert (where / "watermark.json").exists()

    again = ContentIndex(db, index_dir=where)
    assert again.sync() == 0 and again.size == 3  # loaded from disk, nothing re-read
    again.register("c9", "upload", EntryHashes(md5="9" * 32, pdq=random_pdq()))
    assert [r.content_id for r in again.copies(None, q(hashes[1]))] == ["c1"]
    assert again.sync() == 0 and again.size == 4

    (where / "watermark.json").write_text('{"content_hash": 10000}')  # another database
    rebuilt = ContentIndex(db, index_dir=where)
    assert rebuilt.size == 4
    (where / "watermark.json").write_text("not json")
    assert ContentIndex(db, index_dir=where).size == 4
