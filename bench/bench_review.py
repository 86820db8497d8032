"""The review console at scale: 100,000 open items on PostgreSQL.

Goals (issue 9): the queue page p95 under 150 ms, taking the next item under 20 ms, a
bulk decision on 500 items under 5 s. Measured through the service (``ReviewQueues``,
``Decisions``) and, when the console's queue page is served, through HTTP as a signed-in
moderator's browser would load it. Prints figures; asserts nothing.

Run: ``python bench/bench_review.py [--items 100000] [--url postgresql+psycopg://...]``
(default: CONSENTRY_TEST_POSTGRES_URL, else the local server's ``test`` database; a
fresh schema is made and dropped).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from rich.console import Console
from rich.table import Table
from scratch_db import scratch_postgres
from sqlalchemy import insert, text

from consentry.cases.decisions import Decision, Decisions
from consentry.cases.review import Reviewer, ReviewQueues
from consentry.cases.senders import OutboxSender
from consentry.cases.takedowns import TakedownService
from consentry.config import Settings
from consentry.gate import Gate
from consentry.store import Database
from consentry.store.models import CheckRecord, ReviewItem, User

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
# How the open items spread over the queues (a busy day after an incident).
SPREAD = {"gate_review": 0.55, "image_refusals": 0.2, "appeals": 0.1, "takedowns": 0.1,
          "child_safety": 0.05}
KIND = {"gate_review": "review_verdict", "image_refusals": "image_refusal",
        "appeals": "appeal", "takedowns": "takedown_case", "child_safety": "cs1_confirmation"}


def fill(db: Database, items: int, now: datetime) -> None:
    """``items`` open review items, with the checks the gate-review ones are about."""
    rng = random.Random(7)
    rows, checks = [], []
    for queue, share in SPREAD.items():
        for i in range(int(items * share)):
            subject = f"chk_{queue[:4]}_{i:07d}"
            rows.append({"queue": queue, "kind": KIND[queue], "subject": subject,
                         "account_id": f"acct-{rng.randrange(50_000)}", "clause": "RV-1",
                         "restricted": queue == "child_safety", "has_media": rng.random() < 0.7,
                         "priority": 2, "status": "open", "created_at": now,
                         "due_at": now + timedelta(minutes=rng.randrange(-600, 2880))})
            if queue == "gate_review":
                checks.append({"id": subject, "kind": "generation", "created_at": now,
                               "decision": "review", "category": "intimate_image_abuse",
                               "clause": "RV-1", "policy_version": "bench",
                               "image_sha256": [], "verdict": {"reasons": []},
                               "latency_ms": 1.0})
    with db.transaction() as s:
        for start in range(0, len(checks), 10_000):
            s.execute(insert(CheckRecord), checks[start:start + 10_000])
        for start in range(0, len(rows), 10_000):
            s.execute(insert(ReviewItem), rows[start:start + 10_000])
        s.execute(text("ANALYZE review_items"))


def quantile_ms(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100)[q - 1] * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--url", default=os.environ.get("CONSENTRY_TEST_POSTGRES_URL",
                                                        DEFAULT_URL))
    parser.add_argument("--samples", type=int, default=200)
    args = parser.parse_args()

    with scratch_postgres(args.url) as db:
        run(db, args)


def run(db: Database, args: argparse.Namespace) -> None:
    now = datetime.now(UTC)
    t = time.perf_counter()
    fill(db, args.items, now)
    filled_s = time.perf_counter() - t
    with db.transaction() as s:
        users = [User(username=f"mod{i}", display_name=f"Moderator {i}", password_hash="-",
                      roles=["moderator"], created_at=now, password_changed_at=now)
                 for i in range(args.samples + 1)]
        s.add_all(users)
        s.flush()
        reviewers = [Reviewer(u.id, u.username, frozenset({"moderator"})) for u in users]
    queues = ReviewQueues(db)

    # The queue page: its first page, and pages deeper in (cursor from a random item).
    page_ms, first_ms = [], []
    cursors = [(2, now + timedelta(minutes=m), 0) for m in range(-600, 2880, 17)]
    for i in range(args.samples):
        t = time.perf_counter()
        queues.page(reviewers[0], "gate_review")
        first_ms.append(time.perf_counter() - t)
        t = time.perf_counter()
        queues.page(reviewers[0], "gate_review", after=cursors[i % len(cursors)])
        page_ms.append(time.perf_counter() - t)

    # Taking the next item: each moderator claims one.
    take_ms = []
    for reviewer in reviewers[1:]:
        t = time.perf_counter()
        assert queues.take_next(reviewer, "gate_review") is not None
        take_ms.append(time.perf_counter() - t)

    # A bulk decision on 500 items of the queue (not held by anyone).
    page = []
    after = None
    while len(page) < 500:
        batch = queues.page(reviewers[0], "gate_review", after=after)
        page += [i.id for i in batch if i.claimed_by is None]
        last = batch[-1]
        after = (last.priority, last.due_at, last.id)
    with tempfile.TemporaryDirectory() as tmp:
        gate = Gate(db, settings=Settings(data_dir=Path(tmp)))
        takedowns = TakedownService(db, gate.banks, gate.policy, callback=None,
                                    sender=OutboxSender(Path(tmp) / "outbox"))
        decisions = Decisions(queues, takedowns, gate.banks, gate.policy,
                              sender=takedowns.log.sender, appeal_tokens=gate.appeal_tokens,
                              public_url="https://safety.example")
        t = time.perf_counter()
        outcomes = decisions.decide(reviewers[0], page[:500], Decision.OVERTURN, "OK-1",
                                    "nothing sexual in any of these images")
        bulk_s = time.perf_counter() - t
        http = http_page_ms(db, gate, args.samples)
        gate.close()
    decided = sum(o.decided for o in outcomes)
    with db.transaction() as s:
        events = s.execute(text("SELECT count(*) FROM review_events")).scalar()

    table = Table(title=f"review console: {args.items:,} open items on PostgreSQL "
                        f"(filled in {filled_s:.1f} s)")
    for column in ("measure", "p50 ms", "p95 ms", "goal", "result"):
        table.add_column(column, justify="right" if column != "measure" else "left")
    rows = [("queue page, first 50 (service)", first_ms, 150),
            ("queue page, deeper (service, cursor)", page_ms, 150),
            ("take next item (claim + event)", take_ms, 20)]
    if http:
        rows.append(("queue page over HTTP (signed in, rendered)", http, 150))
    for name, values, goal in rows:
        p95 = quantile_ms(values, 95)
        table.add_row(name, f"{quantile_ms(values, 50):.1f}", f"{p95:.1f}", f"< {goal}",
                      "PASS" if p95 < goal else "FAIL")
    table.add_row(f"bulk decision: {decided}/500 decided", f"{bulk_s * 1000:.0f} total", "",
                  "< 5000", "PASS" if bulk_s < 5 and decided == 500 else "FAIL")
    Console().print(table)
    print(f"review events recorded: {events:,}; {os.cpu_count()} cores")


def http_page_ms(db: Database, gate: Gate, samples: int) -> list[float]:
    """The console's queue page as a signed-in moderator loads it, if it is served."""
    from fastapi.testclient import TestClient

    from consentry.api.app import create_app
    from consentry.people import People

    people = People.open(db, gate.settings)
    people.directory.create("benchmod", roles=["moderator"], password="a long bench passphrase")
    times = []
    with TestClient(create_app(gate=gate, people=people), follow_redirects=False) as client:
        client.post("/console/login", data={"username": "benchmod",
                                            "password": "a long bench passphrase"})
        if client.get("/console/queues/gate_review").status_code != 200:
            return []
        for _ in range(samples):
            t = time.perf_counter()
            client.get("/console/queues/gate_review")
            times.append(time.perf_counter() - t)
    return times


if __name__ == "__main__":
    main()
