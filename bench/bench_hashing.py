"""Cost of image hashing per image: decode, Meta's PDQ, ingest and query hash sets.

    .venv/bin/python bench/bench_hashing.py [--repeat 20]

Inputs are real photos encoded as an uploader would send them: a 512x512 PNG, a
640x427 JPEG, and a 12-megapixel JPEG (4000x3000, a phone photo; made by upscaling a
photo and adding sensor-like noise). Single thread. Prints median milliseconds;
asserts nothing.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image
from skimage import data
from sklearn.datasets import load_sample_images

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from consentry.signals.hashing import (
    decode_for_hashing,
    image_hashes,
    ingest_hashes,
    query_hashes,
)


def encode(image: Image.Image, fmt: str, **kwargs) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **kwargs)
    return out.getvalue()


def inputs() -> dict[str, bytes]:
    china = Image.fromarray(load_sample_images().images[0])
    rng = np.random.default_rng(0)
    big = china.resize((4000, 3000), Image.Resampling.BICUBIC)
    noisy = np.asarray(big).astype(np.int16) + rng.integers(-6, 7, (3000, 4000, 1))
    big = Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))
    return {
        "512x512 PNG": encode(Image.fromarray(data.astronaut()), "PNG"),
        "640x427 JPEG": encode(china, "JPEG", quality=90),
        "4000x3000 JPEG": encode(big, "JPEG", quality=90),
    }


def median_ms(fn: Callable[[], object], repeat: int) -> float:
    fn()  # warm
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    steps: dict[str, Callable[[bytes], object]] = {
        "decode": decode_for_hashing,
        "image_hashes": image_hashes,
        "ingest_hashes": ingest_hashes,
        "query_hashes": query_hashes,
    }
    print(f"{'input':16s}" + "".join(f"{s:>15s}" for s in steps) + "   (median ms, 1 thread)")
    for name, blob in inputs().items():
        cells = [median_ms(lambda f=f, b=blob: f(b), args.repeat) for f in steps.values()]
        print(f"{name:16s}" + "".join(f"{c:15.1f}" for c in cells))


if __name__ == "__main__":
    main()
