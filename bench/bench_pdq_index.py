"""Benchmark consentry's PDQIndex against threatexchange's default PDQ index.

    .venv/bin/python bench/bench_pdq_index.py --sizes 1000000,10000000 --queries 1000

Each index is built and queried in its own subprocess so resident-memory deltas are
clean. Both see the same data: uniform random hashes with planted neighbours (at
distances 0..40 of half of the queries) and random misses. Ground truth is a
brute-force scan. Not a test: timings depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MAX_DISTANCE = 31
PLANTED_PER_QUERY = 4


def make_data(n: int, n_queries: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    hashes = rng.integers(0, 256, (n, 32), dtype=np.uint8)
    ids = rng.permutation(n).astype(np.int64) * 7 + 1_000_000  # arbitrary entry ids
    n_near = n_queries // 2
    rows = rng.choice(n, size=n_near * (1 + PLANTED_PER_QUERY), replace=False)
    queries = np.empty((n_queries, 32), dtype=np.uint8)

    def flipped(h: np.ndarray, k: int) -> np.ndarray:
        bits = np.unpackbits(h)
        bits[rng.choice(256, size=k, replace=False)] ^= 1
        return np.packbits(bits)

    for i in range(n_near):
        # Query: an indexed hash with 0..31 bits flipped; plus planted neighbours of
        # the query at 0..40 (those at 32..40 must not be returned).
        own = rows[i * (1 + PLANTED_PER_QUERY)]
        queries[i] = flipped(hashes[own], int(rng.integers(0, MAX_DISTANCE + 1)))
        for j in range(1, 1 + PLANTED_PER_QUERY):
            hashes[rows[i * (1 + PLANTED_PER_QUERY) + j]] = flipped(
                queries[i], int(rng.integers(0, 41))
            )
    queries[n_near:] = rng.integers(0, 256, (n_queries - n_near, 32), dtype=np.uint8)
    return ids, hashes, queries


def rss() -> int:
    import psutil

    return psutil.Process().memory_info().rss


# --- workers (run in a subprocess) ----------------------------------------------------


def worker_ours(ids: np.ndarray, hashes: np.ndarray, queries: np.ndarray, tmp: Path) -> dict:
    from consentry.banks import PDQIndex

    warm = PDQIndex()  # JIT-compile (or load the numba cache) before measuring memory
    warm.add(np.arange(3000), hashes[:3000])
    warm.search(queries[:2])
    warm.search(queries[:4], threads=2)
    del warm
    before = rss()
    t0 = time.perf_counter()
    index = PDQIndex()
    index.add(ids, hashes)  # larger than the delta limit: builds the base segment
    build = time.perf_counter() - t0
    mem = rss() - before
    index.search(queries[:10])
    lat = []
    for i in range(len(queries)):
        t = time.perf_counter()
        index.search(queries[i : i + 1])
        lat.append(time.perf_counter() - t)
    t = time.perf_counter()
    results = index.search(queries)
    batch = len(queries) / (time.perf_counter() - t)
    t = time.perf_counter()
    index.search(queries, threads=2)
    batch2 = len(queries) / (time.perf_counter() - t)
    t = time.perf_counter()
    index.save(tmp / "bank")
    save = time.perf_counter() - t
    t = time.perf_counter()
    loaded = PDQIndex.load(tmp / "bank")
    load = time.perf_counter() - t
    assert loaded.search(queries[:50]) == results[:50]
    return {
        "build_s": build,
        "rss_bytes": mem,
        "array_bytes": index.nbytes,
        "lat": lat,
        "batch_qps": batch,
        "batch2_qps": batch2,
        "save_s": save,
        "load_s": load,
        "results": [[i for i, _ in r] for r in results],
    }


def worker_te(ids: np.ndarray, hashes: np.ndarray, queries: np.ndarray, tmp: Path) -> dict:
    from threatexchange.signal_type.pdq.pdq_index import PDQIndex as TEIndex

    warm = TEIndex()
    warm.add_all((h.tobytes().hex(), 0) for h in hashes[:1000])
    warm.query(queries[0].tobytes().hex())
    del warm
    # Hex conversion (the API takes strings) is done before timing and before the
    # memory baseline, which favours threatexchange slightly.
    hexes = [h.hex() for h in map(bytes, hashes)]
    qhex = [bytes(q).hex() for q in queries]
    entries = list(zip(hexes, ids.tolist(), strict=True))
    before = rss()
    t0 = time.perf_counter()
    index = TEIndex()
    index.add_all(entries)
    build = time.perf_counter() - t0
    mem = rss() - before
    lat, results = [], []
    for q in qhex:
        t = time.perf_counter()
        matches = index.query(q)
        lat.append(time.perf_counter() - t)
        results.append([m.metadata for m in matches if m.similarity_info.distance <= 31])
    return {
        "build_s": build,
        "rss_bytes": mem,
        "array_bytes": None,
        "lat": lat,
        "batch_qps": None,
        "batch2_qps": None,
        "save_s": None,
        "load_s": None,
        "results": results,
    }


def run_worker(kind: str, data: Path, out: Path) -> None:
    ids = np.load(data / "ids.npy")
    hashes = np.load(data / "hashes.npy")
    queries = np.load(data / "queries.npy")
    fn = worker_ours if kind == "ours" else worker_te
    with tempfile.TemporaryDirectory(dir=data) as tmp:
        out.write_text(json.dumps(fn(ids, hashes, queries, Path(tmp))))


# --- driver ---------------------------------------------------------------------------


def ground_truth(hashes: np.ndarray, queries: np.ndarray, progress: Progress) -> list[set[int]]:
    """Brute-force scan (the index's linear-scan kernel, itself tested against numpy)."""
    from consentry.banks.pdq_index import _kernels as K

    words = hashes.view(np.uint64)
    task = progress.add_task("brute-force ground truth", total=len(queries))
    truth: list[set[int]] = []
    for lo in range(0, len(queries), 50):
        q = np.ascontiguousarray(queries[lo : lo + 50]).view(np.uint64)
        cap = 4096
        out = [np.empty(cap, np.int64) for _ in range(3)]
        count = K.search_scan(q, words, len(words), MAX_DISTANCE, np.zeros(0, np.uint8), *out)
        assert count <= cap
        found: list[set[int]] = [set() for _ in range(len(q))]
        for qi, row in zip(out[0][:count].tolist(), out[1][:count].tolist(), strict=True):
            found[qi].add(row)
        truth += found
        progress.advance(task, len(q))
    progress.remove_task(task)
    return truth


def spawn(kind: str, data: Path, progress: Progress, label: str) -> dict:
    out = data / f"{kind}.json"
    task = progress.add_task(label, total=None)
    proc = subprocess.Popen([sys.executable, __file__, "--worker", kind, str(data), str(out)])
    while proc.poll() is None:
        time.sleep(0.2)
        progress.refresh()
    progress.remove_task(task)
    if proc.returncode != 0:
        raise SystemExit(f"{kind} worker failed with exit code {proc.returncode}")
    return json.loads(out.read_text())


def summarise(res: dict, n: int, truth: list[set[int]], row_ids: np.ndarray) -> dict:
    lat = np.asarray(res["lat"]) * 1e3
    expected = [set(row_ids[list(t)].tolist()) for t in truth]
    got = [set(r) for r in res["results"]]
    hits = sum(len(g & e) for g, e in zip(got, expected, strict=True))
    total = sum(len(e) for e in expected)
    return {
        "build_s": res["build_s"],
        "bph_rss": res["rss_bytes"] / n,
        "bph_arrays": res["array_bytes"] / n if res["array_bytes"] else None,
        "p50": float(np.percentile(lat, 50)),
        "p99": float(np.percentile(lat, 99)),
        "qps": 1e3 / float(lat.mean()),
        "batch_qps": res["batch_qps"],
        "batch2_qps": res["batch2_qps"],
        "recall": hits / total if total else 1.0,
        "exact": got == expected,
        "save_s": res["save_s"],
        "load_s": res["load_s"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000000,10000000")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-te", action="store_true", help="only benchmark PDQIndex")
    parser.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        run_worker(args.worker[0], Path(args.worker[1]), Path(args.worker[2]))
        return

    console = Console(width=170)
    sizes = [int(s) for s in args.sizes.split(",")]
    rows: list[tuple[int, str, dict]] = []
    progress = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=console,
    )
    with progress, tempfile.TemporaryDirectory() as tmpdir:
        for n in sizes:
            data = Path(tmpdir) / str(n)
            data.mkdir()
            task = progress.add_task(f"{n:,}: generating data", total=None)
            ids, hashes, queries = make_data(n, args.queries, args.seed)
            for name, arr in (("ids", ids), ("hashes", hashes), ("queries", queries)):
                np.save(data / f"{name}.npy", arr)
            progress.remove_task(task)
            truth = ground_truth(hashes, queries, progress)
            del hashes
            kinds = ["ours"] if args.skip_te else ["ours", "te"]
            for kind in kinds:
                label = "consentry PDQIndex" if kind == "ours" else "threatexchange PDQIndex"
                res = spawn(kind, data, progress, f"{n:,}: {label} build + queries")
                rows.append((n, kind, summarise(res, n, truth, ids)))
                s = rows[-1][2]
                console.log(
                    f"{n:,} {kind}: build {s['build_s']:.1f}s, p50 {s['p50']:.3f} ms, "
                    f"p99 {s['p99']:.3f} ms, recall {s['recall']:.4f}"
                )
    print_table(console, rows, args.queries)


def print_table(console: Console, rows: list[tuple[int, str, dict]], n_queries: int) -> None:
    def f(v: float | None, fmt: str) -> str:
        return "-" if v is None else format(v, fmt)

    table = Table(title=f"PDQ index benchmark ({n_queries} queries, max_distance 31)")
    for col in (
        "hashes", "index", "build s", "B/hash RSS", "B/hash arrays", "p50 ms", "p99 ms",
        "qps 1 thread", "qps batch (1 / 2 thr)", "recall", "exact", "save / load s",
    ):  # fmt: skip
        table.add_column(col, justify="right")
    by_size: dict[int, dict[str, dict]] = {}
    for n, kind, s in rows:
        by_size.setdefault(n, {})[kind] = s
        table.add_row(
            f"{n:,}",
            "consentry" if kind == "ours" else "threatexchange",
            f(s["build_s"], ".1f"),
            f(s["bph_rss"], ".0f"),
            f(s["bph_arrays"], ".0f"),
            f(s["p50"], ".3f"),
            f(s["p99"], ".3f"),
            f(s["qps"], ",.0f"),
            "-" if s["batch_qps"] is None else f"{s['batch_qps']:,.0f} / {s['batch2_qps']:,.0f}",
            f(s["recall"], ".4f"),
            "yes" if s["exact"] else "NO",
            "-" if s["save_s"] is None else f"{s['save_s']:.2f} / {s['load_s']:.3f}",
        )
    for n, pair in by_size.items():
        if "ours" in pair and "te" in pair:
            o, t = pair["ours"], pair["te"]
            table.add_row(
                f"{n:,}",
                "ratio ours/TE",
                f(o["build_s"] / t["build_s"], ".3f"),
                f(o["bph_rss"] / t["bph_rss"], ".3f"),
                "",
                f(o["p50"] / t["p50"], ".3f"),
                f(o["p99"] / t["p99"], ".3f"),
                f"{o['qps'] / t['qps']:.1f}x",
                f"{o['batch_qps'] / t['qps']:.1f}x / {o['batch2_qps'] / t['qps']:.1f}x",
                "",
                "",
                "",
            )
    console.print(table)


if __name__ == "__main__":
    main()
