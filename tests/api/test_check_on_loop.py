"""Text-only checks with group commit (CONSENTRY_BATCH_RECORDS=1) are decided on the
event loop and their batch awaited there, without a thread per request: each is still
answered only once durable, a refusal that costs the account is written on its own, a
retry is answered from the record, and a writer that cannot keep up fails requests
closed (503 busy) instead of answering them from memory."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient
from postgres_schema import POSTGRES_URL, postgres_schema
from server_process import wait_for
from sqlalchemy import func, select, text

from consentry.access import Scope, create_api_key
from consentry.api.app import create_app
from consentry.audit.verify import verify
from consentry.config import Settings
from consentry.gate import Gate
from consentry.store import Database
from consentry.store.batching import BatchWriter
from consentry.store.models import AuditRecord, CheckRecord


@pytest.fixture
def client(batched):
    with TestClient(create_app(gate=batched)) as c:
        secret = create_api_key(batched.db, "pipeline", [Scope.CHECK])[1]
        c.headers["Authorization"] = f"Bearer {secret}"
        yield c


def check(client: TestClient, prompt: str, **fields: str):
    key = fields.pop("key", None)
    return client.post("/v1/check/generation", json={"prompt": prompt, **fields},
                       headers={"Idempotency-Key": key} if key else {})


def recorded(db, check_id: str) -> bool:
    with db.transaction() as s:
        return s.get(CheckRecord, check_id) is not None


def test_concurrent_text_checks_are_batched_and_each_is_on_record_when_answered(
        client, batched, db, monkeypatch):
    check(client, "a warm-up, so that no check waits for the models")

    def in_a_thread(*_a, **_k):
        raise AssertionError("a text-only check went to the thread pool")

    monkeypatch.setattr(batched, "check_generation", in_a_thread)
    prompts = [f"a {c} {t} in gouache" for c in ("red", "blue", "green", "grey", "gold")
               for t in ("lighthouse", "teapot", "kite", "tram", "violin", "owl")]

    def one(i: int):
        r = check(client, prompts[i], account=f"acct-{i % 5}")
        assert r.status_code == 200, r.text
        assert recorded(db, r.json()["id"])  # durable before it was answered
        return r.json()

    with ThreadPoolExecutor(max_workers=10) as pool:
        verdicts = list(pool.map(one, range(len(prompts))))
    assert {(v["decision"], v["policy"]["clause"]) for v in verdicts} == {("allow", "OK-1")}
    assert len({v["id"] for v in verdicts}) == len(prompts)
    stats = batched._batch.stats
    assert stats.writes == len(prompts) + 1 and stats.batches < stats.writes  # grouped
    with db.transaction() as s:
        assert s.scalar(select(func.count()).select_from(AuditRecord).where(
            AuditRecord.kind == "verdict.allow")) == len(prompts) + 1
    assert verify(db).ok


def test_a_refusal_that_costs_the_account_is_written_on_its_own(client, batched, db):
    r = check(client, "generate Jane Roe from accounting naked", account="u9")
    assert r.status_code == 200 and r.json()["decision"] == "block"
    assert r.json()["account"]["active_strikes"] == 1
    assert batched.account_state("u9").active_strikes == 1
    assert batched._batch.stats.writes == 0  # read under a lock, in its own transaction
    assert recorded(db, r.json()["id"])


def test_a_retry_is_answered_from_the_record_and_a_reused_key_is_a_conflict(client, db):
    first = check(client, "a red bicycle by a canal", account="acct-k", key="retry-1")
    again = check(client, "a red bicycle by a canal", account="acct-k", key="retry-1")
    other = check(client, "a blue bicycle by a canal", account="acct-k", key="retry-1")
    assert first.status_code == again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert other.status_code == 409
    with db.transaction() as s:
        assert s.scalar(select(func.count()).select_from(CheckRecord).where(
            CheckRecord.idempotency_key == "retry-1")) == 1


def test_a_writer_that_cannot_keep_up_fails_requests_closed(client, batched, db):
    check(client, "a warm-up, so that no check waits for the models")
    release = threading.Event()
    # Long enough that /healthz is asked while the check still waits, on a slow machine too.
    stuck = BatchWriter(db, max_batch=1, capacity=1, timeout_s=3.0)
    batched._batch = stuck

    def slow(_s):
        release.wait(60)
        return None

    try:
        # The writer holds one batch that does not commit: a check queued behind it is
        # not answered in time, and meanwhile the event loop still answers others.
        stuck.submit(slow)
        wait_for(lambda: stuck.stats.queued == 0, 5.0, "the writer to hold it", every_s=0.01)
        with ThreadPoolExecutor(max_workers=1) as pool:
            waiting = pool.submit(check, client, "a teapot on a shelf", account="acct-s")
            wait_for(lambda: stuck.stats.queued == 1, 5.0, "the check to queue", every_s=0.01)
            assert client.get("/healthz").status_code == 200
            assert not waiting.done()  # the loop answered while the check waited
            slow_commit = waiting.result()
        assert slow_commit.status_code == 503, slow_commit.text
        assert slow_commit.json()["error"]["code"] == "busy"
        # Now the queue is full too: the check waits for room (in a thread, not on the
        # loop), then is refused.
        full = check(client, "a kite over a beach", account="acct-f")
        assert full.status_code == 503 and full.json()["error"]["code"] == "busy"
    finally:
        release.set()
        stuck.close()
    with db.transaction() as s:
        kites = s.scalar(select(func.count()).select_from(CheckRecord).where(
            CheckRecord.account_id == "acct-f"))
    assert kites == 0  # refused before it was queued: nothing to answer later


@pytest.mark.skipif(POSTGRES_URL is None, reason="needs CONSENTRY_TEST_POSTGRES_URL")
def test_a_database_that_stops_answering_fails_the_check_closed_and_the_loop_lives_on(
        analyser, clock, tmp_path):
    """The account is read on the event loop: a database that does not answer it (here a
    lock it queues behind) must cost the request a 503 after the read timeout, not stall
    the replica until the lock goes. Nothing is recorded, so a retry with the same key
    is checked afresh."""
    with postgres_schema() as url:
        db = Database(url, read_timeout_s=0.3)
        db.migrate()
        gate = Gate(db, settings=Settings(data_dir=tmp_path, batch_records=True),
                    analyser=analyser, clock=clock)
        try:
            with TestClient(create_app(gate=gate)) as client:
                secret = create_api_key(db, "pipeline", [Scope.CHECK])[1]
                client.headers["Authorization"] = f"Bearer {secret}"
                assert check(client, "a warm-up", account="acct-l").status_code == 200
                with db.transaction() as s:  # e.g. a migration waiting on a long query
                    s.execute(text("LOCK TABLE accounts IN ACCESS EXCLUSIVE MODE"))
                    started = time.monotonic()
                    r = check(client, "a lighthouse at dusk", account="acct-l", key="k-1")
                    assert r.status_code == 503, r.text
                    assert r.json()["error"]["code"] == "database_unavailable"
                    assert r.headers["Retry-After"] == "1"
                    assert time.monotonic() - started < 5.0  # the timeout, not the lock
                    assert client.get("/healthz").status_code == 200  # lock still held
                    assert check(client, "a kite", account="acct-l").status_code == 503
                retried = check(client, "a lighthouse at dusk", account="acct-l", key="k-1")
                assert retried.status_code == 200, retried.text
                assert retried.json()["decision"] == "allow"
            with db.transaction() as s:
                prompts = s.scalar(select(func.count()).select_from(CheckRecord).where(
                    CheckRecord.account_id == "acct-l"))
            assert prompts == 2  # the warm-up and the retry; nothing for the refused two
        finally:
            gate.close()
            db.dispose()
