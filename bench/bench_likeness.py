"""Likeness registry figures: match rates at the chosen threshold on the public face
photos that ship offline, and registry search time at 1M enrolled faces.

    .venv/bin/python bench/bench_likeness.py --size 1000000 --queries 2000

Part 1 (quality): two real people ship offline (skimage's astronaut, Eileen Collins;
matplotlib's Grace Hopper). Same-person pairs are transformed copies of each photo
(crops, resizes, JPEG, mirror, brightness, colour); different-person pairs are every
astronaut copy against every Hopper copy, plus the 100 25x25 LFW faces in
skimage.data.lfw_subset() (upscaled) against both. This set is SMALL: the rates are a
check of the threshold, not an estimate to quote; dlib states 99.38% on LFW at 0.6.

Part 2 (scale): random 128-d vectors scaled like dlib's descriptors (uniform on a
sphere: the hardest case for graph indexes), probes that are enrolled faces plus noise,
in the registry's index (faiss: IVF-Flat past 50k faces) and in the peer it was chosen
over, usearch HNSW (--peer-size, default the same size); build time, search p50/p99 one
query at a time, and recall@1 against exact search (faiss IndexFlatL2). Not a test:
timings depend on the machine.
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from dataclasses import dataclass
from itertools import combinations, product
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageEnhance, ImageOps

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from consentry.likeness.index import FaissFaceIndex  # noqa: E402
from consentry.likeness.registry import MATCH_DISTANCE  # noqa: E402
from consentry.signals.image import ImageAnalyser, decode_image  # noqa: E402
from consentry.signals.likeness import FaceEmbedder, face_distance  # noqa: E402


def _jpeg(img: Image.Image, quality: int) -> bytes:
    buf = io.BytesIO()
    img.convert("RGB").save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def variants(img: Image.Image) -> dict[str, bytes]:
    w, h = img.size
    return {
        "original": _jpeg(img, 92),
        "mirror": _jpeg(ImageOps.mirror(img), 90),
        "dark": _jpeg(ImageEnhance.Brightness(img).enhance(0.7), 90),
        "bright": _jpeg(ImageEnhance.Brightness(img).enhance(1.3), 90),
        "grey": _jpeg(ImageOps.grayscale(img), 90),
        "jpeg40": _jpeg(img, 40),
        "half": _jpeg(img.resize((w // 2 + 80, h // 2 + 80)), 80),
        "crop": _jpeg(img.crop((w // 6, 0, w * 5 // 6, h * 2 // 3)), 85),
        "crop_up": _jpeg(img.crop((w // 5, 0, w * 4 // 5, h * 3 // 5)).resize((480, 480)), 70),
        "saturated": _jpeg(ImageEnhance.Color(img).enhance(1.6), 85),
    }


def people() -> dict[str, Image.Image]:
    import matplotlib.cbook
    from skimage import data

    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as fh:
        hopper = Image.open(io.BytesIO(fh.read())).convert("RGB")
    return {"astronaut": Image.fromarray(data.astronaut()), "hopper": hopper}


def quality() -> None:
    embedder, analyser = FaceEmbedder(), ImageAnalyser(workers=1)
    faces: dict[str, list[np.ndarray]] = {}
    missed = 0
    for person, img in people().items():
        for data in variants(img).values():
            decoded = decode_image(data)
            found = analyser.analyse(0, decoded).faces
            # The gate's path: the analysis's face boxes, the largest face is the person.
            if not found:
                missed += 1
                continue
            box = max((f.box for f in found), key=lambda b: (b[2] - b[0]) * (b[3] - b[1]))
            faces.setdefault(person, []).append(embedder.embed_boxes(decoded, (box,))[0].vector)
    from skimage import data as skdata

    lfw = []
    for small in skdata.lfw_subset()[:100]:
        grey = Image.fromarray((small * 255).astype(np.uint8)).resize((160, 160))
        decoded = decode_image(_jpeg(grey, 95))
        lfw.append(embedder.embed_boxes(decoded, ((5, 5, 155, 155),))[0].vector)
    same = [face_distance(a, b) for vs in faces.values() for a, b in combinations(vs, 2)]
    diff = [face_distance(a, b) for a, b in product(faces["astronaut"], faces["hopper"])]
    diff_lfw = [face_distance(a, b) for a, b in product(
        [v for vs in faces.values() for v in vs], lfw)]
    print(f"quality: {sum(len(v) for v in faces.values())} face images of 2 people "
          f"(transformed copies; {missed} copies had no face found), 100 LFW faces")
    print(f"threshold (Euclidean, dlib descriptor): {MATCH_DISTANCE}")
    for name, values, want in (("same person", same, True),
                               ("different people", diff, False),
                               ("vs LFW 25x25 faces", diff_lfw, False)):
        values_a = np.asarray(values)
        rate = float(np.mean(values_a <= MATCH_DISTANCE))
        label = "true-match rate" if want else "false-match rate"
        print(f"  {name:20s} pairs={len(values_a):5d} {label}={rate:.4f} "
              f"distance min/median/max={values_a.min():.3f}/{np.median(values_a):.3f}/"
              f"{values_a.max():.3f}")


def scale(size: int, peer_size: int, queries: int) -> None:
    for name, make, n in (("faiss IVF-Flat (the registry's index)", FaissFaceIndex, size),
                          ("usearch HNSW (peer)", _UsearchPeer, peer_size)):
        if not n:
            continue
        data, probe, truth = _faces(n, queries)
        index = make()
        started = time.perf_counter()
        index.add(np.arange(n, dtype=np.int64), data)
        built = time.perf_counter() - started
        timings, got = [], []
        for q in probe:
            t = time.perf_counter()
            hits = index.nearest(q, 1)
            timings.append(time.perf_counter() - t)
            got.append(hits[0].key if hits else -1)
        exact = _exact(data, probe)
        ms = np.asarray(timings) * 1000
        print(f"scale: {n:,} faces, {name}: build {built:.1f} s; search p50 "
              f"{np.percentile(ms, 50):.3f} ms, p99 {np.percentile(ms, 99):.3f} ms; "
              f"recall@1 vs exact {np.mean(np.asarray(got) == exact):.4f} "
              f"(the enrolled source: {np.mean(np.asarray(got) == truth):.4f}; "
              f"{queries} queries)", flush=True)


def _faces(n: int, queries: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(14)
    # dlib descriptors have a norm of about 1.4 (measured here on the photos above).
    data = rng.standard_normal((n, 128)).astype(np.float32)
    data *= 1.4 / np.linalg.norm(data, axis=1, keepdims=True)
    truth = rng.integers(0, n, queries)
    probe = data[truth] + rng.normal(0, 0.02, (queries, 128)).astype(np.float32)
    return data, probe, truth


class _UsearchPeer:
    """usearch HNSW as the registry first used it (connectivity 16, expansion 40/64)."""

    def __init__(self) -> None:
        from usearch.index import Index

        self._index = Index(ndim=128, metric="l2sq", dtype="f32", connectivity=16,
                            expansion_add=40, expansion_search=64)

    def add(self, keys: np.ndarray, vectors: np.ndarray) -> None:
        self._index.add(keys.astype(np.uint64), vectors)

    def nearest(self, vector: np.ndarray, count: int) -> list[Any]:
        found = self._index.search(vector, count)
        return [_Hit(int(k)) for k in found.keys]


@dataclass(frozen=True)
class _Hit:
    key: int


def _exact(data: np.ndarray, probe: np.ndarray) -> np.ndarray:
    import faiss

    flat = faiss.IndexFlatL2(128)
    flat.add(data)
    t = time.perf_counter()
    _, ids = flat.search(probe, 1)
    print(f"  exact search (faiss flat, batched): "
          f"{(time.perf_counter() - t) * 1000 / len(probe):.2f} ms a query")
    return ids[:, 0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--skip-quality", action="store_true")
    parser.add_argument("--peer-size", type=int, default=None,
                        help="faces for the usearch peer (default --size; 0: skip it)")
    args = parser.parse_args()
    if not args.skip_quality:
        quality()
    scale(args.size, args.size if args.peer_size is None else args.peer_size, args.queries)


if __name__ == "__main__":
    main()
