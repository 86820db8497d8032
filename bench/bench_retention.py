"""Retention on PostgreSQL: dropping a day's partition of allowed checks against deleting
the same number of rows in batches (what happens to checks from before partitioning, and
what happened to every check before). Issue 13: "large tables partitioned by time on
PostgreSQL, with retention". Prints figures; asserts nothing.

Both runs go through ``purge_allowed_checks`` (its idempotency keys timed apart), each
on ``--rows`` allowed checks of one past day (plus one refused check in twenty, which
stays), in a scratch schema. The rows
are written with SQL (``generate_series``), shaped like the gate's: the same columns,
a verdict of about 300 bytes, every check with an idempotency key.

Run: ``python bench/bench_retention.py [--rows 500000] [--url ...]``.
"""

from __future__ import annotations

import argparse
import os
import time
from datetime import UTC, datetime, timedelta

from rich.console import Console
from rich.table import Table
from scratch_db import scratch_postgres
from sqlalchemy import text

from consentry.store import Database
from consentry.store.partitions import ALLOWED_PREFIX, KEPT_PREFIX, ensure_partitions
from consentry.store.retention import purge_allowed_checks, purge_expired_keys

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
DAY = datetime(2026, 1, 10, tzinfo=UTC)
VERDICT = ('{"decision":"allow","category":"none","clause":"OK-1","reasons":[{"clause":'
           '"OK-1","text":"No policy concern found in the prompt or the images."}],'
           '"policy_version":"1.1.0","account":{"strikes":0,"suspended":false}}')


def load(db: Database, rows: int, *, partitioned: bool) -> float:
    """Write ``rows`` checks of DAY (ids of the partitioned layout or the legacy one) and
    their keys; seconds taken."""
    start_ms = int(DAY.timestamp() * 1000)
    step = 86_000_000 // rows  # spread over the day, inside its partition
    if partitioned:
        ident = ("CASE WHEN g % 20 = 0 THEN :kept ELSE :allowed END "
                 "|| lpad(to_hex(:ms + g * :step), 12, '0') || left(md5(g::text), 20)")
    else:
        ident = "'chk_' || md5(g::text)"
    t = time.perf_counter()
    with db.engine.begin() as conn:
        conn.execute(text("INSERT INTO accounts SELECT 'acct' || a, now() "
                          "FROM generate_series(0, 999) a ON CONFLICT DO NOTHING"))
        conn.execute(text(
            "INSERT INTO checks (id, kind, account_id, idempotency_key, created_at, decision, "
            "category, clause, policy_version, image_sha256, verdict, latency_ms, "
            "prompt_sha256, request_sha256) "
            f"SELECT {ident}, 'generation', 'acct' || (g % 1000), :tag || g, "
            "to_timestamp((:ms + g * :step) / 1000.0), "
            "CASE WHEN g % 20 = 0 THEN 'block' ELSE 'allow' END, 'none', 'OK-1', '1.1.0', "
            "'[]', CAST(:verdict AS json), 2.5, md5(g::text || 'p') || md5(g::text || 'q'), "
            "md5(g::text || 'r') || md5(g::text || 's') FROM generate_series(1, :rows) g"),
            {"kept": KEPT_PREFIX, "allowed": ALLOWED_PREFIX, "ms": start_ms, "step": step,
             "rows": rows, "verdict": VERDICT, "tag": "p" if partitioned else "l"})
        conn.execute(text(
            "INSERT INTO check_keys SELECT account_id, idempotency_key, id, created_at "
            "FROM checks WHERE idempotency_key LIKE :tag || '%'"),
            {"tag": "p" if partitioned else "l"})
        conn.execute(text("ANALYZE checks"))
    return time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=500_000)
    parser.add_argument("--url", default=os.environ.get("CONSENTRY_BENCH_POSTGRES_URL",
                                                        DEFAULT_URL))
    args = parser.parse_args()
    console = Console()
    table = Table(title=f"retention of one day's allowed checks ({args.rows:,} checks, "
                        "1 in 20 refused and kept), PostgreSQL, "
                        f"{os.cpu_count()} cores")
    for column in ("layout", "allowed removed", "kept", "keys s", "checks s", "checks/s"):
        table.add_column(column, justify="right" if column != "layout" else "left")
    with scratch_postgres(args.url) as db:
        ensure_partitions(db, DAY, ahead_days=0)
        for partitioned, name in ((True, "day partition dropped"),
                                  (False, "legacy rows, batches of 5,000")):
            console.print(f"loading {name}: {load(db, args.rows, partitioned=partitioned):.1f} s")
            t = time.perf_counter()
            purge_expired_keys(db, before=DAY + timedelta(days=2))
            keys = time.perf_counter() - t
            t = time.perf_counter()
            removed = purge_allowed_checks(db, before=DAY + timedelta(days=2))
            took = time.perf_counter() - t
            with db.engine.connect() as conn:
                kept = conn.execute(text("SELECT count(*) FROM checks")).scalar_one()
            table.add_row(name, f"{removed:,}", f"{kept:,}", f"{keys:.2f}", f"{took:.2f}",
                          f"{removed / took:,.0f}")
            with db.engine.begin() as conn:  # the next run starts from the same state
                conn.execute(text("DELETE FROM check_keys"))
                conn.execute(text("DELETE FROM checks"))
    console.print(table)


if __name__ == "__main__":
    main()
