"""Which engine holds the content index past one machine's memory: an exact Hamming sweep
of one new bank entry (distance <= 31, policy clause II-3) against N registered items.

    PYTHONPATH=. .venv/bin/python bench/bench_content_engines.py --sizes 1000000,10000000 \
        --postgres postgresql+psycopg://postgres@127.0.0.1:5432/index_test

Engines, all on the same hashes:

* ``clickhouse (chdb)``: ClickHouse embedded in this process, the table and SQL the
  ``clickhouse`` content index backend uses (four UInt64 columns, ``bitCount(bitXor)``);
  a ClickHouse cluster runs the same SQL over shards.
* ``postgresql``: four ``bigint`` columns, ``bit_count((h # q)::bit(64))``, a parallel
  sequential scan (the database Consentry already uses; scales out only by sharding).
* ``faiss flat``: FAISS ``IndexBinaryFlat.range_search`` in this process's memory (exact;
  a reference, it does not scale past one machine).
* ``pdq index (memory)``: Consentry's in-memory multi-index hashing index, the embedded
  default (a reference, one machine's memory).

Two queries: ``1 hash`` (one PDQ hash) and ``entry sweep``: what a bank entry sweeps
with, its 6 stored hashes (whole image and crops) in their 8 estimated orientations = 48
query hashes, as ``consentry.banks.sweep.copies_of`` asks. Planted neighbours at
distances 0..40 of each query check exactness (31 in, 32 out): every engine's answer is
compared with a brute-force scan. Not a test: timings depend on the machine; the
generated data is dropped at the end.
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from consentry.banks.content_match import hamming_scan_sql, pdq_words  # noqa: E402
from consentry.signals.hashing import pdq_dihedral_estimates  # noqa: E402

MAX_DISTANCE = 31
STORED_PER_ENTRY = 6
Answer = dict[int, int]  # item id -> smallest distance


def make_data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random hashes; one bank entry's 48 query hashes; planted neighbours of each query
    at every distance 0..40."""
    rng = np.random.default_rng(seed)
    hashes = rng.integers(0, 256, (n, 32), dtype=np.uint8)
    stored = rng.integers(0, 256, (STORED_PER_ENTRY, 32), dtype=np.uint8)
    queries = pdq_dihedral_estimates(stored)
    rows = rng.choice(n, size=len(queries) * 41, replace=False)
    for i, query in enumerate(queries):
        for distance in range(41):
            bits = np.unpackbits(query)
            bits[rng.choice(256, distance, replace=False)] ^= 1
            hashes[rows[i * 41 + distance]] = np.packbits(bits)
    return np.arange(1, n + 1, dtype=np.int64), hashes, queries


def brute_force(hashes: np.ndarray, queries: np.ndarray) -> Answer:
    words = pdq_words(hashes)
    best: Answer = {}
    for q in pdq_words(queries):
        d = sum(np.bitwise_count(words[:, i] ^ q[i]).astype(np.int32) for i in range(4))
        for row in np.flatnonzero(d <= MAX_DISTANCE):
            best[int(row) + 1] = min(int(d[row]), best.get(int(row) + 1, 257))
    return best


def timed(run: Callable[[], Answer], repeats: int, *, warm: bool = True
          ) -> tuple[float, Answer]:
    if warm:
        run()
    times, answer = [], {}
    for _ in range(repeats):
        start = time.perf_counter()
        answer = run()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), answer


class Chdb:
    name = "clickhouse (chdb)"

    def __init__(self, ids: np.ndarray, hashes: np.ndarray) -> None:
        from consentry.store.clickhouse import connect_clickhouse

        self.folder = tempfile.mkdtemp(prefix="bench-chdb-")
        self.ch = connect_clickhouse(f"chdb://{self.folder}", "bench")
        self.ch.command("CREATE TABLE bench.content_hashes (row_id UInt64, item_id UInt64, "
                        "h0 UInt64, h1 UInt64, h2 UInt64, h3 UInt64) "
                        "ENGINE = ReplacingMergeTree ORDER BY row_id")
        start = time.perf_counter()
        words = pdq_words(hashes)
        for lo in range(0, len(ids), 2_000_000):
            sl = slice(lo, lo + 2_000_000)
            self.ch.insert("content_hashes", {
                "row_id": ids[sl].astype(np.uint64), "item_id": ids[sl].astype(np.uint64),
                **{f"h{i}": words[sl, i] for i in range(4)}})
        self.ch.command("OPTIMIZE TABLE bench.content_hashes FINAL")
        self.load_s = time.perf_counter() - start
        [(size,)] = self.ch.rows("SELECT sum(bytes_on_disk) FROM system.parts WHERE "
                                 "database = 'bench' AND table = 'content_hashes' AND active")
        self.bytes = int(size)

    def search(self, queries: np.ndarray) -> Answer:
        sql = hamming_scan_sql("bench.content_hashes", queries, MAX_DISTANCE)
        return {int(i): int(d) for i, d in self.ch.rows(sql)}

    def close(self) -> None:
        self.ch.close()
        shutil.rmtree(self.folder, ignore_errors=True)


class Postgres:
    name = "postgresql"

    def __init__(self, url: str, ids: np.ndarray, hashes: np.ndarray) -> None:
        import psycopg

        self.conn = psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"),
                                    autocommit=True)
        self.conn.execute("DROP TABLE IF EXISTS bench_content_hashes")
        self.conn.execute("CREATE UNLOGGED TABLE bench_content_hashes (item_id bigint, "
                          "h0 bigint, h1 bigint, h2 bigint, h3 bigint)")
        start = time.perf_counter()
        words = pdq_words(hashes).view(np.int64)
        row = np.dtype([("n", ">i2"), ("l0", ">i4"), ("id", ">i8"),
                        *[(f, t) for i in range(4) for f, t in
                          ((f"l{i + 1}", ">i4"), (f"h{i}", ">i8"))]])
        with self.conn.cursor() as cur, cur.copy(
                "COPY bench_content_hashes FROM STDIN (FORMAT binary)") as copy:
            copy.write(b"PGCOPY\n\xff\r\n\x00" + b"\x00" * 8)
            for lo in range(0, len(ids), 1_000_000):
                part = np.empty(len(ids[lo:lo + 1_000_000]), dtype=row)
                part["n"], part["id"] = 5, ids[lo:lo + 1_000_000]
                for i in range(5):
                    part[f"l{i}"] = 8
                for i in range(4):
                    part[f"h{i}"] = words[lo:lo + 1_000_000, i]
                copy.write(part.tobytes())
            copy.write(b"\xff\xff")
        self.conn.execute("VACUUM ANALYZE bench_content_hashes")
        self.load_s = time.perf_counter() - start
        self.bytes = int(self.conn.execute(
            "SELECT pg_total_relation_size('bench_content_hashes')").fetchone()[0])
        self.version = str(self.conn.execute("SHOW server_version").fetchone()[0])
        self.workers = str(self.conn.execute(
            "SHOW max_parallel_workers_per_gather").fetchone()[0])

    def search(self, queries: np.ndarray) -> Answer:
        def one(q: np.ndarray) -> str:
            return " + ".join(f"bit_count((h{i} # ({int(w)})::bigint)::bit(64))"
                              for i, w in enumerate(pdq_words(q.reshape(1, 32)).view(np.int64)[0]))
        parts = [one(q) for q in queries]
        d = parts[0] if len(parts) == 1 else f"LEAST({', '.join(parts)})"
        rows = self.conn.execute(f"SELECT item_id, d FROM (SELECT item_id, {d} AS d FROM "
                                 f"bench_content_hashes) s WHERE d <= {MAX_DISTANCE}").fetchall()
        return {int(i): int(dist) for i, dist in rows}

    def close(self) -> None:
        self.conn.execute("DROP TABLE IF EXISTS bench_content_hashes")
        self.conn.close()


class FaissFlat:
    name = "faiss flat (memory)"

    def __init__(self, ids: np.ndarray, hashes: np.ndarray) -> None:
        import faiss

        start = time.perf_counter()
        self.index = faiss.IndexBinaryFlat(256)
        self.index.add(hashes)
        self.ids = ids
        self.load_s = time.perf_counter() - start
        self.bytes = hashes.nbytes

    def search(self, queries: np.ndarray) -> Answer:
        _, dist, rows = self.index.range_search(queries, MAX_DISTANCE + 1)  # strict <
        best: Answer = {}
        for row, d in zip(rows, dist, strict=True):
            best[int(self.ids[row])] = min(int(d), best.get(int(self.ids[row]), 257))
        return best

    def close(self) -> None:
        del self.index


class MemoryIndex:
    name = "pdq index (memory)"

    def __init__(self, ids: np.ndarray, hashes: np.ndarray) -> None:
        from consentry.banks.pdq_index import PDQIndex

        start = time.perf_counter()
        self.index = PDQIndex()
        self.index.add(ids, hashes)
        self.load_s = time.perf_counter() - start
        self.bytes = int(self.index.nbytes)

    def search(self, queries: np.ndarray) -> Answer:
        best: Answer = {}
        for found in self.index.search(queries, MAX_DISTANCE):
            for i, d in found:
                best[int(i)] = min(int(d), best.get(int(i), 257))
        return best

    def close(self) -> None:
        del self.index


def hardware() -> str:
    model = "?"
    with open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (f"{model}, {os.cpu_count()} cores, {memory:.0f} GiB RAM, "
            f"{platform.system()} {platform.release()}, Python {platform.python_version()}")


Engine = Chdb | Postgres | FaissFlat | MemoryIndex


def make_engine(key: str, args: argparse.Namespace, ids: np.ndarray,
                hashes: np.ndarray) -> Engine:
    if key == "chdb":
        return Chdb(ids, hashes)
    if key == "postgres":
        return Postgres(args.postgres, ids, hashes)
    if key == "faiss":
        return FaissFlat(ids, hashes)
    return MemoryIndex(ids, hashes)


def run_size(n: int, args: argparse.Namespace, wanted: list[str], out: io.StringIO) -> None:
    ids, hashes, queries = make_data(n, seed=n)
    one_query = queries[:1]
    truth_one = brute_force(hashes, one_query)
    truth_all = brute_force(hashes, queries)
    for key in ("chdb", "postgres", "faiss", "memory"):
        if key not in wanted or (key == "postgres" and (
                not args.postgres or n > args.postgres_max)):
            continue
        engine = make_engine(key, args, ids, hashes)
        try:
            one_ms, one = timed(lambda e=engine: e.search(one_query), args.repeats)
            # A slow engine's 48-hash sweep runs once, cold (minutes each at 10M).
            slow = one_ms * len(queries) > 10_000
            all_ms, found = timed(lambda e=engine, q=queries: e.search(q),
                                  1 if slow else args.repeats, warm=not slow)
            exact = one == truth_one and found == truth_all
            line = (f"{n:>12,} {engine.name:<22} {engine.load_s:>7.1f} "
                    f"{engine.bytes / 2**20:>7.0f} {one_ms:>10.1f} {all_ms:>20.1f} "
                    f"{len(found):>6} {'yes' if exact else 'NO':>6}")
            if isinstance(engine, Postgres):
                line += f"  (PostgreSQL {engine.version}, {engine.workers} parallel workers)"
            print(line, file=out)
            print(line, flush=True)
        finally:
            engine.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1000000")
    parser.add_argument("--postgres", default=os.environ.get("CONSENTRY_TEST_POSTGRES_URL"))
    parser.add_argument("--postgres-max", type=int, default=10_000_000,
                        help="largest size loaded into PostgreSQL")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--engines", default="chdb,postgres,faiss,memory")
    args = parser.parse_args()
    import chdb

    print(f"hardware: {hardware()}")
    print(f"chdb {chdb.__version__} (ClickHouse {chdb.query('SELECT version()', 'TSV')!s}"
          .strip() + ")")
    wanted = args.engines.split(",")
    out = io.StringIO()
    header = (f"{'items':>12} {'engine':<22} {'load s':>7} {'MB':>7} "
              f"{'1 hash ms':>10} {'entry sweep (48) ms':>20} {'found':>6} {'exact':>6}")
    print(header, file=out)
    for n in (int(s) for s in args.sizes.split(",")):
        run_size(n, args, wanted, out)
    print()
    print(out.getvalue())


if __name__ == "__main__":
    main()
