"""Gate throughput: text-only prompts per second and requests per second with a photo.

Goals (issue 2, kept by issue 10): 2,000 text-only decisions/s on one core, with the
semantic layer on the cascade; with a photo of a real person, the semantic layer adds at
most 15 ms at p95 on one core; 15 requests/s with one 1024x1024 photo on a 2-core
machine. Run: ``make bench`` or
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
from consentry.gate.judgement import judge_generation, needs_meaning
from consentry.policy import evaluate, load_policy
from consentry.signals.findings import FaceFinding, ImageFindings
from consentry.signals.prompt import analyse_prompt
from consentry.signals.semantic import default_matcher
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


def public_edits(limit: int = 2000) -> list[str]:
    """Edit instructions written by other people (../shared/dev-eval/public)."""
    path = ROOT.parent / "shared" / "dev-eval" / "public" / "ggip2p_ip2p_style_edits.jsonl"
    if not path.exists():
        return ["put her in a winter coat", "make her smile", "change the background"]
    rows = [json.loads(line)["prompt"] for line in path.read_text("utf-8").splitlines()
            if line.strip()]
    return rows[:limit]


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

    lexicon_rate, lexicon_lat = rate(
        lambda p: evaluate(analyse_prompt(p), [], policy), texts, args.seconds
    )
    matcher = default_matcher()
    decide_rate, decide_lat = rate(
        lambda p: judge_generation(p, [], policy, semantic=matcher), texts, args.seconds
    )
    sent = sum(judge_generation(p, [], policy, semantic=matcher).semantic_ran for p in texts)
    # The semantic layer's added time on requests with a photo of a real person: every
    # such request the lexicons did not refuse goes through it.
    person = [ImageFindings(0, 1024, 1024, (FaceFinding((300, 150, 550, 400), 33, 80, "f"),))]
    added: list[float] = []
    for p in public_edits():
        found = analyse_prompt(p)
        if evaluate(found, person, policy).decision != "block" and needs_meaning(found, person):
            t = time.perf_counter()
            judge_generation(p, person, policy, findings=found, semantic=matcher)
            spent = time.perf_counter() - t
            t = time.perf_counter()
            judge_generation(p, person, policy, findings=found)
            added.append(max(0.0, spent - (time.perf_counter() - t)))
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
        f"{'text-only decision, lexicons + policy, 1 core':<52}{lexicon_rate:>10.0f}"
        f"{ms(lexicon_lat, 50):>9.3f}{ms(lexicon_lat, 99):>9.3f}{'':>8}"
    )
    print(
        f"{'text-only decision, + semantic cascade, 1 core':<52}{decide_rate:>10.0f}"
        f"{ms(decide_lat, 50):>9.3f}{ms(decide_lat, 99):>9.3f}{'2000':>8}"
    )
    print(f"  ({sent} of {len(texts)} text-only prompts go through the semantic layer)")
    print(
        f"{'semantic layer added, photo of a person, 1 core':<52}{'':>10}"
        f"{ms(added, 50):>9.3f}{ms(added, 95):>9.3f}{'p95<15':>8}"
        f"   ({len(added)} public edit instructions; p95 in the p99 column)"
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
