"""The transparency report and the incident pack over a large history. Goal (issue 12):
each is built in under 60 s over 1,000,000 events, on SQLite and on PostgreSQL.

The history (``--events``, default 1,000,000) is written in bulk over a 7-day period:
80% checks (each with its audit-chain link, hashed as the hook hashes it), the rest
takedown cases with their events, review items, strikes, suspensions and statements of
reasons. Then the report and the pack are built for the whole period (the worst case: the
pack verifies every link of it) and timed. Prints PASS/FAIL against the goal.

Run: ``python bench/bench_reports.py [--events 1000000] [--url postgresql+psycopg://...]
[--backend sqlite|postgres|both]``.
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from scratch_db import scratch_postgres, scratch_sqlite
from sqlalchemy import insert, select, update

from consentry.audit.chain import canonical, link_hash
from consentry.audit.checkpoints import Signer
from consentry.reporting.documents import write_transparency
from consentry.reporting.incident import IncidentScope, build_incident, write_pack
from consentry.reporting.transparency import Period, transparency_report
from consentry.store import Database
from consentry.store.models import (
    Account,
    AuditHead,
    AuditRecord,
    CaseEvent,
    CheckRecord,
    DsaStatement,
    ReviewItem,
    Strike,
    Suspension,
    TakedownCase,
)

GOAL_S = 60.0
BATCH = 20_000
START = datetime(2026, 11, 1, tzinfo=UTC)
DAYS = 7
DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def _batched(db: Database, model: Any, rows: Any) -> None:
    batch: list[dict[str, Any]] = []
    for row in rows:
        batch.append(row)
        if len(batch) == BATCH:
            with db.transaction() as s:
                s.execute(insert(model), batch)
            batch = []
    if batch:
        with db.transaction() as s:
            s.execute(insert(model), batch)


def build_history(db: Database, events: int, seed: int = 12) -> float:
    t = time.perf_counter()
    rng = random.Random(seed)
    span = DAYS * 86_400

    def at() -> datetime:
        return START + timedelta(seconds=rng.randrange(span))

    accounts = [f"acct-{i}" for i in range(2000)]
    _batched(db, Account, ({"id": a, "created_at": START} for a in accounts))
    n_checks = int(events * 0.8)
    times = sorted(at() for _ in range(n_checks))
    kinds, clauses = ("generation", "upload", "output"), ("II-1", "II-2", "II-3", "CS-1")

    def checks() -> Any:
        for i, when in enumerate(times):
            decision = "block" if i % 3 == 0 else "allow"
            kind = kinds[(i // 3) % 3]
            reasons: list[dict[str, Any]] = []
            if decision == "block" and kind == "upload" and i % 2:
                reasons = [{"code": "hash_match", "bank": "victims", "entry": 1, "distance": 3}]
            elif decision == "block":
                reasons = [{"code": "sexualising_request",
                            "span": {"text": "x", "language": ("en", "es", "id")[i % 3]}}]
            yield {"id": f"chk_{i}", "kind": kind, "account_id": accounts[i % len(accounts)],
                   "created_at": when, "decision": decision,
                   "category": "intimate_image_abuse",
                   "clause": clauses[i % 4] if decision == "block" else "OK-1",
                   "policy_version": "1.0", "image_sha256": [],
                   "verdict": {"reasons": reasons, "automated": True}, "latency_ms": 1.0}

    _batched(db, CheckRecord, checks())

    def links() -> Any:
        prev = "0" * 64
        for seq, when in enumerate(times, start=1):
            payload = canonical({"seq": seq, "at": when, "kind": "verdict.block",
                                 "subject": f"chk_{seq}", "actor": "gate",
                                 "body": {"table": "checks", "row": [f"chk_{seq}"],
                                          "op": "insert", "row_sha256": "b" * 64}})
            digest = link_hash(prev, payload)
            yield {"seq": seq, "at": when, "kind": "verdict.block", "subject": f"chk_{seq}",
                   "payload": payload, "prev_hash": prev, "hash": digest}
            prev = digest
        links.head = (len(times), prev)  # type: ignore[attr-defined]

    _batched(db, AuditRecord, links())
    seq, digest = links.head  # type: ignore[attr-defined]
    with db.transaction() as s:
        s.execute(update(AuditHead).where(AuditHead.id == 1).values(seq=seq, hash=digest))

    rest = events - n_checks
    n_cases = rest // 6
    regimes = ("take_it_down", "uk_intimate_image", "dsa_notice")
    case_times = [at() for _ in range(n_cases)]
    _batched(db, TakedownCase, ({"number": f"TD-{i}", "pin_hash": "x",
                                 "regime": regimes[i % 3], "channel": "web", "received_at": w,
                                 "deadline_at": w + timedelta(hours=48), "submission": {}}
                                for i, w in enumerate(case_times)))
    with db.transaction() as s:
        first_case = s.scalar(select(CaseEvent.id).limit(1))  # none yet; ids start at 1
    assert first_case is None
    _batched(db, CaseEvent, ({"case_id": i + 1, "kind": "closed", "actor": "system",
                              "at": w + timedelta(seconds=rng.randrange(3600, 60 * 3600)),
                              "automated": True, "details": {}}
                             for i, w in enumerate(case_times)))
    _batched(db, ReviewItem, ({"queue": "gate_review", "kind": "k", "subject": f"s{i}",
                               "restricted": False, "has_media": False, "priority": 1,
                               "due_at": w, "status": "closed", "created_at": w,
                               "closed_at": w + timedelta(minutes=rng.randrange(1, 600)),
                               "outcome": "uphold"}
                              for i, w in ((i, at()) for i in range(rest // 6))))
    _batched(db, Strike, ({"account_id": accounts[i % len(accounts)], "clause": "II-1",
                           "weight": 1, "created_at": w, "expires_at": w + timedelta(days=180)}
                          for i, w in ((i, at()) for i in range(rest // 6))))
    _batched(db, Suspension, ({"account_id": accounts[i % len(accounts)], "clause": "II-1",
                               "reason": "strikes", "starts_at": w, "pending_review": False}
                              for i, w in ((i, at()) for i in range(rest // 6))))
    _batched(db, DsaStatement, ({"puid": f"p{i}", "subject_kind": "check", "subject": f"c{i}",
                                 "created_at": w, "statement": {}, "status": "sent",
                                 "attempts": 1, "sent_at": w}
                                for i, w in ((i, at()) for i in range(rest - 4 * (rest // 6)))))
    return time.perf_counter() - t


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t = time.perf_counter()
    value = fn()
    return time.perf_counter() - t, value


def run(label: str, db: Database, events: int) -> bool:
    built_s = build_history(db, events)
    print(f"{label}: {events:,} events written in {built_s:.1f} s")
    period = Period(START, START + timedelta(days=DAYS))
    signer = Signer(db, bytes(32))
    signer.checkpoint(force=True)
    with tempfile.TemporaryDirectory() as folder:
        report_s, _written = timed(lambda: write_transparency(
            transparency_report(db, period), Path(folder) / "report"))
        pack_s, incident = timed(lambda: (lambda i: (write_pack(i, Path(folder) / "pack.zip"),
                                                     i)[1])(
            build_incident(signer, IncidentScope(period))))
    ok = True
    for name, seconds in (("transparency report", report_s), ("incident pack", pack_s)):
        verdict = "PASS" if seconds < GOAL_S else "FAIL"
        ok = ok and verdict == "PASS"
        print(f"{label}: {name}: {seconds:.1f} s (goal < {GOAL_S:.0f} s) {verdict}")
    print(f"{label}: pack totals {incident.totals}, audit links verified "
          f"{incident.audit.verification.get('checked')}, ok "
          f"{incident.audit.verification.get('ok')}")
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--url", default=os.environ.get("CONSENTRY_TEST_POSTGRES_URL",
                                                        DEFAULT_URL))
    args = parser.parse_args()
    ok = True
    if args.backend in ("sqlite", "both"):
        with scratch_sqlite() as db:
            ok = run("SQLite", db, args.events) and ok
    if args.backend in ("postgres", "both"):
        with scratch_postgres(args.url) as db:
            ok = run("PostgreSQL", db, args.events) and ok
    print("PASS" if ok else "FAIL")


if __name__ == "__main__":
    main()
