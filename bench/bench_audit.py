"""The audit chain's cost. Goals (issue 11): appending a verdict's link costs under 0.5 ms
at p50 on SQLite and on PostgreSQL; ``audit verify`` over 1,000,000 links takes under
30 s. Prints figures; asserts nothing.

Append overhead: the same transaction as the gate writes it (one ``checks`` row) timed
without the chain's hook and then with it, in one process; the overhead is the
difference of the medians (and of the p95s). Verify: a chain of ``--links`` links is
written (hashes computed as the hook computes them), then verified end to end.

Run: ``python bench/bench_audit.py [--links 1000000] [--samples 2000] [--url ...]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from datetime import UTC, datetime

from rich.console import Console
from rich.table import Table
from scratch_db import scratch_postgres, scratch_sqlite
from sqlalchemy import insert, select, update

from consentry import audit
from consentry.audit.chain import canonical, link_hash
from consentry.audit.verify import verify
from consentry.store import Database
from consentry.store.models import AuditHead, AuditRecord, CheckRecord

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def verdict_ms(db: Database, samples: int, tag: str) -> list[float]:
    """Milliseconds per transaction that records one verdict."""
    verdict = {"reasons": [{"code": "sexualising_request", "detail": "x" * 60}] * 4,
               "explanation": "y" * 200}
    times = []
    for i in range(samples):
        t = time.perf_counter()
        with db.transaction() as s:
            s.add(CheckRecord(id=f"chk_{tag}_{i}", kind="generation",
                              created_at=datetime.now(UTC), decision="block",
                              category="intimate_image_abuse", clause="II-1",
                              policy_version="bench", image_sha256=["a" * 64],
                              verdict=verdict, latency_ms=3.2, prompt="put her in a bikini"))
        times.append((time.perf_counter() - t) * 1000)
    return times


def fill_chain(db: Database, links: int) -> float:
    """Write ``links`` links as the hook would; seconds taken."""
    t = time.perf_counter()
    with db.transaction() as s:
        head = s.execute(select(AuditHead.seq, AuditHead.hash)).one()
    prev, now, start = str(head.hash), datetime.now(UTC), int(head.seq) + 1
    batch: list[dict[str, object]] = []
    for seq in range(start, start + links):
        payload = canonical({"seq": seq, "at": now, "kind": "verdict.block",
                             "subject": f"chk_{seq}", "actor": "gate",
                             "body": {"table": "checks", "row": [f"chk_{seq}"], "op": "insert",
                                      "row_sha256": "b" * 64, "clause": "II-1"}})
        digest = link_hash(prev, payload)
        batch.append({"seq": seq, "at": now, "kind": "verdict.block", "subject": f"chk_{seq}",
                      "payload": payload, "prev_hash": prev, "hash": digest})
        prev = digest
        if len(batch) == 20_000:
            with db.transaction() as s:
                s.execute(insert(AuditRecord), batch)
            batch = []
    with db.transaction() as s:
        if batch:
            s.execute(insert(AuditRecord), batch)
        s.execute(update(AuditHead).where(AuditHead.id == 1).values(seq=start + links - 1,
                                                                    hash=prev))
    return time.perf_counter() - t


def p(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100)[q - 1] if len(values) > 1 else values[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--links", type=int, default=1_000_000)
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--url", default=os.environ.get("CONSENTRY_TEST_POSTGRES_URL",
                                                        DEFAULT_URL))
    args = parser.parse_args()
    table = Table(title="audit chain: append overhead per verdict, verify")
    for column in ("backend", "measure", "p50", "p95", "goal", "result"):
        table.add_column(column, justify="left" if column in ("backend", "measure")
                         else "right")
    with scratch_sqlite() as lite, scratch_postgres(args.url) as pg:
        backends = {"SQLite": lite, "PostgreSQL": pg}
        plain = {name: verdict_ms(db, args.samples, "plain") for name, db in backends.items()}
        audit.install()
        chained = {name: verdict_ms(db, args.samples, "audited")
                   for name, db in backends.items()}
        for name in backends:
            a, b = plain[name], chained[name]
            over50 = statistics.median(b) - statistics.median(a)
            table.add_row(name, "verdict transaction, no chain (ms)",
                          f"{statistics.median(a):.3f}", f"{p(a, 95):.3f}", "", "")
            table.add_row(name, "verdict transaction, chained (ms)",
                          f"{statistics.median(b):.3f}", f"{p(b, 95):.3f}", "", "")
            table.add_row(name, "append overhead (ms)", f"{over50:.3f}",
                          f"{p(b, 95) - p(a, 95):.3f}", "< 0.5",
                          "PASS" if over50 < 0.5 else "FAIL")
        for name, db in backends.items():
            filled = fill_chain(db, args.links)
            t = time.perf_counter()
            report = verify(db)
            took = time.perf_counter() - t
            table.add_row(name, f"verify {report.checked:,} links (s; written in "
                                f"{filled:.0f} s)", f"{took:.1f}", "", "< 30",
                          "PASS" if took < 30 and report.ok else "FAIL")
    Console().print(table)
    print(f"{args.samples} verdicts per measure; {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
