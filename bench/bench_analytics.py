"""The transparency report over N checks: PostgreSQL (the report as it runs today) vs the
analytics engine (ClickHouse embedded, chdb) after ``export_checks``, and the two together
(a report of the current month: the engine up to the export, PostgreSQL after).

    PYTHONPATH=. .venv/bin/python bench/bench_analytics.py --postgres-rows 1000000 \
        --chdb-rows 10000000 --postgres postgresql+psycopg://postgres@127.0.0.1:5432/index_test

PostgreSQL: N checks generated inside the database (``generate_series``, verdict JSON as
the gate writes it: reasons with spans, hash matches) in a scratch schema, then the whole
report (``transparency_report``) timed; then those checks exported to chdb (the export's
rate is printed) and the report timed there, and the figures compared. chdb at a larger
N: checks generated inside the engine with the same distribution (exporting them from
PostgreSQL would take longer than this machine's budget), report timed. Everything
generated is dropped at the end. Not a test: timings depend on the machine.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_content_engines import hardware  # noqa: E402
from scratch_db import scratch_postgres  # noqa: E402

from consentry.reporting.analytics import CHECKS_TABLE, create_tables, export_checks  # noqa: E402
from consentry.reporting.transparency import Period, transparency_report  # noqa: E402
from consentry.store.clickhouse import connect_clickhouse  # noqa: E402

START = datetime(2026, 11, 1, tzinfo=UTC)
DAYS = 30
PERIOD = Period(START, START + timedelta(days=DAYS))

# One month of checks: kind by i % 3, decision by i % 10 (5 allow, 4 block, 1 review),
# clause by i % 5, language by i % 4 for refused generations, a hash match on 60% of
# refused uploads; seconds spread over the month (and 5% just after it).
_PG_ROWS = """
INSERT INTO checks (id, kind, created_at, decision, category, clause, policy_version,
                    image_sha256, verdict, latency_ms)
SELECT 'chk-' || i, k,
       :start + ((i * 7919) % (CAST(:span AS bigint) * 21 / 20)) * interval '1 second', d,
       'intimate_image_abuse', CASE WHEN d = 'allow' THEN 'OK-1'
                                    ELSE (ARRAY['II-1','II-2','II-3','CS-1','SX-1'])[i % 5 + 1] END,
       '1.0', '[]'::json,
       json_build_object('id', 'chk-' || i, 'reasons', CASE
         WHEN k = 'upload' AND d = 'block' AND i % 5 < 3 THEN json_build_array(json_build_object(
              'code', 'hash_match', 'bank', (ARRAY['victims','ncmec-list'])[i % 2 + 1],
              'entry', i % 6 + 1, 'distance', 4))
         WHEN k = 'generation' AND d <> 'allow' THEN json_build_array(json_build_object(
              'code', 'sexualising_request', 'span', json_build_object(
              'start', 0, 'end', 6, 'language', (ARRAY['en','es','id','ja'])[i % 4 + 1])))
         WHEN d <> 'allow' THEN json_build_array(json_build_object('code', 'intimate_input_image'))
         ELSE '[]'::json END), 3.0
FROM (SELECT i, (ARRAY['generation','upload','output'])[i % 3 + 1] AS k,
             (ARRAY['allow','allow','allow','allow','allow','block','block','block','block',
                    'review'])[i % 10 + 1] AS d
      FROM generate_series(CAST(:lo AS bigint), CAST(:hi AS bigint)) AS i) AS g
"""

_CH_ROWS = """
INSERT INTO {db}.{table} (id, kind, decision, clause, language, first_code, first_bank,
                          first_entry, created_at)
SELECT concat('chk-', toString(i)), k, d,
       if(d = 'allow', 'OK-1', ['II-1','II-2','II-3','CS-1','SX-1'][i % 5 + 1]),
       if(k = 'generation' AND d != 'allow', ['en','es','id','ja'][i % 4 + 1], 'none'),
       multiIf(k = 'upload' AND d = 'block' AND i % 5 < 3, 'hash_match',
               k = 'generation' AND d != 'allow', 'sexualising_request',
               d != 'allow', 'intimate_input_image', NULL),
       if(k = 'upload' AND d = 'block' AND i % 5 < 3, ['victims','ncmec-list'][i % 2 + 1], NULL),
       if(k = 'upload' AND d = 'block' AND i % 5 < 3, toInt64(i % 6 + 1), NULL),
       toDateTime64('2026-11-01 00:00:00', 6, 'UTC')
           + toIntervalSecond((i * 7919) % intDiv({span} * 21, 20))
FROM (SELECT number AS i, ['generation','upload','output'][i % 3 + 1] AS k,
             ['allow','allow','allow','allow','allow','block','block','block','block',
              'review'][i % 10 + 1] AS d FROM numbers({n}))
"""


def timed(fn, repeats: int) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--postgres", default=os.environ.get("CONSENTRY_TEST_POSTGRES_URL"))
    parser.add_argument("--postgres-rows", type=int, default=1_000_000)
    parser.add_argument("--chdb-rows", type=int, default=10_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    span = DAYS * 86_400
    print(f"hardware: {hardware()}")
    lines = [f"{'engine':<22} {'checks':>12} {'load s':>8} {'report s':>9}  notes"]
    folder = tempfile.mkdtemp(prefix="bench-analytics-")
    ch = connect_clickhouse(f"chdb://{folder}", "bench")
    try:
        if args.postgres and args.postgres_rows:
            with scratch_postgres(args.postgres) as db:
                start = time.perf_counter()
                with db.transaction() as s:
                    for lo in range(0, args.postgres_rows, 1_000_000):
                        hi = min(lo + 1_000_000, args.postgres_rows) - 1
                        s.execute(text(_PG_ROWS), {"start": START, "span": span,
                                                   "lo": lo, "hi": hi})
                with db.transaction() as s:
                    s.execute(text("ANALYZE checks"))
                load = time.perf_counter() - start
                expected = transparency_report(db, PERIOD)
                pg_s = timed(lambda: transparency_report(db, PERIOD), args.repeats)
                lines.append(f"{'postgresql':<22} {args.postgres_rows:>12,} {load:>8.1f} "
                             f"{pg_s:>9.2f}  whole report, {args.repeats} runs, median")
                start = time.perf_counter()
                sent = export_checks(db, ch)
                export_s = time.perf_counter() - start
                ch.command(f"OPTIMIZE TABLE bench.{CHECKS_TABLE} FINAL")
                found = transparency_report(db, PERIOD, analytics=ch)
                same = (found.surfaces == expected.surfaces
                        and sorted(found.refusals, key=repr) == sorted(expected.refusals, key=repr)
                        and sorted(found.matches, key=repr) == sorted(expected.matches, key=repr))
                ch_s = timed(lambda: transparency_report(db, PERIOD, analytics=ch), args.repeats)
                lines.append(f"{'clickhouse (chdb)':<22} {sent:>12,} {export_s:>8.1f} "
                             f"{ch_s:>9.2f}  exported from PostgreSQL at "
                             f"{sent / export_s:,.0f} checks/s; same figures: "
                             f"{'yes' if same else 'NO'}")
                # A report of the current month: the export covers all but its last
                # minutes, which are counted on PostgreSQL and added.
                cut = PERIOD.end - timedelta(minutes=15)
                split = transparency_report(db, PERIOD, analytics=ch, analytics_until=cut)
                same = (split.surfaces == expected.surfaces
                        and sorted(split.refusals, key=repr) == sorted(expected.refusals, key=repr)
                        and sorted(split.matches, key=repr) == sorted(expected.matches, key=repr))
                split_s = timed(lambda: transparency_report(
                    db, PERIOD, analytics=ch, analytics_until=cut), args.repeats)
                lines.append(f"{'chdb + postgresql':<22} {args.postgres_rows:>12,} {'-':>8} "
                             f"{split_s:>9.2f}  the engine up to the period's last 15 min, "
                             f"PostgreSQL after; same figures: {'yes' if same else 'NO'}")
                print("\n".join(lines), flush=True)
        if args.chdb_rows:
            ch.command(f"DROP TABLE IF EXISTS bench.{CHECKS_TABLE}")
            create_tables(ch)
            start = time.perf_counter()
            ch.command(_CH_ROWS.format(db="bench", table=CHECKS_TABLE, span=span,
                                       n=args.chdb_rows))
            ch.command(f"OPTIMIZE TABLE bench.{CHECKS_TABLE} FINAL")
            load = time.perf_counter() - start
            with scratch_postgres(args.postgres) if args.postgres else _no_db() as db:
                report = transparency_report(db, PERIOD, analytics=ch)
                ch_s = timed(lambda: transparency_report(db, PERIOD, analytics=ch),
                             args.repeats)
            attempts = sum(s.attempts for s in report.surfaces)
            lines.append(f"{'clickhouse (chdb)':<22} {args.chdb_rows:>12,} {load:>8.1f} "
                         f"{ch_s:>9.2f}  generated in the engine; {attempts:,} in the period")
    finally:
        ch.command("DROP DATABASE IF EXISTS bench")
        ch.close()
        shutil.rmtree(folder, ignore_errors=True)
    print()
    print("\n".join(lines))


def _no_db():  # type: ignore[no-untyped-def]
    from scratch_db import scratch_sqlite

    return scratch_sqlite()


if __name__ == "__main__":
    main()
