"""The store on every configured backend: migrations, UTC round-trips, constraints."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime, timedelta, timezone

import pytest
from postgres_schema import POSTGRES_URL, postgres_schema
from sqlalchemy import inspect, select, text
from sqlalchemy.exc import IntegrityError, StatementError

from consentry.store import Database
from consentry.store.models import Account, CheckKey, CheckRecord


def _check(check_id: str, key: str | None) -> CheckRecord:
    return CheckRecord(id=check_id, kind="generation", account_id="a1", idempotency_key=key,
                       created_at=datetime.now(UTC), decision="allow", category="none",
                       clause="OK-1", policy_version="1", image_sha256=[], verdict={},
                       latency_ms=1.0)


def test_migrations_create_every_table_and_are_idempotent(db: Database):
    db.migrate()  # a second run changes nothing
    tables = set(inspect(db.engine).get_table_names())
    assert {"accounts", "checks", "check_media", "strikes", "suspensions", "api_keys",
            "alembic_version"} <= tables


def test_times_come_back_as_aware_utc(db: Database):
    local = datetime(2026, 5, 19, 14, 30, tzinfo=timezone(timedelta(hours=2)))
    with db.transaction() as s:
        s.add(Account(id="a1", created_at=local))
    with db.transaction() as s:
        stored = s.scalars(select(Account.created_at)).one()
    assert stored == local and stored.tzinfo is not None


def test_naive_times_are_refused(db: Database):
    with pytest.raises(StatementError, match="naive datetime"), db.transaction() as s:
        s.add(Account(id="a2", created_at=datetime(2026, 1, 1)))


def test_idempotency_key_is_unique_per_account(db: Database):
    def keyed(check_id: str, account: str) -> list[object]:
        return [_check(check_id, "k"), CheckKey(account_id=account, idempotency_key="k",
                                                check_id=check_id, created_at=datetime.now(UTC))]

    with db.transaction() as s:
        s.add_all([Account(id="a1", created_at=datetime.now(UTC)), *keyed("chk_1", "a1")])
    with pytest.raises(IntegrityError), db.transaction() as s:
        s.add_all(keyed("chk_2", "a1"))
    with db.transaction() as s:  # the failed transaction left nothing behind
        assert s.scalars(select(CheckRecord.id)).all() == ["chk_1"]
        s.add_all(keyed("chk_3", "a2"))  # another account's "k" is its own


def test_migrations_match_the_models(db: Database):
    """A model change without its migration fails here, not in production."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from consentry.store.models import Base
    from consentry.store.partitions import is_partition_table

    def modelled(name, type_, _parent) -> bool:  # checks stands for its partitions
        return not (type_ == "table" and is_partition_table(name))

    def not_to_a_partition(obj, _name, type_, _reflected, _compare_to) -> bool:
        # PostgreSQL gives a key to a partitioned table one internal copy per partition.
        return not (type_ == "foreign_key_constraint"
                    and is_partition_table(obj.referred_table.name))

    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={
            "include_name": modelled, "include_object": not_to_a_partition}), Base.metadata)
    assert diff == []


@pytest.mark.skipif(POSTGRES_URL is None, reason="needs CONSENTRY_TEST_POSTGRES_URL")
def test_a_connection_the_server_closed_while_idle_is_replaced_not_used(
        monkeypatch: pytest.MonkeyPatch):
    """A restart or an idle timeout closes pooled connections: the next request must get a
    working one. Connections in use moments ago are not pinged (a round trip a request)."""
    from sqlalchemy.exc import OperationalError

    from consentry.store import database

    def backend(db: Database) -> int:
        with db.reading() as conn:
            return int(conn.execute(text("select pg_backend_pid()")).scalar_one())

    admin = Database(POSTGRES_URL)  # type: ignore[arg-type]

    def kill(pid: int) -> None:
        with admin.reading() as conn:
            conn.execute(text("select pg_terminate_backend(:pid)"), {"pid": pid})

    with postgres_schema() as url:
        db = Database(url, pool_size=1)
        try:
            # However slow the machine, the connection counts as in use moments ago.
            monkeypatch.setattr(database, "IDLE_PING_S", 3600.0)
            first = backend(db)
            kill(first)
            # Returned moments ago: not pinged, so the dead connection fails the request
            # (fail closed) and the pool drops it.
            with pytest.raises(OperationalError):
                backend(db)
            second = backend(db)
            assert second != first
            kill(second)
            monkeypatch.setattr(database, "IDLE_PING_S", 0.0)  # idle long enough: pinged
            third = backend(db)
            assert third not in (first, second)
        finally:
            db.dispose()
            admin.dispose()


@pytest.mark.skipif(POSTGRES_URL is None, reason="needs CONSENTRY_TEST_POSTGRES_URL")
def test_a_hot_path_read_gives_up_after_its_timeout_and_a_transaction_does_not():
    """A read that queues behind a lock (a migration, a stuck transaction) is cancelled by
    the server after the read timeout; the request fails instead of stalling its replica.
    Transactions (a batch, a report, a migration) are not bounded by it."""
    from sqlalchemy.exc import OperationalError

    with postgres_schema() as url:
        db = Database(url, read_timeout_s=0.3)
        db.migrate()
        try:
            with db.transaction() as s:  # a lock held by someone else
                s.execute(text("LOCK TABLE accounts IN ACCESS EXCLUSIVE MODE"))
                started = time.monotonic()
                with (pytest.raises(OperationalError, match="statement timeout"),
                      db.reading() as conn):
                    conn.execute(select(Account.id)).all()
                assert time.monotonic() - started < 3.0
            with db.reading() as conn:  # the lock gone, the same pool answers
                assert conn.execute(select(Account.id)).all() == []
            with db.transaction() as s:
                assert s.execute(text("select pg_sleep(0.6), 1")).one()[1] == 1
        finally:
            db.dispose()


@pytest.mark.skipif(POSTGRES_URL is None, reason="needs CONSENTRY_TEST_POSTGRES_URL")
def test_a_database_host_that_never_answers_fails_the_connection_after_its_timeout():
    """A host that accepts the connection and then says nothing (a hung server, a
    half-open network path) costs a request the connect timeout, not minutes."""
    import socket

    from sqlalchemy.exc import OperationalError

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # the kernel accepts; nobody ever speaks
        port = silent.getsockname()[1]
        db = Database(f"postgresql+psycopg://nobody@127.0.0.1:{port}/none",
                      connect_timeout_s=2)
        try:
            started = time.monotonic()
            with pytest.raises(OperationalError, match="timeout"), db.reading() as conn:
                conn.execute(text("select 1"))
            assert 1.5 < time.monotonic() - started < 10.0
        finally:
            db.dispose()


@pytest.mark.skipif(POSTGRES_URL is None, reason="needs CONSENTRY_TEST_POSTGRES_URL")
def test_a_server_that_froze_mid_read_is_cut_off_by_the_client_and_the_pool_recovers(
        monkeypatch):
    """A server that took the statement and stopped (SIGSTOP, a hung host) cancels
    nothing and libpq never gives up: the client cuts the read itself at twice the read
    timeout (at least that plus 1 s), and once the server answers again the pool serves
    reads on fresh connections. A pooled connection's idle ping is bounded the same way."""
    from freezing_proxy import freezing_proxy
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import OperationalError

    import consentry.store.database as database

    with postgres_schema() as url:
        direct = make_url(url)
        with freezing_proxy((direct.host or "127.0.0.1", direct.port or 5432)) as proxy:
            db = Database(direct.set(host="127.0.0.1", port=proxy.port)
                          .render_as_string(hide_password=False), read_timeout_s=0.5)
            db.migrate()
            try:
                with db.reading() as conn:  # a connection in the pool, in use just now
                    assert conn.execute(select(Account.id)).all() == []
                proxy.freeze()
                started = time.monotonic()
                with pytest.raises(OperationalError), db.reading() as conn:
                    conn.execute(select(Account.id)).all()
                assert 1.3 < time.monotonic() - started < 5.0  # cut at 1.5 s
                proxy.thaw()
                with db.reading() as conn:
                    assert conn.execute(select(Account.id)).all() == []
                    # a read the server answers within the bound is never cut
                    assert conn.execute(text("select pg_sleep(0.3), 1")).one()[1] == 1
                # Idle in the pool past the ping interval, then the server freezes: the
                # ping is cut, and the connection that replaces it cannot open in time.
                monkeypatch.setattr(database, "IDLE_PING_S", 0.0)
                proxy.freeze()
                started = time.monotonic()
                with pytest.raises(OperationalError), db.reading() as conn:
                    conn.execute(select(Account.id)).all()
                assert time.monotonic() - started < 15.0
                proxy.thaw()
            finally:
                db.dispose()


def test_a_lock_is_held_by_one_process_at_a_time_and_freed_when_its_holder_dies(
        db: Database):
    """``exclusive`` keeps apart every process that shares the database (replicas on
    PostgreSQL, ``serve --workers N`` on one SQLite file), and a holder killed with
    kill -9 does not leave the lock held for ever."""
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys, time
            from consentry.store import Database
            with Database({db.url!r}).exclusive("sender", 1) as alone:
                print("held" if alone else "refused", flush=True)
                time.sleep(120)
        """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with db.exclusive("sender", 1) as alone:
            assert not alone  # the other process holds it
        with db.exclusive("another", 2) as alone:
            assert alone  # a lock of another name is free
    finally:
        holder.kill()
        holder.wait(30)
    other = Database(db.url)
    try:
        with db.exclusive("sender", 1) as alone, other.exclusive("sender", 1) as second:
            assert alone and not second  # a second holder in this process waits its turn too
    finally:
        other.dispose()
    with db.exclusive("sender", 1) as alone:
        assert alone  # released at the end of the block
