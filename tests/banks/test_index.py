"""PDQIndex must return exactly what a brute-force scan returns, through updates,
compaction, persistence and concurrent use."""

from __future__ import annotations

import io
import threading

import numpy as np
import pytest

from consentry.banks import PDQIndex
from consentry.banks.pdq_index import _storage as storage
from consentry.banks.pdq_index import from_hex

Match = tuple[int, int]


# --- helpers ------------------------------------------------------------------------


def brute(
    ids: np.ndarray, hashes: np.ndarray, queries: np.ndarray, max_distance: int = 31
) -> list[list[Match]]:
    bits = np.unpackbits(hashes, axis=1).astype(bool)
    out = []
    for q in np.unpackbits(queries, axis=1).astype(bool):
        d = (bits != q).sum(axis=1)
        hit = np.nonzero(d <= max_distance)[0]
        out.append(
            sorted(zip(ids[hit].tolist(), d[hit].tolist(), strict=True), key=lambda x: (x[1], x[0]))
        )
    return out


def flip(rng: np.random.Generator, h: np.ndarray, k: int) -> np.ndarray:
    """``h`` with exactly ``k`` distinct bits flipped."""
    bits = np.unpackbits(h)
    bits[rng.choice(256, size=k, replace=False)] ^= 1
    return np.packbits(bits)


def random_ids(rng: np.random.Generator, n: int) -> np.ndarray:
    # Arbitrary int64 entry ids, negative and huge included.
    ids = rng.choice(np.iinfo(np.int64).max, size=n, replace=False).astype(np.int64)
    ids[: n // 10] *= -1
    return ids


def planted(rng: np.random.Generator, n: int, n_centres: int):
    """Random hashes plus, per centre, neighbours at every distance 0..40."""
    hashes = rng.integers(0, 256, (n, 32), dtype=np.uint8)
    centres = rng.integers(0, 256, (n_centres, 32), dtype=np.uint8)
    near = [flip(rng, c, k) for c in centres for k in range(41)]
    hashes = np.concatenate([hashes, np.stack(near)])
    return random_ids(rng, len(hashes)), hashes, centres


def build(ids: np.ndarray, hashes: np.ndarray, **kw) -> PDQIndex:
    index = PDQIndex(**kw)
    index.add(ids, hashes)
    index.compact()
    return index


def check(index: PDQIndex, ids, hashes, queries, max_distance: int = 31) -> None:
    assert index.search(queries, max_distance) == brute(ids, hashes, queries, max_distance)


# --- exactness ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def planted_set():
    rng = np.random.default_rng(1)
    ids, hashes, centres = planted(rng, 60_000, 40)
    misses = rng.integers(0, 256, (40, 32), dtype=np.uint8)
    queries = np.concatenate([centres, misses, hashes[:20]])
    return ids, hashes, queries, build(ids, hashes)


def test_planted_neighbours_match_brute_force(planted_set):
    ids, hashes, queries, index = planted_set
    got = index.search(queries)
    assert got == brute(ids, hashes, queries)
    # Every centre finds exactly its 32 planted neighbours at 0..31, none at 32..40.
    for row in got[:40]:
        assert [d for _, d in row] == list(range(32))


@pytest.mark.parametrize("max_distance", [0, 1, 7, 16, 30, 32, 40, 64, 100, 256])
def test_other_radii_match_brute_force(planted_set, max_distance):
    ids, hashes, queries, index = planted_set
    q = queries if max_distance < 64 else queries[:6]  # large radii return a lot
    check(index, ids, hashes, q, max_distance)


def test_clustered_nonuniform_hashes():
    rng = np.random.default_rng(2)
    # Biased bits (most bits rarely set), tight clusters, and many exact duplicates
    # (e.g. the hash of a blank frame) stress bucket skew; results must stay exact.
    biased = (rng.random((20_000, 256)) < 0.15).astype(np.uint8)
    biased[:, ::3] = rng.random((20_000, 86)) < 0.5
    centres = rng.integers(0, 256, (50, 32), dtype=np.uint8)
    clusters = np.stack(
        [flip(rng, centres[i % 50], int(rng.integers(0, 48))) for i in range(10_000)]
    )
    dupes = np.repeat(np.zeros((1, 32), np.uint8), 500, axis=0)
    hashes = np.concatenate([np.packbits(biased, axis=1), clusters, dupes])
    ids = random_ids(rng, len(hashes))
    index = build(ids, hashes)
    queries = np.concatenate(
        [centres, hashes[rng.choice(len(hashes), 60)], np.zeros((1, 32), np.uint8)]
    )
    check(index, ids, hashes, queries)
    check(index, ids, hashes, queries[:20], 48)


@pytest.fixture(scope="module")
def real_pdq_hashes() -> np.ndarray:
    """PDQ hashes of transformed skimage/sklearn sample images (real, non-uniform)."""
    pdqhash = pytest.importorskip("pdqhash")
    skdata = pytest.importorskip("skimage.data")
    transform = pytest.importorskip("skimage.transform")
    from PIL import Image
    from sklearn.datasets import load_sample_images

    names = [
        "astronaut",
        "camera",
        "coffee",
        "chelsea",
        "coins",
        "horse",
        "moon",
        "page",
        "rocket",
        "text",
        "clock",
        "hubble_deep_field",
        "immunohistochemistry",
        "retina",
        "cat",
        "brick",
        "grass",
        "gravel",
        "logo",
        "colorwheel",
    ]
    images = []
    for name in names:
        try:
            images.append(getattr(skdata, name)())
        except (OSError, ImportError, ValueError):  # needs a download: skip it
            continue
    images += list(load_sample_images().images)
    rng = np.random.default_rng(3)

    def rgb(img: np.ndarray) -> np.ndarray:
        img = np.asarray(img)
        if img.dtype != np.uint8:
            img = (np.clip(img, 0, 1) * 255).astype(np.uint8)
        if img.ndim == 2:
            img = np.stack([img] * 3, axis=-1)
        return np.ascontiguousarray(img[..., :3])

    def jpeg(img: np.ndarray, quality: int) -> np.ndarray:
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="JPEG", quality=quality)
        return np.asarray(Image.open(buf).convert("RGB"))

    hashes = []
    for img in map(rgb, images):
        h, w = img.shape[:2]
        variants = [
            img,
            img[:, ::-1],
            img[::-1],
            jpeg(img, 30),
            jpeg(img, 80),
            rgb(transform.rotate(img, 3)),
            rgb(transform.rotate(img, 10)),
            rgb(transform.rescale(img, 0.5, channel_axis=-1)),
            img[h // 20 : h - h // 20, w // 20 : w - w // 20],
            img[h // 8 :, : w - w // 8],
            np.clip(img.astype(int) + 40, 0, 255).astype(np.uint8),
            np.clip(img * rng.normal(1, 0.08, img.shape), 0, 255).astype(np.uint8),
            (255 - img),
        ]
        for v in variants:
            bits, _quality = pdqhash.compute(np.ascontiguousarray(v))
            hashes.append(np.packbits(bits.astype(np.uint8)))
        hashes += [np.packbits(b.astype(np.uint8)) for b in pdqhash.compute_dihedral(img)[0]]
    return np.stack(hashes)


def test_real_pdq_hashes_match_brute_force(real_pdq_hashes):
    rng = np.random.default_rng(4)
    real = real_pdq_hashes
    # Real hashes plus bit-flipped copies, so near neighbours exist at every distance.
    flipped = np.stack([flip(rng, real[i % len(real)], i % 41) for i in range(3000)])
    noise = rng.integers(0, 256, (20_000, 32), dtype=np.uint8)
    hashes = np.concatenate([real, flipped, noise])
    ids = random_ids(rng, len(hashes))
    index = build(ids, hashes)
    check(index, ids, hashes, real)
    check(index, ids, hashes, real[:50], 64)
    # Transformed copies of one image really are near each other: recall is not vacuous.
    assert sum(len(r) for r in index.search(real)) > 3 * len(real)


# --- updates --------------------------------------------------------------------------


def test_updates_are_visible_to_the_next_search():
    rng = np.random.default_rng(5)
    ids, hashes, centres = planted(rng, 5000, 5)
    index = build(ids, hashes)
    new = flip(rng, centres[0], 3)[None]
    index.add([123], new)  # goes to the delta segment
    assert (123, 3) in index.search(centres[:1])[0]
    index.remove([123])
    assert all(i != 123 for i, _ in index.search(centres[:1])[0])
    index.add([123], flip(rng, centres[0], 5)[None])  # re-add a removed delta id
    assert (123, 5) in index.search(centres[:1])[0]

    base_id = int(ids[-41])  # a planted neighbour at distance 0 in the base segment
    assert (base_id, 0) in index.search(centres[4:5])[0]
    assert index.remove([base_id]) == 1
    assert all(i != base_id for i, _ in index.search(centres[4:5])[0])
    index.add([base_id], centres[4:5])  # re-add a removed base id
    assert (base_id, 0) in index.search(centres[4:5])[0]
    assert base_id in index and len(index) == len(ids) + 1


def test_adding_an_existing_id_raises_unless_replace():
    rng = np.random.default_rng(6)
    ids, hashes, centres = planted(rng, 2000, 2)
    index = build(ids, hashes)
    index.add([7], centres[:1])
    before = index.search(centres)
    for dup in ([7], [int(ids[0])]):  # one in the delta, one in the base
        with pytest.raises(ValueError, match="already in the index"):
            index.add(dup, centres[1:2])
    assert index.search(centres) == before and len(index) == len(ids) + 1
    index.add([7, int(ids[0])], centres[[1, 1]], replace=True)
    got = index.search(centres[1:2])[0]
    assert (7, 0) in got and (int(ids[0]), 0) in got
    assert all(i != 7 for i, _ in index.search(centres[:1])[0])
    assert len(index) == len(ids) + 1


def test_remove_unknown_ids():
    index = build(np.arange(100), np.zeros((100, 32), np.uint8))
    with pytest.raises(KeyError, match="not in the index"):
        index.remove([5, 1000])
    assert len(index) == 100  # unchanged: 5 was not removed either
    assert index.remove([5, 1000], missing_ok=True) == 1
    assert len(index) == 99


def test_random_operations_against_a_model():
    """Interleaved adds/removes/replaces with tiny delta_limit (many compactions)."""
    rng = np.random.default_rng(7)
    index = PDQIndex(delta_limit=300)
    model: dict[int, np.ndarray] = {}
    centres = rng.integers(0, 256, (8, 32), dtype=np.uint8)
    next_id = 0
    for step in range(60):
        k = int(rng.integers(1, 120))
        new_ids = np.arange(next_id, next_id + k)
        next_id += k
        new = np.stack(
            [flip(rng, centres[rng.integers(8)], int(rng.integers(0, 45))) for _ in range(k)]
        )
        index.add(new_ids, new)
        model.update(zip(new_ids.tolist(), new, strict=True))
        if model and step % 2:
            gone = rng.choice(
                sorted(model), size=min(len(model), int(rng.integers(1, 60))), replace=False
            )
            assert index.remove(gone) == len(gone)
            for i in gone.tolist():
                del model[i]
        if model and step % 5 == 0:
            redo = rng.choice(sorted(model), size=min(len(model), 10), replace=False)
            again = np.stack([flip(rng, centres[0], int(rng.integers(0, 40))) for _ in redo])
            index.add(redo, again, replace=True)
            model.update(zip(redo.tolist(), again, strict=True))
        ids = np.fromiter(model, dtype=np.int64)
        hashes = np.stack(list(model.values())) if model else np.zeros((0, 32), np.uint8)
        assert len(index) == len(model)
        check(index, ids, hashes, centres)


# --- persistence ----------------------------------------------------------------------


def test_save_and_load(tmp_path):
    rng = np.random.default_rng(8)
    ids, hashes, centres = planted(rng, 20_000, 10)
    index = build(ids, hashes)
    index.add([1, 2], centres[:2])  # delta and a tombstone are folded in by save
    index.remove([int(ids[0])])
    expected = index.search(centres)
    index.save(tmp_path / "bank")
    for mmap in (True, False):
        loaded = PDQIndex.load(tmp_path / "bank", mmap=mmap)
        assert loaded.search(centres) == expected and len(loaded) == len(index)
    loaded.add([3], centres[2:3])  # loaded indexes accept changes (not persisted)
    assert (3, 0) in loaded.search(centres[2:3])[0]


def test_open_logs_changes_and_replays_them(tmp_path):
    rng = np.random.default_rng(9)
    ids, hashes, centres = planted(rng, 3000, 4)
    path = tmp_path / "bank"
    with PDQIndex.open(path, delta_limit=1000) as index:
        index.add(ids[:2000], hashes[:2000])  # > delta_limit: compacts to generation 2
        index.add(ids[2000:2500], hashes[2000:2500])  # stays in the log
        index.add(ids[2500:], hashes[2500:])
        index.remove(ids[:3])
        index.add([ids[0]], centres[:1])
        index.add([ids[0]], centres[1:2], replace=True)
        expected = index.search(centres)
    with PDQIndex.open(path) as reopened:
        assert reopened.search(centres) == expected
        assert len(reopened) == len(ids) - 2
        reopened.compact()
        assert reopened.search(centres) == expected
    # Only the published generation survives compaction.
    generation = storage.read_manifest(path)["generation"]
    assert sorted(p.name for p in path.iterdir()) == [
        f"base-{generation:06d}",
        f"log-{generation:06d}.bin",
        "manifest.json",
    ]
    assert PDQIndex.load(path).search(centres) == expected


def test_torn_log_tail_is_dropped(tmp_path):
    path = tmp_path / "bank"
    with PDQIndex.open(path) as index:
        index.add([1, 2], np.zeros((2, 32), np.uint8))
    log = storage.log_path(path, 1)
    good = log.stat().st_size
    with open(log, "ab") as fh:  # a crash in the middle of appending a record
        fh.write(
            storage.encode_record(storage.OP_ADD, 0, np.array([3]), np.ones((1, 32), np.uint8))[:-5]
        )
    with PDQIndex.open(path) as index:
        assert len(index) == 2 and 3 not in index
    assert log.stat().st_size == good


# --- validation -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ids", "hashes", "message"),
    [
        ([1], np.zeros((1, 32), np.int64), "dtype uint8"),
        ([1], np.zeros((1, 31), np.uint8), r"shape \(n, 32\)"),
        ([1], np.zeros(32, np.uint8), r"shape \(n, 32\)"),
        ([1], [[0] * 32], "numpy.ndarray"),
        ([1, 2], np.zeros((1, 32), np.uint8), "differ in length: 2 ids, 1 hashes"),
        ([3, 3], np.zeros((2, 32), np.uint8), r"duplicate ids within one call: \[3\]"),
        ([1.5], np.zeros((1, 32), np.uint8), "must be integers"),
        ([[1]], np.zeros((1, 32), np.uint8), "one-dimensional"),
        (np.array([2**63], np.uint64), np.zeros((1, 32), np.uint8), "fit in int64"),
    ],
)
def test_add_validation_leaves_index_unchanged(ids, hashes, message):
    index = build(np.arange(10), np.zeros((10, 32), np.uint8))
    with pytest.raises(ValueError, match=message):
        index.add(ids, hashes)
    assert len(index) == 10
    assert index.search(np.zeros((1, 32), np.uint8)) == [[(i, 0) for i in range(10)]]


@pytest.mark.parametrize("bad", [-1, 257, 31.0, True, "31", None])
def test_search_validation(bad):
    index = build(np.arange(3), np.zeros((3, 32), np.uint8))
    with pytest.raises(ValueError, match="max_distance"):
        index.search(np.zeros((1, 32), np.uint8), bad)
    with pytest.raises(ValueError, match="dtype uint8"):
        index.search(np.zeros((1, 32), np.float32))
    with pytest.raises(ValueError, match="duplicate ids"):
        index.remove([1, 1])
    assert len(index) == 3


def test_empty_index_and_empty_calls():
    index = PDQIndex()
    q = np.zeros((2, 32), np.uint8)
    assert index.search(q) == [[], []]
    assert index.search(np.zeros((0, 32), np.uint8)) == []
    index.add([], np.zeros((0, 32), np.uint8))
    assert index.remove([]) == 0 and len(index) == 0
    index.compact()
    assert index.search(q) == [[], []]


def test_from_hex():
    h = "f" * 32 + "0" * 32
    assert from_hex([h]).tolist() == [[255] * 16 + [0] * 16]
    with pytest.raises(ValueError, match="64 hex"):
        from_hex(["abc"])


# --- concurrency ----------------------------------------------------------------------


def test_concurrent_searches_with_a_writer():
    rng = np.random.default_rng(10)
    ids, hashes, centres = planted(rng, 20_000, 8)
    index = build(ids, hashes, delta_limit=500)
    expected = index.search(centres)
    churn = rng.integers(0, 256, (4000, 32), dtype=np.uint8)  # far from every centre
    errors: list[BaseException] = []
    stop = threading.Event()

    def reader() -> None:
        try:
            while not stop.is_set():
                assert index.search(centres) == expected
        except Exception as exc:  # noqa: BLE001 - re-raised in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        for i in range(0, 4000, 100):  # crosses delta_limit: compactions under load
            batch = np.arange(10**9 + i, 10**9 + i + 100)
            index.add(batch, churn[i : i + 100])
            if i % 300 == 0:
                index.remove(batch[:50])
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert not errors, errors[0]
    assert index.search(centres) == expected


def test_threads_give_the_same_results(planted_set):
    _ids, _hashes, queries, index = planted_set
    assert index.search(queries, threads=2) == index.search(queries)
    with pytest.raises(ValueError, match="threads"):
        index.search(queries, threads=0)


def test_bulk_add_path(tmp_path):
    """A batch at least delta_limit long builds the base directly; same semantics."""
    rng = np.random.default_rng(11)
    ids, hashes, centres = planted(rng, 3000, 3)
    with PDQIndex.open(tmp_path / "bank", delta_limit=100) as index:
        index.add(ids[:2000], hashes[:2000])
        with pytest.raises(ValueError, match="already in the index"):
            index.add(ids[1000:2500], hashes[1000:2500])
        assert len(index) == 2000
        index.add(ids[1000:], hashes[1000:], replace=True)  # bulk replace + new ids
        assert len(index) == len(ids)
        expected = brute(ids, hashes, centres)
        assert index.search(centres) == expected
    assert PDQIndex.load(tmp_path / "bank").search(centres) == expected
