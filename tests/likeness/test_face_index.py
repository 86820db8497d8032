"""The face index: nearest faces exactly while the registry is small, through trained
IVF cells beyond; a removed face is gone (not only hidden), in either form."""

from __future__ import annotations

import numpy as np
import pytest

from consentry.likeness.index import FaissFaceIndex


def faces(n: int, seed: int = 1) -> np.ndarray:
    data = np.random.default_rng(seed).standard_normal((n, 128)).astype(np.float32)
    return data * (1.4 / np.linalg.norm(data, axis=1, keepdims=True))  # dlib-like norms


@pytest.mark.parametrize("size", [200, 6_000])  # exact; trained cells (past 5,000)
def test_every_enrolled_face_is_found_and_a_removed_one_is_gone(size):
    index = FaissFaceIndex(exact_up_to=5_000)
    data = faces(size)
    keys = np.arange(10, 10 + size, dtype=np.int64)
    index.add(keys, data)
    assert len(index) == size and index.exact == (size <= 5_000)
    probe = data + np.random.default_rng(2).normal(0, 0.02, data.shape).astype(np.float32)
    found = [index.nearest(p, 1)[0] for p in probe[:300]]
    assert [n.key for n in found] == keys[:300].tolist()
    assert all(n.distance < 0.4 for n in found)  # Euclidean, not squared

    index.remove(keys[:50])
    assert len(index) == size - 50 and 10 not in index
    assert all(n.key not in set(keys[:50].tolist()) for p in probe[:50]
               for n in index.nearest(p, 5))
    # Not hidden but deleted: the index holds no vector for them any more.
    held, _ = index._everything()
    assert not set(held.tolist()) & set(keys[:50].tolist())


def test_adding_a_key_again_replaces_its_vector():
    index = FaissFaceIndex()
    data = faces(3)
    index.add(np.array([1, 2, 3]), data)
    index.add(np.array([2]), data[0:1] * -1)
    assert len(index) == 3
    assert index.nearest(-data[0], 1)[0].key == 2
    assert index.nearest(data[1], 1)[0].distance > 1.0  # its old vector is gone


def test_an_empty_index_finds_nobody():
    index = FaissFaceIndex()
    assert index.nearest(faces(1)[0], 3) == []
    index.add(np.array([7]), faces(1))
    index.remove(np.array([7]))
    assert index.nearest(faces(1)[0], 3) == []
