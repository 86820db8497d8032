"""Gate throughput: text-only prompts per second and requests per second with a photo.

Goals (issue 2): 2,000 text-only prompts/s on one core; 15 requests/s with one
1024x1024 photo on a 2-core machine. Run: ``make bench`` or
``python bench/bench_gate.py [--seconds 5]``. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import io
import itertools
import json
import os
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from PIL import Image
from skimage import data

from consentry.config import Settings
from consentry.gate import Gate
from consentry.policy import evaluate, load_policy
from consentry.signals.prompt import analyse_prompt
from consentry.store import Database

ROOT = Path(__file__).resolve().parents[1]
SOURCES = [
    ROOT.parent / "shared" / "dev-eval" / "prompts_dev.jsonl",
    ROOT / "tests" / "signals" / "multilingual_cases.jsonl",
]


def prompts() -> list[str]:
    out = []
    for path in SOURCES:
        if path.exists():
            out += [
                json.loads(line)["prompt"]
                for line in path.read_text("utf-8").splitlines()
                if line.strip()
            ]
    return out


def photo_1024() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(data.astronaut()).resize((1024, 1024)).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def rate(fn, items, seconds: float) -> tuple[float, list[float]]:
    """Calls per second of ``fn`` over ``items`` (cycled) for about ``seconds``."""
    latencies, n, start = [], 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for item in items:
            t = time.perf_counter()
            fn(item)
            latencies.append(time.perf_counter() - t)
            n += 1
    return n / (time.perf_counter() - start), latencies


def concurrent_rate(fn, item, workers: int, seconds: float) -> float:
    deadline = time.perf_counter() + seconds

    def loop() -> int:
        n = 0
        while time.perf_counter() < deadline:
            fn(item)
            n += 1
        return n

    start = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        total = sum(pool.map(lambda _: loop(), range(workers)))
    return total / (time.perf_counter() - start)


def ms(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    texts = prompts()
    policy = load_policy()
    analyse_prompt("warm up")

    decide_rate, decide_lat = rate(
        lambda p: evaluate(analyse_prompt(p), [], policy), texts, args.seconds
    )
    with tempfile.TemporaryDirectory() as tmp:
        db = Database(f"sqlite:///{tmp}/bench.db")
        db.migrate()
        gate = Gate(db, settings=Settings(data_dir=Path(tmp)))
        gate.warm_up()
        # Many accounts, as on a platform: a single account would be suspended within three
        # refusals and then answered before analysis, which measures nothing.
        accounts = itertools.count()
        recorded_rate, recorded_lat = rate(
            lambda p: gate.check_generation(p, [], f"acct-{next(accounts) % 5000}"),
            texts, args.seconds,
        )
        photo = photo_1024()

        def one(_):
            return gate.check_generation("put her in a winter coat", [photo],
                                         f"acct-{next(accounts) % 5000}")

        serial_rate, serial_lat = rate(one, [None], args.seconds)
        workers = os.cpu_count() or 2
        parallel = concurrent_rate(one, None, workers, args.seconds)
        gate.close()

    print(f"prompts: {len(texts)} distinct (dev set + multilingual cases), cycled")
    print(f"{'measure':<52}{'rate/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'goal':>8}")
    print(
        f"{'text-only decision (analysis + policy), 1 core':<52}{decide_rate:>10.0f}"
        f"{ms(decide_lat, 50):>9.3f}{ms(decide_lat, 99):>9.3f}{'2000':>8}"
    )
    print(
        f"{'text-only check recorded in SQLite, 1 core':<52}{recorded_rate:>10.0f}"
        f"{ms(recorded_lat, 50):>9.3f}{ms(recorded_lat, 99):>9.3f}{'':>8}"
    )
    print(
        f"{'one 1024x1024 photo, 1 caller':<52}{serial_rate:>10.1f}"
        f"{ms(serial_lat, 50):>9.1f}{ms(serial_lat, 99):>9.1f}{'':>8}"
    )
    print(
        f"{f'one 1024x1024 photo, {workers} callers ({os.cpu_count()} cores)':<52}"
        f"{parallel:>10.1f}{'':>9}{'':>9}{'15':>8}"
    )


if __name__ == "__main__":
    main()
