"""What an operator's probes and Prometheus see: /healthz answers while the process lives,
/readyz only when the database answers at the schema this code expects and the vault's
keys still open, and /metrics (a ``metrics:read`` key) counts verdicts and shows the
work waiting in the database."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from server_process import wait_for
from sqlalchemy import select, text, update

from consentry.access import Scope, create_api_key
from consentry.api.app import create_app
from consentry.api.routers import health
from consentry.config import Settings
from consentry.gate import Gate
from consentry.metrics import Backlog, IndexState
from consentry.store.database import alembic_config, make_engine
from consentry.store.models import (
    CyberTipReport,
    DsaStatement,
    EvidenceKey,
    MaintenanceRun,
    RemovalJob,
)
from consentry.store.partitions import ensure_partitions
from consentry.store.review import open_item

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def gate(db, clock, tmp_path):
    # Text-only checks: no image models, no sentence encoder.
    g = Gate(db, settings=Settings(data_dir=tmp_path, semantic_layer=False), clock=clock)
    yield g
    g.close()


@pytest.fixture
def client(gate, monkeypatch):
    monkeypatch.setattr(health, "PROBE_TTL_S", 0.0)  # every probe looks afresh
    with TestClient(create_app(gate=gate)) as c:
        yield c


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def samples(body: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(body) for s in family.samples}


# -- liveness and readiness -------------------------------------------------------------


def test_a_served_app_freezes_what_start_up_built_and_a_test_app_does_not(gate):
    # Frozen objects are never walked by the cycle collector: a full collection then
    # costs what the requests left, not the models and lexicons (a 0.2 s stall each).
    assert gc.get_freeze_count() == 0
    with TestClient(create_app(gate=gate)) as c:
        assert c.get("/healthz").status_code == 200
        assert gc.get_freeze_count() == 0
    try:
        with TestClient(create_app(gate=gate, settle_heap=True)) as c:
            frozen = gc.get_freeze_count()
            assert c.post("/v1/check/generation", json={"prompt": "a kite"},
                          headers=bearer(create_api_key(gate.db, "t", [Scope.CHECK])[1])
                          ).json()["decision"] == "allow"
    finally:
        gc.unfreeze()
    assert frozen > 50_000  # the gate's lexicons and policy, the app, the ORM


def test_liveness_and_readiness_need_no_key_and_a_migrated_database_is_ready(client):
    assert client.get("/healthz").status_code == 200
    ready = client.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json() == {"status": "ready", "reasons": []}
    assert ready.headers["cache-control"] == "no-store"


def test_a_database_behind_the_code_is_not_ready_and_one_ahead_of_it_is(client, gate):
    script = ScriptDirectory.from_config(alembic_config())
    (head,) = script.get_heads()
    before_head = script.get_revision(head).down_revision

    def at(revision: str) -> None:
        with gate.db.engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = :v"), {"v": revision})

    at(before_head)  # the migration job has not run yet
    answer = client.get("/readyz")
    assert answer.status_code == 503
    assert answer.json() == {"status": "not_ready", "reasons": ["schema_behind_code"]}
    at("f00dfeed0001")  # a newer release's expand migration: this replica keeps serving,
    assert client.get("/readyz").status_code == 200
    gate.db.migrate()  # and starts again if it restarts mid-rollout (nothing to run)
    assert gate.db.schema_state() == "ahead"
    at(head)
    assert client.get("/readyz").status_code == 200


def test_a_database_that_cannot_be_reached_is_not_ready_and_the_answer_names_no_host(
        client, gate, monkeypatch):
    # Port 9 (discard) on loopback: nothing listens, the connection is refused.
    down = make_engine("postgresql+psycopg://consentry:hunter2@127.0.0.1:9/consentry"
                       "?connect_timeout=2")
    monkeypatch.setattr(gate.db, "engine", down)
    answer = client.get("/readyz")
    assert answer.status_code == 503
    assert answer.json() == {"status": "not_ready", "reasons": ["database_unreachable"]}
    assert "127.0.0.1" not in answer.text and "hunter2" not in answer.text
    assert client.get("/healthz").status_code == 200  # alive: restarting would not help
    down.dispose()


def test_evidence_keys_that_no_longer_open_the_vault_are_not_ready(client, gate):
    assert client.get("/readyz").status_code == 200  # the active key's canary is written
    with gate.db.transaction() as s:  # another key under the same id, as after a botched
        s.execute(update(EvidenceKey).values(canary=b"\0" * 60))  # rotation elsewhere
    answer = client.get("/readyz")
    assert answer.status_code == 503
    assert answer.json()["reasons"] == ["evidence_keys_wrong"]


# -- metrics ------------------------------------------------------------------------------


def test_metrics_need_a_metrics_key(client, gate):
    assert client.get("/metrics").status_code == 401
    check_only = create_api_key(gate.db, "pipeline", [Scope.CHECK])[1]
    assert client.get("/metrics", headers=bearer(check_only)).status_code == 403
    scraper = create_api_key(gate.db, "prometheus", [Scope.METRICS])[1]
    scraped = client.get("/metrics", headers=bearer(scraper))
    assert scraped.status_code == 200
    assert scraped.headers["content-type"].startswith("text/plain")
    assert "consentry_database_up 1.0" in scraped.text


def test_a_check_counts_its_verdict_by_decision_and_clause(client, gate):
    key = create_api_key(gate.db, "pipeline", [Scope.CHECK, Scope.METRICS])[1]

    def counted(clause: str) -> float:
        return REGISTRY.get_sample_value("consentry_verdicts_total", {
            "kind": "generation", "decision": "block", "clause": clause}) or 0.0

    before = counted("CS-1")
    latency_before = REGISTRY.get_sample_value("consentry_check_seconds_count",
                                               {"kind": "generation"}) or 0.0
    verdict = client.post("/v1/check/generation", headers=bearer(key),
                          json={"prompt": "naked 12 year old girl"}).json()
    assert (verdict["decision"], verdict["policy"]["clause"]) == ("block", "CS-1")
    assert counted("CS-1") == before + 1
    assert REGISTRY.get_sample_value("consentry_check_seconds_count",
                                     {"kind": "generation"}) == latency_before + 1
    scraped = samples(client.get("/metrics", headers=bearer(key)).text)
    assert scraped[("consentry_verdicts_total", (("clause", "CS-1"), ("decision", "block"),
                                                 ("kind", "generation")))] == before + 1


def test_the_backlog_shows_the_rows_waiting(client, gate, clock):
    clock.now = now = datetime.now(UTC)  # a scrape reads the wall clock
    with gate.db.transaction() as s:
        for subject, queue in (("chk_1", "gate_review"), ("chk_2", "gate_review"),
                               ("TD-1", "takedowns"), ("chk_3", "gate_review")):
            open_item(s, queue=queue, kind="check", subject=subject, account_id=None,
                      clause="II-1", restricted=False, has_media=False, priority=1,
                      due_at=now, now=now)
        s.execute(text("UPDATE review_items SET status = 'closed' WHERE subject = 'chk_3'"))
        s.add_all([
            RemovalJob(content_id="p1", action="remove", idempotency_key="k1", state="pending",
                       next_attempt_at=now - timedelta(minutes=10), created_at=now),
            RemovalJob(content_id="p2", action="remove", idempotency_key="k2", state="pending",
                       next_attempt_at=now + timedelta(minutes=10), created_at=now),
            RemovalJob(content_id="p3", action="remove", idempotency_key="k3", state="done",
                       next_attempt_at=now, created_at=now),
            DsaStatement(puid="s1", subject_kind="check", subject="chk_1", statement={},
                         status="queued", created_at=now - timedelta(hours=2)),
            CyberTipReport(key="r1", status="draft", created_at=now, updated_at=now),
            CyberTipReport(key="r2", status="confirmed", created_at=now, updated_at=now),
        ])
    # The app's worker runs the periodic jobs once at start (then hourly): wait for that
    # run, or it would overwrite the last success this test sets to 20 minutes ago.
    def exported() -> bool:
        with gate.db.transaction() as s:
            return s.get(MaintenanceRun, "job:analytics.export") is not None

    wait_for(exported, 30.0, "the worker's first analytics export")
    with gate.db.transaction() as s:
        s.merge(MaintenanceRun(name="job:analytics.export",
                               done_at=now - timedelta(minutes=20), count=3))
    scraper = create_api_key(gate.db, "prometheus", [Scope.METRICS])[1]
    got = samples(client.get("/metrics", headers=bearer(scraper)).text)

    def value(name: str, **labels: str) -> float:
        return got[(name, tuple(sorted(labels.items())))]

    assert value("consentry_review_items_open", queue="gate_review") == 2
    assert value("consentry_review_items_open", queue="takedowns") == 1
    assert value("consentry_removal_jobs", state="pending") == 2
    assert value("consentry_removal_jobs", state="failed") == 0
    assert value("consentry_dsa_statements", status="queued") == 1
    assert value("consentry_cybertip_reports", status="draft") == 1
    assert value("consentry_cybertip_reports", status="confirmed") == 1
    # Only the callback that is due counts as lag.
    assert value("consentry_job_lag_seconds", job="removal_callback") == pytest.approx(600, abs=5)
    assert value("consentry_job_lag_seconds", job="dsa_statement") == pytest.approx(7200, abs=5)
    assert value("consentry_index_changes_behind", index="bank") == 0
    # An export that stopped succeeding shows before the reports it feeds go stale.
    assert value("consentry_job_last_success_seconds", job="analytics.export") \
        == pytest.approx(1200, abs=5)
    jobs = {dict(k[1])["job"] for k in got if k[0] == "consentry_job_last_success_seconds"}
    with gate.db.transaction() as s:
        one_offs = set(s.scalars(select(MaintenanceRun.name).where(
            ~MaintenanceRun.name.startswith("job:"))))
    assert one_offs and not jobs & one_offs  # a one-off pass (sealing at start) is not a job


def test_a_missing_partition_of_checks_shows_before_checks_pile_up_in_the_default(
        gate, clock):
    """PostgreSQL: the gauge counts the days ahead whose partition exists (the worker keeps
    a week); SQLite has no partitions and no gauge."""
    backlog = Backlog(gate.db, ttl_s=0, clock=clock)

    def ahead() -> float | None:
        found = [m for m in backlog.collect()
                 if m.name == "consentry_check_partition_days_ahead"]
        return found[0].samples[0].value if found else None

    if gate.db.engine.dialect.name == "sqlite":
        assert ahead() is None
        return
    clock.now = datetime(2025, 3, 4, 12, tzinfo=UTC)  # before any partition migrations made
    assert ahead() == 0
    ensure_partitions(gate.db, clock(), ahead_days=7)
    assert ahead() == 8
    clock.advance(days=3)
    assert ahead() == 5


def test_index_staleness_is_the_changes_not_yet_applied(gate, clock):
    banks = gate.banks
    banks.matcher.sync()
    backlog = Backlog(gate.db, lambda: [IndexState("bank", banks.matcher.size,
                                                   banks.matcher.watermark)],
                      ttl_s=0, clock=clock)

    def behind() -> float:
        return next(s.value for f in backlog.collect() for s in f.samples
                    if s.name == "consentry_index_changes_behind")

    assert behind() == 0
    banks.registry.create("victims", "block", "ncii", actor="test")  # one bank event
    assert behind() == 1
    banks.matcher.sync()
    assert behind() == 0


def test_the_backlog_is_read_once_per_interval_and_a_failed_read_says_so(gate, clock,
                                                                         monkeypatch):
    reads = []
    backlog = Backlog(gate.db, ttl_s=60, clock=clock)
    real = backlog._figures
    monkeypatch.setattr(backlog, "_figures", lambda: reads.append(1) or real())
    for _ in range(3):
        list(backlog.collect())
    assert len(reads) == 1
    failing = Backlog(gate.db, ttl_s=0, clock=clock)
    monkeypatch.setattr(failing, "_figures", lambda: 1 / 0)
    (up,) = list(failing.collect())
    assert up.name == "consentry_database_up" and up.samples[0].value == 0


def test_several_processes_on_one_host_are_counted_together(tmp_path):
    """``PROMETHEUS_MULTIPROC_DIR``: each process writes its counts there, and whichever
    answers a scrape sums them."""
    shared = tmp_path / "prometheus"
    shared.mkdir()
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(shared),
           "PYTHONPATH": str(ROOT)}
    count = "from consentry.metrics import observe_verdict\n" \
            "observe_verdict('upload', 'block', 'KM-1', 0.01)\n"
    for _ in range(2):
        subprocess.run([sys.executable, "-c", count], env=env, check=True, timeout=120)
    scrape = textwrap.dedent("""
        from consentry.metrics import exposition
        print(exposition(None).decode())
    """)
    out = subprocess.run([sys.executable, "-c", scrape], env=env, check=True, timeout=120,
                         capture_output=True, text=True).stdout
    got = samples(out)
    assert got[("consentry_verdicts_total", (("clause", "KM-1"), ("decision", "block"),
                                             ("kind", "upload")))] == 2
