"""``checks`` partitioned by time on PostgreSQL: a check's id places it in its day's
partition (allowed) or its month's (kept), retention drops a day's partition whole and
keeps the evidence, a check with no partition yet is caught by the default one, and the
migration turns an existing table into the legacy partition without losing a row or a
reference. The migration also runs on SQLite (keys moved, constraint dropped)."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic import command
from postgres_schema import POSTGRES_URL, postgres_schema
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from consentry.audit.verify import verify
from consentry.config import Settings
from consentry.store import Database
from consentry.store.database import alembic_config
from consentry.store.models import Account, CheckKey, CheckRecord, Strike, ThreadTurn
from consentry.store.partitions import (
    Partition,
    drop_expired_partitions,
    ensure_partitions,
    new_check_id,
    partitions,
)
from consentry.store.retention import purge_allowed_checks

needs_postgres = pytest.mark.skipif(POSTGRES_URL is None,
                                    reason="needs CONSENTRY_TEST_POSTGRES_URL")


def test_a_check_id_sorts_by_time_and_falls_in_its_partitions_range():
    day = datetime(2026, 11, 25, tzinfo=UTC)
    ids = [new_check_id(day + timedelta(hours=h), kept=False) for h in (0, 1, 23.99)]
    assert ids == sorted(ids) and all(i.startswith("chk_x") and len(i) <= 40 for i in ids)
    low, high = Partition.allowed(day.date()).bounds
    assert all(low <= i < high for i in ids)
    assert not low <= new_check_id(day + timedelta(days=1), kept=False) < high
    kept = new_check_id(day, kept=True)
    low, high = Partition.kept_month(day.date()).bounds
    assert kept.startswith("chk_k") and low <= kept < high
    assert Partition.kept_month(day.date()).name == "checks_kept_202611"
    assert Partition.from_name("checks_allowed_20261125") == Partition.allowed(day.date())
    # Every id given before partitioning sorts below the new ones (the legacy range).
    assert "chk_" + "f" * 32 < kept < ids[0]


def _home(db: Database, check_id: str) -> str:
    with db.engine.connect() as conn:
        return str(conn.execute(text("SELECT tableoid::regclass FROM checks WHERE id = :id"),
                                {"id": check_id}).scalar_one())


@needs_postgres
def test_retention_drops_a_days_partition_and_keeps_the_refusals(
        pg: Database, analyser, clock, photos, tmp_path: Path):
    from consentry.gate import Gate

    created = ensure_partitions(pg, clock(), ahead_days=45)
    assert {"checks_allowed_20261125", "checks_kept_202612",
            "checks_allowed_20270109"} <= set(created)
    assert ensure_partitions(pg, clock(), ahead_days=45) == []  # nothing twice
    gate = Gate(pg, settings=Settings(data_dir=tmp_path), analyser=analyser, clock=clock)
    try:
        allowed = gate.check_generation("a teapot on a windowsill", account="r1",
                                        thread="t-r", idempotency_key="tea")
        refused = gate.check_generation("put her in a bikini", [photos["astronaut"]], "r2",
                                        idempotency_key="bikini")
        assert refused.decision != "allow"
        assert _home(pg, allowed.id) == "checks_allowed_20261125"
        assert _home(pg, refused.id) == "checks_kept_202611"
        clock.advance(days=40)
        later = gate.check_generation("a kite over the dunes", account="r1")
        assert _home(pg, later.id) == "checks_allowed_20270104"

        assert purge_allowed_checks(pg, before=clock() - timedelta(days=30)) == 1
        with pg.engine.connect() as conn:
            names = partitions(conn)
        assert "checks_allowed_20261125" not in names and "checks_kept_202611" in names
        with pg.transaction() as s:
            assert set(s.scalars(select(CheckRecord.id))) == {refused.id, later.id}
            assert list(s.scalars(select(ThreadTurn.check_id))) == []
            assert list(s.scalars(select(CheckKey.idempotency_key))) == []  # expired too
            assert list(s.scalars(select(Strike.check_id))) == [refused.id]
        assert verify(pg).ok
        # The key is free again once its check is gone: a new request, a new check.
        again = gate.check_generation("a teapot on a windowsill", account="r1",
                                      idempotency_key="tea")
        assert again.id != allowed.id and _home(pg, again.id) == "checks_allowed_20270104"
        assert gate.check_generation("a teapot on a windowsill", account="r1",
                                     idempotency_key="tea").id == again.id  # replayed
    finally:
        gate.close()


@needs_postgres
def test_a_check_without_its_partition_waits_in_the_default_one(
        pg: Database, analyser, clock, tmp_path: Path):
    from consentry.gate import Gate

    clock.now = datetime(2025, 3, 4, 12, tzinfo=UTC)  # long before the migration's days
    gate = Gate(pg, settings=Settings(data_dir=tmp_path), analyser=analyser, clock=clock)
    try:
        stray = gate.check_generation("a lighthouse at dusk", account="r3")
        assert _home(pg, stray.id) == "checks_other"
        # That day's partition cannot be made around it: it is skipped, the check stays.
        created = ensure_partitions(pg, clock(), ahead_days=1)
        assert "checks_allowed_20250304" not in created and "checks_allowed_20250305" in created
        assert gate.check_generation("a lighthouse at dusk", account="r3",
                                     idempotency_key="l").decision == "allow"
        clock.advance(days=1)
        assert _home(pg, gate.check_generation("a harbour", account="r3").id) == \
            "checks_allowed_20250305"
        # Retention deletes it row by row, like the checks from before partitioning.
        # Two from the default partition, one with its day's (dropped whole).
        assert purge_allowed_checks(pg, before=clock() + timedelta(days=1)) == 3
    finally:
        gate.close()


def _database_at_0017(backend: str, tmp_path: Path) -> Iterator[Database]:
    if backend == "sqlite":
        db = Database(f"sqlite:///{tmp_path / 'old.db'}")
        yield db
        db.dispose()
        return
    with postgres_schema() as url:
        db = Database(url)
        yield db
        db.dispose()


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=needs_postgres)])
def test_the_migration_keeps_every_check_reference_and_key(backend: str, tmp_path: Path):
    for db in _database_at_0017(backend, tmp_path):
        config = alembic_config()
        with db.engine.begin() as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, "0017")
            conn.execute(text("INSERT INTO accounts VALUES ('a', :at)"), {"at": datetime.now(UTC)})
            for i, (decision, key) in enumerate([("allow", "k1"), ("block", "k2"),
                                                 ("allow", None)]):
                conn.execute(text(
                    "INSERT INTO checks (id, kind, account_id, idempotency_key, created_at, "
                    "decision, category, clause, policy_version, image_sha256, verdict, "
                    "latency_ms) VALUES (:id, 'generation', 'a', :key, :at, :decision, "
                    "'none', 'OK-1', '1', '[]', '{}', 1)"),
                    {"id": f"chk_{i:032x}", "key": key, "at": datetime.now(UTC),
                     "decision": decision})
            conn.execute(text(
                "INSERT INTO strikes (account_id, check_id, clause, weight, created_at, "
                "expires_at) VALUES ('a', :check, 'II-1', 1, :at, :at)"),
                {"check": f"chk_{1:032x}", "at": datetime.now(UTC)})
        db.migrate()
        with db.transaction() as s:
            assert len(s.scalars(select(CheckRecord.id)).all()) == 3
            assert {(k.idempotency_key, k.check_id) for k in s.scalars(select(CheckKey))} == \
                {("k1", f"chk_{0:032x}"), ("k2", f"chk_{1:032x}")}
            assert s.scalars(select(Strike.check_id)).all() == [f"chk_{1:032x}"]
        if backend == "postgres":
            assert _home(db, f"chk_{2:032x}") == "checks_legacy"
            with db.engine.connect() as conn:
                assert {"checks_legacy", "checks_other"} <= set(partitions(conn))


@needs_postgres
def test_a_partition_held_by_a_long_transaction_is_dropped_on_the_next_run(
        pg: Database, clock):
    ensure_partitions(pg, clock(), ahead_days=0)
    check_id = new_check_id(clock(), kept=False)
    with pg.transaction() as s:
        s.add(CheckRecord(id=check_id, kind="generation", created_at=clock(),
                          decision="allow", category="none", clause="OK-1",
                          policy_version="1", image_sha256=[], verdict={}, latency_ms=1.0))
    later = clock() + timedelta(days=3)
    with pg.engine.connect() as reader:
        reader.execute(text("SELECT count(*) FROM checks")).scalar_one()  # holds its lock
        assert drop_expired_partitions(pg, before=later, lock_timeout_ms=200) == 0
        reader.rollback()
    assert _home(pg, check_id) == Partition.allowed(clock().date()).name  # still there
    assert drop_expired_partitions(pg, before=later, lock_timeout_ms=200) == 1
    with pg.transaction() as s:
        assert s.get(CheckRecord, check_id) is None


@needs_postgres
def test_partitions_made_while_a_check_is_recorded_never_deadlock_it(pg: Database, clock):
    # A check being recorded holds ``accounts`` (a new account), then wants ``checks``;
    # making a partition wants both. They had deadlocked, and PostgreSQL aborted one.
    now = clock()
    made: list[str] = []
    with pg.engine.connect() as recorder:
        session = Session(bind=recorder)
        session.add(Account(id="new-acct", created_at=now))
        session.flush()
        maker = threading.Thread(
            target=lambda: made.extend(ensure_partitions(pg, now, ahead_days=3)))
        maker.start()
        time.sleep(0.3)
        assert maker.is_alive() and made == []  # giving way, holding nothing
        session.add(CheckRecord(id=new_check_id(now, kept=False), kind="generation",
                                account_id="new-acct", created_at=now, decision="allow",
                                category="none", clause="OK-1", policy_version="1",
                                image_sha256=[], verdict={}, latency_ms=1.0))
        session.flush()  # would wait on the maker's lock on checks, had it taken one
        session.commit()
    maker.join(10)
    assert not maker.is_alive() and made  # made once the check was recorded
    with pg.engine.connect() as conn:
        assert set(made) <= set(partitions(conn))


@needs_postgres
def test_a_database_that_sorts_digits_as_numbers_gets_bytewise_ids(clock):
    """Under an ICU collation with numeric ordering, 'chk_x0199' sorts after 'chk_x019a':
    the ranges would not follow time. The migration then gives the id column the C
    collation, and a check still lands in its day's partition."""
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url

    name = f"icu_kn_{uuid.uuid4().hex[:8]}"
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")  # type: ignore[arg-type]
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name} LOCALE_PROVIDER icu "
                          "ICU_LOCALE 'und-u-kn-true' TEMPLATE template0"))
    try:
        db = Database(make_url(POSTGRES_URL).set(database=name).render_as_string(False))
        with db.engine.connect() as conn:
            assert not conn.execute(text("SELECT 'chk_x0199' < 'chk_x019a'")).scalar_one()
        db.migrate()
        ensure_partitions(db, clock(), ahead_days=0)
        check_id = new_check_id(clock(), kept=False)
        with db.transaction() as s:
            s.add(CheckRecord(id=check_id, kind="generation", created_at=clock(),
                              decision="allow", category="none", clause="OK-1",
                              policy_version="1", image_sha256=[], verdict={},
                              latency_ms=1.0))
        assert _home(db, check_id) == Partition.allowed(clock().date()).name
        with db.engine.connect() as conn:
            assert conn.execute(text(
                "SELECT collation_name FROM information_schema.columns "
                "WHERE table_name = 'checks' AND column_name = 'id'")).scalar_one() == "C"
        db.dispose()
    finally:
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()
