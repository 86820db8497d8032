"""Bank change to effect across replicas: two ``consentry serve`` processes share
PostgreSQL; a bank entry is added through one and the same image is checked as an upload
on the other until it is blocked. Prints p50/p99 over repeated changes (goal: p99 < 1 s).

    CONSENTRY_BENCH_POSTGRES_URL=postgresql+psycopg://postgres@127.0.0.1:5432/fleet_test \\
        python bench/bench_fleet.py [--changes 30]
"""

from __future__ import annotations

import argparse
import base64
import io
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import numpy as np
from PIL import Image
from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from server_process import ServerProcess  # noqa: E402

from consentry.access import Scope, create_api_key  # noqa: E402
from consentry.store import Database  # noqa: E402


def photo(seed: int) -> str:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(small).resize((256, 256), Image.Resampling.BICUBIC).save(buf, "JPEG")
    return base64.b64encode(buf.getvalue()).decode()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--changes", type=int, default=30)
    args = parser.parse_args()
    base = os.environ.get("CONSENTRY_BENCH_POSTGRES_URL") or os.environ.get(
        "CONSENTRY_TEST_POSTGRES_URL")
    if not base:
        sys.exit("set CONSENTRY_BENCH_POSTGRES_URL (a PostgreSQL database to use)")
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin_engine = create_engine(base)
    with admin_engine.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = f"{base}{'&' if '?' in base else '?'}options=-csearch_path%3D{schema}"
    tmp = Path(tempfile.mkdtemp(prefix="bench-fleet-"))
    db = Database(url)
    db.migrate()
    admin = {"Authorization": f"Bearer {create_api_key(db, 'ops', [Scope.BANKS])[1]}"}
    checker = {"Authorization": f"Bearer {create_api_key(db, 'pipe', [Scope.CHECK])[1]}"}
    env = {"PYTHONPATH": str(ROOT), "CONSENTRY_DATABASE_URL": url,
           "CONSENTRY_DATA_DIR": str(tmp / "data"), "CONSENTRY_JOBS": "procrastinate",
           "CONSENTRY_SECRET_KEY": "bench-fleet-secret-key-shared-by-every-process",
           "CONSENTRY_SEMANTIC_LAYER": "0"}
    writer = ServerProcess(env, tmp / "writer.log")
    reader = ServerProcess(env, tmp / "reader.log")
    try:
        writer.start(timeout_s=180)
        reader.start(timeout_s=180)
        client = httpx.Client(timeout=60)
        r = client.post(f"{writer.url}/v1/banks", headers=admin, json={
            "name": "victims", "kind": "block", "category": "ncii", "description": "bench"})
        r.raise_for_status()
        seconds, checks = [], []
        for i in range(args.changes):
            image = photo(1000 + i)

            def decision(image: str = image) -> str:
                r = client.post(f"{reader.url}/v1/check/upload", headers=checker,
                                json={"image": image})
                r.raise_for_status()
                return str(r.json()["decision"])

            assert decision() == "allow"  # warm: the reader has seen this image allowed
            r = client.post(f"{writer.url}/v1/banks/victims/entries", headers=admin,
                            json={"image": image})
            r.raise_for_status()
            committed = time.perf_counter()  # the writer answered: the change is committed
            n = 1
            while decision() != "block":
                n += 1
                if time.perf_counter() - committed > 30:
                    raise SystemExit(f"change {i}: not effective on the reader after 30 s")
            seconds.append(time.perf_counter() - committed)
            checks.append(n)
        q = statistics.quantiles(seconds, n=100, method="inclusive")
        print(f"bank change -> effect on another replica (PostgreSQL, {args.changes} changes, "
              f"{os.cpu_count()} cores): p50 {statistics.median(seconds) * 1000:.0f} ms, "
              f"p99 {q[98] * 1000:.0f} ms, max {max(seconds) * 1000:.0f} ms; checks until "
              f"blocked: max {max(checks)} (1 = the first check after the change)")
        print("the time includes one upload check on the reader (hashing + models), which is "
              "most of it: the index catches up before each match")
    finally:
        writer.stop()
        reader.stop()
        db.dispose()
        with admin_engine.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin_engine.dispose()


if __name__ == "__main__":
    main()
