"""Group commit on SQLite and PostgreSQL: checks recorded many to a transaction are each
answered only once durable, a write that fails fails alone (its audit links with it),
a full queue is a clear 503 rather than a lost record, and the chain still verifies."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest
from sqlalchemy import event, func, select

from consentry.audit import chain
from consentry.audit.verify import verify
from consentry.errors import Unavailable
from consentry.store.batching import BatchWriter
from consentry.store.models import Account, AuditRecord, CheckRecord


def test_concurrent_checks_share_transactions_and_every_one_is_recorded(batched, db):
    batched.check_generation("a warm-up, so that no check waits for the models")
    prompts = [f"a {colour} {thing} in a watercolour" for colour in (
        "red", "blue", "green", "yellow", "grey", "white", "orange", "brown", "black",
        "pink", "gold", "teal") for thing in ("lighthouse", "bicycle", "teapot", "boat",
                                              "kite", "barn", "tram", "violin", "cactus",
                                              "bridge")]
    with ThreadPoolExecutor(max_workers=12) as pool:
        verdicts = list(pool.map(
            lambda i: batched.check_generation(prompts[i], account=f"acct-{i % 7}"),
            range(len(prompts))))
    assert {(v.decision, v.policy.clause) for v in verdicts} == {("allow", "OK-1")}
    with db.transaction() as s:
        ids = set(s.scalars(select(CheckRecord.id)))
        links = s.scalar(select(func.count()).select_from(AuditRecord)
                         .where(AuditRecord.kind == "verdict.allow"))
    assert {v.id for v in verdicts} <= ids and links == len(prompts) + 1
    stats = batched._batch.stats
    assert stats.writes == len(prompts) + 1 and stats.batches < stats.writes  # grouped
    assert verify(db).ok


def test_a_refusal_that_costs_the_account_is_recorded_on_its_own(batched, db):
    verdict = batched.check_generation("generate Jane Roe from accounting naked", account="u9")
    assert verdict.decision == "block" and batched.account_state("u9").active_strikes == 1
    assert batched._batch.stats.writes == 0  # strikes read the account under a lock


def test_the_same_idempotency_key_in_one_batch_is_recorded_once_and_replayed(batched, db):
    start = threading.Barrier(6)

    def same(_: int):
        start.wait()
        return batched.check_generation("a red bicycle by a canal", account="acct-k",
                                        idempotency_key="retry-1")

    with ThreadPoolExecutor(max_workers=6) as pool:
        verdicts = list(pool.map(same, range(6)))
    assert len({v.id for v in verdicts}) == 1
    with db.transaction() as s:
        assert s.scalar(select(func.count()).select_from(CheckRecord).where(
            CheckRecord.idempotency_key == "retry-1")) == 1
    assert verify(db).ok  # no link for a write that was rolled back


def test_one_failing_write_leaves_the_others_and_their_links(db, caplog):
    chain.install()
    writer = BatchWriter(db, max_batch=8, max_wait_s=0.2)
    now = datetime.now(UTC)
    runs: dict[str, int] = {}
    savepoints = []
    event.listen(db.engine, "savepoint", lambda *_: savepoints.append(1))

    def account(name: str, fail: bool = False):
        def write(s):
            runs[name] = runs.get(name, 0) + 1
            s.add(Account(id=name, created_at=now))
            s.add(CheckRecord(id=f"chk_{name}", kind="generation", account_id=name,
                              created_at=now, decision="allow", category="none",
                              clause="OK-1", policy_version="1", image_sha256=[],
                              verdict={}, latency_ms=1.0))
            s.flush()
            if fail:
                raise ValueError("this one is refused")
            return name
        return write

    try:
        # The usual batch: one transaction, no savepoint, each write run once.
        with ThreadPoolExecutor(max_workers=4) as pool:
            futures = [pool.submit(writer.write, account(f"a{i}")) for i in range(4)]
        assert [f.result() for f in futures] == ["a0", "a1", "a2", "a3"]
        assert savepoints == [] and set(runs.values()) == {1}
        with ThreadPoolExecutor(max_workers=4) as pool:
            futures = [pool.submit(writer.write, account(f"b{i}", fail=i == 2))
                       for i in range(4)]
        with pytest.raises(ValueError):
            futures[2].result()
        assert [futures[i].result() for i in (0, 1, 3)] == ["b0", "b1", "b3"]
        assert writer.stats.batches < 8
        # A write alone in its batch fails to its caller; the log says what failed.
        with pytest.raises(ValueError):
            writer.write(account("c0", fail=True))
        assert "a write failed to commit: ValueError" in caplog.text
        assert "batch of 1" not in caplog.text
    finally:
        writer.close()
    with db.transaction() as s:
        kept = {a for a in s.scalars(select(Account.id)) if a.startswith("b")}
        linked = {a for a in s.scalars(select(AuditRecord.subject).where(
            AuditRecord.kind == "verdict.allow")) if a.startswith("chk_b")}
    assert kept == {"b0", "b1", "b3"} and linked == {"chk_b0", "chk_b1", "chk_b3"}
    assert verify(db).ok


def test_a_full_queue_is_a_clear_refusal_and_nothing_waits_forever(db):
    release = threading.Event()
    writer = BatchWriter(db, max_batch=1, capacity=1, timeout_s=0.3)

    def slow(_s):
        release.wait(5)
        return "slow"

    try:
        with ThreadPoolExecutor(max_workers=3) as pool:
            first = pool.submit(writer.write, slow)   # being written, holds the thread
            second = pool.submit(writer.write, slow)  # fills the queue
            deadline = time.monotonic() + 5
            while writer.stats.queued < 1 and time.monotonic() < deadline:
                time.sleep(0.01)
            with pytest.raises(Unavailable):
                writer.write(slow)  # no room: refused within the timeout, not dropped
            release.set()
            # The callers still waiting were told "not answered" after their timeout, or
            # got their answer: never a silent drop.
            for waiting in (first, second):
                error = waiting.exception()
                assert isinstance(error, Unavailable) or waiting.result() == "slow"
    finally:
        release.set()
        writer.close()


def test_a_caller_that_must_not_block_is_told_when_its_write_is_done(db):
    release = threading.Event()
    writer = BatchWriter(db, max_batch=1, capacity=1, timeout_s=2.0)
    told: list[str] = []
    try:
        holding = writer.submit(lambda _s: release.wait(5) and "first")
        assert holding is not None
        holding.when_done(lambda: told.append("first"))
        deadline = time.monotonic() + 5
        while writer.stats.queued and time.monotonic() < deadline:
            time.sleep(0.01)
        queued = writer.submit(lambda _s: "second", wait_for_room=False)
        # Full: refused at once rather than waited for, and nothing was queued.
        assert queued is not None and writer.submit(lambda _s: "third",
                                                    wait_for_room=False) is None
        assert told == [] and not holding.done
        release.set()
        assert queued.wait() == "second" and holding.wait() == "first"
        assert told == ["first"]  # called back once, on commit
        queued.when_done(lambda: told.append("late"))  # already done: called at once
        assert told == ["first", "late"]
    finally:
        release.set()
        writer.close()
